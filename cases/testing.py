"""Test helpers for cases: the small city staffed for the whole workflow.

Kept in the app (like geo.testing) so every app's tests can build on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from accounts.models import Department, Membership, Role, User
from accounts.roles import sync_builtin_roles
from geo.models import Area, AreaLevel
from geo.testing import SmallCity, make_area

from .models import Case, Category, Kind
from .taxonomy import seed_categories

# A point inside the first grid (11010500100101) of the small city.
GRID_POINT = (39.91, 116.405)
# A point inside grid 11010500200101, in the other community.
OTHER_GRID_POINT = (39.91, 116.425)

# The body of a report posted to the cases API: exposed garbage in the first grid.
API_REPORT = {
    "kind": "event",
    "category": "0101",
    "lat": GRID_POINT[0],
    "lng": GRID_POINT[1],
    "description": "垃圾堆在路边",
}


@dataclass
class CaseWorld:
    city: SmallCity
    other_street: Area
    sanitation: Department  # the district's sanitation bureau: cases go here
    parks: Department
    garbage: Category  # event 0101
    manhole: Category  # component 0101
    users: dict[str, User] = field(default_factory=dict)

    @property
    def grid(self) -> Area:
        return self.city.grids[0]

    def __getitem__(self, username: str) -> User:
        return self.users[username]


def member(username: str, role_code: str, area: Area, department=None) -> User:
    user = User.objects.create_user(username=username)
    Membership.objects.create(
        user=user, role=Role.objects.get(code=role_code), area=area, department=department
    )
    return user


def make_case_world(city: SmallCity) -> CaseWorld:
    """Staff for every built-in role, and a few people just outside their reach.

    In reach: ``worker`` and ``gridlead`` (grid worker and grid leader of the
    first grid), ``clerk``, ``lead``,
    ``dispatcher`` (of the street), ``handler`` and ``head`` (sanitation),
    ``leader`` and ``admin`` (of the district). Out of reach: ``far_worker``
    (a grid of the other community), ``far_dispatcher`` (another street),
    ``parks_handler`` (another department).
    """
    sync_builtin_roles()
    # Transactional tests empty every table, data migrations' rows included.
    seed_categories()
    district, street = city.district, city.street
    other_street = make_area(
        code="110105002", level=AreaLevel.STREET, name="另一街道", parent=district
    )
    sanitation = Department.objects.create(code="SAN", name="环卫", area=district)
    parks = Department.objects.create(code="PARKS", name="园林", area=district)
    world = CaseWorld(
        city=city,
        other_street=other_street,
        sanitation=sanitation,
        parks=parks,
        garbage=Category.objects.get(kind=Kind.EVENT, code="0101"),
        manhole=Category.objects.get(kind=Kind.COMPONENT, code="0101"),
    )
    people = [
        ("worker", "grid_worker", city.grids[0], None),
        ("gridlead", "grid_leader", city.grids[0], None),
        ("clerk", "intake_clerk", street, None),
        ("lead", "shift_lead", street, None),
        ("dispatcher", "dispatcher", street, None),
        ("handler", "handler", district, sanitation),
        ("head", "department_head", district, sanitation),
        ("leader", "leader", district, None),
        ("admin", "admin", district, None),
        ("far_worker", "grid_worker", city.grids[4], None),
        ("far_dispatcher", "dispatcher", other_street, None),
        ("parks_handler", "handler", district, parks),
    ]
    for username, role, area, department in people:
        world.users[username] = member(username, role, area, department)
    return world


def refreshed(case: Case) -> Case:
    return Case.objects.get(pk=case.pk)
