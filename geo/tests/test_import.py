"""Importing areas: the tree, re-import in place, every refusal, repair, CRS, CSV, the command."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import shapely
from django.core.management import CommandError, call_command
from django.utils import translation

from geo import crs
from geo.importer import (
    MAX_PROBLEMS,
    AreaImportError,
    areas_import,
    import_feature_collection,
    read_csv,
    read_file,
    read_geojson,
)
from geo.models import Area, AreaLevel
from geo.versioning import current_area_version

DATA = Path(__file__).parent / "data"
SMALL_CITY = DATA / "small_city.geojson"
DIVISIONS = DATA / "division_list.csv"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    """Messages are checked in English, whatever LANGUAGE_CODE is."""
    with translation.override("en"):
        yield


def small_city() -> dict:
    return json.loads(SMALL_CITY.read_text(encoding="utf-8"))


def feature(fc: dict, code: str) -> dict:
    return next(f for f in fc["features"] if f["properties"]["code"] == code)


def index_of(fc: dict, code: str) -> int:
    return next(i for i, f in enumerate(fc["features"]) if f["properties"]["code"] == code)


def run(fc: dict, **kwargs):
    return import_feature_collection(fc, source_name="city.geojson", **kwargs)


def snapshot() -> list[tuple]:
    rows = Area.objects.order_by("code").values_list(
        "id", "code", "level", "parent_id", "name", "name_en", "households", "population",
        "geometry", "area_m2", "updated_at",
    )  # fmt: skip
    return [(*r[:8], bytes(r[8]) if r[8] is not None else None, *r[9:]) for r in rows]


def map_coords(geometry: dict, fn) -> dict:
    """A GeoJSON geometry with every [lng, lat] passed through fn."""
    geom = shapely.from_geojson(json.dumps(geometry))
    moved = shapely.transform(geom, lambda c: np.column_stack(fn(c[:, 0], c[:, 1])))
    return json.loads(shapely.to_geojson(moved))


# --- a good file ----------------------------------------------------------------------------


def test_import_builds_the_tree():
    version = current_area_version()
    report = run(small_city())
    assert report.created == {"district": 1, "street": 1, "community": 2, "grid": 8}
    assert report.total_updated == report.total_unchanged == 0
    assert report.written and not report.dry_run
    grid = Area.objects.select_related("parent__parent").get(code="11010500100203")
    assert grid.level == AreaLevel.GRID
    assert grid.parent.code == "110105001002"
    assert grid.parent.parent.code == "110105001"
    assert (grid.households, grid.population) == (33, 99)
    assert grid.bbox == pytest.approx([116.42, 39.92, 116.43, 39.94])
    # 0.01° × 0.02° at 39.9° N: about 854 m × 2,220 m.
    assert grid.area_m2 == pytest.approx(1.897e6, rel=0.01)
    assert grid.shape.equals(shapely.box(116.42, 39.92, 116.43, 39.94))
    assert Area.objects.get(code="110105").parent is None
    assert current_area_version() == version + 1
    assert "grid: 8 created, 0 updated, 0 unchanged" in str(report)


def test_parents_may_come_after_their_children():
    fc = small_city()
    fc["features"].reverse()
    report = run(fc)
    assert report.total_created == 12
    assert Area.objects.get(code="11010500100101").parent.code == "110105001001"


def test_reimporting_the_same_file_changes_nothing():
    run(small_city())
    before = snapshot()
    version = current_area_version()
    report = run(small_city())
    assert report.unchanged == {"district": 1, "street": 1, "community": 2, "grid": 8}
    assert report.total_created == report.total_updated == 0
    assert not report.written
    assert snapshot() == before
    assert current_area_version() == version


def test_reimport_updates_in_place_by_code():
    run(small_city())
    ids = dict(Area.objects.values_list("code", "id"))
    fc = small_city()
    grid = feature(fc, "11010500100101")
    grid["properties"].update(name="改名网格", households=50, population=140)
    # Move the inner corner of grids 01 and 02, keeping the tiling exact.
    grid["geometry"]["coordinates"][0][2] = [116.41, 39.925]
    neighbour = feature(fc, "11010500100103")
    neighbour["geometry"] = {
        "type": "Polygon",
        "coordinates": [
            [[116.4, 39.92], [116.41, 39.925], [116.41, 39.94], [116.4, 39.94], [116.4, 39.92]]
        ],
    }
    version = current_area_version()
    report = run(fc)
    assert report.updated == {"grid": 2}
    assert report.total_unchanged == 10
    assert dict(Area.objects.values_list("code", "id")) == ids
    area = Area.objects.get(code="11010500100101")
    assert (area.name, area.households, area.population) == ("改名网格", 50, 140)
    assert area.max_lat == pytest.approx(39.925)
    assert current_area_version() == version + 1


def test_import_over_areas_made_elsewhere_updates_them_in_place(small_city):
    ids = dict(Area.objects.values_list("code", "id"))
    report = run(json.loads(SMALL_CITY.read_text(encoding="utf-8")))
    assert report.total_created == 0
    assert report.total_updated + report.total_unchanged == 12
    assert dict(Area.objects.values_list("code", "id")) == ids
    assert run(json.loads(SMALL_CITY.read_text(encoding="utf-8"))).total_unchanged == 12


def test_absent_optional_values_keep_what_is_stored():
    run(small_city())
    fc = small_city()
    for f in fc["features"]:
        for key in ("name_en", "households", "population"):
            f["properties"].pop(key, None)
        f["geometry"] = None
    report = run(fc)
    assert report.total_unchanged == 12
    grid = Area.objects.get(code="11010500100102")
    assert (grid.name_en, grid.households, grid.population) == ("Community 1 grid 2", 32, 96)
    assert grid.shape is not None


def test_dry_run_reports_without_writing():
    version = current_area_version()
    report = run(small_city(), dry_run=True)
    assert report.dry_run and not report.written
    assert report.created["grid"] == 8
    assert Area.objects.count() == 0
    assert current_area_version() == version
    assert "nothing was written" in str(report)


def test_a_file_of_many_grids_needs_few_queries(django_assert_max_num_queries):
    """No query per row: reads and writes go in batches, so the count stays flat."""
    features = [
        {
            "type": "Feature",
            "properties": {"code": "110105", "name": "区", "level": "district"},
            "geometry": None,
        },
        {
            "type": "Feature",
            "properties": {"code": "110105001", "name": "街道", "level": "street",
                           "parent_code": "110105"},
            "geometry": None,
        },
    ]  # fmt: skip
    for c in range(1, 11):
        community = f"110105001{c:03d}"
        x0 = 116.4 + c * 0.01
        features.append(
            {
                "type": "Feature",
                "properties": {"code": community, "name": f"社区{c}", "level": "community",
                               "parent_code": "110105001"},
                "geometry": json.loads(shapely.to_geojson(shapely.box(x0, 39.9, x0 + 0.01, 39.91))),
            }
        )  # fmt: skip
        for i in range(60):
            gx, gy = x0 + (i % 10) * 0.001, 39.9 + (i // 10) * 0.001
            features.append(
                {
                    "type": "Feature",
                    "properties": {"code": f"{community}{i + 1:02d}", "name": f"网格{i + 1}",
                                   "level": "grid", "parent_code": community},
                    "geometry": json.loads(
                        shapely.to_geojson(shapely.box(gx, gy, gx + 0.001, gy + 0.001))
                    ),
                }
            )  # fmt: skip
    fc = {"type": "FeatureCollection", "features": features}
    with django_assert_max_num_queries(25):
        report = run(fc)
    assert report.created["grid"] == 600
    with django_assert_max_num_queries(10):
        assert run(fc).total_unchanged == 612


# --- refusals: each names where and why, and nothing is written --------------------------------


def _bow_tie(fc, code):
    """Replace a grid's square by a self-intersecting figure-eight inside it."""
    f = feature(fc, code)
    (x0, y0), _b, (x1, y1), _d, _e = f["geometry"]["coordinates"][0]
    f["geometry"]["coordinates"] = [[[x0, y0], [x1, y1], [x1, y0], [x0, y1], [x0, y0]]]


