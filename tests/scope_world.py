"""A small city with people in it, for the scope tests: two communities, A and B.

Built on ``geo.testing.make_small_city`` (street → communities A ``…001`` and
B ``…002`` → four grids each). Each community gets a department, grid staff,
a handler, buildings, an API token and audit entries, with names that are
easy to spot in a response body. Everything is written straight to the
database (not through services) so that the audit log holds only what the
world planted, and so no sign-in entries name anyone.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from accounts.audit import audit_log
from accounts.models import ApiToken, Department, Membership, Role, User
from accounts.roles import sync_builtin_roles
from accounts.scopes import forget_grants
from accounts.selectors import permission_queryset
from core.models import Dictionary, DictionaryItem
from geo.models import Area, Building, GridStaff
from geo.testing import make_small_city

# The role the scope walk signs in with: every permission a role can be
# given, except reading the audit log (which is not located in any area, see
# tests/test_scope_walk.py), so every page and endpoint opens and only the
# scope holds it back.
PROBE_ROLE = "scope_probe"


@dataclass
class Side:
    """One community and what lives in it."""

    community: Area
    grids: list[Area]
    department: Department
    worker: User
    leader: User
    handler: User
    building: Building
    membership: Membership  # the worker's membership over the first grid
    staff: GridStaff  # the worker's grid staff assignment
    token: ApiToken
    audit_entry_id: int
    users: list[User] = field(default_factory=list)

    @property
    def grid(self) -> Area:
        return self.grids[0]

    def markers(self) -> set[str]:
        """Text that only an insider of this community may see in a response."""
        found = set()
        for area in [self.community, *self.grids]:
            found |= {area.code, area.name, area.name_en}
        found |= {self.department.code, self.department.name, self.department.name_en}
        for user in self.users:
            found |= {user.username, user.display_name}
        found |= {self.building.name, self.token.name}
        return {m for m in found if m}


@dataclass
class World:
    city: object
    roles: dict[str, Role]
    a: Side
    b: Side
    neighbour: User  # grid worker of A's second grid: outside a single-grid scope
    shared: User  # a grid worker of A's first grid who also works B's first grid
    dictionary: Dictionary
    street_department: Department
    neighbour_building: Building

    def grid_markers(self) -> set[str]:
        """What a member of A's first grid alone must not see of the rest of A."""
        found = set()
        for area in self.a.grids[1:]:
            found |= {area.code, area.name, area.name_en}
        found |= {self.neighbour.username, self.neighbour.display_name}
        found.add(self.neighbour_building.name)
        return found

    def all_markers(self) -> set[str]:
        """Everything the world holds: what someone with no role must not see."""
        found = self.a.markers() | self.b.markers() | self.grid_markers()
        for area in (self.city.district, self.city.street):
            found |= {area.code, area.name, area.name_en}
        found |= {self.shared.username, self.shared.display_name}
        found |= {self.street_department.name, self.street_department.name_en}
        return found


def _user(username: str, display_name: str) -> User:
    return User.objects.create_user(
        username=username,
        display_name=display_name,
        email=f"{username}@example.org",
        phone="13800000000",
        password=None,
    )


def _member(user: User, role: Role, area: Area, department: Department | None = None):
    return Membership.objects.create(user=user, role=role, area=area, department=department)


def _building(name: str, community: Area, grid: Area, households: int = 12) -> Building:
    lng = (grid.min_lng + grid.max_lng) / 2
    lat = (grid.min_lat + grid.max_lat) / 2
    return Building.objects.create(
        community=community, grid=grid, name=name, lng=lng, lat=lat, households=households
    )


def _token(user: User, name: str) -> ApiToken:
    return ApiToken.objects.create(
        user=user,
        name=name,
        prefix=name[:10],
        key_hash=f"{name:x<64}"[:64],
        expires_at=timezone.now() + timedelta(days=30),
    )


