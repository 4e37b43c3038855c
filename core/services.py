"""Writes to the shared code lists (dictionaries) and the run-time system settings.

System settings are declared here, each with its default and its validation,
so a setting an admin may change is also a setting the code knows about:
reading an undeclared key is a programming error, not a silent ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .errors import DomainError
from .models import Dictionary, DictionaryItem, SystemSetting

T = TypeVar("T")

# --- audit ------------------------------------------------------------------


def _audit(**kwargs) -> None:
    # The audit log lives in accounts (it records users and roles); imported at
    # call time so that core stays importable on its own and import cycles
    # cannot form at start-up.
    from accounts.audit import audit_log

    audit_log(**kwargs)


def model_snapshot(obj, fields: list[str]) -> dict[str, Any]:
    """Field values of ``obj`` as JSON-friendly data (foreign keys by id)."""
    data: dict[str, Any] = {}
    for name in fields:
        field = obj._meta.get_field(name)
        value = getattr(obj, field.attname)
        if value is not None and not isinstance(value, bool | int | float | str | list | dict):
            value = str(value)
        data[name] = value
    return data


def changed(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict, dict]:
    """Only the keys whose value differs, as (before, after)."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


def validation_error_to_domain(exc: ValidationError, message: str | None = None) -> DomainError:
    """Turn a model ``full_clean`` failure into the one domain error type."""
    if hasattr(exc, "error_dict"):
        errors = {field: [str(m) for m in msgs] for field, msgs in exc.message_dict.items()}
        errors = {("non_field_errors" if k == "__all__" else k): v for k, v in errors.items()}
    else:
        errors = {"non_field_errors": [str(m) for m in exc.messages]}
    if message is None:
        first = next(iter(errors.values()))
        message = first[0] if first else _("Invalid input.")
    return DomainError(message, errors=errors)


def full_clean_or_raise(obj, **kwargs) -> None:
    try:
        obj.full_clean(**kwargs)
    except ValidationError as exc:
        raise validation_error_to_domain(exc) from exc


def field_error(field: str, message: str) -> DomainError:
    return DomainError(message, errors={field: [message]})