def _point(fc, code):
    feature(fc, code)["geometry"] = {"type": "Point", "coordinates": [116.41, 39.91]}


def _unknown_parent(fc, code):
    feature(fc, code)["properties"]["parent_code"] = "110105001009"


def _duplicate(fc, code):
    fc["features"].append(copy.deepcopy(feature(fc, code)))


def _not_under_parent(fc, code):
    feature(fc, code)["properties"]["parent_code"] = "110105001002"


def _wrong_length(fc, code):
    feature(fc, code)["properties"]["code"] = code + "9"


def _outside_parent(fc, code):
    f = feature(fc, code)
    f["geometry"] = map_coords(f["geometry"], lambda x, y: (x + 0.1, y))


def _unknown_level(fc, code):
    feature(fc, code)["properties"]["level"] = "village"


def _out_of_range(fc, code):
    f = feature(fc, code)
    f["geometry"] = map_coords(f["geometry"], lambda x, y: (y, x))  # latitude first


def _missing_name(fc, code):
    del feature(fc, code)["properties"]["name"]


def _bad_households(fc, code):
    feature(fc, code)["properties"]["households"] = "many"


REFUSALS = {
    "self-intersecting": (_bow_tie, r"Self-intersection.*--repair"),
    "non-polygonal": (_point, "is a Point, not a Polygon or MultiPolygon"),
    "unknown parent": (_unknown_parent, "unknown parent 110105001009"),
    "duplicate code": (_duplicate, r"duplicate code 11010500100102: already used by feature 4"),
    "code not under parent": (_not_under_parent, "is not under its parent's code 110105001002"),
    "wrong code length": (_wrong_length, "a grid code has 14 digits"),
    "outside parent": (_outside_parent, r"m² \(100.0% of its area\) outside its parent"),
    "unknown level": (_unknown_level, "unknown level 'village'"),
    "outside the CRS range": (_out_of_range, "outside the longitude/latitude range"),
    "missing property": (_missing_name, "missing required properties: name"),
    "bad count": (_bad_households, "households is not a whole number"),
}


