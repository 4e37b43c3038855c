import pytest
from django.contrib.auth.models import Permission

from accounts import services
from accounts.models import ApiToken, AuditEntry, Department, Membership, Role, User
from accounts.selectors import (
    department_tree,
    user_has_permission,
    user_permissions,
    users_visible,
)
from core.errors import DomainError

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def perm(key: str) -> Permission:
    app_label, codename = key.split(".", 1)
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def make_role(code: str, *perms: str, needs_department: bool = False) -> Role:
    role = Role.objects.create(code=code, name=code, needs_department=needs_department)
    role.permissions.set([perm(p) for p in perms])
    return role


def last_entry(action: str) -> AuditEntry:
    return AuditEntry.objects.filter(action=action).order_by("-id").first()


@pytest.fixture
def bureau(small_city, admin):
    return services.department_create(
        code="CGJ", name="城管局", area=small_city.district, actor=admin
    )


# --- users ------------------------------------------------------------------------


def test_user_create_audits_and_has_unusable_password_without_one(admin):
    user = services.user_create(
        username="li.na", display_name="李娜", email="li@example.org", actor=admin
    )
    assert not user.has_usable_password()
    entry = last_entry("user.create")
    assert entry.actor_id == admin.pk
    assert entry.object_id == str(user.pk)
    assert entry.object_type == "accounts.user"
    assert entry.after["username"] == "li.na"
    assert entry.after["display_name"] == "李娜"
    assert entry.before is None


def test_user_create_refuses_a_username_differing_only_in_case(admin):
    services.user_create(username="wang", actor=admin)
    with pytest.raises(DomainError) as exc:
        services.user_create(username="WANG", actor=admin)
    assert "username" in exc.value.errors
    assert User.objects.filter(username__iexact="wang").count() == 1


@pytest.mark.parametrize(
    "fields, bad",
    [
        ({"email": "not-an-address"}, "email"),
        ({"phone": "call me"}, "phone"),
        ({"username": "has space"}, "username"),
    ],
)
def test_user_create_field_errors(admin, fields, bad):
    kwargs = {"username": "zhao", **fields}
    with pytest.raises(DomainError) as exc:
        services.user_create(actor=admin, **kwargs)
    assert bad in exc.value.errors
    assert not User.objects.filter(username="zhao").exists()
    assert not AuditEntry.objects.filter(action="user.create").exists()


def test_user_update_audits_only_changed_fields(admin):
    user = services.user_create(username="chen", display_name="陈", phone="123456", actor=admin)
    services.user_update(user=user, data={"display_name": "陈静", "phone": "123456"}, actor=admin)
    entry = last_entry("user.update")
    assert entry.before == {"display_name": "陈"}
    assert entry.after == {"display_name": "陈静"}
    user.refresh_from_db()
    assert user.display_name == "陈静"


def test_user_update_without_change_writes_no_entry(admin):
    user = services.user_create(username="chen", display_name="陈", actor=admin)
    services.user_update(user=user, data={"display_name": "陈"}, actor=admin)
    assert not AuditEntry.objects.filter(action="user.update").exists()


def test_user_update_refuses_fields_it_does_not_manage(admin):
    user = services.user_create(username="chen", actor=admin)
    with pytest.raises(DomainError):
        services.user_update(user=user, data={"is_superuser": True}, actor=admin)
    user.refresh_from_db()
    assert not user.is_superuser


def test_user_deactivate_keeps_the_row_and_revokes_tokens(admin, small_city):
    from datetime import timedelta

    from django.utils import timezone

    user = services.user_create(username="zhou", actor=admin)
    token = ApiToken.objects.create(
        user=user,
        name="t",
        prefix="abc",
        key_hash="0" * 64,
        expires_at=timezone.now() + timedelta(days=1),
    )
    services.user_deactivate(user=user, actor=admin)
    user.refresh_from_db()
    token.refresh_from_db()
    assert not user.is_active
    assert token.revoked_at is not None
    entry = last_entry("user.deactivate")
    assert entry.before == {"is_active": True} and entry.after == {"is_active": False}
    services.user_reactivate(user=user, actor=admin)
    user.refresh_from_db()
    assert user.is_active
    assert last_entry("user.reactivate").after == {"is_active": True}


