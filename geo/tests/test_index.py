"""Point → grid lookup: the chain, the border rule, batches, coordinate systems, freshness.

The small city (geo.testing): district 110105 → street 110105001 → communities
110105001001 (lng 116.40–116.42) and 110105001002 (116.42–116.44), each cut into
four grids of 0.01° × 0.02°, numbered row by row from the south-west:

    lat 39.94 ┌──────┬──────┬──────┬──────┐
              │ …0103│ …0104│ …0203│ …0204│
    lat 39.92 ├──────┼──────┼──────┼──────┤
              │ …0101│ …0102│ …0201│ …0202│
    lat 39.90 └──────┴──────┴──────┴──────┘
           116.40  116.41  116.42  116.43  116.44
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import shapely
from django.db import connection

from core.errors import DomainError
from geo import crs as geo_crs
from geo import index as geo_index
from geo.index import OUTSIDE, GridIndex, Location, locate, locate_many, locate_many_indices
from geo.models import AreaLevel
from geo.testing import box, make_area, reshape_area
from geo.versioning import current_area_version

ROOT = Path(__file__).resolve().parents[2]

C1, C2 = "110105001001", "110105001002"


@pytest.fixture(autouse=True)
def fresh_index(settings):
    # Every test sees every change at once, and none inherits another's index
    # (a rolled-back database can repeat a version number).
    settings.CIVICGRID = {**settings.CIVICGRID, "GEO_INDEX_MAX_STALENESS": 0}
    geo_index.invalidate_local()
    yield
    geo_index.invalidate_local()


def bounds(city, code: str):
    """(min_lng, min_lat, max_lng, max_lat) of a grid exactly as stored."""
    return city.grid(code).shape.bounds


def code_at(lat, lng, crs="wgs84") -> str | None:
    found = locate(lat, lng, crs)
    return None if found.outside else found.grid.code


# --- the chain ------------------------------------------------------------------------------


def test_interior_points_get_their_grid_and_its_chain(small_city):
    for grid in small_city.grids:
        centre = grid.shape.centroid
        found = locate(centre.y, centre.x)
        assert not found.outside
        assert found.grid.code == grid.code
        assert found.grid.name == grid.name
        assert found.grid.name_en == grid.name_en
        assert found.grid.level == AreaLevel.GRID
        assert found.community.code == grid.code[:12]
        assert found.street.code == "110105001"
        assert found.street.name == "建外街道"
        assert found.district.code == "110105"
        assert found.district.name_en == "Chaoyang"
        assert found.city is None


def test_as_dict_carries_codes_and_names(small_city):
    body = locate(39.905, 116.405).as_dict()
    assert body["outside"] is False
    assert body["grid"] == {
        "code": f"{C1}01",
        "name": "社区1第1网格",
        "name_en": "Community 1 grid 1",
    }
    assert body["community"]["code"] == C1
    assert body["street"]["code"] == "110105001"
    assert body["district"]["code"] == "110105"


def test_numeric_strings_are_taken(small_city):
    assert code_at("39.935", "116.435") == f"{C2}04"


def test_the_same_grid_gives_the_same_location_object(small_city):
    # Answers are shared, immutable objects: nothing is built per call.
    assert locate(39.905, 116.405) is locate(39.915, 116.409)


# --- the border rule ---------------------------------------------------------------------------


def test_a_point_on_a_shared_edge_goes_to_the_lowest_code(small_city):
    b1 = bounds(small_city, f"{C1}01")
    b2 = bounds(small_city, f"{C1}02")
    # The vertical edge between …0101 and …0102 …
    assert b1[2] == b2[0]
    assert code_at(39.91, b1[2]) == f"{C1}01"
    # … the horizontal edge between …0101 and …0103 …
    assert code_at(b1[3], 116.405) == f"{C1}01"
    # … and between …0102 and …0104 (neither is …01).
    assert code_at(b2[3], 116.415) == f"{C1}02"
    # Just off the edge the point is plainly in one grid.
    assert code_at(39.91, b1[2] + 1e-9) == f"{C1}02"
    assert code_at(39.91, b1[2] - 1e-9) == f"{C1}01"


def test_a_point_on_a_corner_of_four_grids_goes_to_the_lowest_code(small_city):
    corner_lng, corner_lat = bounds(small_city, f"{C1}01")[2:]
    owners = [
        g.code
        for g in small_city.grids
        if g.shape.intersects(shapely.Point(corner_lng, corner_lat))
    ]
    assert sorted(owners) == [f"{C1}01", f"{C1}02", f"{C1}03", f"{C1}04"]
    assert code_at(corner_lat, corner_lng) == f"{C1}01"


def test_a_corner_between_communities_goes_to_the_lowest_code(small_city):
    lng, lat = bounds(small_city, f"{C2}01")[0], bounds(small_city, f"{C2}01")[3]
    owners = {g.code for g in small_city.grids if g.shape.intersects(shapely.Point(lng, lat))}
    assert {f"{C1}02", f"{C1}04", f"{C2}01", f"{C2}03"} <= owners
    assert code_at(lat, lng) == f"{C1}02"


def test_the_outer_boundary_is_inside(small_city):
    min_lng, min_lat = bounds(small_city, f"{C1}01")[:2]
    max_lng, max_lat = bounds(small_city, f"{C2}04")[2:]
    assert code_at(39.91, min_lng) == f"{C1}01"  # west edge
    assert code_at(min_lat, 116.435) == f"{C2}02"  # south edge
    assert code_at(39.93, max_lng) == f"{C2}04"  # east edge
    assert code_at(max_lat, 116.405) == f"{C1}03"  # north edge
    assert code_at(min_lat, min_lng) == f"{C1}01"  # south-west corner
    assert code_at(max_lat, max_lng) == f"{C2}04"  # north-east corner


def test_lowest_code_wins_not_first_created(small_city):
    # A third community east of the city whose grid 02 is created before 01.
    street = small_city.street
    community = make_area(
        code="110105001003",
        level=AreaLevel.COMMUNITY,
        name="社区3",
        parent=street,
        geom=box(116.44, 39.90, 116.46, 39.92),
    )
    make_area(
        code="11010500100302",
        level=AreaLevel.GRID,
        name="东",
        parent=community,
        geom=box(116.45, 39.90, 116.46, 39.92),
    )
    make_area(
        code="11010500100301",
        level=AreaLevel.GRID,
        name="西",
        parent=community,
        geom=box(116.44, 39.90, 116.45, 39.92),
    )
    assert code_at(39.91, 116.45) == "11010500100301"
    assert code_at(39.91, 116.455) == "11010500100302"


def test_outside_every_grid(small_city):
    for lat, lng in [(39.91, 116.3999), (39.8999, 116.41), (39.95, 116.43), (0.0, 0.0), (-90, 180)]:
        found = locate(lat, lng)
        assert found is OUTSIDE
        assert found.outside
        assert found.grid is None and found.district is None
    assert locate(0, 0).as_dict() == {
        "outside": True,
        "grid": None,
        "community": None,
        "street": None,
        "district": None,
        "city": None,
    }


def test_an_empty_map_answers_outside(db):
    assert locate(39.91, 116.41) is OUTSIDE
    assert locate_many([39.91], [116.41]) == [OUTSIDE]


def test_grids_without_a_boundary_and_other_levels_are_not_located_into(small_city):
    make_area(code=f"{C1}05", level=AreaLevel.GRID, name="无边界", parent=small_city.communities[0])
    # The district and street cover the whole city, but only grids answer.
    assert code_at(39.91, 116.405) == f"{C1}01"
    assert len(geo_index.get_index()) == 8


# --- batches ------------------------------------------------------------------------------------


def _test_points(city, n_random: int = 400):
    rng = np.random.default_rng(5)
    lng = list(rng.uniform(116.395, 116.445, n_random))
    lat = list(rng.uniform(39.895, 39.945, n_random))
    # Every vertex and every edge midpoint of every grid: the border cases.
    for grid in city.grids:
        coords = shapely.get_coordinates(grid.shape)
        mids = (coords[:-1] + coords[1:]) / 2
        for x, y in np.vstack([coords, mids]):
            lng.append(x)
            lat.append(y)
    return np.array(lat), np.array(lng)


def test_batch_matches_single_points(small_city):
    lat, lng = _test_points(small_city)
    batch = locate_many(lat, lng)
    single = [locate(a, b) for a, b in zip(lat.tolist(), lng.tolist(), strict=True)]
    assert batch == single
    assert any(r.outside for r in batch) and not all(r.outside for r in batch)

    positions = locate_many_indices(lng, lat)
    index = geo_index.get_index()
    assert [index.location(p) for p in positions.tolist()] == single
    assert (positions == -1).sum() == sum(r.outside for r in single)


def test_batch_positions_follow_the_border_rule_against_a_plain_scan(small_city):
    """Cross-check with the rule spelled out: every grid that intersects, lowest code."""
    lat, lng = _test_points(small_city, n_random=100)
    codes = sorted(g.code for g in small_city.grids)
    shapes = {g.code: g.shape for g in small_city.grids}
    want = []
    for a, b in zip(lat.tolist(), lng.tolist(), strict=True):
        point = shapely.Point(b, a)
        owners = [c for c in codes if shapes[c].intersects(point)]
        want.append(owners[0] if owners else None)
    got = [None if r.outside else r.grid.code for r in locate_many(lat, lng)]
    assert got == want


def test_an_empty_batch(small_city):
    assert locate_many([], []) == []
    assert locate_many_indices(np.array([]), np.array([])).shape == (0,)


# --- coordinate systems --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("crs", "forward"), [("gcj02", geo_crs.wgs84_to_gcj02), ("bd09", geo_crs.wgs84_to_bd09)]
)
def test_gcj02_and_bd09_input_lands_in_the_grid_of_the_wgs84_point(small_city, crs, forward):
    # Grid centres: hundreds of metres from any border, far beyond the conversion error.
    centres = [g.shape.centroid for g in small_city.grids]
    lat = np.array([c.y for c in centres])
    lng = np.array([c.x for c in centres])
    s_lng, s_lat = forward(lng, lat)
    # The offset is hundreds of metres: without conversion some points would move.
    assert np.abs(s_lng - lng).max() > 0.001
    for a, b, sa, sb in zip(lat, lng, s_lat, s_lng, strict=True):
        assert code_at(sa, sb, crs) == code_at(a, b)
    assert locate_many(s_lat, s_lng, crs) == locate_many(lat, lng)
    assert code_at(s_lat[0], s_lng[0], crs.upper()) == code_at(lat[0], lng[0])


# --- input checking ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lng", "fields"),
    [
        (91, 116.4, {"lat"}),
        (-90.5, 116.4, {"lat"}),
        (39.9, 180.01, {"lng"}),
        (39.9, -181, {"lng"}),
        (float("nan"), 116.4, {"lat"}),
        (39.9, float("inf"), {"lng"}),
        ("abc", 116.4, {"lat"}),
        (None, None, {"lat", "lng"}),
        ("", "1e999", {"lat", "lng"}),
        (10**400, 116.4, {"lat"}),
    ],
)
def test_bad_coordinates_are_field_errors(small_city, lat, lng, fields):
    with pytest.raises(DomainError) as caught:
        locate(lat, lng)
    assert set(caught.value.errors) == fields


def test_an_unknown_crs_is_a_field_error(small_city):
    for crs in ("epsg:3857", "", None, 4326):
        with pytest.raises(DomainError) as caught:
            locate(39.91, 116.41, crs)
        assert set(caught.value.errors) == {"crs"}
    with pytest.raises(DomainError) as caught:
        locate_many([39.91], [116.41], "mercator")
    assert set(caught.value.errors) == {"crs"}


def test_bad_points_in_a_batch_are_named_by_index(small_city):
    with pytest.raises(DomainError) as caught:
        locate_many([39.91, 95.0, 39.92, np.nan], [116.41, 116.41, 200.0, 116.41])
    assert set(caught.value.errors) == {"points[1].lat", "points[2].lng", "points[3].lat"}
    with pytest.raises(DomainError):
        locate_many([39.91, "x"], [116.41, 116.42])
    with pytest.raises(DomainError):
        locate_many([39.91, 39.92], [116.41])


# --- building from rows ------------------------------------------------------------------------


def test_from_rows_leaves_out_unreadable_boundaries_and_keeps_code_order(caplog):
    good = shapely.to_wkb(shapely.box(0, 0, 1, 1))
    rows = [
        (1, None, "110105", "区", "", AreaLevel.DISTRICT, None),
        (2, 1, "110105001", "街道", "", AreaLevel.STREET, None),
        (3, 2, "110105001001", "社区", "", AreaLevel.COMMUNITY, None),
        (4, 3, "11010500100101", "一", "One", AreaLevel.GRID, good),
        (5, 3, "11010500100102", "二", "", AreaLevel.GRID, b"not wkb"),
        (6, 3, "11010500100103", "三", "", AreaLevel.GRID, shapely.to_wkb(shapely.Point(0, 0))),
        (7, 3, "11010500100104", "四", "", AreaLevel.GRID, good),
    ]
    index = GridIndex.from_rows(rows, version=7)
    assert "2 grid(s) without a usable boundary" in caplog.text
    assert len(index) == 2 and index.version == 7
    # Both good grids cover the point; the lower code wins.
    assert index.location_xy(0.5, 0.5).grid.code == "11010500100101"
    assert index.location(1).grid.code == "11010500100104"
    assert index.location(1).community.code == "110105001001"
    assert index.location(-1) is OUTSIDE
    assert index.location_xy(5, 5) is OUTSIDE
    assert isinstance(index.location(0), Location)
    # PostgreSQL's driver hands boundaries over as memoryview.
    as_memoryview = [(*r[:6], None if r[6] is None else memoryview(r[6])) for r in rows]
    again = GridIndex.from_rows(as_memoryview, version=7)
    assert [again.location(p).grid.code for p in range(len(again))] == [
        "11010500100101",
        "11010500100104",
    ]


def test_from_rows_orders_grids_by_code_whatever_order_the_rows_come_in():
    rows = [(1, None, "110105", "区", "", AreaLevel.DISTRICT, None)]
    rows += [
        (
            10 + k,
            1,
            f"1101050010010{k}",
            str(k),
            "",
            AreaLevel.GRID,
            shapely.to_wkb(shapely.box(0, 0, 1, 1)),
        )
        for k in (3, 1, 4, 2)
    ]
    index = GridIndex.from_rows(rows, version=1)
    assert index.location_xy(0.5, 0.5).grid.code == "11010500100101"
    assert [index.location(p).grid.code[-1] for p in range(4)] == ["1", "2", "3", "4"]


# --- freshness in this process --------------------------------------------------------------------


def test_a_change_is_seen_at_the_next_lookup(small_city):
    assert code_at(39.935, 116.405) == f"{C1}03"
    # Grid …0103 shrinks to its western half; its eastern half is now outside.
    reshape_area(f"{C1}03", box(116.40, 39.92, 116.405, 39.94))
    assert code_at(39.935, 116.4075) is None
    assert code_at(39.935, 116.4025) == f"{C1}03"


def test_within_the_staleness_window_the_index_is_not_rechecked(small_city, settings):
    settings.CIVICGRID = {**settings.CIVICGRID, "GEO_INDEX_MAX_STALENESS": 3600}
    assert code_at(39.935, 116.4075) == f"{C1}03"
    built = geo_index.get_index()
    reshape_area(f"{C1}03", box(116.40, 39.92, 116.405, 39.94))
    assert geo_index.get_index() is built
    assert code_at(39.935, 116.4075) == f"{C1}03"
    geo_index.invalidate_local()
    assert code_at(39.935, 116.4075) is None


def test_readers_keep_the_old_index_while_another_thread_refreshes(small_city):
    old = geo_index.get_index()
    reshape_area(f"{C1}03", box(116.40, 39.92, 116.405, 39.94))
    # Hold the rebuild lock as a rebuilding thread would: lookups do not wait.
    with geo_index._lock:
        answers = []

        def read():
            try:
                answers.append(geo_index.get_index())
            finally:
                # The thread's own connection (it checks the version) must not
                # outlive the test: it would hold the test database open.
                connection.close()

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=10)
        assert not reader.is_alive()
        assert answers == [old]
    assert geo_index.get_index() is not old
    assert geo_index.get_index().version == current_area_version()


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_lookups_build_one_index(small_city):
    built = []
    barrier = threading.Barrier(6)

    def lookup():
        barrier.wait()
        built.append(geo_index.get_index())
        connection.close()

    threads = [threading.Thread(target=lookup) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(built) == 6
    assert len({id(i) for i in built}) == 1


# --- freshness across processes -------------------------------------------------------------------

CHILD = r"""
import json, sys
import django
django.setup()
from geo.index import get_index, locate
from geo.models import Area, AreaLevel
from geo.testing import box, make_area, reshape_area