@pytest.mark.parametrize("kind", REFUSALS)
def test_a_bad_feature_refuses_the_whole_file(kind):
    spoil, pattern = REFUSALS[kind]
    run(small_city())
    before, version = snapshot(), current_area_version()
    fc = small_city()
    for f in fc["features"]:  # a clean file with these names would update every area
        f["properties"]["name"] += "·新"
    code = "11010500100102"
    position = index_of(fc, code)
    spoil(fc, code)
    with pytest.raises(AreaImportError) as caught:
        run(fc)
    error = caught.value
    text = "\n".join(error.messages)
    where = len(fc["features"]) - 1 if kind == "duplicate code" else position
    assert f"feature {where} " in text
    assert re.search(pattern, text), text
    assert error.total == 1, text
    assert error.errors == {"file": error.messages}
    assert snapshot() == before
    assert current_area_version() == version


def test_the_same_refusals_on_an_empty_database():
    fc = small_city()
    _bow_tie(fc, "11010500100101")
    _unknown_level(fc, "11010500100204")
    with pytest.raises(AreaImportError):
        run(fc)
    assert not Area.objects.exists()


def test_every_problem_is_reported_in_file_order():
    fc = small_city()
    _missing_name(fc, "11010500100204")
    _point(fc, "11010500100101")
    _unknown_parent(fc, "11010500100103")
    with pytest.raises(AreaImportError) as caught:
        run(fc)
    messages = caught.value.messages
    assert [m.split(" (")[0] for m in messages] == ["feature 3", "feature 5", "feature 11"]
    assert "city.geojson" in caught.value.message


def test_problems_are_capped():
    fc = small_city()
    template = feature(fc, "11010500100101")
    for i in range(MAX_PROBLEMS + 10):
        bad = copy.deepcopy(template)
        bad["properties"].update(code=f"1101050010019{i % 10}", level="hamlet")
        fc["features"].append(bad)
    with pytest.raises(AreaImportError) as caught:
        run(fc)
    assert caught.value.total == MAX_PROBLEMS + 10  # 10 bad levels, then 50 duplicates
    assert len(caught.value.messages) == MAX_PROBLEMS + 1
    assert caught.value.messages[-1] == "… and 10 more problems"


