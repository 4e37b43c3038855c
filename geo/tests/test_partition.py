"""Partitioning communities into grids: the pure cut, the plan, accepting it, the command."""

from __future__ import annotations

import io
import json
import math
from functools import cache
from itertools import combinations

import numpy as np
import pytest
import shapely
from django.core.management import CommandError, call_command
from django.utils import translation

from accounts.models import User
from core.errors import DomainError
from geo.geometry import GeometryError, geodesic_area_m2, normalize
from geo.models import Area, AreaLevel, Building, GridStaff
from geo.partition import (
    BALANCE_FACTOR,
    COMPACTNESS_FLOOR,
    assign_points,
    grid_count,
    households_spread,
    left_counts,
    part_sums,
    partition_community,
    partition_polygon,
    polsby_popper,
    reading_order,
)
from geo.services import grids_partition_accept
from geo.testing import make_area
from geo.topology import check_topology
from geo.versioning import current_area_version

LNG, LAT = 104.06, 30.66  # about 1 km is 0.0104° of longitude and 0.009° of latitude here
KM_LNG, KM_LAT = 1 / (111.32 * math.cos(math.radians(LAT))), 1 / 111.32


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def km_polygon(shell, holes=()):
    """A polygon from kilometre offsets around (LNG, LAT)."""

    def to_deg(ring):
        return [(LNG + x * KM_LNG, LAT + y * KM_LAT) for x, y in ring]

    return shapely.Polygon(to_deg(shell), [to_deg(h) for h in holes])


CONVEX = km_polygon([(0, 0), (1.4, 0.1), (1.6, 0.9), (0.9, 1.3), (0.1, 1.0)])
L_SHAPE = km_polygon([(0, 0), (1.5, 0), (1.5, 0.5), (0.5, 0.5), (0.5, 1.5), (0, 1.5)])
WITH_HOLE = km_polygon(
    [(0, 0), (1.2, 0), (1.2, 1.2), (0, 1.2)],
    holes=[[(0.4, 0.4), (0.75, 0.4), (0.75, 0.8), (0.4, 0.8)]],
)


def irregular() -> shapely.Polygon:
    theta = np.linspace(0, 2 * np.pi, 160, endpoint=False)
    radius = 0.6 * (1 + 0.22 * np.sin(3 * theta) + 0.08 * np.cos(7 * theta + 1))
    return km_polygon(np.column_stack([radius * np.cos(theta), radius * np.sin(theta)]))


IRREGULAR = irregular()


def buildings_in(poly, n, seed, *, clusters=0):
    """``n`` building points inside ``poly`` with 5–80 households each (deterministic)."""
    rng = np.random.default_rng(seed)
    min_x, min_y, max_x, max_y = poly.bounds
    centres = rng.uniform((min_x, min_y), (max_x, max_y), (clusters, 2)) if clusters else None
    points = []
    while len(points) < n:
        if clusters:
            centre = centres[rng.integers(clusters)]
            p = centre + rng.normal(0, (max_x - min_x) * 0.08, 2)
        else:
            p = rng.uniform((min_x, min_y), (max_x, max_y))
        if poly.contains(shapely.Point(p)):
            points.append(p)
    return np.array(points), rng.integers(5, 81, n).astype(float)


CASES = {
    "convex": (CONVEX, *buildings_in(CONVEX, 100, 1)),
    "L-shaped": (L_SHAPE, *buildings_in(L_SHAPE, 100, 2)),
    "with a hole": (WITH_HOLE, *buildings_in(WITH_HOLE, 100, 3)),
    "irregular, clustered": (IRREGULAR, *buildings_in(IRREGULAR, 120, 4, clusters=4)),
}


@cache
def cut(name: str, n: int = 10, seed: int = 0):
    poly, points, households = CASES[name]
    return partition_polygon(poly, points, households, n, seed=seed)


