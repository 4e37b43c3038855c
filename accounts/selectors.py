"""Reads about people and organisation, narrowed to what the reader may see.

Permissions come from roles: a user holds a permission when any of her active
memberships has a role granting it (superusers hold all). For objects tied to
an area (departments, memberships, the users holding them) a permission also
has a *where*: the area subtrees of the memberships that grant it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from geo.models import Area

from . import scopes
from .models import Department, Membership, Role, User

# --- permissions ------------------------------------------------------------
# Grants (permission → area-code prefixes) come from accounts.scopes, the one
# place that reads them from memberships and caches them on the user object.


def _perm_key(perm: Permission) -> str:
    return f"{perm.content_type.app_label}.{perm.codename}"


def forget_permissions(user) -> None:
    """Drop the permissions cached on ``user`` (after its memberships or roles changed)."""
    scopes.forget_grants(user)


def _is_superuser(user) -> bool:
    return bool(
        getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and getattr(user, "is_superuser", False)
    )


def user_permissions(user) -> frozenset[str]:
    """Every ``app_label.codename`` the user holds through an active membership."""
    if _is_superuser(user):
        return frozenset(_perm_key(p) for p in Permission.objects.select_related("content_type"))
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    return frozenset(scopes.user_grants(user))


def user_has_permission(user, perm: str) -> bool:
    """True for an active superuser, or when an active membership's role grants ``perm``."""
    return scopes.has_permission(user, perm)


def permission_prefixes(user, perm: str) -> list[str] | None:
    """Area-code prefixes of the subtrees where ``user`` holds ``perm``; None: everywhere."""
    return scopes.scope_prefixes(user, perm)


def area_within(area: Area, root: Area) -> bool:
    """Whether ``area`` is ``root`` or lies below it."""
    return area.level >= root.level and area.code.startswith(root.subtree_prefix)


def area_in_prefixes(area: Area, prefixes: list[str] | None) -> bool:
    return prefixes is None or any(area.code.startswith(p) for p in prefixes)


def subtree_q(prefixes: list[str] | None, path: str = "area") -> Q:
    """A filter for objects whose ``path`` area lies under any of ``prefixes`` (None: no limit).

    An empty ``path`` filters areas themselves.
    """
    if prefixes is None:
        return Q()
    lookup = f"{path}__code__startswith" if path else "code__startswith"
    q = Q(pk__in=[])
    for prefix in prefixes:
        q |= Q(**{lookup: prefix})
    return q


def area_subtree_q(area: Area, path: str = "area") -> Q:
    """Objects whose ``path`` area is ``area`` or below it."""
    return subtree_q([area.subtree_prefix], path)


# --- users --------------------------------------------------------------------


def users_visible(user, perm: str = "accounts.view_user") -> QuerySet[User]:
    """Users the reader may manage under ``perm``.

    Those with a membership (active or ended) inside the reader's scope, and
    those with no membership at all: they belong to no area yet, and a freshly
    created or imported user must be reachable to receive her first one.
    """
    if not user_has_permission(user, perm):
        return User.objects.none()
    prefixes = permission_prefixes(user, perm)
    qs = User.objects.all()
    if prefixes is None:
        return qs
    memberships = Membership.objects.filter(user=OuterRef("pk"))
    return qs.filter(Exists(memberships.filter(subtree_q(prefixes))) | ~Exists(memberships))


def user_list(*, user, perm: str = "accounts.view_user") -> QuerySet[User]:
    """Users ``user`` may see, each with ``active_memberships``: those she may see too.

    A person may also work elsewhere; her memberships outside the reader's
    scope (their areas, their departments) are not the reader's to see.
    """
    return users_visible(user, perm).prefetch_related(
        Prefetch(
            "memberships",
            queryset=Membership.objects.restrict(user, "view")
            .filter(is_active=True)
            .select_related("role", "area", "department"),
            to_attr="active_memberships",
        )
    )


def user_memberships(*, user: User, viewer=None) -> QuerySet[Membership]:
    """``user``'s memberships; with ``viewer``, only those the viewer may see."""
    qs = Membership.objects.filter(user=user)
    if viewer is not None:
        qs = qs.restrict(viewer, "view")
    return qs.select_related("role", "area", "department").order_by(
        "-is_active", "role__code", "area__code"
    )


def mask_email(email: str) -> str:
    """``li.na@example.org`` → ``l***@example.org``: enough to recognise, not to use."""
    if not email:
        return ""
    local, _sep, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def mask_phone(phone: str) -> str:
    """``13800000001`` → ``138****0001``."""
    digits = phone.strip()
    if len(digits) <= 4:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}" if len(digits) > 7 else f"****{digits[-4:]}"


PERSONAL_FIELDS = {"email": mask_email, "phone": mask_phone}


# --- memberships and departments ------------------------------------------------


def memberships_visible(user, perm: str) -> QuerySet[Membership]:
    if not user_has_permission(user, perm):
        return Membership.objects.none()
    return Membership.objects.filter(subtree_q(permission_prefixes(user, perm)))


def departments_visible(user, perm: str = "accounts.view_department") -> QuerySet[Department]:
    if not user_has_permission(user, perm):
        return Department.objects.none()
    return Department.objects.filter(subtree_q(permission_prefixes(user, perm)))