def test_a_child_may_stick_out_within_the_tolerance():
    fc = small_city()
    f = feature(fc, "11010500100101")
    # Stretch the grid 0.2% of its width past the community's western edge.
    f["geometry"]["coordinates"][0] = [
        [116.39998, 39.9], [116.41, 39.9], [116.41, 39.92], [116.39998, 39.92], [116.39998, 39.9]
    ]  # fmt: skip
    # …but the district and street share the community's edge, so widen them too.
    for code in ("110105", "110105001", "110105001001"):
        g = feature(fc, code)["geometry"]["coordinates"][0]
        for point in g:
            if point[0] == 116.4:
                point[0] = 116.39998
    assert run(fc).created["grid"] == 8

    f["geometry"]["coordinates"][0] = [
        [116.3999, 39.9], [116.41, 39.9], [116.41, 39.92], [116.3999, 39.92], [116.3999, 39.9]
    ]  # fmt: skip
    with pytest.raises(AreaImportError, match="outside its parent 110105001001"):
        run(fc)


def test_a_parent_reshaped_around_its_stored_children_is_refused():
    run(small_city())
    before = snapshot()
    community = feature(small_city(), "110105001001")
    community["geometry"]["coordinates"][0] = [
        [116.4, 39.9], [116.42, 39.9], [116.42, 39.92], [116.4, 39.92], [116.4, 39.9]
    ]  # fmt: skip
    fc = {"type": "FeatureCollection", "features": [community]}
    with pytest.raises(AreaImportError) as caught:
        run(fc)
    text = "\n".join(caught.value.messages)
    assert "feature 0 (code 110105001001): the new boundary leaves" in text
    assert "grid 11010500100103" in text and "grid 11010500100104" in text
    assert snapshot() == before


def test_an_area_cannot_change_level():
    run(small_city())
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"code": "110105", "name": "朝阳区", "level": "city"},
                "geometry": None,
            }
        ],
    }
    with pytest.raises(AreaImportError, match="exists as a district; it cannot become a city"):
        run(fc)


# --- repair -------------------------------------------------------------------------------------


def test_repair_fixes_a_figure_eight_and_reports_the_area_change():
    fc = small_city()
    _bow_tie(fc, "11010500100102")
    report = run(fc, repair=True)
    assert report.created["grid"] == 8
    (repaired,) = report.repaired
    assert repaired.where == "feature 4" and repaired.code == "11010500100102"
    assert "Self-intersection" in repaired.reason
    grid = Area.objects.get(code="11010500100102")
    assert grid.shape.is_valid and grid.shape.geom_type == "MultiPolygon"
    # The two lobes cancel in the file's winding; the repaired shape is two
    # triangles, half of the grid's square.
    assert repaired.area_before_m2 == pytest.approx(0, abs=1)
    assert repaired.area_after_m2 == pytest.approx(grid.area_m2)
    assert repaired.gained_m2 == pytest.approx(1.897e6 / 2, rel=0.01)
    assert repaired.lost_m2 == 0
    assert "feature 4 (code 11010500100102) repaired" in str(report)


def test_repair_keeps_only_the_polygonal_part():
    fc = small_city()
    f = feature(fc, "11010500100101")
    # A ring that runs out along a line and back (a zero-width spike).
    f["geometry"]["coordinates"][0] = [
        [116.4, 39.9], [116.41, 39.9], [116.41, 39.91], [116.405, 39.91], [116.405, 39.915],
        [116.405, 39.91], [116.4, 39.91], [116.4, 39.9]
    ]  # fmt: skip
    with pytest.raises(AreaImportError, match="--repair"):
        run(fc)
    report = run(fc, repair=True)
    (repaired,) = report.repaired
    assert repaired.gained_m2 == pytest.approx(0, abs=1)
    assert repaired.lost_m2 == pytest.approx(0, abs=1)
    assert Area.objects.get(code="11010500100101").shape.geom_type == "Polygon"


