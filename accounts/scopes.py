"""Row-level access: narrow any queryset to what a user may do, by role and area.

A user's grants are their active memberships. A membership whose role carries
the permission ``app_label.<action>_<model>`` lets its holder act on every
object located in the membership's area subtree. Each restrictable model says
where it is located with ``scope_path``: the ORM path to an area code
(``"code"`` for an Area itself, ``"area__code"`` for things in an area), or a
tuple of such paths when it is in several areas at once (any one in scope will do).
Area codes nest by prefix (a grid's code starts with its community's), so a
subtree is one indexed ``startswith`` range. A model whose ``scope_path`` is
``None`` is not located anywhere: the permission alone decides.

Out of scope is indistinguishable from absent: views start from the restricted
queryset and answer 404 for anything outside it.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext as _

from core.errors import DomainError

CITY_LEVEL = 1
_CACHE_ATTR = "_civicgrid_grants"


def subtree_prefix(code: str, level: int) -> str:
    """The code prefix every area under this one starts with.

    A city's code is its 4-digit prefix padded with 00 (GB/T 2260), which its
    districts share; every other level's children extend its whole code.
    """
    return code[:4] if level == CITY_LEVEL else code


def _collapse(prefixes: set[str]) -> list[str]:
    """Drop prefixes already covered by a shorter one: one range per subtree."""
    kept: list[str] = []
    for p in sorted(prefixes, key=len):
        if not any(p.startswith(k) for k in kept):
            kept.append(p)
    return sorted(kept)


def user_grants(user) -> dict[str, list[str]]:
    """Permission → area-code prefixes the user holds it over (cached on the user)."""
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    from .models import Membership

    rows = Membership.objects.filter(
        user=user, is_active=True, role__permissions__isnull=False
    ).values_list(
        "role__permissions__content_type__app_label",
        "role__permissions__codename",
        "area__code",
        "area__level",
    )
    grants: dict[str, set[str]] = {}
    for app_label, codename, code, level in rows:
        grants.setdefault(f"{app_label}.{codename}", set()).add(subtree_prefix(code, level))
    result = {perm: _collapse(prefixes) for perm, prefixes in grants.items()}
    setattr(user, _CACHE_ATTR, result)
    return result


def forget_grants(user) -> None:
    """Drop the cached grants (after the user's memberships or roles change)."""
    if hasattr(user, _CACHE_ATTR):
        delattr(user, _CACHE_ATTR)


def scope_prefixes(user, perm: str) -> list[str] | None:
    """Area-code prefixes where ``user`` holds ``perm``; None means everywhere."""
    if user is None or not user.is_authenticated or not user.is_active:
        return []
    if user.is_superuser:
        return None
    return user_grants(user).get(perm, [])


def has_permission(user, perm: str) -> bool:
    """Whether ``user`` holds ``perm`` anywhere at all."""
    prefixes = scope_prefixes(user, perm)
    return prefixes is None or bool(prefixes)


def area_in_scope(user, perm: str, code: str) -> bool:
    prefixes = scope_prefixes(user, perm)
    return prefixes is None or any(code.startswith(p) for p in prefixes)


def permission_name(model: type[models.Model], action: str) -> str:
    return f"{model._meta.app_label}.{action}_{model._meta.model_name}"


def restrict_queryset(qs: models.QuerySet, user, action: str = "view") -> models.QuerySet:
    model = qs.model
    prefixes = scope_prefixes(user, permission_name(model, action))
    if prefixes is None:
        return qs
    if not prefixes:
        return qs.none()
    path = getattr(model, "scope_path", None)
    if path is None:
        return qs
    # Several paths: the object is where any of them says (a building is in
    # its community and in its grid).
    paths = (path,) if isinstance(path, str) else tuple(path)
    q = Q()
    for one in paths:
        for p in prefixes:
            q |= Q(**{f"{one}__startswith": p})
    qs = qs.filter(q)
    # A path through a to-many relation would repeat rows once per match.
    return qs.distinct() if getattr(model, "scope_distinct", False) else qs


class RestrictedQuerySet(models.QuerySet):
    """``Model.objects.restrict(user, "view")``: the rows ``user`` may act on."""

    def restrict(self, user, action: str = "view"):
        return restrict_queryset(self, user, action)


# --- for views and APIs -------------------------------------------------------------


def scope_test(user, perm: str):
    """A fast ``code -> bool`` for many area codes: is the code inside ``user``'s ``perm`` scope.

    The grants are read once (they are cached on the user), and each distinct
    code is decided once, so testing ten thousand located points costs a
    dictionary lookup each and no query.
    """
    prefixes = scope_prefixes(user, perm)
    if prefixes is None:
        return lambda code: True
    if not prefixes:
        return lambda code: False
    starts = tuple(prefixes)
    decided: dict[str, bool] = {}

    def inside(code: str) -> bool:
        result = decided.get(code)
        if result is None:
            result = decided[code] = code.startswith(starts)
        return result

    return inside


def _as_queryset(queryset_or_model) -> models.QuerySet:
    if isinstance(queryset_or_model, type) and issubclass(queryset_or_model, models.Model):
        return queryset_or_model._default_manager.all()
    return queryset_or_model


def restricted_get_object_or_404(queryset_or_model, user, action: str = "view", **lookup):
    """The one object matching ``lookup`` among those ``user`` may ``action``, else 404.

    Absent and out of scope give the same Http404, so a caller cannot tell them apart.
    """
    from django.http import Http404

    qs = restrict_queryset(_as_queryset(queryset_or_model), user, action)
    try:
        return qs.get(**lookup)
    except qs.model.DoesNotExist:
        raise Http404(f"No {qs.model._meta.object_name} matches the given query.") from None


def object_in_scope(obj: models.Model, user, action: str = "view") -> bool:
    """Whether ``obj`` (as stored now) is among the rows ``user`` may ``action``."""
    model = type(obj)
    qs = model._default_manager.filter(pk=obj.pk)
    return restrict_queryset(qs, user, action).exists()


def require_action(obj: models.Model, user, action: str) -> None:
    """403 (PermissionDenied) unless ``user`` may ``action`` on ``obj``.

    For an object the user may see: seeing it is checked first (a 404 when
    not), so a refusal here never tells an outsider that the object exists.
    """
    from django.core.exceptions import PermissionDenied

    if not object_in_scope(obj, user, action):
        raise PermissionDenied(
            f"missing permission {permission_name(type(obj), action)} on {obj._meta.label_lower} "
            f"{obj.pk}"
        )


def get_object_for_action(queryset_or_model, user, action: str, **lookup):
    """404 unless ``user`` may see the object; 403 unless she may also ``action`` on it."""
    obj = restricted_get_object_or_404(queryset_or_model, user, "view", **lookup)
    if action != "view":
        require_action(obj, user, action)
    return obj


class OutsideScope(DomainError):
    """A write would leave its object outside the writer's scope (HTTP 403, audited)."""

    status_code = 403
    code = "outside_scope"


def ensure_in_scope(obj: models.Model, user, action: str) -> None:
    """After a write: the object must still be inside the writer's ``action`` scope.

    Call it inside the write's transaction: the error rolls the change back.
    """
    if not object_in_scope(obj, user, action):
        message = _("%(object)s would be outside the areas you may change.") % {"object": obj}
        raise OutsideScope(message)


# HTTP method → the action a request performs on the objects it reaches.
METHOD_ACTIONS = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


class RestrictedQuerysetMixin:
    """For class-based (DRF or Django) views: ``get_queryset()`` narrowed to the request's user.

    The action comes from the HTTP method (:data:`METHOD_ACTIONS`) unless the
    view sets ``restrict_action``. The rows to narrow come from the view's
    ``queryset`` attribute, or from ``get_base_queryset()`` when the view
    builds them (filters, annotations); a view overrides that, never
    ``get_queryset``, so the restriction cannot be skipped by accident. Detail
    lookups through ``get_object`` then answer 404 for rows out of scope.
    """

    restrict_action: str | None = None

    def get_restrict_action(self) -> str:
        if self.restrict_action:
            return self.restrict_action
        return METHOD_ACTIONS.get(self.request.method.upper(), "view")

    def get_base_queryset(self):
        return super().get_queryset()

    def get_queryset(self):
        qs = self.get_base_queryset()
        return restrict_queryset(qs, self.request.user, self.get_restrict_action())
