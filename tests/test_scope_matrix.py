"""The scope matrix: each built-in role × each kind of object × inside or outside her scope.

Every role is held over community A (the grid worker over A's first grid;
handlers and department heads for A's department). Each object kind has one
object inside that scope and one in community B, and is looked at through
every page and endpoint that shows it, on the web and in the API.

What each role should see is *derived*, not tabulated: from the permissions
the role declares in ``accounts.roles.BUILTIN_ROLES`` and from where the
object lies (its area codes against the membership's area). A table written
beside the code would only repeat it; the derivation states the rule
(permission × place) and the code has to agree with it. A few hand-written
anchors at the end pin down cases a person can check at a glance.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, User
from accounts.roles import BUILTIN_ROLES
from accounts.scopes import forget_grants
from accounts.testing import verified_login

from .scope_world import World, make_world

pytestmark = pytest.mark.django_db

ROLES = [
    "grid_worker",
    "grid_leader",
    "intake_clerk",
    "shift_lead",
    "dispatcher",
    "handler",
    "department_head",
    "leader",
    "admin",
    "auditor",
]
KINDS = ["area", "grid staff", "building", "department", "membership", "user", "audit entry"]
PLACES = ["inside", "outside"]

DECLARED = {spec["code"]: frozenset(spec["permissions"]) for spec in BUILTIN_ROLES}


def reads_audit_log(role: str) -> bool:
    # accounts.permissions.can_view_audit: the permission, or the admin role
    # itself (admins read the log whatever their role's permissions say).
    return "accounts.view_auditentry" in DECLARED[role] or role == "admin"


@dataclass
class Holder:
    role: str
    prefix: str  # the code of the membership's area: her scope is that subtree

    def holds(self, perm: str, *codes: str) -> bool:
        """The role declares ``perm`` and one of ``codes`` lies in her area."""
        return perm in DECLARED[self.role] and any(c.startswith(self.prefix) for c in codes)

    def holds_anywhere(self, perm: str) -> bool:
        return perm in DECLARED[self.role]


@dataclass
class Check:
    what: str
    expected: object
    actual: object


def _page(client: Client, url: str, **query):
    response = client.get(url, query, HTTP_ACCEPT_LANGUAGE="en")
    return response.status_code, response.content.decode()


def _status(holder: Holder, perm: str, *codes: str) -> int:
    """A permission-gated page about one object: 403 without the permission, 404 out of scope."""
    if not holder.holds_anywhere(perm):
        return 403
    return 200 if holder.holds(perm, *codes) else 404


# --- what each kind of object looks like from each surface ------------------------------------


def check_area(client, holder: Holder, world: World, place: str) -> list[Check]:
    grid = (world.a if place == "inside" else world.b).grid
    visible = holder.holds("geo.view_area", grid.code)
    detail = client.get(reverse("areas-detail", args=[grid.code]))
    listed = client.get(reverse("areas-list"), {"level": "grid", "limit": 1000}).json()
    status, _html = _page(client, reverse("geo:area-card", args=[grid.code]))
    return [
        Check("API detail", 200 if visible else 404, detail.status_code),
        Check("API list", visible, grid.code in {a["code"] for a in listed["results"]}),
        Check("web card", 200 if visible else 404, status),
    ]


def check_grid_staff(client, holder: Holder, world: World, place: str) -> list[Check]:
    side = world.a if place == "inside" else world.b
    code, username = side.staff.area.code, side.staff.user.username
    visible = holder.holds("geo.view_area", code) and holder.holds("geo.view_gridstaff", code)
    detail = client.get(reverse("areas-detail", args=[code]))
    found = detail.json().get("staff", []) if detail.status_code == 200 else []
    staff = {s["username"] for s in found}
    status, html = _page(client, reverse("geo:area-card", args=[code]))
    return [
        Check("API detail staff", visible, username in staff),
        Check("web card staff", visible, status == 200 and username in html),
    ]


def check_building(client, holder: Holder, world: World, place: str) -> list[Check]:
    building = (world.a if place == "inside" else world.b).building
    grid, community = building.grid.code, building.community.code
    visible = holder.holds("geo.view_area", grid) and holder.holds(
        "geo.view_building", community, grid
    )
    status, html = _page(client, reverse("geo:area-card", args=[grid]))
    return [Check("web card buildings", visible, status == 200 and building.name in html)]


def check_department(client, holder: Holder, world: World, place: str) -> list[Check]:
    department = (world.a if place == "inside" else world.b).department
    code = department.area.code
    list_status, html = _page(client, reverse("system:department_list"))
    edit_status, _ = _page(client, reverse("system:department_edit", args=[department.pk]))
    return [
        Check(
            "web list status",
            200 if holder.holds_anywhere("accounts.view_department") else 403,
            list_status,
        ),
        Check(
            "web list shows it",
            holder.holds("accounts.view_department", code),
            list_status == 200 and department.name in html,
        ),
        Check("web edit", _status(holder, "accounts.change_department", code), edit_status),
    ]


def check_membership(client, holder: Holder, world: World, place: str) -> list[Check]:
    # The shared worker works A's first grid and B's first grid: one membership each.
    area = (world.a if place == "inside" else world.b).grid
    membership = Membership.objects.get(user=world.shared, area=area)
    her_areas = list(world.shared.memberships.values_list("area__code", flat=True))
    page = _status(holder, "accounts.view_user", *her_areas)
    status, html = _page(client, reverse("system:user_detail", args=[world.shared.pk]))
    edit_status, _ = _page(client, reverse("system:membership_edit", args=[membership.pk]))
    return [
        Check("web user page", page, status),
        Check(
            "web user page lists it",
            page == 200 and holder.holds("accounts.view_membership", area.code),
            status == 200 and area.code in html,
        ),
        Check("web edit", _status(holder, "accounts.change_membership", area.code), edit_status),
    ]


def check_user(client, holder: Holder, world: World, place: str) -> list[Check]:
    user = (world.a if place == "inside" else world.b).worker
    codes = list(user.memberships.values_list("area__code", flat=True))
    list_status, html = _page(client, reverse("system:user_list"))
    detail_status, _ = _page(client, reverse("system:user_detail", args=[user.pk]))
    return [
        Check(
            "web list status",
            200 if holder.holds_anywhere("accounts.view_user") else 403,
            list_status,
        ),
        Check(
            "web list shows her",
            holder.holds("accounts.view_user", *codes),
            list_status == 200 and user.username in html,
        ),
        Check("web detail", _status(holder, "accounts.view_user", *codes), detail_status),
    ]


def check_audit_entry(client, holder: Holder, world: World, place: str) -> list[Check]:
    # Audit entries are not located in an area: inside and outside read alike.
    pk = (world.a if place == "inside" else world.b).audit_entry_id
    expected = 200 if reads_audit_log(holder.role) else 403
    web_status, _ = _page(client, reverse("audit:detail", args=[pk]))
    api = client.get(reverse("api-audit-detail", args=[pk]))
    return [
        Check("web detail", expected, web_status),
        Check("API detail", expected, api.status_code),
    ]


CHECKS = {
    "area": check_area,
    "grid staff": check_grid_staff,
    "building": check_building,
    "department": check_department,
    "membership": check_membership,
    "user": check_user,
    "audit entry": check_audit_entry,
}


def holder_of(role: str, world: World) -> tuple[object, Holder]:
    """A user holding ``role`` where it works: the grid worker a grid, the others community A."""
    area = world.a.grid if role == "grid_worker" else world.a.community
    department = world.a.department if world.roles[role].needs_department else None
    user = User.objects.create_user(username=f"holder_{role}", password=None)
    Membership.objects.create(user=user, role=world.roles[role], area=area, department=department)
    forget_grants(user)
    return user, Holder(role=role, prefix=area.code)


@pytest.fixture
def world():
    return make_world()


def signed_in(user) -> Client:
    # Admins must pass two-factor; everyone else simply gets a verified session too.
    return verified_login(Client(HTTP_ACCEPT_LANGUAGE="en"), user)


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("role", ROLES)
def test_scope_matrix(world, role, kind, place):
    user, holder = holder_of(role, world)
    client = signed_in(user)
    checks = CHECKS[kind](client, holder, world, place)
    wrong = [f"{c.what}: expected {c.expected!r}, got {c.actual!r}" for c in checks]
    wrong = [w for w, c in zip(wrong, checks, strict=True) if c.expected != c.actual]
    assert not wrong, f"{role} × {kind} × {place}:\n  " + "\n  ".join(wrong)


def test_the_matrix_covers_every_builtin_staff_role():
    staff_roles = {spec["code"] for spec in BUILTIN_ROLES} - {"resident"}
    assert set(ROLES) == staff_roles


# --- anchors: cases checked by hand ------------------------------------------------------------


def test_a_grid_worker_sees_her_grid_and_not_the_neighbour_grid(world):
    user, _ = holder_of("grid_worker", world)
    client = signed_in(user)
    mine, neighbour = world.a.grids[0], world.a.grids[1]
    assert client.get(reverse("areas-detail", args=[mine.code])).status_code == 200
    assert client.get(reverse("areas-detail", args=[neighbour.code])).status_code == 404
    assert client.get(reverse("geo:area-card", args=[neighbour.code])).status_code == 404
    listed = client.get(reverse("areas-list")).json()
    assert [a["code"] for a in listed["results"]] == [mine.code]
    card = client.get(reverse("geo:area-card", args=[mine.code])).content.decode()
    assert world.a.worker.username in card and world.a.building.name in card
    assert world.neighbour_building.name not in card
    # Her map opens on her grid; the community above is a path, not a place to open.
    assert client.get(reverse("geo:area-panel", args=[world.a.community.code])).status_code == 404


def test_an_auditor_reads_the_audit_log_but_sees_no_areas(world):
    user, _ = holder_of("auditor", world)
    client = signed_in(user)
    assert client.get(reverse("api-audit-detail", args=[world.b.audit_entry_id])).status_code == 200
    assert client.get(reverse("audit:list")).status_code == 200
    assert client.get(reverse("areas-list")).json()["count"] == 0
    assert client.get(reverse("areas-detail", args=[world.a.grid.code])).status_code == 404
    assert client.get(reverse("locate"), {"lat": 39.905, "lng": 116.405}).status_code == 403
    assert client.get(reverse("system:user_list")).status_code == 403


def test_a_handler_works_cases_not_the_department_register(world):
    user, _ = holder_of("handler", world)
    client = signed_in(user)
    # Her role declares no department permission: not even her own department's page.
    assert client.get(reverse("system:department_list")).status_code == 403
    assert client.get(reverse("geo:area-card", args=[world.a.grid.code])).status_code == 200
    assert client.get(reverse("geo:area-card", args=[world.b.grid.code])).status_code == 404


def test_a_dispatcher_sees_her_departments_and_not_the_other_communitys(world):
    user, _ = holder_of("dispatcher", world)
    html = signed_in(user).get(reverse("system:department_list")).content.decode()
    assert world.a.department.name in html
    assert world.b.department.name not in html


def test_a_community_admin_manages_her_people_only(world):
    user, _ = holder_of("admin", world)
    client = signed_in(user)
    assert client.get(reverse("system:user_detail", args=[world.a.worker.pk])).status_code == 200
    assert client.get(reverse("system:user_detail", args=[world.b.worker.pk])).status_code == 404
    page = client.get(reverse("system:user_detail", args=[world.shared.pk])).content.decode()
    # The shared worker is hers through A's grid; her membership in B stays out of sight.
    assert world.a.grid.code in page and world.b.grid.code not in page
    listed = client.get(reverse("system:user_list")).content.decode()
    assert world.b.grid.name not in listed and world.a.grid.name in listed
    # An action on an object she may see but not act on is a 403, not a 404.
    role = world.roles["admin"]
    role.permissions.remove(role.permissions.get(codename="change_membership"))
    forget_grants(user)
    mine = Membership.objects.get(user=world.shared, area=world.a.grid)
    assert client.get(reverse("system:membership_edit", args=[mine.pk])).status_code == 403


def test_a_leader_watches_areas_but_manages_no_people(world):
    user, _ = holder_of("leader", world)
    client = signed_in(user)
    assert client.get(reverse("areas-detail", args=[world.a.community.code])).status_code == 200
    assert client.get(reverse("system:user_list")).status_code == 403
    assert client.get(reverse("audit:list")).status_code == 403