# --- coordinate systems --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "forward"),
    [("gcj02", crs.wgs84_to_gcj02), ("bd09", crs.wgs84_to_bd09)],
)
def test_gcj02_and_bd09_files_land_on_the_wgs84_boundaries(name, forward):
    run(small_city())
    before = snapshot()
    fc = small_city()
    for f in fc["features"]:
        f["geometry"] = map_coords(f["geometry"], forward)
    moved = shapely.from_geojson(json.dumps(feature(fc, "110105")["geometry"]))
    assert moved.bounds[0] > 116.405  # the offset is hundreds of metres
    report = run(fc, crs=name)
    # Converted back and snapped to 1e-7°, every boundary is the stored one.
    assert report.total_unchanged == 12
    assert snapshot() == before


def test_a_chinese_crs_outside_china_is_refused():
    fc = small_city()
    for f in fc["features"]:
        f["geometry"] = map_coords(f["geometry"], lambda x, y: (x - 100, y))
    with pytest.raises(AreaImportError, match="outside China") as caught:
        run(fc, crs="gcj02")
    assert caught.value.total == 12
    assert run(fc, crs="wgs84").total_created == 12  # as WGS-84 it is fine anywhere


def test_an_unknown_crs_is_a_field_error():
    from core.errors import DomainError

    with pytest.raises(DomainError) as caught:
        run(small_city(), crs="epsg3857")
    assert "crs" in caught.value.errors


# --- CSV division lists and reading files -----------------------------------------------------------


def test_a_division_list_then_boundaries_then_the_list_again():
    records = read_csv(DIVISIONS)
    assert records[0].where == "line 2" and records[0].code == "110105"
    report = areas_import(records=records, source_name="divisions.csv")
    assert report.created == {"district": 1, "street": 2, "community": 4}
    assert Area.objects.get(code="110105002002").shape is None

    report = run(small_city())
    assert report.updated == {"district": 1, "street": 1, "community": 2}
    assert report.created == {"grid": 8}

    report = areas_import(records=read_csv(DIVISIONS), source_name="divisions.csv")
    assert report.total_unchanged == 7  # the boundaries stay
    assert Area.objects.get(code="110105001001").shape is not None


def test_csv_without_bom_with_windows_line_ends_and_counts():
    text = (
        "code,name,level,parent_code,households,population\r\n"
        "110105,朝阳区,district,,,\r\n"
        "110105001,建外街道,street,110105,120,360\r\n"
    )
    records = read_csv(io.BytesIO(text.encode("utf-8")))
    report = areas_import(records=records)
    assert report.total_created == 2
    assert Area.objects.get(code="110105001").households == 120


def test_csv_errors_name_the_line():
    text = (
        "code,name,level,parent_code\n"
        "110105,朝阳区,district,\n"
        "\n"
        "110105001,建外街道,street,110199\n"
        "110105002,,street,110105\n"
    )
    with pytest.raises(AreaImportError) as caught:
        areas_import(records=read_csv(io.StringIO(text)), source_name="list.csv")
    assert caught.value.messages == [
        "line 4 (code 110105001): unknown parent 110199: it is neither in the file nor in the database",
        "line 5 (code 110105002): missing required properties: name",
    ]
    assert not Area.objects.exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("list.csv", b"code,name,level\n1,2,3\n", "line 1: the header lacks parent_code"),
        ("list.csv", "code,name,level,parent_code\n110105,朝阳区,district,\n".encode("gbk"),
         "is not UTF-8"),
        ("list.csv", b"", "file: is empty"),
        ("city.geojson", b"{not json", "is not valid JSON"),
        ("city.geojson", b'{"type": "Feature"}', "is not a GeoJSON FeatureCollection"),
        ("city.geojson", b'{"type": "FeatureCollection"}', "has no list of features"),
        ("city.geojson", b'{"type": "FeatureCollection", "features": [1]}',
         "feature 0: is not a GeoJSON Feature"),
    ],
)  # fmt: skip
def test_unreadable_files_are_refused_clearly(name, content, message):
    with pytest.raises(AreaImportError) as caught:
        areas_import(records=read_file(io.BytesIO(content), source_name=name), source_name=name)
    assert any(message in m for m in caught.value.messages), caught.value.messages