def _side(letter: str, word: str, zh: str, community: Area, grids: list[Area], roles) -> Side:
    department = Department.objects.create(
        code=f"D-{word.upper()}-SAN",
        name=f"{zh}社区环卫站",
        name_en=f"{word} sanitation station",
        kind=Department.Kind.WORKSTATION,
        area=community,
    )
    worker = _user(f"{word.lower()}_worker", f"{word} Worker {zh}网格员")
    leader = _user(f"{word.lower()}_leader", f"{word} Leader {zh}网格长")
    handler = _user(f"{word.lower()}_handler", f"{word} Handler {zh}处置员")
    membership = _member(worker, roles["grid_worker"], grids[0])
    _member(leader, roles["grid_leader"], community)
    _member(handler, roles["handler"], community, department)
    staff = GridStaff.objects.create(area=grids[0], user=worker, role=GridStaff.Role.WORKER)
    for grid in grids:
        GridStaff.objects.create(area=grid, user=leader, role=GridStaff.Role.LEADER)
    building = _building(f"{word} Tower {zh}一号楼", community, grids[0])
    token = _token(worker, f"{word.lower()}-token-of-{letter}")
    entry = audit_log(
        actor=worker,
        action="scope_probe_planted",
        obj=department,
        after={"name": department.name, "by": worker.username},
    )
    return Side(
        community=community,
        grids=grids,
        department=department,
        worker=worker,
        leader=leader,
        handler=handler,
        building=building,
        membership=membership,
        staff=staff,
        token=token,
        audit_entry_id=entry.pk,
        users=[worker, leader, handler],
    )


def make_world() -> World:
    city = make_small_city()
    sync_builtin_roles()
    roles = {r.code: r for r in Role.objects.all()}
    a_grids = city.grids[:4]
    b_grids = city.grids[4:]
    a = _side("a", "Alpha", "甲", city.communities[0], a_grids, roles)
    b = _side("b", "Bravo", "乙", city.communities[1], b_grids, roles)

    neighbour = _user("alpha_neighbour", "Alpha Neighbour 甲二网格员")
    _member(neighbour, roles["grid_worker"], a_grids[1])
    GridStaff.objects.create(area=a_grids[1], user=neighbour, role=GridStaff.Role.WORKER)
    neighbour_building = _building("Alpha Annex 甲二号楼", a.community, a_grids[1])

    shared = _user("shared_worker", "Shared Worker 两边网格员")
    _member(shared, roles["grid_worker"], a_grids[0])
    _member(shared, roles["grid_worker"], b_grids[0])
    GridStaff.objects.create(area=b_grids[0], user=shared, role=GridStaff.Role.WORKER)

    # A department above both communities: offered to either side's admins as
    # a choice (a street bureau's handler may work a community), so it is no secret.
    street_department = Department.objects.create(
        code="D-STREET-CMD",
        name="街道指挥中心",
        name_en="Street command center",
        kind=Department.Kind.COMMAND_CENTER,
        area=city.street,
    )
    dictionary = Dictionary.objects.create(code="case_source", name="案件来源", name_en="Source")
    DictionaryItem.objects.create(dictionary=dictionary, code="patrol", label="巡查")
    return World(
        city=city,
        roles=roles,
        a=a,
        b=b,
        neighbour=neighbour,
        shared=shared,
        dictionary=dictionary,
        street_department=street_department,
        neighbour_building=neighbour_building,
    )


def probe_role() -> Role:
    """Every grantable permission except the audit log's (see :data:`PROBE_ROLE`)."""
    role, _created = Role.objects.get_or_create(code=PROBE_ROLE, defaults={"name": "scope probe"})
    perms = permission_queryset().exclude(
        content_type__app_label="accounts", content_type__model="auditentry"
    )
    role.permissions.set(perms)
    return role


def user_over(username: str, area: Area | None, role: Role | None = None, **extra) -> User:
    """A user holding ``role`` (the probe role by default) over ``area`` (None: nowhere)."""
    user = User.objects.create_user(username=username, password=None, **extra)
    if area is not None:
        Membership.objects.create(user=user, role=role or probe_role(), area=area)
    forget_grants(user)
    return user


# --- reading responses --------------------------------------------------------------------


def _forms(marker: str) -> set[str]:
    # As sent raw, HTML-escaped, or inside JSON written with ASCII escapes.
    return {marker, html.escape(marker), json.dumps(marker)[1:-1]}


def leaked(body: str, markers: set[str], *, sent: str = "") -> list[str]:
    """The markers found in ``body``, other than those the request itself carried."""
    found = []
    for marker in sorted(markers):
        if marker in sent:
            continue
        if any(form in body for form in _forms(marker)):
            found.append(marker)
    return found