def test_nobody_deactivates_themselves(admin):
    with pytest.raises(DomainError):
        services.user_deactivate(user=admin, actor=admin)


def test_user_set_password_validates_and_never_logs_the_password(admin):
    user = services.user_create(username="sun.li", actor=admin)
    with pytest.raises(DomainError) as exc:
        services.user_set_password(user=user, password="12345", actor=admin)
    assert "password" in exc.value.errors
    services.user_set_password(user=user, password="Gr1d-walker-north", actor=admin)
    user.refresh_from_db()
    assert user.check_password("Gr1d-walker-north")
    entry = last_entry("user.set_password")
    assert entry.before == {"password": "unusable"}
    assert entry.after == {"password": "changed"}
    assert "Gr1d" not in str(entry.before) + str(entry.after) + str(entry.detail)


# --- departments --------------------------------------------------------------------------


def test_department_create_audits(bureau, admin):
    entry = last_entry("department.create")
    assert entry.after["code"] == "CGJ"
    assert entry.after["area"] == "110105"
    assert entry.after["parent"] is None


def test_department_needs_an_area(admin, small_city):
    with pytest.raises(DomainError) as exc:
        services.department_create(code="X", name="X", area=None, actor=admin)
    assert "area" in exc.value.errors


def test_department_code_is_unique(bureau, admin, small_city):
    with pytest.raises(DomainError) as exc:
        services.department_create(code="CGJ", name="again", area=small_city.street, actor=admin)
    assert "code" in exc.value.errors


def test_department_area_must_lie_inside_parent_area(bureau, admin, small_city):
    street_unit = services.department_create(
        code="CGJ-JW", name="建外中队", area=small_city.street, parent=bureau, actor=admin
    )
    with pytest.raises(DomainError) as exc:
        services.department_create(
            code="UP", name="up", area=small_city.district, parent=street_unit, actor=admin
        )
    assert "area" in exc.value.errors


def test_department_parent_cannot_create_a_cycle(bureau, admin, small_city):
    child = services.department_create(
        code="C1", name="c1", area=small_city.street, parent=bureau, actor=admin
    )
    grandchild = services.department_create(
        code="C2", name="c2", area=small_city.communities[0], parent=child, actor=admin
    )
    for parent in (bureau, grandchild):
        with pytest.raises(DomainError) as exc:
            services.department_update(department=bureau, data={"parent": parent}, actor=admin)
        assert "parent" in exc.value.errors
    bureau.refresh_from_db()
    assert bureau.parent_id is None


def test_department_update_audits_changed_fields(bureau, admin, small_city):
    services.department_update(
        department=bureau, data={"name": "城市管理局", "phone": "010-1234567"}, actor=admin
    )
    entry = last_entry("department.update")
    assert entry.before == {"name": "城管局", "phone": ""}
    assert entry.after == {"name": "城市管理局", "phone": "010-1234567"}


def test_department_with_active_members_cannot_be_deactivated(bureau, admin, small_city):
    handler = make_role("t-handler", needs_department=True)
    user = services.user_create(username="h1", actor=admin)
    membership = services.membership_create(
        user=user, role=handler, area=small_city.street, department=bureau, actor=admin
    )
    with pytest.raises(DomainError) as exc:
        services.department_update(department=bureau, data={"is_active": False}, actor=admin)
    assert "is_active" in exc.value.errors
    services.membership_deactivate(membership=membership, actor=admin)
    services.department_update(department=bureau, data={"is_active": False}, actor=admin)
    bureau.refresh_from_db()
    assert not bureau.is_active


def test_department_tree_orders_children_under_parents(bureau, admin, small_city):
    services.department_create(code="A-OTHER", name="园林局", area=small_city.district, actor=admin)
    services.department_create(
        code="ZZ", name="中队", area=small_city.street, parent=bureau, actor=admin
    )
    rows = [(r.department.code, r.depth) for r in department_tree(Department.objects.all())]
    assert rows == [("A-OTHER", 0), ("CGJ", 0), ("ZZ", 1)]


# --- roles ----------------------------------------------------------------------------------