def assert_exact_partition(poly, parts, n):
    base = normalize(poly)
    assert len(parts) == n
    for part in parts:
        assert part.geom_type == "Polygon" and part.is_valid and not part.is_empty
        # Already on the storage lattice: normalizing changes nothing.
        assert normalize(part).equals_exact(part, 0)
    union = shapely.union_all(parts)
    difference = shapely.symmetric_difference(union, base)
    assert difference.area / base.area < 1e-6
    assert geodesic_area_m2(difference) < 0.05  # square centimetres, not metres
    assert abs(sum(p.area for p in parts) - base.area) / base.area < 1e-7
    for a, b in combinations(parts, 2):
        assert shapely.intersection(a, b).area / base.area < 1e-12
    # Neighbours share their edges vertex for vertex.
    assert shapely.coverage_is_valid(parts)


# --- the pure cut ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_every_shape_is_covered_exactly_without_overlaps(name):
    assert_exact_partition(CASES[name][0], cut(name), 10)


@pytest.mark.parametrize("name", list(CASES))
def test_households_are_balanced_within_the_stated_bound(name):
    _poly, points, households = CASES[name]
    sums = part_sums(assign_points(cut(name), points), households, 10)
    target = households.sum() / 10
    assert sums.sum() == households.sum()  # every building is in a grid
    assert np.abs(sums - target).max() <= BALANCE_FACTOR * households.max()


@pytest.mark.parametrize("name", list(CASES))
def test_grids_are_compact(name):
    assert min(polsby_popper(p) for p in cut(name)) >= COMPACTNESS_FLOOR


def test_the_balance_factor_covers_every_chain_of_cuts():
    """Each cut errs by at most half the largest building; a grid's error sums them
    weighted by 1/size of the pieces on its way down (module docstring)."""

    @cache
    def worst(size: int) -> float:
        if size == 1:
            return 1.0
        return 1 / size + max(worst(k) for left in left_counts(size) for k in (left, size - left))

    chains = [
        max(worst(k) for left in left_counts(n) for k in (left, n - left)) for n in range(2, 3000)
    ]
    assert max(chains) / 2 <= BALANCE_FACTOR
    for n in range(2, 200):
        assert all(n / 3 - 1 < k < 2 * n / 3 + 1 and 0 < k < n for k in left_counts(n))


def test_the_same_seed_gives_the_same_grids_and_another_seed_others():
    poly, points, households = CASES["irregular, clustered"]
    again = partition_polygon(poly, points, households, 10, seed=0)
    assert all(
        a.equals_exact(b, 0) for a, b in zip(cut("irregular, clustered"), again, strict=True)
    )
    other = cut("irregular, clustered", seed=5)
    assert not all(a.equals_exact(b, 0) for a, b in zip(again, other, strict=True))
    assert_exact_partition(poly, other, 10)


def test_300_buildings_into_30_grids():
    points, households = buildings_in(IRREGULAR, 300, 7, clusters=6)
    parts = partition_polygon(IRREGULAR, points, households, 30)
    assert_exact_partition(IRREGULAR, parts, 30)
    sums = part_sums(assign_points(parts, points), households, 30)
    assert np.abs(sums - households.sum() / 30).max() <= BALANCE_FACTOR * households.max()
    assert min(polsby_popper(p) for p in parts) >= COMPACTNESS_FLOOR


def test_without_buildings_the_area_is_shared_evenly():
    parts = partition_polygon(WITH_HOLE, np.zeros((0, 2)), np.zeros(0), 7)
    assert_exact_partition(WITH_HOLE, parts, 7)
    areas = np.array([geodesic_area_m2(p) for p in parts])
    assert areas.max() / areas.min() < 1.01


def test_heavy_buildings_still_respect_the_bound():
    # Few, large buildings: the bound is in units of the largest one.
    points, _ = buildings_in(CONVEX, 25, 11)
    households = np.array([400.0, 5, 5, 300, *([40.0] * 21)])
    parts = partition_polygon(CONVEX, points, households, 6)
    assert_exact_partition(CONVEX, parts, 6)
    sums = part_sums(assign_points(parts, points), households, 6)
    assert np.abs(sums - households.sum() / 6).max() <= BALANCE_FACTOR * 400


