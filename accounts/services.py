"""Writes about people and organisation: users, departments, roles, memberships.

Every function is keyword-only, validates with ``full_clean`` plus the rules
below, runs in its own transaction and appends an audit entry holding the
changed fields before and after. ``actor`` is the user acting, or None for the
system itself (a management command run by an operator).

Rules worth knowing:

- Users are never deleted here, only deactivated: their names stay attached
  to the audit log and to the cases they worked on.
- A department's area lies inside its parent department's area; the parent
  chain has no cycle; a department with active members or active children
  cannot be deactivated.
- A membership of a role that needs a department names one; a membership may
  name a department for any role. The membership's area lies inside the
  department's area: a member acts for the department somewhere it serves.
- Nobody grants what she does not hold: a user who is not a superuser can only
  give a role permissions she holds herself, can only hand out memberships of
  roles whose permissions she holds, and only over areas inside her own scope
  for managing memberships.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core.errors import DomainError
from core.services import (
    create_audited,
    field_error,
    full_clean_or_raise,
    model_snapshot,
    reject_unknown_fields,
    save_changes_audited,
)
from geo.models import Area

from .audit import audit_log
from .models import ApiToken, Department, Membership, Role, User
from .selectors import (
    area_in_prefixes,
    area_within,
    department_descendant_ids,
    forget_permissions,
    permission_prefixes,
    permissions_from_codenames,
    role_permission_keys,
    user_has_permission,
    user_permissions,
)

PHONE_RE = re.compile(r"^\+?[0-9][0-9 \-()]{2,30}$")


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _is_system_or_superuser(actor) -> bool:
    return actor is None or (actor.is_active and actor.is_superuser)


# --- users ----------------------------------------------------------------------

USER_FIELDS = ["username", "display_name", "first_name", "last_name", "email", "phone"]


def _user_snapshot(user: User) -> dict[str, Any]:
    return model_snapshot(user, [*USER_FIELDS, "is_active"])


def _check_user(user: User) -> None:
    if user.phone and not PHONE_RE.match(user.phone):
        raise field_error("phone", _("Enter a valid phone number."))
    clash = User.objects.filter(username__iexact=user.username)
    if user.pk:
        clash = clash.exclude(pk=user.pk)
    if user.username and clash.exists():
        raise field_error("username", _("A user with that username already exists."))
    full_clean_or_raise(user)


def user_create(
    *,
    username: str,
    display_name: str = "",
    email: str = "",
    phone: str = "",
    first_name: str = "",
    last_name: str = "",
    password: str | None = None,
    actor,
) -> User:
    """Create a user. Without a password she cannot sign in until one is set for her."""
    user = User(
        username=_strip(username),
        display_name=_strip(display_name),
        email=_strip(email),
        phone=_strip(phone),
        first_name=_strip(first_name),
        last_name=_strip(last_name),
    )
    if password:
        _validate_password(password, user)
        user.set_password(password)
    else:
        user.set_unusable_password()
    with transaction.atomic():
        _check_user(user)
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError:
            raise field_error("username", _("A user with that username already exists.")) from None
        audit_log(actor=actor, action="user.create", obj=user, after=_user_snapshot(user))
    return user


def user_update(*, user: User, data: Mapping[str, Any], actor) -> User:
    """Change a user's names and contact details; only changed fields are audited."""
    reject_unknown_fields(data, USER_FIELDS)
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        before = _user_snapshot(user)
        for name, value in data.items():
            setattr(user, name, _strip(value) if value is not None else "")
        _check_user(user)
        save_changes_audited(
            user,
            before=before,
            after=_user_snapshot(user),
            action="user.update",
            actor=actor,
            save=lambda new: user.save(update_fields=list(new)),
        )
    return user


def user_deactivate(*, user: User, actor) -> User:
    """Stop a user from signing in; her memberships and history stay, her API tokens end."""
    if actor is not None and actor.pk == user.pk:
        raise DomainError(_("You cannot deactivate yourself."))
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        if not user.is_active:
            return user
        user.is_active = False
        user.save(update_fields=["is_active"])
        now = timezone.now()
        revoked = ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=now)
        audit_log(
            actor=actor,
            action="user.deactivate",
            obj=user,
            before={"is_active": True},
            after={"is_active": False},
            detail={"tokens_revoked": revoked} if revoked else None,
        )
    return user


