import pytest

from accounts.models import Membership, Role, User
from accounts.roles import sync_builtin_roles
from accounts.scopes import _collapse, area_in_scope, forget_grants, has_permission
from geo.models import Area, GridStaff


@pytest.fixture
def roles(db):
    sync_builtin_roles()
    return {r.code: r for r in Role.objects.all()}


def member(username, role, area, **extra):
    user = User.objects.create_user(username=username, password=None)
    Membership.objects.create(user=user, role=role, area=area, **extra)
    return user


def codes(qs):
    return sorted(qs.values_list("code", flat=True))


def test_grid_worker_sees_only_her_grid(small_city, roles):
    grid = small_city.grids[0]
    worker = member("w", roles["grid_worker"], grid)
    assert codes(Area.objects.restrict(worker, "view")) == [grid.code]
    assert not Area.objects.restrict(worker, "change").exists()


def test_street_member_sees_the_whole_street_subtree(small_city, roles):
    leader = member("l", roles["leader"], small_city.street)
    visible = codes(Area.objects.restrict(leader, "view"))
    assert small_city.street.code in visible
    assert small_city.district.code not in visible
    assert len(visible) == 1 + 2 + 8


def test_several_memberships_add_up(small_city, roles):
    worker = member("w", roles["grid_worker"], small_city.grids[0])
    Membership.objects.create(user=worker, role=roles["grid_worker"], area=small_city.grids[5])
    forget_grants(worker)
    assert codes(Area.objects.restrict(worker)) == sorted(
        [small_city.grids[0].code, small_city.grids[5].code]
    )


def test_no_membership_sees_nothing_and_superuser_everything(small_city, roles):
    nobody = User.objects.create_user(username="n", password=None)
    root = User.objects.create_superuser(username="root", password=None)
    assert not Area.objects.restrict(nobody).exists()
    assert Area.objects.restrict(root).count() == Area.objects.count()


def test_inactive_membership_grants_nothing(small_city, roles):
    worker = member("w", roles["grid_worker"], small_city.grids[0], is_active=False)
    assert not Area.objects.restrict(worker).exists()
    assert not has_permission(worker, "geo.view_area")


def test_related_objects_follow_their_area(small_city, roles):
    g0, g5 = small_city.grids[0], small_city.grids[5]
    worker = member("w", roles["grid_worker"], g0)
    other = User.objects.create_user(username="o", password=None)
    GridStaff.objects.create(area=g0, user=worker, role=GridStaff.Role.WORKER)
    GridStaff.objects.create(area=g5, user=other, role=GridStaff.Role.WORKER)
    visible = GridStaff.objects.restrict(worker)
    assert [s.area.code for s in visible] == [g0.code]


def test_users_in_scope_are_listed_once(small_city, roles):
    admin = member("a", roles["admin"], small_city.street)
    w = member("w", roles["grid_worker"], small_city.grids[0])
    Membership.objects.create(user=w, role=roles["grid_leader"], area=small_city.communities[0])
    visible = list(User.objects.restrict(admin, "view").order_by("username"))
    assert [u.username for u in visible] == ["a", "w"]


def test_role_permissions_are_data(small_city, roles):
    worker = member("w", roles["grid_worker"], small_city.grids[0])
    assert has_permission(worker, "geo.view_area")
    roles["grid_worker"].permissions.clear()
    forget_grants(worker)
    assert not has_permission(worker, "geo.view_area")
    assert not Area.objects.restrict(worker).exists()


def test_area_in_scope_and_prefix_collapse(small_city, roles):
    worker = member("w", roles["grid_worker"], small_city.communities[0])
    assert area_in_scope(worker, "geo.view_area", small_city.grids[0].code)
    assert not area_in_scope(worker, "geo.view_area", small_city.grids[4].code)
    assert _collapse({"110105001", "110105001001", "110106"}) == ["110105001", "110106"]
