"""The demo city: deterministic, realistic in size, exactly tiled, written like any import."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from io import StringIO

import pytest
import shapely
from django.core.management import CommandError, call_command

from accounts.models import AuditEntry, Department, Membership
from accounts.roles import BUILTIN_ROLES
from geo.demo import (
    DEMO_ACCOUNTS,
    DEMO_ADMIN_USERNAME,
    DEMO_LEADER_USERNAME,
    DEMO_LOGINS,
    DEMO_PASSWORD,
    DEMO_SEED,
    DEMO_WORKER_USERNAME,
    DISTRICT_CODE,
    demo_departments,
    demo_logins,
    demo_memberships,
    generate_demo_city,
)
from geo.models import Area, AreaLevel, Building, GridStaff, code_problem

# Below a square centimetre, in square degrees at the demo's latitude.
AREA_EPSILON = 1e-14


@pytest.fixture(scope="module")
def city():
    return generate_demo_city(DEMO_SEED)


def test_the_same_seed_gives_the_same_city(city):
    again = generate_demo_city(DEMO_SEED)
    assert [a.code for a in again.areas] == [a.code for a in city.areas]
    assert [shapely.to_wkb(a.geometry) for a in again.areas] == [
        shapely.to_wkb(a.geometry) for a in city.areas
    ]
    assert again.fingerprint() == city.fingerprint()


def test_another_seed_gives_another_city(city):
    other = generate_demo_city(DEMO_SEED + 1)
    assert other.fingerprint() != city.fingerprint()
    assert other.area(DISTRICT_CODE).geometry != city.area(DISTRICT_CODE).geometry


def test_tree_has_the_size_of_the_issue(city):
    counts = Counter(a.level for a in city.areas)
    assert counts[AreaLevel.DISTRICT] == 1
    assert counts[AreaLevel.STREET] == 3
    assert 8 <= counts[AreaLevel.COMMUNITY] <= 12
    assert 270 <= counts[AreaLevel.GRID] <= 330
    district = city.area(DISTRICT_CODE)
    assert district.parent_code is None
    # About 6 km × 5 km.
    assert 15e6 < shapely.area(district.geometry) * 111_320**2 * 0.86 < 35e6


def test_codes_follow_the_scheme_and_names_are_bilingual(city):
    for area in city.areas:
        parent = city.area(area.parent_code) if area.parent_code else None
        problem = code_problem(
            area.code, area.level, area.parent_code, parent.level if parent else None
        )
        assert problem is None, problem
        assert area.name and area.name_en
        assert area.name != area.name_en
    grids = city.level(AreaLevel.GRID)
    assert all(len(g.code) == 14 for g in grids)
    assert len({a.name for a in city.areas}) == len(city.areas)


def test_boundaries_are_irregular_single_polygons(city):
    for area in city.areas:
        geom = area.geometry
        assert geom.geom_type == "Polygon" and geom.is_valid, area.code
        assert len(geom.interiors) == 0, area.code
    # Not a lattice of boxes: few grids are rectangles aligned with the axes.
    boxes = sum(
        1
        for g in city.level(AreaLevel.GRID)
        if abs(g.geometry.area - g.geometry.envelope.area) < 1e-12
    )
    assert boxes < len(city.level(AreaLevel.GRID)) * 0.1
    assert len(city.area(DISTRICT_CODE).geometry.exterior.coords) > 100


def test_children_tile_each_parent_exactly(city):
    by_parent = defaultdict(list)
    for area in city.areas:
        if area.parent_code:
            by_parent[area.parent_code].append(area.geometry)
    assert len(by_parent) == 1 + 3 + len(city.level(AreaLevel.COMMUNITY))
    for code, children in by_parent.items():
        parent = city.area(code).geometry
        union = shapely.union_all(children)
        assert shapely.symmetric_difference(union, parent).area < AREA_EPSILON, code
        # No overlap: the parts add up to the whole.
        assert abs(sum(c.area for c in children) - parent.area) < AREA_EPSILON, code
        for i, a in enumerate(children):
            for b in children[i + 1 :]:
                assert shapely.intersection(a, b).area < AREA_EPSILON, code


def test_households_and_people_per_grid(city):
    grids = city.level(AreaLevel.GRID)
    households = [g.households for g in grids]
    people = [g.population for g in grids]
    # DESIGN.md: ~34 households and ~103 people per grid.
    assert 31 <= statistics.median(households) <= 37
    assert 95 <= statistics.median(people) <= 112
    assert min(households) >= 17 and max(households) <= 51
    for level in (AreaLevel.COMMUNITY, AreaLevel.STREET, AreaLevel.DISTRICT):
        for area in city.level(level):
            children = city.children(area.code)
            assert area.households == sum(c.households for c in children)
            assert area.population == sum(c.population for c in children)


def test_buildings_lie_in_their_grid_and_sum_to_it(city):
    sums = Counter()
    people = Counter()
    for b in city.buildings:
        grid = city.area(b.grid_code)
        assert shapely.covers(grid.geometry, shapely.Point(b.lng, b.lat)), b.name
        assert b.community_code == grid.parent_code
        assert b.name.endswith("幢")
        sums[b.grid_code] += b.households
        people[b.grid_code] += b.population
    for grid in city.level(AreaLevel.GRID):
        assert sums[grid.code] == grid.households
        assert people[grid.code] == grid.population


def test_every_grid_has_one_worker_and_its_community_leader(city):
    workers = defaultdict(list)
    leaders = defaultdict(list)
    for p in city.people:
        assert 1 <= len(p.display_name) <= 4
        target = workers if p.role == GridStaff.Role.WORKER else leaders
        for code in p.grid_codes:
            target[code].append(p.username)
        if p.role == GridStaff.Role.WORKER:
            assert 1 <= len(p.grid_codes) <= 3
            assert len({c[:12] for c in p.grid_codes}) == 1
        else:
            community = p.grid_codes[0][:12]
            assert set(p.grid_codes) == {g.code for g in city.children(community)}
    for grid in city.level(AreaLevel.GRID):
        assert len(workers[grid.code]) == 1, grid.code
        assert len(leaders[grid.code]) == 1, grid.code
    assert len({p.username for p in city.people}) == len(city.people)
    assert any(p.username == DEMO_WORKER_USERNAME for p in city.people)


def test_the_grid_worker_account_covers_several_grids_of_the_leaders_community(city):
    worker = [p for p in city.people if p.username == DEMO_WORKER_USERNAME]
    leader = [p for p in city.people if p.username == DEMO_LEADER_USERNAME]
    assert len(worker) == 1 and len(leader) == 1
    assert worker[0].role == GridStaff.Role.WORKER and leader[0].role == GridStaff.Role.LEADER
    assert 2 <= len(worker[0].grid_codes) <= 3
    assert set(worker[0].grid_codes) <= set(leader[0].grid_codes)


def test_departments_for_every_level(city):
    departments = demo_departments(city)
    by_code = {d.code: d for d in departments}
    assert len(by_code) == len(departments)
    district = [d for d in departments if d.area_code == DISTRICT_CODE]
    assert {d.code for d in district} == {
        f"{DISTRICT_CODE}-{suffix}" for suffix in ("ZH", "CG", "HW", "YL", "SW", "SZ")
    }
    names = {d.name for d in district}
    for short in ("城管局", "环卫所", "园林所", "水务局", "市政设施所", "指挥中心"):
        assert any(short in name for name in names), short
    for street in city.level(AreaLevel.STREET):
        center = by_code[f"{street.code}-ZH"]
        assert center.kind == Department.Kind.COMMAND_CENTER and center.area_code == street.code
        assert center.name == f"{street.name}指挥中心"
        assert center.parent_code == f"{DISTRICT_CODE}-ZH"
    for community in city.level(AreaLevel.COMMUNITY):
        station = by_code[f"{community.code}-GZZ"]
        assert station.kind == Department.Kind.WORKSTATION
        assert station.area_code == community.code and station.name == f"{community.name}工作站"
        assert station.parent_code == f"{community.parent_code}-ZH"
    # Parents come before their units.
    seen = set()
    for d in departments:
        assert d.parent_code is None or d.parent_code in seen, d.code
        seen.add(d.code)


def test_one_demo_account_per_role():
    assert sorted(a.role for a in DEMO_ACCOUNTS) == sorted(r["code"] for r in BUILTIN_ROLES)
    assert set(DEMO_LOGINS) == {
        "admin", "gridworker", "gridleader", "intake", "shiftlead", "dispatcher",
        "handler", "depthead", "leader", "auditor", "resident",
    }  # fmt: skip


def test_field_staff_hold_their_role_over_their_own_grids(city):
    memberships = demo_memberships(city)
    grid_worker = defaultdict(set)
    for m in memberships:
        if m.role == "grid_worker":
            grid_worker[m.username].add(m.area_code)
    for p in city.people:
        if p.role == GridStaff.Role.WORKER:
            assert grid_worker[p.username] == set(p.grid_codes), p.username
    leaders = [m for m in memberships if m.role == "grid_leader"]
    assert len(leaders) == len(city.level(AreaLevel.COMMUNITY))
    assert all(len(m.area_code) == 12 for m in leaders)
    assert all(
        m.department_code == f"{m.area_code[:12]}-GZZ"
        for m in memberships
        if m.role in ("grid_worker", "grid_leader")
    )


# --- In the database ----------------------------------------------------------------


def _seed(*args) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def _demo_logins() -> str:
    out = StringIO()
    call_command("demo_logins", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_seed_demo_writes_the_city(city):
    output = _seed()
    assert "Demo city loaded" in output
    assert Area.objects.count() == len(city.areas)
    assert Area.objects.grids().count() == len(city.level(AreaLevel.GRID))
    assert Building.objects.count() == len(city.buildings)
    stored = Area.objects.get(code=DISTRICT_CODE)
    assert stored.name == "云溪区" and stored.name_en == "Yunxi District"
    # The importer normalises boundaries; the demo's are already on its lattice.
    sample = city.level(AreaLevel.GRID)[17]
    assert Area.objects.get(code=sample.code).shape.equals(sample.geometry)
    assert Area.objects.get(code=sample.code).households == sample.households
    assert Building.objects.filter(grid__isnull=True).count() == 0
    assert GridStaff.objects.filter(role=GridStaff.Role.WORKER).count() == len(
        city.level(AreaLevel.GRID)
    )


# Where each demo account works: (role, scope, department code suffix).
EXPECTED_SCOPES = {
    "resident": ("resident", "district", None),
    "gridleader": ("grid_leader", "community", "GZZ"),
    "intake": ("intake_clerk", "district", "ZH"),
    "shiftlead": ("shift_lead", "district", "ZH"),
    "dispatcher": ("dispatcher", "district", "ZH"),
    "handler": ("handler", "district", "HW"),
    "depthead": ("department_head", "district", "CG"),
    "leader": ("leader", "district", None),
    "admin": ("admin", "district", None),
    "auditor": ("auditor", "district", None),
}


@pytest.mark.django_db
def test_one_user_per_role_with_its_scope(django_user_model):
    _seed()
    worker_grids = set(
        GridStaff.objects.filter(
            user__username=DEMO_WORKER_USERNAME, role=GridStaff.Role.WORKER
        ).values_list("area__code", flat=True)
    )
    community = Area.objects.get(code=next(iter(worker_grids))[:12])
    for username, (role, scope, suffix) in EXPECTED_SCOPES.items():
        user = django_user_model.objects.get(username=username)
        assert user.is_active and user.display_name, username
        assert not user.is_superuser, username
        assert user.is_staff == (username == DEMO_ADMIN_USERNAME), username
        held = list(
            Membership.objects.filter(user=user).select_related("role", "area", "department")
        )
        assert len(held) == 1, username
        m = held[0]
        assert m.role.code == role and m.is_active, username
        assert m.area.code == (DISTRICT_CODE if scope == "district" else community.code), username
        if suffix is None:
            assert m.department is None, username
        else:
            assert m.department.code == f"{m.area.code}-{suffix}", username
    # The grid leader leads the grid worker's community, as its grid staff says.
    leader_grids = set(
        GridStaff.objects.filter(
            user__username=DEMO_LEADER_USERNAME, role=GridStaff.Role.LEADER
        ).values_list("area__code", flat=True)
    )
    assert leader_grids == set(Area.objects.filter(parent=community).values_list("code", flat=True))
    handler = Membership.objects.get(user__username="handler").department
    assert "环卫所" in handler.name
    head = Membership.objects.get(user__username="depthead").department
    assert "城管局" in head.name
    # Every role has its account.
    roles = set(
        Membership.objects.filter(user__username__in=DEMO_LOGINS).values_list(
            "role__code", flat=True
        )
    )
    assert roles == {r["code"] for r in BUILTIN_ROLES}


@pytest.mark.django_db
def test_the_grid_worker_holds_exactly_her_grids(django_user_model):
    _seed()
    worker = django_user_model.objects.get(username=DEMO_WORKER_USERNAME)
    assert worker.check_password(DEMO_PASSWORD) and not worker.is_staff
    grids = set(
        GridStaff.objects.filter(user=worker, role=GridStaff.Role.WORKER).values_list(
            "area__code", flat=True
        )
    )
    assert 2 <= len(grids) <= 3
    assert len({code[:12] for code in grids}) == 1
    held = Membership.objects.filter(user=worker).select_related("role", "area", "department")
    assert {m.area.code for m in held} == grids
    assert {m.role.code for m in held} == {"grid_worker"}
    assert all(m.area.level == AreaLevel.GRID for m in held)
    assert {m.department.code for m in held} == {f"{next(iter(grids))[:12]}-GZZ"}
    # What her memberships let her see: those grids, not even their community.
    visible = set(Area.objects.restrict(worker, "view").values_list("code", flat=True))
    assert visible == grids


@pytest.mark.django_db
def test_other_field_staff_hold_their_own_grids_and_cannot_sign_in(city):
    _seed()
    staff = defaultdict(set)
    for username, code in GridStaff.objects.filter(role=GridStaff.Role.WORKER).values_list(
        "user__username", "area__code"
    ):
        staff[username].add(code)
    held = defaultdict(set)
    for username, code in Membership.objects.filter(role__code="grid_worker").values_list(
        "user__username", "area__code"
    ):
        held[username].add(code)
    assert held == staff
    leaders = Membership.objects.filter(role__code="grid_leader")
    assert leaders.count() == len(city.level(AreaLevel.COMMUNITY))
    assert all(m.area.level == AreaLevel.COMMUNITY for m in leaders.select_related("area"))
    others = GridStaff.objects.exclude(user__username__in=DEMO_LOGINS).select_related("user")
    assert others.exists()
    assert not any(s.user.has_usable_password() for s in others)


@pytest.mark.django_db
def test_departments_are_written_for_every_level(city):
    _seed()
    kinds = Counter(Department.objects.values_list("kind", flat=True))
    assert kinds[Department.Kind.BUREAU] == 5
    # The district's, and one per street.
    assert kinds[Department.Kind.COMMAND_CENTER] == 1 + len(city.level(AreaLevel.STREET))
    assert kinds[Department.Kind.WORKSTATION] == len(city.level(AreaLevel.COMMUNITY))
    cg = Department.objects.select_related("area").get(code=f"{DISTRICT_CODE}-CG")
    assert cg.name == "云溪区城管局" and cg.area.code == DISTRICT_CODE and cg.parent is None
    for community in Area.objects.filter(level=AreaLevel.COMMUNITY):
        station = Department.objects.get(area=community)
        assert station.code == f"{community.code}-GZZ"
        assert station.parent.area_id == community.parent_id
    # Written through the services: each one is in the audit log, with the seed's summary.
    assert (
        AuditEntry.objects.filter(action="department.create").count() == Department.objects.count()
    )
    assert (
        AuditEntry.objects.filter(action="membership.create").count()
        == Membership.objects.filter(user__username__in=DEMO_LOGINS).count()
    )
    summary = AuditEntry.objects.get(action="demo.seed")
    assert summary.detail["departments"] == Department.objects.count()
    assert summary.detail["memberships"] == Membership.objects.count()


@pytest.mark.django_db
def test_demo_logins_list_every_role(django_user_model):
    _seed()
    for username in DEMO_LOGINS:
        user = django_user_model.objects.get(username=username)
        assert user.check_password(DEMO_PASSWORD), username
    text = _demo_logins()
    assert text.startswith("CivicGrid: http://127.0.0.1:8000")
    lines = text.splitlines()
    for username in DEMO_LOGINS:
        row = [line for line in lines if line.split() and line.split()[0] == username]
        assert len(row) == 1, username
        assert DEMO_PASSWORD in row[0]
    for spec in BUILTIN_ROLES:
        assert f"{spec['name']} {spec['name_en']}" in text, spec["code"]
    worker_grids = Area.objects.filter(
        pk__in=GridStaff.objects.filter(user__username=DEMO_WORKER_USERNAME).values("area")
    ).order_by("code")
    worker_row = next(line for line in lines if line.split() and line.split()[0] == "gridworker")
    assert "、".join(g.name for g in worker_grids) in worker_row
    assert "云溪区" in next(line for line in lines if line.split() and line.split()[0] == "leader")
    # The admin's row is marked: two-factor is set up at the first sign-in.
    assert (
        next(line for line in lines if line.split() and line.split()[0] == "admin").split()[1]
        == "*"
    )
    assert "two-factor" in text and "first sign-in" in text


@pytest.mark.django_db
def test_demo_logins_leave_out_accounts_that_no_longer_work(django_user_model):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    _seed()
    handler = django_user_model.objects.get(username="handler")
    handler.set_password("a-private-one-42")
    handler.save()
    django_user_model.objects.filter(username="auditor").update(is_active=False)
    admin = django_user_model.objects.get(username=DEMO_ADMIN_USERNAME)
    TOTPDevice.objects.create(user=admin, name="phone", confirmed=True)
    logins = {login.username: login for login in demo_logins()}
    assert set(logins) == set(DEMO_LOGINS) - {"handler", "auditor"}
    # With an authenticator already set up there is nothing to set up first.
    assert not logins[DEMO_ADMIN_USERNAME].two_factor_setup
    text = _demo_logins()
    assert "handler" not in text and "auditor" not in text
    assert "first sign-in" not in text


@pytest.mark.django_db
def test_demo_logins_names_only_accounts_that_work(django_user_model):
    django_user_model.objects.create_user(username=DEMO_ADMIN_USERNAME, password="a-private-one-42")
    text = _demo_logins()
    assert DEMO_PASSWORD not in text
    assert "http://127.0.0.1:8000" in text


@pytest.mark.django_db
def test_an_existing_admin_keeps_its_password(django_user_model):
    django_user_model.objects.create_superuser(
        username=DEMO_ADMIN_USERNAME, password="kept-Secret-99"
    )
    output = _seed()
    assert "10 new demo accounts" in output
    admin = django_user_model.objects.get(username=DEMO_ADMIN_USERNAME)
    assert admin.check_password("kept-Secret-99") and admin.is_superuser
    # It is given the admin role over the district all the same.
    assert Membership.objects.filter(
        user=admin, role__code="admin", area__code=DISTRICT_CODE
    ).exists()
    assert DEMO_ADMIN_USERNAME not in [login.username for login in demo_logins()]


@pytest.mark.django_db
def test_if_empty_leaves_an_existing_tree_alone(small_city):
    before = list(Area.objects.values_list("code", "name"))
    output = _seed("--if-empty")
    assert f"already holds {len(before)} areas" in output
    assert list(Area.objects.values_list("code", "name")) == before
    assert not Building.objects.exists()
    assert not Department.objects.exists()


@pytest.mark.django_db
def test_without_a_flag_an_existing_tree_is_an_error(small_city):
    count = Area.objects.count()
    with pytest.raises(CommandError, match="--force"):
        _seed()
    assert Area.objects.count() == count
    assert not Area.objects.filter(code=DISTRICT_CODE).exists()


@pytest.mark.django_db
def test_force_replaces_the_tree_and_its_staff(small_city, django_user_model):
    leftover = django_user_model.objects.create_user(username="someone-else")
    GridStaff.objects.create(
        area=Area.objects.grids().first(), user=leftover, role=GridStaff.Role.WORKER
    )
    # Organisation tied to the old tree goes too, parents after their units.
    center = Department.objects.create(code="cc", name="指挥中心", area=small_city.district)
    Department.objects.create(code="ws", name="工作站", area=small_city.street, parent=center)
    output = _seed("--force")
    assert "replacing" in output
    assert not Department.objects.filter(code__in=["cc", "ws"]).exists()
    assert not Area.objects.filter(code__startswith="110105").exists()
    assert Area.objects.filter(code=DISTRICT_CODE).exists()
    # Field staff of the old tree go with it; the admin stays.
    assert not django_user_model.objects.filter(username="someone-else").exists()
    assert django_user_model.objects.filter(username=DEMO_ADMIN_USERNAME).count() == 1
    assert (
        GridStaff.objects.filter(role=GridStaff.Role.WORKER).count() == Area.objects.grids().count()
    )


@pytest.mark.django_db
def test_force_on_the_demo_city_gives_the_same_organisation(django_user_model):
    _seed()
    departments = sorted(Department.objects.values_list("code", "name", "kind"))
    memberships = sorted(
        Membership.objects.values_list(
            "user__username", "role__code", "area__code", "department__code"
        )
    )
    # An account someone reset keeps its password; its memberships come back.
    leader = django_user_model.objects.get(username="leader")
    leader.set_password("a-private-one-42")
    leader.save()
    _seed("--force")
    assert sorted(Department.objects.values_list("code", "name", "kind")) == departments
    assert (
        sorted(
            Membership.objects.values_list(
                "user__username", "role__code", "area__code", "department__code"
            )
        )
        == memberships
    )
    assert django_user_model.objects.get(username="leader").check_password("a-private-one-42")
    assert django_user_model.objects.filter(username__in=DEMO_LOGINS).count() == len(DEMO_LOGINS)


@pytest.mark.django_db
def test_a_refused_account_leaves_nothing_written(django_user_model):
    # An existing, deactivated "handler" cannot be given a membership.
    django_user_model.objects.create_user(username="handler", is_active=False)
    with pytest.raises(CommandError, match="handler"):
        _seed()
    assert not Area.objects.exists()
    assert not Department.objects.exists()
    assert not Membership.objects.exists()
    assert django_user_model.objects.count() == 1


@pytest.mark.django_db
def test_the_stored_demo_city_has_no_topology_problems():
    from geo.topology import check_topology

    _seed()
    # Not even a square centimetre of overlap, gap or spill at any level.
    assert check_topology(tolerance_m2=0.0001) == []
