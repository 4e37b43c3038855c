"""Topology checks: overlaps, gaps and children outside their parent; the command."""

from __future__ import annotations

import contextlib
import io
import json
import time

import numpy as np
import pytest
import shapely
from django.core.management import CommandError, ManagementUtility, call_command
from django.utils import translation

from geo.geometry import geodesic_area_m2, measure
from geo.models import Area, AreaLevel
from geo.testing import box, make_area, reshape_area
from geo.topology import check_topology, problems_feature_collection

pytestmark = pytest.mark.django_db

D = 0.001  # about 85 m of longitude, 111 m of latitude


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def bounds(city, code):
    return city.grid(code).shape.bounds


def test_the_small_city_is_clean(small_city):
    assert check_topology() == []
    assert check_topology(root=small_city.district, tolerance_m2=0) == []
    assert check_topology(root=small_city.communities[1]) == []


def test_an_overlap_between_siblings_is_found_with_its_area(small_city):
    # Grid 01 grows east into grid 02 by a strip D wide.
    x0, y0, x1, y1 = bounds(small_city, "11010500100101")
    reshape_area("11010500100101", box(x0, y0, x1 + D, y1))
    (problem,) = check_topology()
    planted = box(x1, y0, x1 + D, y1)
    assert problem.kind == "overlap"
    assert problem.codes == ("11010500100101", "11010500100102")
    assert problem.parent_code == "110105001001"
    assert problem.area_m2 == pytest.approx(geodesic_area_m2(planted), rel=1e-3)
    assert problem.geometry.symmetric_difference(planted).area < 1e-12


def test_a_gap_in_the_coverage_is_found_with_its_area(small_city):
    # Grid 04 (north-east) shrinks from the north: a strip of community 1 is nobody's.
    x0, y0, x1, y1 = bounds(small_city, "11010500100104")
    reshape_area("11010500100104", box(x0, y0, x1, y1 - D))
    (problem,) = check_topology(root=small_city.district)
    planted = box(x0, y1 - D, x1, y1)
    assert problem.kind == "gap" and problem.parent_code == "110105001001"
    assert problem.codes == ("11010500100103", "11010500100104")  # the grids along it
    assert problem.area_m2 == pytest.approx(geodesic_area_m2(planted), rel=1e-3)


def test_separate_gaps_are_separate_problems(small_city):
    x0, y0, x1, y1 = bounds(small_city, "11010500100101")
    # A notch in the south-west corner and a hole in the middle.
    shape = box(x0, y0, x1, y1).difference(box(x0, y0, x0 + D, y0 + D))
    shape = shape.difference(box(x0 + 3 * D, y0 + 5 * D, x0 + 5 * D, y0 + 6 * D))
    reshape_area("11010500100101", shape)
    problems = check_topology(root=small_city.communities[0])
    assert [p.kind for p in problems] == ["gap", "gap"]
    expected = sorted(
        [geodesic_area_m2(box(0, y0, 2 * D, y0 + D)), geodesic_area_m2(box(0, y0, D, y0 + D))]
    )
    assert sorted(p.area_m2 for p in problems) == pytest.approx(expected, rel=1e-3)


def test_a_child_outside_its_parent_is_found_with_its_area(small_city):
    # Grid 01 reaches south, out of its community (and of the street and district).
    x0, y0, x1, y1 = bounds(small_city, "11010500100101")
    reshape_area("11010500100101", box(x0, y0 - D, x1, y1))
    problems = check_topology(root=small_city.communities[0])
    (problem,) = problems
    planted = box(x0, y0 - D, x1, y0)
    assert problem.kind == "outside" and problem.codes == ("11010500100101",)
    assert problem.parent_code == "110105001001"
    assert problem.area_m2 == pytest.approx(geodesic_area_m2(planted), rel=1e-3)


def test_the_whole_tree_and_a_subtree_see_what_is_theirs(small_city):
    x0, y0, x1, y1 = bounds(small_city, "11010500100101")
    reshape_area("11010500100101", box(x0, y0, x1 + D, y1))  # overlap inside community 1
    x0, y0, x1, y1 = small_city.communities[1].shape.bounds
    reshape_area("110105001002", box(x0, y0, x1 + D, y1))  # community 2 pokes out of the street
    found = {(p.kind, p.parent_code, p.codes) for p in check_topology()}
    assert found == {
        ("overlap", "110105001001", ("11010500100101", "11010500100102")),
        ("outside", "110105001", ("110105001002",)),
        # Community 2 grew and its grids did not: the new strip is a gap in it.
        ("gap", "110105001002", ("11010500100202", "11010500100204")),
    }
    # A subtree reports on its own children only, not on how it sits in its parent.
    assert [p.kind for p in check_topology(root=small_city.communities[1])] == ["gap"]
    assert check_topology(root=small_city.grid("11010500100101")) == []


def test_the_tolerance_hides_rounding_specks(small_city):
    x0, y0, x1, y1 = bounds(small_city, "11010500100104")
    notch = box(x1 - 1e-4, y1 - 1e-6, x1, y1)  # 8.5 m × 11 cm
    reshape_area("11010500100104", box(x0, y0, x1, y1).difference(notch))
    speck = geodesic_area_m2(notch)
    assert 0.5 < speck < 2
    assert check_topology(tolerance_m2=speck * 2) == []
    (problem,) = check_topology(tolerance_m2=speck / 2)
    assert problem.area_m2 == pytest.approx(speck, rel=1e-3)
    with pytest.raises(ValueError):
        check_topology(tolerance_m2=-1)