def user_reactivate(*, user: User, actor) -> User:
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        if user.is_active:
            return user
        user.is_active = True
        user.save(update_fields=["is_active"])
        audit_log(
            actor=actor,
            action="user.reactivate",
            obj=user,
            before={"is_active": False},
            after={"is_active": True},
        )
    return user


def _validate_password(password: str, user: User) -> None:
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        message = " ".join(exc.messages)
        raise DomainError(message, errors={"password": list(exc.messages)}) from None


def user_set_password(*, user: User, password: str, actor) -> None:
    """Set a new password, checked by the configured password validators."""
    _validate_password(password, user)
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        had_usable = user.has_usable_password()
        user.set_password(password)
        user.save(update_fields=["password"])
        # The password itself never reaches the log, only the fact of the change.
        audit_log(
            actor=actor,
            action="user.set_password",
            obj=user,
            before={"password": "set" if had_usable else "unusable"},
            after={"password": "changed"},
        )


# --- departments ------------------------------------------------------------------

DEPARTMENT_FIELDS = ["code", "name", "name_en", "kind", "parent", "area", "phone", "is_active"]


def _department_snapshot(department: Department) -> dict[str, Any]:
    data = model_snapshot(department, ["code", "name", "name_en", "kind", "phone", "is_active"])
    data["parent"] = department.parent.code if department.parent_id else None
    data["area"] = department.area.code if department.area_id else None
    return data


def _check_department(department: Department) -> None:
    full_clean_or_raise(department)
    if department.phone and not PHONE_RE.match(department.phone):
        raise field_error("phone", _("Enter a valid phone number."))
    parent = department.parent
    if parent is not None:
        if department.pk and (
            parent.pk == department.pk or parent.pk in department_descendant_ids(department)
        ):
            raise field_error(
                "parent", _("A department cannot be placed under itself or one of its own units.")
            )
        if not area_within(department.area, parent.area):
            raise field_error(
                "area",
                _("The area must lie inside the parent department's area (%(area)s).")
                % {"area": parent.area},
            )
        if department.is_active and not parent.is_active:
            raise field_error("parent", _("The parent department is inactive."))
    if department.pk:
        children = Department.objects.filter(parent=department, is_active=True).select_related(
            "area"
        )
        if not department.is_active:
            if children.exists():
                raise field_error(
                    "is_active",
                    _("Deactivate or move this department's active units first."),
                )
            if Membership.objects.filter(department=department, is_active=True).exists():
                raise field_error(
                    "is_active",
                    _("This department still has active members; end their memberships first."),
                )
        outside = [c for c in children if not area_within(c.area, department.area)]
        if outside:
            raise field_error(
                "area",
                _("Units of this department lie outside that area: %(units)s.")
                % {"units": ", ".join(c.code for c in outside)},
            )
        members_outside = [
            m
            for m in Membership.objects.filter(
                department=department, is_active=True
            ).select_related("area")
            if not area_within(m.area, department.area)
        ]
        if members_outside:
            raise field_error(
                "area",
                _("Active memberships of this department lie outside that area."),
            )


def department_create(
    *,
    code: str,
    name: str,
    area: Area,
    kind: str = Department.Kind.BUREAU,
    parent: Department | None = None,
    name_en: str = "",
    phone: str = "",
    actor,
) -> Department:
    department = Department(
        code=_strip(code),
        name=_strip(name),
        name_en=_strip(name_en),
        kind=kind,
        parent=parent,
        area=area,
        phone=_strip(phone),
    )
    return create_audited(
        department,
        action="department.create",
        actor=actor,
        snapshot=_department_snapshot,
        check=_check_department,
    )


def department_update(*, department: Department, data: Mapping[str, Any], actor) -> Department:
    reject_unknown_fields(data, DEPARTMENT_FIELDS)
    with transaction.atomic():
        department = (
            Department.objects.select_for_update(of=("self",))
            .select_related("parent", "area")
            .get(pk=department.pk)
        )
        before = _department_snapshot(department)
        for name, value in data.items():
            setattr(department, name, _strip(value))
        _check_department(department)
        save_changes_audited(
            department,
            before=before,
            after=_department_snapshot(department),
            action="department.update",
            actor=actor,
        )
    return department


# --- roles ------------------------------------------------------------------------

ROLE_FIELDS = ["code", "name", "name_en", "description", "needs_department", "permissions"]


def _role_snapshot(role: Role, permissions: list[str] | None = None) -> dict[str, Any]:
    data = model_snapshot(role, ["code", "name", "name_en", "description", "needs_department"])
    data["permissions"] = (
        sorted(permissions) if permissions is not None else role_permission_keys(role)
    )
    return data