def test_more_grids_than_buildings_and_one_grid():
    points, households = buildings_in(CONVEX, 3, 12)
    assert_exact_partition(CONVEX, partition_polygon(CONVEX, points, households, 8), 8)
    (whole,) = partition_polygon(WITH_HOLE, points, households, 1)
    assert whole.equals_exact(normalize(WITH_HOLE), 0)


def test_a_community_in_two_parts_gets_grids_in_each():
    two = shapely.MultiPolygon([CONVEX, shapely.affinity.translate(CONVEX, xoff=0.03)])
    points, households = buildings_in(two, 80, 13)
    parts = partition_polygon(two, points, households, 5)
    assert_exact_partition(two, parts, 5)
    with pytest.raises(ValueError, match="2 separate parts"):
        partition_polygon(two, points, households, 1)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((CONVEX, np.zeros((0, 2)), np.zeros(0), 0), ValueError, "at least 1"),
        ((CONVEX, np.zeros((0, 2)), np.zeros(0), 2.5), ValueError, "integer"),
        ((CONVEX, np.zeros((2, 2)), np.zeros(3), 2), ValueError, "2 points but 3 weights"),
        ((CONVEX, np.zeros((2, 3)), np.zeros(2), 2), ValueError, "n × 2"),
        ((CONVEX, np.ones((1, 2)) * LNG, -np.ones(1), 2), ValueError, "negative"),
        ((CONVEX, np.array([[np.nan, 0]]), np.ones(1), 2), ValueError, "finite"),
        ((CONVEX.boundary, np.zeros((0, 2)), np.zeros(0), 2), GeometryError, "not a Polygon"),
        (
            (shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)]), np.zeros((0, 2)), np.zeros(0), 2),
            GeometryError,
            "Self-intersection",
        ),
    ],
)
def test_bad_input_is_refused_with_the_reason(args, error, match):
    with pytest.raises(error, match=match):
        partition_polygon(*args)


def test_points_are_assigned_by_the_stated_border_rule():
    west, east = shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)
    owner = assign_points([west, east], np.array([[0.5, 0.5], [1.0, 0.5], [1.5, 0.5], [3, 0.5]]))
    # On the shared border: the earlier part; outside everything: the nearest.
    assert owner.tolist() == [0, 0, 1, 1]
    assert assign_points([], np.array([[0.5, 0.5]])).tolist() == [-1]
    spread = households_spread(
        [west, east], np.array([[0.5, 0.5], [1.5, 0.5], [1.6, 0.5]]), [3, 4, 5]
    )
    assert spread == {"grids": 2, "min": 3, "median": 6, "max": 9, "total": 12}


def test_reading_order_runs_in_rows_from_the_north_west():
    cells = {
        "sw": shapely.box(0, 0, 1, 1),
        "se": shapely.box(1, 0, 2, 1),
        "nw": shapely.box(0, 1, 1, 2),
        "ne": shapely.box(1, 1, 2, 2),
        "tall": shapely.box(2, 0, 3, 2),
    }
    names = list(cells)
    assert [names[i] for i in reading_order(list(cells.values()))] == [
        "nw",
        "ne",
        "tall",
        "sw",
        "se",
    ]
    # partition_polygon returns its grids in that order.
    parts = cut("convex")
    assert reading_order(parts) == list(range(len(parts)))


# --- the community in the database -----------------------------------------------------------


@pytest.fixture
def community(small_city):
    """Community 110105001001 (2 km × 4.4 km, four grids) with 60 buildings."""
    area = small_city.communities[0]
    points, households = buildings_in(area.shape, 60, 21)
    Building.objects.bulk_create(
        Building(
            community=area,
            name=f"{i + 1}号楼",
            lng=float(x),
            lat=float(y),
            households=int(h),
            population=int(h) * 3,
        )
        for i, ((x, y), h) in enumerate(zip(points, households, strict=True))
    )
    return area


def grids_of(community):
    return list(Area.objects.filter(parent=community, level=AreaLevel.GRID).order_by("code"))


