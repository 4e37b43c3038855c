"""The demo city: deterministic, realistic in size, exactly tiled, written like any import."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from io import StringIO

import pytest
import shapely
from django.core.management import CommandError, call_command

from accounts.models import Membership
from geo.demo import (
    DEMO_ADMIN_USERNAME,
    DEMO_PASSWORD,
    DEMO_SEED,
    DEMO_WORKER_USERNAME,
    DISTRICT_CODE,
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


# --- In the database ----------------------------------------------------------------


def _seed(*args) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
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
    # Field staff see their community through a role over it.
    worker = GridStaff.objects.filter(user__username=DEMO_WORKER_USERNAME).first()
    assert Membership.objects.filter(
        user__username=DEMO_WORKER_USERNAME, area=worker.area.parent, role__code="grid_worker"
    ).exists()


@pytest.mark.django_db
def test_demo_logins_sign_in_and_nobody_else_can(django_user_model):
    _seed()
    admin = django_user_model.objects.get(username=DEMO_ADMIN_USERNAME)
    assert admin.check_password(DEMO_PASSWORD) and admin.is_superuser and admin.is_staff
    worker = django_user_model.objects.get(username=DEMO_WORKER_USERNAME)
    assert worker.check_password(DEMO_PASSWORD) and not worker.is_staff
    others = GridStaff.objects.exclude(user__username=DEMO_WORKER_USERNAME).select_related("user")
    assert not any(s.user.has_usable_password() for s in others[:50])

    out = StringIO()
    call_command("demo_logins", stdout=out)
    text = out.getvalue()
    assert "http://127.0.0.1:8000" in text
    assert f"{DEMO_ADMIN_USERNAME}" in text and DEMO_PASSWORD in text
    assert DEMO_WORKER_USERNAME in text


@pytest.mark.django_db
def test_demo_logins_names_only_accounts_that_work(django_user_model):
    django_user_model.objects.create_user(username=DEMO_ADMIN_USERNAME, password="a-private-one-42")
    out = StringIO()
    call_command("demo_logins", stdout=out)
    assert DEMO_PASSWORD not in out.getvalue()
    assert "http://127.0.0.1:8000" in out.getvalue()


@pytest.mark.django_db
def test_an_existing_admin_keeps_its_password(django_user_model):
    django_user_model.objects.create_superuser(
        username=DEMO_ADMIN_USERNAME, password="kept-Secret-99"
    )
    _seed()
    admin = django_user_model.objects.get(username=DEMO_ADMIN_USERNAME)
    assert admin.check_password("kept-Secret-99")


@pytest.mark.django_db
def test_if_empty_leaves_an_existing_tree_alone(small_city):
    before = list(Area.objects.values_list("code", "name"))
    output = _seed("--if-empty")
    assert f"already holds {len(before)} areas" in output
    assert list(Area.objects.values_list("code", "name")) == before
    assert not Building.objects.exists()


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
    from accounts.models import Department

    center = Department.objects.create(code="cc", name="指挥中心", area=small_city.district)
    Department.objects.create(code="ws", name="工作站", area=small_city.street, parent=center)
    output = _seed("--force")
    assert "replacing" in output
    assert not Department.objects.exists()
    assert not Area.objects.filter(code__startswith="110105").exists()
    assert Area.objects.filter(code=DISTRICT_CODE).exists()
    # Field staff of the old tree go with it; the admin stays.
    assert not django_user_model.objects.filter(username="someone-else").exists()
    assert django_user_model.objects.filter(username=DEMO_ADMIN_USERNAME).count() == 1
    assert (
        GridStaff.objects.filter(role=GridStaff.Role.WORKER).count() == Area.objects.grids().count()
    )


@pytest.mark.django_db
def test_seeding_is_fast_enough():
    import time

    started = time.perf_counter()
    _seed("--seed", "7")
    # A few seconds on a quiet machine; the bound only catches a pathological slowdown.
    assert time.perf_counter() - started < 30


@pytest.mark.django_db
def test_the_stored_demo_city_has_no_topology_problems():
    from geo.topology import check_topology

    _seed()
    # Not even a square centimetre of overlap, gap or spill at any level.
    assert check_topology(tolerance_m2=0.0001) == []
