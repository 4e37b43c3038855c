"""Row-level access: narrow any queryset to what a user may do, by role and area.

A user's grants are their active memberships. A membership whose role carries
the permission ``app_label.<action>_<model>`` lets its holder act on every
object located in the membership's area subtree. Each restrictable model says
where it is located with ``scope_path``: the ORM path to an area code
(``"code"`` for an Area itself, ``"area__code"`` for things in an area).
Area codes nest by prefix (a grid's code starts with its community's), so a
subtree is one indexed ``startswith`` range. A model whose ``scope_path`` is
``None`` is not located anywhere: the permission alone decides.

Out of scope is indistinguishable from absent: views start from the restricted
queryset and answer 404 for anything outside it.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

CITY_LEVEL = 1
_CACHE_ATTR = "_civicgrid_grants"


def _prefix(code: str, level: int) -> str:
    # A city's code is its 4-digit prefix padded with 00 (GB/T 2260).
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
        grants.setdefault(f"{app_label}.{codename}", set()).add(_prefix(code, level))
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
    q = Q()
    for p in prefixes:
        q |= Q(**{f"{path}__startswith": p})
    qs = qs.filter(q)
    # A path through a to-many relation would repeat rows once per match.
    return qs.distinct() if getattr(model, "scope_distinct", False) else qs


class RestrictedQuerySet(models.QuerySet):
    """``Model.objects.restrict(user, "view")``: the rows ``user`` may act on."""

    def restrict(self, user, action: str = "view"):
        return restrict_queryset(self, user, action)