def test_a_plan_names_codes_and_counts_the_grids(community):
    plan = partition_community(community=community, n_grids=6)
    assert plan.codes == [f"{community.code}{i:02d}" for i in range(1, 7)]
    assert all(len(code) == 14 for code in plan.codes)
    total = sum(Building.objects.filter(community=community).values_list("households", flat=True))
    assert sum(plan.households) == total == plan.spread["total"]
    assert sum(plan.population) == 3 * total
    assert plan.spread["min"] == min(plan.households) and plan.spread["max"] == max(plan.households)
    assert_exact_partition(community.shape, plan.parts, 6)
    collection = plan.feature_collection()
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == 6
    first = collection["features"][0]["properties"]
    assert first["code"] == plan.codes[0] and first["parent_code"] == community.code
    assert first["households"] == plan.households[0] and first["area_m2"] > 0
    # A preview writes nothing.
    assert [g.code for g in grids_of(community)] == [f"{community.code}0{i}" for i in range(1, 5)]


def test_households_per_grid_rounds_half_up(community):
    assert grid_count(total_households=25, n_grids=None, households_per_grid=10) == 3
    assert grid_count(total_households=24, n_grids=None, households_per_grid=10) == 2
    assert grid_count(total_households=0, n_grids=None, households_per_grid=10) == 1
    total = sum(Building.objects.filter(community=community).values_list("households", flat=True))
    per = 400
    plan = partition_community(community=community, households_per_grid=per)
    assert len(plan) == max(1, math.floor(total / per + 0.5))


def test_accepting_a_plan_replaces_the_grids(community, small_city):
    old = {g.code: g.pk for g in grids_of(community)}
    version = current_area_version()
    plan = partition_community(community=community, n_grids=6)
    grids = grids_partition_accept(community=community, plan=plan)

    assert [g.code for g in grids] == plan.codes
    # Reused codes keep their rows (and so everything that refers to them).
    assert {g.code: g.pk for g in grids if g.code in old} == old
    assert current_area_version() > version
    for grid, part in zip(grids, plan.parts, strict=True):
        assert grid.level == AreaLevel.GRID and grid.parent_id == community.pk
        assert grid.shape.equals_exact(part, 0)
        assert grid.area_m2 == pytest.approx(geodesic_area_m2(part))
        mine = Building.objects.filter(grid=grid)
        assert grid.households == sum(b.households for b in mine)
        assert grid.population == sum(b.population for b in mine)
        for b in mine:
            assert grid.shape.intersects(shapely.Point(b.lng, b.lat))
    assert not Building.objects.filter(community=community, grid=None).exists()
    assert check_topology(root=community) == []
    # The other community is untouched.
    assert len(grids_of(small_city.communities[1])) == 4


def test_accepting_the_same_plan_again_changes_nothing(community):
    first = grids_partition_accept(
        community=community, plan=partition_community(community=community, n_grids=7, seed=3)
    )
    again = grids_partition_accept(
        community=community, plan=partition_community(community=community, n_grids=7, seed=3)
    )
    assert [(g.code, g.pk, bytes(g.geometry), g.households) for g in first] == [
        (g.code, g.pk, bytes(g.geometry), g.households) for g in again
    ]


def test_fewer_grids_remove_the_rest_unless_they_have_staff(community):
    plan = partition_community(community=community, n_grids=3)
    grid4 = Area.objects.get(code=f"{community.code}04")
    worker = User.objects.create_user(username="li", display_name="李网格")
    GridStaff.objects.create(area=grid4, user=worker, role=GridStaff.Role.WORKER)
    before = [(g.code, bytes(g.geometry)) for g in grids_of(community)]
    with pytest.raises(DomainError) as refused:
        grids_partition_accept(community=community, plan=plan)
    assert f"{community.code}04" in refused.value.message and "李网格" in refused.value.message
    assert "grids" in refused.value.errors
    assert [(g.code, bytes(g.geometry)) for g in grids_of(community)] == before

    GridStaff.objects.all().delete()
    grids = grids_partition_accept(community=community, plan=plan)
    assert [g.code for g in grids] == [f"{community.code}0{i}" for i in range(1, 4)]
    assert not Area.objects.filter(code=f"{community.code}04").exists()