def test_read_geojson_takes_a_path_or_a_file():
    by_path = read_geojson(SMALL_CITY)
    with SMALL_CITY.open("rb") as handle:
        by_file = read_geojson(handle)
    assert [r.code for r in by_path] == [r.code for r in by_file]
    assert by_path[3].where == "feature 3"


def test_an_empty_feature_collection_is_refused():
    with pytest.raises(AreaImportError, match="holds no areas"):
        run({"type": "FeatureCollection", "features": []})


# --- the command --------------------------------------------------------------------------------------


def test_command_imports_and_prints_the_report(tmp_path):
    out = io.StringIO()
    call_command("import_areas", str(SMALL_CITY), stdout=out)
    assert "grid: 8 created" in out.getvalue()
    out = io.StringIO()
    call_command("import_areas", str(DIVISIONS), "--dry-run", stdout=out)
    assert "Dry run" in out.getvalue()
    assert "community: 2 created, 0 updated, 2 unchanged" in out.getvalue()
    assert not Area.objects.filter(code="110105002").exists()


def test_command_converts_gcj02(tmp_path):
    fc = small_city()
    for f in fc["features"]:
        f["geometry"] = map_coords(f["geometry"], crs.wgs84_to_gcj02)
    path = tmp_path / "amap.geojson"
    path.write_text(json.dumps(fc))
    call_command("import_areas", str(path), "--crs", "gcj02", stdout=io.StringIO())
    assert Area.objects.get(code="110105").bbox == pytest.approx([116.4, 39.9, 116.44, 39.94])


def test_command_errors_name_the_file_and_the_feature(tmp_path):
    fc = small_city()
    _bow_tie(fc, "11010500100101")
    _unknown_level(fc, "11010500100203")
    path = tmp_path / "boundaries.geojson"
    path.write_text(json.dumps(fc))
    with pytest.raises(CommandError) as caught:
        call_command("import_areas", str(path), stdout=io.StringIO())
    text = str(caught.value)
    assert "boundaries.geojson: feature 3 (code 11010500100101): the boundary is invalid" in text
    assert "boundaries.geojson: feature 10 (code 11010500100203): unknown level" in text
    assert not Area.objects.exists()
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_areas", str(path), "--repair", stdout=out)  # the level is still bad
    _unknown_level(fc, "11010500100203")
    feature(fc, "11010500100203")["properties"]["level"] = "grid"
    path.write_text(json.dumps(fc))
    call_command("import_areas", str(path), "--repair", stdout=out)
    assert "1 boundaries repaired" in out.getvalue()


def test_command_refuses_missing_files_and_unknown_crs(tmp_path):
    with pytest.raises(CommandError, match="nowhere.geojson"):
        call_command("import_areas", str(tmp_path / "nowhere.geojson"))
    with pytest.raises(CommandError):
        call_command("import_areas", str(SMALL_CITY), "--crs", "mercator")


def test_large_files_show_a_progress_bar(monkeypatch, capsys):
    from geo import importer

    monkeypatch.setattr(importer, "PROGRESS_THRESHOLD", 10)
    run(small_city(), progress=True)
    # Two passes over the 12 records: checking, then writing.
    assert "24/24" in capsys.readouterr().err
    run(small_city(), progress=False)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(importer, "PROGRESS_THRESHOLD", 13)
    run(small_city(), progress=True)
    assert capsys.readouterr().err == ""


def test_heights_are_dropped():
    fc = small_city()
    f = feature(fc, "11010500100101")
    f["geometry"]["coordinates"][0] = [[x, y, 42.0] for x, y in f["geometry"]["coordinates"][0]]
    run(fc)
    assert not Area.objects.get(code="11010500100101").shape.has_z


def test_a_multipolygon_wound_both_ways_measures_its_full_area():
    from geo.geometry import geodesic_area_m2

    a = shapely.box(116.40, 39.90, 116.41, 39.91)
    b = shapely.box(116.42, 39.90, 116.43, 39.91).reverse()  # clockwise
    assert geodesic_area_m2(shapely.MultiPolygon([a, b])) == pytest.approx(
        2 * geodesic_area_m2(a), rel=1e-3
    )