def test_areas_without_boundaries_are_skipped(small_city):
    make_area(
        code="110105001003", level=AreaLevel.COMMUNITY, name="新社区", parent=small_city.street
    )
    Area.objects.filter(code="110105001").update(geometry=None)
    # The street has no boundary now: its children are only compared with each other.
    assert check_topology() == []


def test_the_feature_collection(small_city):
    x0, y0, x1, y1 = bounds(small_city, "11010500100101")
    reshape_area("11010500100101", box(x0, y0, x1 + D, y1))
    collection = problems_feature_collection(check_topology())
    assert collection["type"] == "FeatureCollection"
    (feature,) = collection["features"]
    assert feature["geometry"]["type"] == "Polygon"
    assert feature["properties"]["kind"] == "overlap"
    assert feature["properties"]["codes"] == ["11010500100101", "11010500100102"]
    assert feature["properties"]["parent_code"] == "110105001001"
    assert feature["properties"]["area_m2"] > 0
    json.dumps(collection)  # plain JSON


def jittered_cells(x0, y0, nx, ny, step, rng):
    """An exact tiling of irregular quadrilaterals: a lattice with its inner vertices moved."""
    xs = x0 + np.arange(nx + 1) * step
    ys = y0 + np.arange(ny + 1) * step
    corners = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1)
    corners[1:-1, 1:-1] += rng.uniform(-0.3, 0.3, (nx - 1, ny - 1, 2)) * step
    corners = np.round(corners, 7)
    return [
        shapely.Polygon(
            [corners[i, j], corners[i + 1, j], corners[i + 1, j + 1], corners[i, j + 1]]
        )
        for j in range(ny)
        for i in range(nx)
    ]


def test_a_district_of_300_grids_is_checked_well_under_a_second(db):
    rng = np.random.default_rng(5)
    step, nx, ny = 0.002, 15, 5
    outline = box(104.0, 30.6, 104.0 + 4 * nx * step, 30.6 + ny * step)
    district = make_area(code="510177", level=AreaLevel.DISTRICT, name="云溪区", geom=outline)
    street = make_area(
        code="510177001", level=AreaLevel.STREET, name="明珠街道", parent=district, geom=outline
    )
    grids = []
    for c in range(4):
        x0 = 104.0 + c * nx * step
        community = make_area(
            code=f"510177001{c + 1:03d}",
            level=AreaLevel.COMMUNITY,
            name=f"社区{c + 1}",
            parent=street,
            geom=box(x0, 30.6, x0 + nx * step, 30.6 + ny * step),
        )
        for k, cell in enumerate(jittered_cells(x0, 30.6, nx, ny, step, rng)):
            m = measure(cell)
            grids.append(
                Area(
                    code=f"{community.code}{k + 1:02d}",
                    level=AreaLevel.GRID,
                    parent=community,
                    name=f"第{k + 1}网格",
                    geometry=m.wkb,
                    min_lng=m.min_lng,
                    min_lat=m.min_lat,
                    max_lng=m.max_lng,
                    max_lat=m.max_lat,
                    area_m2=m.area_m2,
                )
            )
    Area.objects.bulk_create(grids)
    assert Area.objects.filter(level=AreaLevel.GRID).count() == 300

    started = time.perf_counter()
    assert check_topology(root=district) == []
    assert time.perf_counter() - started < 1.0
    # One planted overlap is still found among them.
    moved = shapely.affinity.translate(grids[7].shape, xoff=step / 4)
    reshape_area(grids[7].code, moved)
    kinds = sorted(p.kind for p in check_topology(root=district))
    assert "overlap" in kinds and "gap" in kinds


# --- the command -----------------------------------------------------------------------------


def run(*args) -> str:
    out = io.StringIO()
    call_command("check_topology", *args, stdout=out)
    return out.getvalue()


def test_command_on_a_clean_tree_succeeds(small_city, tmp_path):
    path = tmp_path / "problems.geojson"
    out = run("--geojson", str(path))
    assert "No topology problems under the whole tree." in out
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "type": "FeatureCollection",
        "features": [],
    }
    assert "No topology problems under 110105001001." in run("110105001001")


def test_command_with_problems_prints_them_and_fails(small_city, tmp_path):
    x0, y0, x1, y1 = bounds(small_city, "11010500100101")
    reshape_area("11010500100101", box(x0, y0 - D, x1 + D, y1))
    path = tmp_path / "problems.geojson"
    out = io.StringIO()
    with pytest.raises(
        CommandError, match=r"2 topology problems under 110105001001 \(1 overlap, 1 outside\)"
    ):
        call_command("check_topology", "110105001001", "--geojson", str(path), stdout=out)
    table = out.getvalue()
    assert "overlap" in table and "11010500100101 11010500100102" in table
    assert "outside" in table and "110105001001" in table
    collection = json.loads(path.read_text(encoding="utf-8"))
    assert sorted(f["properties"]["kind"] for f in collection["features"]) == ["outside", "overlap"]


def test_command_exit_status_from_the_shell(small_city):
    # What a script sees: a CommandError run from the command line exits with status 1.
    x0, y0, x1, y1 = bounds(small_city, "11010500100101")
    reshape_area("11010500100101", box(x0, y0, x1 + D, y1))
    utility = ManagementUtility(["manage.py", "check_topology", "110105001001"])
    err = io.StringIO()
    with (
        pytest.raises(SystemExit) as exited,
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        utility.execute()
    assert exited.value.code == 1
    assert "1 topology problem under 110105001001 (1 overlap)" in err.getvalue()


def test_command_errors_are_clear(small_city):
    with pytest.raises(CommandError, match="No area has the code 999999"):
        run("999999")
    with pytest.raises(CommandError, match="at least 0"):
        run("--tolerance-m2", "-1")
