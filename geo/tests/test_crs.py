"""GCJ-02 / BD-09 conversion against published reference points and by round trips."""

import numpy as np
import pytest
import shapely

from geo import crs


def close(a, b, tol):
    return abs(a[0] - b[0]) <= tol and abs(a[1] - b[1]) <= tol


# The forward formulas are closed, so published values must match to the last
# digits. Reference: the test script of the widely used open-source
# "coordtransform" library (github.com/wandergis/coordtransform, test/app.js),
# converting the point (116.404, 39.915) near Tiananmen.
def test_forward_conversions_match_the_published_reference():
    assert close(
        crs.wgs84_to_gcj02(116.404, 39.915), (116.41024449916938, 39.91640428150164), 1e-12
    )
    assert close(crs.gcj02_to_bd09(116.404, 39.915), (116.41036949371029, 39.92133699351021), 1e-12)


# AMap's web service documentation (lbs.amap.com, 坐标转换 "convert" API) gives
# the GPS point 116.481499,39.990475 (and …,39.990375) as 116.487585177952,
# 39.991754014757 (and …,39.991653917101) in GCJ-02. AMap's servers agree with
# the published formula to a few centimetres.
@pytest.mark.parametrize(
    ("wgs", "gcj"),
    [
        ((116.481499, 39.990475), (116.487585177952, 39.991754014757)),
        ((116.481499, 39.990375), (116.487585177952, 39.991653917101)),
    ],
)
def test_amap_documented_conversion(wgs, gcj):
    assert close(crs.wgs84_to_gcj02(*wgs), gcj, 1e-6)
    # …and the inverse brings AMap's answer back to the GPS point.
    assert close(crs.to_wgs84(*gcj, "gcj02"), wgs, 1e-6)


# Alibaba Cloud's address-purification TransferCoord documentation converts the
# GCJ-02 point 120.026268,30.279164 (Hangzhou) to BD-09 120.032768,30.285238
# (rounded to 6 decimals) and to WGS-84 120.021519,30.281543, which is what the
# common one-step approximate inverse gives.
def test_alibaba_cloud_documented_conversion():
    gcj = (120.026268, 30.279164)
    assert close(crs.gcj02_to_bd09(*gcj), (120.032768, 30.285238), 6e-7)
    published_wgs = (120.021519, 30.281543)
    ours = crs.to_wgs84(*gcj, "gcj02")
    # The approximation is off by ~1.5 m; the exact inverse differs from it by
    # that much, and only the exact inverse maps forward onto the input.
    assert close(ours, published_wgs, 2e-5)
    assert close(crs.wgs84_to_gcj02(*ours), gcj, 1e-9)
    assert not close(crs.wgs84_to_gcj02(*published_wgs), gcj, 1e-6)


# The same "coordtransform" script lists the one-step approximate inverses of
# (116.404, 39.915): GCJ-02→WGS-84 (116.39775550083061, 39.91359571849836) and
# BD-09→GCJ-02 (116.39762729119315, 39.90865673957631). The exact inverse is
# within a metre of them and, unlike them, lands on the input when converted back.
def test_inverse_is_exact_where_the_approximation_is_not():
    approx_wgs = (116.39775550083061, 39.91359571849836)
    wgs = crs.gcj02_to_wgs84(116.404, 39.915)
    assert close(wgs, approx_wgs, 1e-5)
    assert close(crs.wgs84_to_gcj02(*wgs), (116.404, 39.915), 1e-9)
    assert not close(crs.wgs84_to_gcj02(*approx_wgs), (116.404, 39.915), 1e-7)

    approx_gcj = (116.39762729119315, 39.90865673957631)
    gcj = crs.bd09_to_gcj02(116.404, 39.915)
    assert close(gcj, approx_gcj, 1e-5)
    assert close(crs.gcj02_to_bd09(*gcj), (116.404, 39.915), 1e-9)


def test_round_trips_across_china_are_below_a_millimetre():
    rng = np.random.default_rng(7)
    lng = rng.uniform(73.0, 135.0, 20_000)
    lat = rng.uniform(3.0, 53.0, 20_000)
    gcj_lng, gcj_lat = crs.wgs84_to_gcj02(lng, lat)
    back_lng, back_lat = crs.to_wgs84_many(gcj_lng, gcj_lat, "gcj02")
    assert np.abs(back_lng - lng).max() < 1e-8
    assert np.abs(back_lat - lat).max() < 1e-8
    bd_lng, bd_lat = crs.wgs84_to_bd09(lng, lat)
    back_lng, back_lat = crs.to_wgs84_many(bd_lng, bd_lat, "bd09")
    assert np.abs(back_lng - lng).max() < 1e-8
    assert np.abs(back_lat - lat).max() < 1e-8
    # The offsets are real: hundreds of metres, not a no-op.
    assert np.abs(gcj_lng - lng).max() > 1e-3


def test_scalar_and_vector_forms_agree():
    lng, lat = crs.to_wgs84(116.404, 39.915, "bd09")
    many = crs.to_wgs84_many(np.array([116.404, 121.47]), np.array([39.915, 31.23]), "bd09")
    # (A batch iterates until its slowest point converges: equal to 1e-12.)
    assert close((lng, lat), (many[0][0], many[1][0]), 1e-12)
    assert crs.to_wgs84(116.404, 39.915, "wgs84") == (116.404, 39.915)


@pytest.mark.parametrize(
    "point",
    [(2.3522, 48.8566), (-74.006, 40.7128), (139.6917, 35.6895), (151.2093, -33.8688)],
    ids=["Paris", "New York", "Tokyo", "Sydney"],
)
@pytest.mark.parametrize("name", ["gcj02", "bd09"])
def test_points_outside_china_are_left_as_they_are(point, name):
    assert crs.to_wgs84(*point, name) == point
    assert crs.wgs84_to_gcj02(*point) == point
    assert crs.gcj02_to_bd09(*point) == point


def test_unknown_crs_is_refused():
    with pytest.raises(ValueError, match="unknown coordinate system"):
        crs.to_wgs84(116.4, 39.9, "epsg3857")
    with pytest.raises(ValueError):
        crs.to_wgs84_many(np.array([116.4]), np.array([39.9]), "")


def test_transform_geometry_converts_every_coordinate():
    wgs = shapely.Polygon(
        [(116.40, 39.90), (116.42, 39.90), (116.42, 39.92), (116.40, 39.92)],
        holes=[[(116.405, 39.905), (116.41, 39.905), (116.41, 39.91)]],
    )
    coords = shapely.get_coordinates(wgs)
    gcj = shapely.transform(wgs, lambda c: np.column_stack(crs.wgs84_to_gcj02(c[:, 0], c[:, 1])))
    back = crs.transform_geometry(gcj, "gcj02")
    assert back.geom_type == "Polygon" and len(back.interiors) == 1
    assert np.abs(shapely.get_coordinates(back) - coords).max() < 1e-9
    assert crs.transform_geometry(wgs, "wgs84") is wgs
    multi = crs.transform_geometry(shapely.MultiPolygon([gcj, gcj]), "gcj02")
    assert np.abs(shapely.get_coordinates(multi.geoms[1]) - coords).max() < 1e-9