def reject_unknown_fields(data: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Refuse an update naming a field the service does not let change."""
    unknown = set(data) - set(allowed)
    if unknown:
        raise DomainError(
            _("These fields cannot be changed here: %(fields)s.")
            % {"fields": ", ".join(sorted(unknown))}
        )


def create_audited(
    obj: T,
    *,
    action: str,
    actor,
    snapshot: Callable[[T], dict[str, Any]],
    check: Callable[[T], None] = full_clean_or_raise,
    save: Callable[[], None] | None = None,
) -> T:
    """Check and save a new object and audit it as ``snapshot`` sees it, in one transaction.

    ``save`` replaces the plain ``obj.save()`` where more belongs to the write.
    """
    with transaction.atomic():
        check(obj)
        if save is None:
            obj.save()
        else:
            save()
        _audit(actor=actor, action=action, obj=obj, after=snapshot(obj))
    return obj


def save_changes_audited(
    obj,
    *,
    before: dict[str, Any],
    after: dict[str, Any],
    action: str,
    actor,
    save: Callable[[dict[str, Any]], None] | None = None,
    detail: dict | None = None,
) -> None:
    """Save an edited object and audit the fields that differ between the two snapshots.

    Nothing is written when nothing differs. ``save`` receives the changed
    values and replaces the plain ``obj.save()``.
    """
    old, new = changed(before, after)
    if not new:
        return
    if save is None:
        obj.save()
    else:
        save(new)
    _audit(actor=actor, action=action, obj=obj, before=old, after=new, detail=detail)


# --- system settings --------------------------------------------------------


@dataclass(frozen=True)
class SettingSpec:
    key: str
    label: Any
    help_text: Any
    default: Any
    kind: type
    # Returns the cleaned value or raises ValueError with a user-facing message.
    clean: Callable[[Any], Any]


def _clean_ratio(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(_("Enter a number between 0 and 1, e.g. 0.8.")) from None
    if isinstance(value, bool) or not (0 < number < 1):
        raise ValueError(_("Enter a number greater than 0 and less than 1, e.g. 0.8."))
    return number


def _clean_text(max_length: int) -> Callable[[Any], str]:
    def clean(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(_("Enter text."))
        value = value.strip()
        if not value:
            raise ValueError(_("This value may not be empty."))
        if len(value) > max_length:
            raise ValueError(_("Enter at most %(count)d characters.") % {"count": max_length})
        return value

    return clean


def _clean_positive_int(maximum: int) -> Callable[[Any], int]:
    def clean(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(_("Enter a whole number."))
        try:
            number = int(str(value).strip())
        except (TypeError, ValueError):
            raise ValueError(_("Enter a whole number.")) from None
        if not (1 <= number <= maximum):
            raise ValueError(
                _("Enter a whole number between 1 and %(maximum)d.") % {"maximum": maximum}
            )
        return number

    return clean


SETTINGS: dict[str, SettingSpec] = {
    spec.key: spec
    for spec in [
        SettingSpec(
            key="sla.yellow_ratio",
            label=gettext_lazy("Yellow line (warning threshold)"),
            help_text=gettext_lazy(
                "Share of a step's time limit after which an open case turns yellow; "
                "0.8 means at 80 percent of the limit. Red is the limit itself."
            ),
            default=0.8,
            kind=float,
            clean=_clean_ratio,
        ),
        SettingSpec(
            key="site.name",
            label=gettext_lazy("Site name"),
            help_text=gettext_lazy("The name shown to staff and residents, e.g. the city's."),
            default="CivicGrid",
            kind=str,
            clean=_clean_text(100),
        ),
        SettingSpec(
            key="accounts.import_max_rows",
            label=gettext_lazy("Largest user import"),
            help_text=gettext_lazy("The most data rows one bulk user import may hold."),
            default=5000,
            kind=int,
            clean=_clean_positive_int(100_000),
        ),
    ]
}

_CACHE_PREFIX = "civicgrid:setting:"
_CACHE_SECONDS = 300
_MISSING = object()


def _cache_key(key: str) -> str:
    return _CACHE_PREFIX + key


def setting_spec(key: str) -> SettingSpec:
    try:
        return SETTINGS[key]
    except KeyError:
        raise KeyError(f"unknown system setting {key!r}; declare it in core.services") from None


def setting_get(key: str, default: Any = _MISSING) -> Any:
    """The current value of a declared setting, or its default when unset.

    Cached per key; a write clears the cache entry at once and again on commit,
    so a reader never keeps a value that was rolled back or overwritten.
    """
    spec = setting_spec(key)
    fallback = spec.default if default is _MISSING else default
    cached = cache.get(_cache_key(key), _MISSING)
    if cached is _MISSING:
        row = SystemSetting.objects.filter(key=key).values_list("value", flat=True).first()
        cached = {"set": row is not None, "value": row}
        cache.set(_cache_key(key), cached, _CACHE_SECONDS)
    if not cached["set"]:
        return fallback
    try:
        return spec.clean(cached["value"])
    except ValueError:
        # A value edited behind the application's back must not break pages.
        return fallback


def setting_set(*, key: str, value: Any, actor) -> SystemSetting:
    """Validate and store a setting; the change is audited with its old and new value."""
    try:
        spec = setting_spec(key)
    except KeyError:
        raise field_error("key", _("Unknown setting %(key)s.") % {"key": key}) from None
    try:
        cleaned = spec.clean(value)
    except ValueError as exc:
        raise field_error("value", str(exc)) from None
    with transaction.atomic():
        setting = SystemSetting.objects.select_for_update().filter(key=key).first()
        before = {"value": setting.value} if setting else {"value": None}
        if setting is None:
            setting = SystemSetting(key=key, value=cleaned, description=str(spec.label)[:200])
        else:
            setting.value = cleaned
        full_clean_or_raise(setting)
        try:
            with transaction.atomic():
                setting.save()
        except IntegrityError:
            # Someone stored the same key first; ours is the later write.
            setting = SystemSetting.objects.select_for_update().get(key=key)
            before = {"value": setting.value}
            setting.value = cleaned
            setting.save(update_fields=["value", "updated_at"])
        _audit(
            actor=actor,
            action="setting.set",
            obj=setting,
            before=before,
            after={"value": cleaned},
        )
        cache.delete(_cache_key(key))
        transaction.on_commit(lambda: cache.delete(_cache_key(key)))
    return setting


def setting_values() -> list[tuple[SettingSpec, Any, bool]]:
    """Every declared setting with its current value and whether it is set."""
    stored = dict(SystemSetting.objects.values_list("key", "value"))
    return [(spec, setting_get(spec.key), spec.key in stored) for spec in SETTINGS.values()]


# --- dictionaries -----------------------------------------------------------

DICTIONARY_FIELDS = ["code", "name", "name_en", "description"]
ITEM_FIELDS = ["code", "label", "label_en", "sort_order", "is_active"]


def _apply(obj, data: Mapping[str, Any], allowed: list[str]) -> None:
    reject_unknown_fields(data, allowed)
    for name, value in data.items():
        setattr(obj, name, value.strip() if isinstance(value, str) else value)


def _update(obj, data: Mapping[str, Any], fields: list[str], *, action: str, actor, detail=None):
    """Apply ``data`` to a locked object, check it, save and audit what changed."""
    before = model_snapshot(obj, fields)
    _apply(obj, data, fields)
    full_clean_or_raise(obj)
    save_changes_audited(
        obj,
        before=before,
        after=model_snapshot(obj, fields),
        action=action,
        actor=actor,
        detail=detail,
    )


def dictionary_create(
    *, code: str, name: str, name_en: str = "", description: str = "", actor
) -> Dictionary:
    dictionary = Dictionary()
    _apply(
        dictionary,
        {"code": code, "name": name, "name_en": name_en, "description": description},
        DICTIONARY_FIELDS,
    )
    return create_audited(
        dictionary,
        action="dictionary.create",
        actor=actor,
        snapshot=lambda d: model_snapshot(d, DICTIONARY_FIELDS),
    )


def dictionary_update(*, dictionary: Dictionary, data: Mapping[str, Any], actor) -> Dictionary:
    with transaction.atomic():
        dictionary = Dictionary.objects.select_for_update().get(pk=dictionary.pk)
        _update(dictionary, data, DICTIONARY_FIELDS, action="dictionary.update", actor=actor)
    return dictionary


def dictionary_delete(*, dictionary: Dictionary, actor) -> None:
    """Delete a code list with its items. Codes stored elsewhere are plain text and stay."""
    with transaction.atomic():
        before = model_snapshot(dictionary, DICTIONARY_FIELDS)
        before["items"] = list(
            dictionary.items.order_by("sort_order", "code").values_list("code", flat=True)
        )
        _audit(actor=actor, action="dictionary.delete", obj=dictionary, before=before)
        dictionary.delete()


def _item_snapshot(item: DictionaryItem) -> dict[str, Any]:
    return {"dictionary": item.dictionary.code, **model_snapshot(item, ITEM_FIELDS)}


def dictionary_item_create(
    *,
    dictionary: Dictionary,
    code: str,
    label: str,
    label_en: str = "",
    sort_order: int = 0,
    is_active: bool = True,
    actor,
) -> DictionaryItem:
    item = DictionaryItem(dictionary=dictionary)
    _apply(
        item,
        {
            "code": code,
            "label": label,
            "label_en": label_en,
            "sort_order": sort_order,
            "is_active": is_active,
        },
        ITEM_FIELDS,
    )
    return create_audited(
        item, action="dictionary_item.create", actor=actor, snapshot=_item_snapshot
    )


def dictionary_item_update(
    *, item: DictionaryItem, data: Mapping[str, Any], actor
) -> DictionaryItem:
    with transaction.atomic():
        item = (
            DictionaryItem.objects.select_for_update(of=("self",))
            .select_related("dictionary")
            .get(pk=item.pk)
        )
        _update(
            item,
            data,
            ITEM_FIELDS,
            action="dictionary_item.update",
            actor=actor,
            detail={"dictionary": item.dictionary.code},
        )
    return item


def dictionary_item_delete(*, item: DictionaryItem, actor) -> None:
    with transaction.atomic():
        _audit(
            actor=actor,
            action="dictionary_item.delete",
            obj=item,
            before=_item_snapshot(item),
        )
        item.delete()