def test_a_stale_or_foreign_plan_is_refused(community, small_city):
    plan = partition_community(community=community, n_grids=5)
    with pytest.raises(DomainError, match="made for"):
        grids_partition_accept(community=small_city.communities[1], plan=plan)
    with pytest.raises(DomainError, match="not a community"):
        grids_partition_accept(community=small_city.street, plan=plan)
    moved = shapely.affinity.translate(community.shape, xoff=0.0001)
    Area.objects.filter(pk=community.pk).update(geometry=moved.wkb)
    community.refresh_from_db()
    with pytest.raises(DomainError, match="changed after this plan"):
        grids_partition_accept(community=community, plan=plan)


@pytest.mark.parametrize(
    ("kwargs", "field", "match"),
    [
        ({}, "non_field_errors", "Give the number of grids or the households per grid"),
        ({"n_grids": 3, "households_per_grid": 30}, "non_field_errors", "not both"),
        ({"n_grids": 0}, "grids", "at least 1"),
        ({"households_per_grid": -5}, "households_per_grid", "at least 1"),
        ({"n_grids": 100}, "grids", "at most 99"),
        ({"households_per_grid": 1}, "households_per_grid", "at most 99"),
    ],
)
def test_bad_plan_requests_name_the_field(community, kwargs, field, match):
    with pytest.raises(DomainError, match=match) as refused:
        partition_community(community=community, **kwargs)
    assert field in refused.value.errors


def test_only_communities_with_a_boundary_are_cut(small_city):
    with pytest.raises(DomainError, match="not a community"):
        partition_community(community=small_city.street, n_grids=2)
    bare = make_area(
        code="110105001003", level=AreaLevel.COMMUNITY, name="新社区", parent=small_city.street
    )
    with pytest.raises(DomainError, match="no boundary"):
        partition_community(community=bare, n_grids=2)


# --- the command -----------------------------------------------------------------------------


def run(*args) -> str:
    out = io.StringIO()
    call_command("partition_grids", *args, stdout=out)
    return out.getvalue()


def test_command_dry_run_prints_the_spread_and_writes_only_the_preview(community, tmp_path):
    preview = tmp_path / "plan.geojson"
    before = [(g.code, bytes(g.geometry)) for g in grids_of(community)]
    out = run(community.code, "--grids", "5", "--dry-run", "--preview", str(preview))
    plan = partition_community(community=community, n_grids=5)
    spread = plan.spread
    assert f"min {spread['min']} / median {spread['median']} / max {spread['max']}" in out
    assert "5 grids, 60 buildings" in out and "Dry run" in out and str(preview) in out
    collection = json.loads(preview.read_text(encoding="utf-8"))
    assert [f["properties"]["code"] for f in collection["features"]] == plan.codes
    assert [(g.code, bytes(g.geometry)) for g in grids_of(community)] == before


def test_command_writes_the_grids_and_a_default_preview(community, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    out = run(community.code, "--households-per-grid", "400", "--seed", "2")
    default = tmp_path / f"partition-{community.code}.geojson"
    assert default.exists() and str(default) in out
    n = len(json.loads(default.read_text(encoding="utf-8"))["features"])
    assert len(grids_of(community)) == n
    assert f"now has {n} grids" in out
    again = run(community.code, "--households-per-grid", "400", "--seed", "2")
    assert f"0 created, {n} updated, 0 removed" in again


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("999999999999", "--grids", "3"), "No area has the code 999999999999"),
        (("110105001", "--grids", "3"), "is a street, not a community"),
        (("110105001001",), "Give the number of grids or the households per grid"),
        (("110105001001", "--grids", "3", "--households-per-grid", "40"), "not both"),
        (("110105001001", "--grids", "0"), "number of grids must be a whole number of at least 1"),
        (("110105001001", "--households-per-grid", "0"), "households per grid must be"),
    ],
)
def test_command_errors_are_clear(community, args, match):
    with pytest.raises(CommandError, match=match):
        run(*args)


def test_command_refuses_a_community_without_boundary(small_city):
    make_area(
        code="110105001003", level=AreaLevel.COMMUNITY, name="新社区", parent=small_city.street
    )
    with pytest.raises(CommandError, match="no boundary"):
        run("110105001003", "--grids", "2")
