"""Export: the GeoJSON format, filters, streaming, the command, and export → import round trips."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import shapely
from django.core.management import CommandError, call_command
from django.utils import translation

from geo import exporter
from geo.exporter import areas_feature_collection, iter_feature_collection
from geo.importer import areas_import, import_feature_collection, read_csv
from geo.models import Area, AreaLevel

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    """Messages are checked in English, whatever LANGUAGE_CODE is."""
    with translation.override("en"):
        yield


def load_city_and_divisions() -> None:
    """The small city with boundaries, plus a street and communities without any."""
    import_feature_collection(json.loads((DATA / "small_city.geojson").read_text(encoding="utf-8")))
    areas_import(records=read_csv(DATA / "division_list.csv"))


def wipe() -> None:
    for level in sorted(AreaLevel, reverse=True):
        Area.objects.filter(level=level).delete()


def tree() -> dict[str, tuple]:
    """Everything an import sets, by code (geometry as its canonical WKB)."""
    rows = Area.objects.values_list(
        "code", "level", "parent__code", "name", "name_en", "households", "population",
        "geometry", "min_lng", "min_lat", "max_lng", "max_lat", "area_m2",
    )  # fmt: skip
    return {r[0]: (*r[1:7], bytes(r[7]) if r[7] is not None else None, *r[8:]) for r in rows}


def test_the_feature_collection_format():
    load_city_and_divisions()
    fc = areas_feature_collection()
    assert fc["type"] == "FeatureCollection"
    codes = [f["properties"]["code"] for f in fc["features"]]
    levels = [AreaLevel.from_slug(f["properties"]["level"]) for f in fc["features"]]
    assert levels == sorted(levels)  # parents first
    assert len(codes) == len(set(codes)) == Area.objects.count() == 15
    grid = next(f for f in fc["features"] if f["properties"]["code"] == "11010500100203")
    assert grid["id"] == "11010500100203"
    assert grid["properties"] == {
        "code": "11010500100203",
        "name": "社区2第3网格",
        "name_en": "Community 2 grid 3",
        "level": "grid",
        "parent_code": "110105001002",
        "households": 33,
        "population": 99,
        "area_m2": pytest.approx(1.897e6, rel=0.01),
    }
    assert grid["geometry"]["type"] == "Polygon"
    assert shapely.from_geojson(json.dumps(grid["geometry"])).equals(
        shapely.box(116.42, 39.92, 116.43, 39.94)
    )
    district = fc["features"][0]
    assert district["properties"]["parent_code"] is None
    plain = next(f for f in fc["features"] if f["properties"]["code"] == "110105002")
    assert plain["geometry"] is None and plain["properties"]["area_m2"] is None


def test_export_then_wipe_then_import_gives_the_same_tree():
    load_city_and_divisions()
    before = tree()
    text = exporter.areas_feature_collection_text()
    wipe()
    assert not Area.objects.exists()
    report = import_feature_collection(json.loads(text))
    assert report.total_created == 15
    assert tree() == before
    # …and importing the export over the tree it came from changes nothing.
    assert import_feature_collection(json.loads(text)).total_unchanged == 15


def test_areas_made_elsewhere_round_trip_within_the_snapping(small_city):
    original = {a.code: a.shape for a in Area.objects.all()}
    fc = areas_feature_collection()
    wipe()
    import_feature_collection(fc)
    for area in Area.objects.select_related("parent"):
        # The fixture's corners are sums of floats (116.40 + 0.02 …); stored
        # through the import they sit on the 1e-7° grid.
        assert shapely.hausdorff_distance(area.shape, original[area.code]) < 1e-7
    assert Area.objects.get(code="11010500100101").parent.code == "110105001001"


def test_filters_by_level_and_subtree():
    load_city_and_divisions()
    grids = areas_feature_collection(level=AreaLevel.GRID)
    assert {f["properties"]["level"] for f in grids["features"]} == {"grid"}
    assert len(grids["features"]) == 8
    community = Area.objects.get(code="110105001002")
    under = areas_feature_collection(under=community)
    assert [f["properties"]["code"] for f in under["features"]] == [
        "110105001002",
        *(f"110105001002{i:02d}" for i in range(1, 5)),
    ]
    street_grids = areas_feature_collection(
        level=AreaLevel.GRID, under=Area.objects.get(code="110105002")
    )
    assert street_grids["features"] == []
    # A level export re-imports into the tree that holds its parents.
    assert import_feature_collection(grids).total_unchanged == 8


def test_large_exports_stream_in_chunks(monkeypatch):
    load_city_and_divisions()
    monkeypatch.setattr(exporter, "CHUNK_SIZE", 4)
    pieces = list(iter_feature_collection())
    assert len(pieces) == 2 + 4  # the frame, then 15 features in chunks of 4
    assert json.loads("".join(pieces)) == areas_feature_collection()


def test_an_empty_tree_exports_an_empty_collection():
    assert areas_feature_collection() == {"type": "FeatureCollection", "features": []}


def test_command_writes_to_stdout_or_a_file(tmp_path):
    load_city_and_divisions()
    out = io.StringIO()
    call_command("export_areas", "--level", "grid", "--under", "110105001001", stdout=out)
    fc = json.loads(out.getvalue())
    assert [f["properties"]["code"] for f in fc["features"]] == [
        f"1101050010010{i}" for i in range(1, 5)
    ]
    target = tmp_path / "areas.geojson"
    call_command("export_areas", "--output", str(target), stderr=io.StringIO())
    exported = json.loads(target.read_text(encoding="utf-8"))
    assert len(exported["features"]) == 15
    wipe()
    call_command("import_areas", str(target), stdout=io.StringIO())
    assert Area.objects.count() == 15


def test_command_refuses_an_unknown_subtree():
    with pytest.raises(CommandError, match="No area has the code 110199"):
        call_command("export_areas", "--under", "110199", stdout=io.StringIO())