def test_role_create_with_permissions_audits_them(admin):
    role = services.role_create(
        code="t-clerk",
        name="受理员",
        permissions=["accounts.view_user", "core.view_dictionary"],
        actor=admin,
    )
    assert sorted(f"{p.content_type.app_label}.{p.codename}" for p in role.permissions.all()) == [
        "accounts.view_user",
        "core.view_dictionary",
    ]
    entry = last_entry("role.create")
    assert entry.after["permissions"] == ["accounts.view_user", "core.view_dictionary"]


def test_role_unknown_permission_is_a_field_error(admin):
    with pytest.raises(DomainError) as exc:
        services.role_create(code="t-x", name="x", permissions=["accounts.fly"], actor=admin)
    assert "permissions" in exc.value.errors
    assert not Role.objects.filter(code="t-x").exists()


def test_role_update_audits_permission_changes(admin):
    role = services.role_create(
        code="t-clerk", name="clerk", permissions=["accounts.view_user"], actor=admin
    )
    services.role_update(
        role=role,
        data={"permissions": ["accounts.view_user", "accounts.view_role"], "name": "Clerk"},
        actor=admin,
    )
    entry = last_entry("role.update")
    assert entry.before == {"name": "clerk", "permissions": ["accounts.view_user"]}
    assert entry.after == {
        "name": "Clerk",
        "permissions": ["accounts.view_role", "accounts.view_user"],
    }


def test_builtin_role_code_cannot_change(admin):
    role = Role.objects.create(code="t-builtin", name="b", is_builtin=True)
    with pytest.raises(DomainError) as exc:
        services.role_update(role=role, data={"code": "renamed"}, actor=admin)
    assert "code" in exc.value.errors
    services.role_update(role=role, data={"code": "t-builtin", "name": "B"}, actor=admin)
    role.refresh_from_db()
    assert (role.code, role.name) == ("t-builtin", "B")


def test_role_cannot_start_needing_a_department_while_members_have_none(admin, small_city):
    role = make_role("t-worker")
    user = services.user_create(username="w", actor=admin)
    services.membership_create(user=user, role=role, area=small_city.street, actor=admin)
    with pytest.raises(DomainError) as exc:
        services.role_update(role=role, data={"needs_department": True}, actor=admin)
    assert "needs_department" in exc.value.errors


def test_non_superuser_cannot_grant_permissions_she_lacks(admin, small_city):
    manager_role = make_role("t-role-manager", "accounts.view_role", "accounts.change_role")
    manager = User.objects.create_user(username="m")
    Membership.objects.create(user=manager, role=manager_role, area=small_city.district)
    role = make_role("t-target")
    with pytest.raises(DomainError) as exc:
        services.role_update(
            role=role, data={"permissions": ["accounts.delete_membership"]}, actor=manager
        )
    assert "permissions" in exc.value.errors
    services.role_update(role=role, data={"permissions": ["accounts.view_role"]}, actor=manager)
    assert [p.codename for p in role.permissions.all()] == ["view_role"]


# --- memberships ----------------------------------------------------------------------------


def test_membership_create_audits_and_grants_permissions(admin, small_city):
    role = make_role("t-viewer", "accounts.view_user")
    user = services.user_create(username="viewer", actor=admin)
    assert not user_has_permission(user, "accounts.view_user")
    services.membership_create(user=user, role=role, area=small_city.street, actor=admin)
    assert user_has_permission(user, "accounts.view_user")
    assert "accounts.view_user" in user_permissions(user)
    entry = last_entry("membership.create")
    assert entry.after == {
        "user": "viewer",
        "role": "t-viewer",
        "area": "110105001",
        "department": None,
        "is_active": True,
    }


def test_membership_of_department_role_needs_a_department(admin, small_city):
    role = make_role("t-handler", needs_department=True)
    user = services.user_create(username="h", actor=admin)
    with pytest.raises(DomainError) as exc:
        services.membership_create(user=user, role=role, area=small_city.street, actor=admin)
    assert "department" in exc.value.errors
    assert not Membership.objects.exists()


def test_department_is_optional_for_other_roles(admin, small_city, bureau):
    role = make_role("t-leader")
    user = services.user_create(username="l", actor=admin)
    services.membership_create(
        user=user, role=role, area=small_city.street, department=bureau, actor=admin
    )
    services.membership_create(user=user, role=role, area=small_city.street, actor=admin)
    assert Membership.objects.filter(user=user).count() == 2