def _resolve_permissions(codenames: Iterable[str], *, current: Iterable[str], actor):
    permissions, unknown = permissions_from_codenames(codenames)
    if unknown:
        raise field_error(
            "permissions",
            _("Unknown permissions: %(names)s.") % {"names": ", ".join(unknown)},
        )
    if not _is_system_or_superuser(actor):
        held = user_permissions(actor)
        added = {f"{p.content_type.app_label}.{p.codename}" for p in permissions} - set(current)
        beyond = sorted(added - held)
        if beyond:
            raise field_error(
                "permissions",
                _("You cannot grant permissions you do not hold yourself: %(names)s.")
                % {"names": ", ".join(beyond)},
            )
    return permissions


def role_create(
    *,
    code: str,
    name: str,
    name_en: str = "",
    description: str = "",
    needs_department: bool = False,
    permissions: Iterable[str] = (),
    actor,
) -> Role:
    role = Role(
        code=_strip(code),
        name=_strip(name),
        name_en=_strip(name_en),
        description=_strip(description),
        needs_department=needs_department,
    )
    perms = _resolve_permissions(permissions, current=(), actor=actor)

    def save() -> None:
        role.save()
        role.permissions.set(perms)

    return create_audited(
        role, action="role.create", actor=actor, snapshot=_role_snapshot, save=save
    )


def role_update(*, role: Role, data: Mapping[str, Any], actor) -> Role:
    """Change a role; ``data["permissions"]`` (codenames) replaces the whole set."""
    reject_unknown_fields(data, ROLE_FIELDS)
    with transaction.atomic():
        role = Role.objects.select_for_update().get(pk=role.pk)
        before = _role_snapshot(role)
        fields = {k: v for k, v in data.items() if k != "permissions"}
        if role.is_builtin and "code" in fields and _strip(fields["code"]) != role.code:
            raise field_error("code", _("The code of a built-in role cannot change."))
        for name, value in fields.items():
            setattr(role, name, _strip(value))
        full_clean_or_raise(role)
        if (
            role.needs_department
            and not before["needs_department"]
            and role.memberships.filter(is_active=True, department__isnull=True).exists()
        ):
            raise field_error(
                "needs_department",
                _("Active memberships of this role name no department; give them one first."),
            )
        permissions = None
        if "permissions" in data:
            permissions = _resolve_permissions(
                data["permissions"], current=before["permissions"], actor=actor
            )
        keys = (
            [f"{p.content_type.app_label}.{p.codename}" for p in permissions]
            if permissions is not None
            else before["permissions"]
        )

        def save(_new) -> None:
            role.save()
            if permissions is not None:
                role.permissions.set(permissions)

        save_changes_audited(
            role,
            before=before,
            after=_role_snapshot(role, keys),
            action="role.update",
            actor=actor,
            save=save,
        )
    return role


# --- memberships --------------------------------------------------------------------

MEMBERSHIP_FIELDS = ["role", "area", "department", "is_active"]


def _membership_snapshot(membership: Membership) -> dict[str, Any]:
    return {
        "user": membership.user.username,
        "role": membership.role.code,
        "area": membership.area.code,
        "department": membership.department.code if membership.department_id else None,
        "is_active": membership.is_active,
    }


def membership_problems(
    *,
    user: User,
    role: Role,
    area: Area,
    department: Department | None,
    exclude_pk: int | None = None,
) -> dict[str, list[str]]:
    """Why this membership may not exist, by field; empty when it may.

    Shared with the bulk import, which reports these per line without writing.
    """
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not user.is_active:
        add("user", _("User %(user)s is deactivated.") % {"user": user.username})
    if role.needs_department and department is None:
        add(
            "department",
            _("The role %(role)s needs a department.") % {"role": role.code},
        )
    if department is not None:
        if not department.is_active:
            add(
                "department",
                _("Department %(code)s is inactive.") % {"code": department.code},
            )
        if not area_within(area, department.area):
            add(
                "area",
                _("Area %(area)s is outside the area of department %(department)s (%(scope)s).")
                % {
                    "area": area.code,
                    "department": department.code,
                    "scope": department.area.code,
                },
            )
    if user.pk:
        duplicate = Membership.objects.filter(
            user=user, role=role, area=area, department=department
        )
        if exclude_pk:
            duplicate = duplicate.exclude(pk=exclude_pk)
        if duplicate.exists():
            add(
                "non_field_errors",
                _("%(user)s already holds this role over this area.") % {"user": user.username},
            )
    return errors