def handle(cmd):
    op = cmd["op"]
    if op == "locate":
        found = locate(cmd["lat"], cmd["lng"])
        return {
            "grid": None if found.outside else found.grid.code,
            "community": None if found.outside else found.community.code,
            "version": get_index().version,
        }
    if op == "reshape":
        reshape_area(cmd["code"], box(*cmd["box"]))
        return {"ok": True}
    if op == "add":
        parent = Area.objects.get(code=cmd["parent"])
        make_area(code=cmd["code"], level=AreaLevel.GRID, name=cmd["code"], parent=parent,
                  geom=box(*cmd["box"]))
        return {"ok": True}
    raise ValueError(op)

for line in sys.stdin:
    print(json.dumps(handle(json.loads(line))), flush=True)
"""


def _database_env() -> dict[str, str]:
    """Point a second process at this test's database (the test database, not the dev one)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return {"SQLITE_PATH": str(db["NAME"])}
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return {"DATABASE_URL": f"postgres://{auth}@{host}:{port}/{db['NAME']}"}


class OtherProcess:
    """A second CivicGrid process with its own index, driven one JSON command at a time."""

    def __init__(self):
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SQLITE_PATH"}}
        env.update(
            DJANGO_SETTINGS_MODULE="civicgrid.settings",
            GEO_INDEX_MAX_STALENESS="0",
            **_database_env(),
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            raise AssertionError(f"the second process gave no answer: {self.proc.stderr.read()}")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def other_process():
    process = OtherProcess()
    yield process
    process.close()


@pytest.mark.django_db(transaction=True)
def test_a_change_made_by_another_process_reaches_this_index(small_city, other_process):
    assert code_at(39.935, 116.4075) == f"{C1}03"
    assert code_at(39.95, 116.405) is None
    built = geo_index.get_index()

    other_process.ask(op="reshape", code=f"{C1}03", box=[116.40, 39.92, 116.405, 39.94])
    assert code_at(39.935, 116.4075) is None
    assert code_at(39.935, 116.4025) == f"{C1}03"

    other_process.ask(op="add", code=f"{C1}05", parent=C1, box=[116.40, 39.94, 116.41, 39.96])
    found = locate(39.95, 116.405)
    assert found.grid.code == f"{C1}05"
    assert found.community.code == C1 and found.district.code == "110105"
    assert geo_index.get_index() is not built
    assert geo_index.get_index().version == current_area_version()


@pytest.mark.django_db(transaction=True)
def test_a_change_made_here_reaches_another_processs_index(small_city, other_process):
    before = other_process.ask(op="locate", lat=39.935, lng=116.4075)
    assert before["grid"] == f"{C1}03"
    assert other_process.ask(op="locate", lat=39.95, lng=116.405)["grid"] is None

    reshape_area(f"{C1}03", box(116.40, 39.92, 116.405, 39.94))
    after = other_process.ask(op="locate", lat=39.935, lng=116.4075)
    assert after["grid"] is None
    assert after["version"] == current_area_version() != before["version"]

    make_area(
        code=f"{C1}05",
        level=AreaLevel.GRID,
        name="新网格",
        parent=small_city.communities[0],
        geom=box(116.40, 39.94, 116.41, 39.96),
    )
    added = other_process.ask(op="locate", lat=39.95, lng=116.405)
    assert added == {"grid": f"{C1}05", "community": C1, "version": current_area_version()}