def test_membership_area_must_lie_in_the_department_area(admin, small_city):
    role = make_role("t-handler", needs_department=True)
    workstation = services.department_create(
        code="WS1",
        name="社区工作站",
        kind=Department.Kind.WORKSTATION,
        area=small_city.communities[0],
        actor=admin,
    )
    user = services.user_create(username="h", actor=admin)
    with pytest.raises(DomainError) as exc:
        services.membership_create(
            user=user,
            role=role,
            area=small_city.communities[1],
            department=workstation,
            actor=admin,
        )
    assert "area" in exc.value.errors
    services.membership_create(
        user=user, role=role, area=small_city.grids[0], department=workstation, actor=admin
    )


def test_membership_duplicates_are_refused_even_without_department(admin, small_city):
    role = make_role("t-worker")
    user = services.user_create(username="w", actor=admin)
    services.membership_create(user=user, role=role, area=small_city.street, actor=admin)
    with pytest.raises(DomainError):
        services.membership_create(user=user, role=role, area=small_city.street, actor=admin)
    assert Membership.objects.filter(user=user).count() == 1


def test_membership_for_a_deactivated_user_is_refused(admin, small_city):
    role = make_role("t-worker")
    user = services.user_create(username="w", actor=admin)
    services.user_deactivate(user=user, actor=admin)
    with pytest.raises(DomainError) as exc:
        services.membership_create(user=user, role=role, area=small_city.street, actor=admin)
    assert "user" in exc.value.errors


def test_membership_update_deactivate_and_delete_are_audited(admin, small_city):
    role = make_role("t-worker")
    user = services.user_create(username="w", actor=admin)
    membership = services.membership_create(
        user=user, role=role, area=small_city.street, actor=admin
    )
    services.membership_update(
        membership=membership, data={"area": small_city.grids[0]}, actor=admin
    )
    entry = last_entry("membership.update")
    assert entry.before == {"area": "110105001"}
    assert entry.after == {"area": small_city.grids[0].code}
    services.membership_deactivate(membership=membership, actor=admin)
    assert last_entry("membership.update").after == {"is_active": False}
    services.membership_delete(membership=membership, actor=admin)
    assert not Membership.objects.exists()
    assert last_entry("membership.delete").before["role"] == "t-worker"


def test_scoped_manager_hands_out_memberships_only_inside_her_area(admin, small_city):
    manager_role = make_role("t-community-admin", "accounts.add_membership", "accounts.view_user")
    manager = User.objects.create_user(username="m")
    Membership.objects.create(user=manager, role=manager_role, area=small_city.communities[0])
    weak = make_role("t-weak", "accounts.view_user")
    strong = make_role("t-strong", "accounts.view_user", "accounts.delete_membership")
    user = services.user_create(username="w", actor=admin)
    with pytest.raises(DomainError) as exc:
        services.membership_create(
            user=user, role=weak, area=small_city.communities[1], actor=manager
        )
    assert "area" in exc.value.errors
    with pytest.raises(DomainError) as exc:
        services.membership_create(user=user, role=strong, area=small_city.grids[0], actor=manager)
    assert "role" in exc.value.errors
    services.membership_create(user=user, role=weak, area=small_city.grids[0], actor=manager)
    assert Membership.objects.filter(user=user).count() == 1


def test_users_visible_follows_membership_areas(admin, small_city):
    viewer_role = make_role("t-viewer", "accounts.view_user")
    worker_role = make_role("t-worker")
    viewer = User.objects.create_user(username="viewer")
    Membership.objects.create(user=viewer, role=viewer_role, area=small_city.communities[0])
    inside = User.objects.create_user(username="inside")
    Membership.objects.create(user=inside, role=worker_role, area=small_city.grids[0])
    outside = User.objects.create_user(username="outside")
    Membership.objects.create(user=outside, role=worker_role, area=small_city.grids[5])
    fresh = User.objects.create_user(username="fresh")
    visible = set(users_visible(viewer).values_list("username", flat=True))
    assert {"inside", "fresh", "viewer"} <= visible
    assert "outside" not in visible
    assert fresh.pk and set(users_visible(admin).values_list("username", flat=True)) >= {
        "outside",
        "inside",
    }