def departments_for_membership(user, perm: str) -> QuerySet[Department]:
    """Active departments a membership handed out under ``perm`` may name.

    Those inside the user's scope, and those above it: a street's admin gives
    a handler of the district's bureau a membership over her street.
    """
    qs = Department.objects.filter(is_active=True).select_related("area")
    prefixes = permission_prefixes(user, perm)
    if prefixes is None:
        return qs
    keep = [
        d.pk
        for d in qs
        if any(d.area.code.startswith(p) or p.startswith(d.area.subtree_prefix) for p in prefixes)
    ]
    return qs.filter(pk__in=keep)


@dataclass
class TreeRow:
    department: Department
    depth: int


def department_tree(departments: QuerySet[Department]) -> list[TreeRow]:
    """Departments in tree order (each followed by its children), with their depth.

    A department whose parent is not in ``departments`` (filtered out or out of
    scope) is shown as a root, so filtering never hides a match.
    """
    items = list(departments.select_related("area", "parent").order_by("code"))
    present = {d.pk for d in items}
    children: dict[int | None, list[Department]] = defaultdict(list)
    for d in items:
        children[d.parent_id if d.parent_id in present else None].append(d)
    rows: list[TreeRow] = []
    stack = [(d, 0) for d in reversed(children[None])]
    while stack:
        department, depth = stack.pop()
        rows.append(TreeRow(department, depth))
        stack.extend((c, depth + 1) for c in reversed(children[department.pk]))
    return rows


def department_descendant_ids(department: Department) -> set[int]:
    """Ids of every department below ``department`` (not itself)."""
    parents = dict(Department.objects.values_list("pk", "parent_id"))
    found: set[int] = set()
    frontier = {department.pk}
    while frontier:
        frontier = {pk for pk, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


# --- roles and permissions --------------------------------------------------------


def role_list() -> QuerySet[Role]:
    return Role.objects.prefetch_related("permissions")


_ACTIONS = {
    "view": _("View"),
    "add": _("Add"),
    "change": _("Change"),
    "delete": _("Delete"),
}


def _project_app_labels() -> set[str]:
    """Apps that are part of CivicGrid itself (their code lives in the project tree)."""
    base = Path(settings.BASE_DIR).resolve()
    labels = set()
    for config in apps.get_app_configs():
        path = Path(config.path).resolve()
        if (
            path.is_relative_to(base)
            and ".venv" not in path.parts
            and "site-packages" not in path.parts
        ):
            labels.add(config.label)
    return labels


@dataclass
class PermissionChoice:
    key: str  # "app_label.codename"
    label: str


@dataclass
class PermissionGroup:
    label: str
    app_label: str
    choices: list[PermissionChoice] = field(default_factory=list)


def permission_label(perm: Permission) -> str:
    """A translatable name: the model's custom permission text, or action + model."""
    model = perm.content_type.model_class()
    if model is None:
        return perm.name
    custom = dict(model._meta.permissions)
    if perm.codename in custom:
        return str(custom[perm.codename])
    action, _sep, model_name = perm.codename.partition("_")
    if action in _ACTIONS and model_name == model._meta.model_name:
        return str(_ACTIONS[action])
    return perm.name


# Permissions that mean nothing to grant: the audit log is append-only, the
# geography version counter is internal bookkeeping.
UNGRANTABLE = Q(content_type__app_label="geo", content_type__model="geoversion") | Q(
    content_type__app_label="accounts",
    codename__in=["add_auditentry", "change_auditentry", "delete_auditentry"],
)


def permission_queryset() -> QuerySet[Permission]:
    """The permissions a role may grant: those of CivicGrid's own apps."""
    return (
        Permission.objects.filter(content_type__app_label__in=_project_app_labels())
        .exclude(UNGRANTABLE)
        .select_related("content_type")
    )


def permission_groups() -> list[PermissionGroup]:
    """Grantable permissions grouped by model, labels in the current language."""
    groups: dict[tuple[str, str], PermissionGroup] = {}
    order = {"view": 0, "add": 1, "change": 2, "delete": 3}
    for perm in permission_queryset():
        model = perm.content_type.model_class()
        if model is None:
            continue
        key = (perm.content_type.app_label, perm.content_type.model)
        if key not in groups:
            app_name = apps.get_app_config(perm.content_type.app_label).verbose_name
            groups[key] = PermissionGroup(
                label=f"{capfirst(str(app_name))} · {capfirst(str(model._meta.verbose_name_plural))}",
                app_label=perm.content_type.app_label,
            )
        groups[key].choices.append(PermissionChoice(_perm_key(perm), permission_label(perm)))
    for group in groups.values():
        group.choices.sort(
            key=lambda c: (order.get(c.key.split(".", 1)[1].split("_", 1)[0], 9), c.key)
        )
    return [groups[k] for k in sorted(groups)]


def permissions_from_codenames(codenames) -> tuple[list[Permission], list[str]]:
    """Resolve ``app_label.codename`` strings; returns (found, unknown)."""
    wanted = {str(c).strip() for c in codenames if str(c).strip()}
    found = {_perm_key(p): p for p in permission_queryset()}
    known = [found[c] for c in sorted(wanted) if c in found]
    unknown = sorted(c for c in wanted if c not in found)
    return known, unknown


def role_permission_keys(role: Role) -> list[str]:
    return sorted(_perm_key(p) for p in role.permissions.select_related("content_type"))