def grant_problems(*, actor, role: Role, area: Area, perm: str) -> dict[str, list[str]]:
    """Why ``actor`` may not hand out ``role`` over ``area`` (needs ``perm`` there)."""
    if _is_system_or_superuser(actor):
        return {}
    errors: dict[str, list[str]] = {}
    if not user_has_permission(actor, perm) or not area_in_prefixes(
        area, permission_prefixes(actor, perm)
    ):
        errors["area"] = [
            _("Area %(area)s is outside the areas where you manage memberships.")
            % {"area": area.code}
        ]
    beyond = sorted(set(role_permission_keys(role)) - user_permissions(actor))
    if beyond:
        errors["role"] = [
            _("You cannot hand out role %(role)s: it grants permissions you do not hold.")
            % {"role": role.code}
        ]
    return errors


def _raise_problems(errors: dict[str, list[str]]) -> None:
    if errors:
        first = next(iter(errors.values()))[0]
        raise DomainError(first, errors=errors)


def _save_membership(membership: Membership) -> None:
    try:
        with transaction.atomic():
            membership.save()
    except IntegrityError:
        raise DomainError(_("This membership already exists.")) from None


def membership_create(
    *,
    user: User,
    role: Role,
    area: Area,
    department: Department | None = None,
    actor,
) -> Membership:
    given = user
    with transaction.atomic():
        # Locking the user serialises memberships given to one person at once,
        # so the duplicate check below cannot race (SQLite cannot enforce the
        # constraint with a NULL department).
        user = User.objects.select_for_update().get(pk=user.pk)
        membership = Membership(user=user, role=role, area=area, department=department)
        _raise_problems(membership_problems(user=user, role=role, area=area, department=department))
        _raise_problems(
            grant_problems(actor=actor, role=role, area=area, perm="accounts.add_membership")
        )
        full_clean_or_raise(membership)
        _save_membership(membership)
        audit_log(
            actor=actor,
            action="membership.create",
            obj=membership,
            after=_membership_snapshot(membership),
        )
    forget_permissions(given)
    forget_permissions(user)
    return membership


def membership_update(*, membership: Membership, data: Mapping[str, Any], actor) -> Membership:
    reject_unknown_fields(data, MEMBERSHIP_FIELDS)
    with transaction.atomic():
        membership = (
            Membership.objects.select_for_update(of=("self",))
            .select_related("user", "role", "area", "department")
            .get(pk=membership.pk)
        )
        before = _membership_snapshot(membership)
        # The actor must be allowed to manage the membership where it is now …
        _raise_problems(
            grant_problems(
                actor=actor,
                role=membership.role,
                area=membership.area,
                perm="accounts.change_membership",
            )
        )
        for name, value in data.items():
            setattr(membership, name, value)
        if membership.is_active:
            _raise_problems(
                membership_problems(
                    user=membership.user,
                    role=membership.role,
                    area=membership.area,
                    department=membership.department,
                    exclude_pk=membership.pk,
                )
            )
        # … and where it ends up.
        _raise_problems(
            grant_problems(
                actor=actor,
                role=membership.role,
                area=membership.area,
                perm="accounts.change_membership",
            )
        )
        full_clean_or_raise(membership)
        save_changes_audited(
            membership,
            before=before,
            after=_membership_snapshot(membership),
            action="membership.update",
            actor=actor,
            save=lambda _new: _save_membership(membership),
        )
    forget_permissions(membership.user)
    return membership


def membership_deactivate(*, membership: Membership, actor) -> Membership:
    return membership_update(membership=membership, data={"is_active": False}, actor=actor)


def membership_delete(*, membership: Membership, actor) -> None:
    """Remove a membership outright (e.g. one made by mistake); the audit log keeps it."""
    with transaction.atomic():
        membership = (
            Membership.objects.select_for_update(of=("self",))
            .select_related("user", "role", "area", "department")
            .get(pk=membership.pk)
        )
        _raise_problems(
            grant_problems(
                actor=actor,
                role=membership.role,
                area=membership.area,
                perm="accounts.delete_membership",
            )
        )
        audit_log(
            actor=actor,
            action="membership.delete",
            obj=membership,
            before=_membership_snapshot(membership),
        )
        membership.delete()
    forget_permissions(membership.user)
