"""GET and POST /api/v1/locate over the small city (see test_index for its layout)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Membership, Role
from accounts.roles import sync_builtin_roles
from geo import crs as geo_crs
from geo import index as geo_index

C1, C2 = "110105001001", "110105001002"


@pytest.fixture(autouse=True)
def fresh_index(settings):
    settings.CIVICGRID = {**settings.CIVICGRID, "GEO_INDEX_MAX_STALENESS": 0}
    geo_index.invalidate_local()
    yield
    geo_index.invalidate_local()


@pytest.fixture
def api(django_user_model, small_city):
    # An intake clerk of the whole district: every grid is in her scope.
    sync_builtin_roles()
    clerk = django_user_model.objects.create_user("clerk", password="x" * 12)
    Membership.objects.create(
        user=clerk, role=Role.objects.get(code="intake_clerk"), area=small_city.district
    )
    client = APIClient()
    client.force_authenticate(clerk)
    return client


@pytest.fixture
def url():
    return reverse("locate")


def test_the_url(url):
    assert url == "/api/v1/locate"


# --- GET ---------------------------------------------------------------------------------------


def test_get_a_point_in_a_grid(api, url, small_city):
    response = api.get(url, {"lat": "39.905", "lng": "116.405"})
    assert response.status_code == 200, response.content
    assert response.json() == {
        "outside": False,
        "in_scope": True,
        "point": {"lat": 39.905, "lng": 116.405},
        "grid": {"code": f"{C1}01", "name": "社区1第1网格", "name_en": "Community 1 grid 1"},
        "community": {"code": C1, "name": "社区1", "name_en": "Community 1"},
        "street": {"code": "110105001", "name": "建外街道", "name_en": "Jianwai"},
        "district": {"code": "110105", "name": "朝阳区", "name_en": "Chaoyang"},
        "city": None,
    }


def test_get_a_point_on_a_shared_corner_follows_the_border_rule(api, url, small_city):
    corner_lng, corner_lat = small_city.grid(f"{C1}01").shape.bounds[2:]
    body = api.get(url, {"lat": repr(corner_lat), "lng": repr(corner_lng)}).json()
    assert body["grid"]["code"] == f"{C1}01"


def test_get_a_point_outside(api, url, small_city):
    body = api.get(url, {"lat": "31.23", "lng": "121.47"}).json()
    assert body == {
        "outside": True,
        "in_scope": False,
        "point": {"lat": 31.23, "lng": 121.47},
        "grid": None,
        "community": None,
        "street": None,
        "district": None,
        "city": None,
    }


@pytest.mark.parametrize(
    ("crs", "forward"), [("gcj02", geo_crs.wgs84_to_gcj02), ("bd09", geo_crs.wgs84_to_bd09)]
)
def test_get_with_a_chinese_crs_answers_in_wgs84(api, url, small_city, crs, forward):
    lng, lat = forward(116.435, 39.935)
    body = api.get(url, {"lat": repr(lat), "lng": repr(lng), "crs": crs}).json()
    assert body["grid"]["code"] == f"{C2}04"
    assert body["point"]["lat"] == pytest.approx(39.935, abs=1e-8)
    assert body["point"]["lng"] == pytest.approx(116.435, abs=1e-8)


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({}, {"lat", "lng"}),
        ({"lat": "39.9"}, {"lng"}),
        ({"lng": "116.4", "lat": " "}, {"lat"}),
        ({"lat": "north", "lng": "116.4"}, {"lat"}),
        ({"lat": "39.9", "lng": "116,4"}, {"lng"}),
        ({"lat": "90.001", "lng": "116.4"}, {"lat"}),
        ({"lat": "39.9", "lng": "-180.5"}, {"lng"}),
        ({"lat": "nan", "lng": "inf"}, {"lat", "lng"}),
        ({"lat": "39.9", "lng": "116.4", "crs": "baidu"}, {"crs"}),
        ({"lat": "99", "lng": "116.4", "crs": "baidu"}, {"lat", "crs"}),
    ],
)
def test_get_bad_input_is_a_400_with_field_errors(api, url, small_city, params, fields):
    response = api.get(url, params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body["errors"]) == fields
    assert body["detail"]


# --- POST -------------------------------------------------------------------------------------


def test_post_answers_in_input_order_with_ids(api, url, small_city):
    corner_lng, corner_lat = small_city.grid(f"{C1}01").shape.bounds[2:]
    points = [
        {"id": "b", "lat": 39.935, "lng": 116.435},
        {"lat": 39.905, "lng": 116.405},
        {"id": 7, "lat": 0, "lng": 0},
        {"id": "corner", "lat": corner_lat, "lng": corner_lng},
        {"id": "b", "lat": 39.915, "lng": 116.425},
        {"id": None, "lat": 39.915, "lng": 116.425},
    ]
    response = api.post(url, {"points": points}, format="json")
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r.get("id") for r in results] == ["b", None, 7, "corner", "b", None]
    assert "id" not in results[1] and "id" not in results[5]
    assert [r["grid"] and r["grid"]["code"] for r in results] == [
        f"{C2}04",
        f"{C1}01",
        None,
        f"{C1}01",
        f"{C2}01",
        f"{C2}01",
    ]
    assert results[2]["outside"] is True
    assert results[0]["community"]["code"] == C2
    assert results[0]["district"]["code"] == "110105"
    assert results[1]["point"] == {"lat": 39.905, "lng": 116.405}
    # Each result is what GET says about the same point.
    for point, result in zip(points, results, strict=True):
        single = api.get(url, {"lat": repr(point["lat"]), "lng": repr(point["lng"])}).json()
        assert {k: v for k, v in result.items() if k != "id"} == single


def test_post_with_a_chinese_crs(api, url, small_city):
    wgs = [(39.905, 116.405), (39.935, 116.435)]
    points = []
    for lat, lng in wgs:
        b_lng, b_lat = geo_crs.wgs84_to_bd09(lng, lat)
        points.append({"lat": b_lat, "lng": b_lng})
    results = api.post(url, {"crs": "bd09", "points": points}, format="json").json()["results"]
    assert [r["grid"]["code"] for r in results] == [f"{C1}01", f"{C2}04"]
    assert results[1]["point"]["lng"] == pytest.approx(116.435, abs=1e-8)


def test_post_an_empty_batch(api, url, small_city):
    response = api.post(url, {"points": []}, format="json")
    assert response.status_code == 200
    assert response.json() == {"results": []}


def test_post_up_to_the_limit(api, url, small_city, settings):
    limit = settings.CIVICGRID["LOCATE_BATCH_LIMIT"]
    assert limit == 10_000
    points = [{"lat": 39.90 + 0.04 * i / limit, "lng": 116.41} for i in range(limit)]
    response = api.post(url, {"points": points}, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == limit
    assert {r["grid"]["code"] for r in results} == {f"{C1}01", f"{C1}03"}

    response = api.post(url, {"points": [*points, points[0]]}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"points"}
    assert response.json()["code"] == "too_many_points"


def test_the_limit_is_a_setting(api, url, small_city, settings):
    settings.CIVICGRID = {**settings.CIVICGRID, "LOCATE_BATCH_LIMIT": 2}
    points = [{"lat": 39.905, "lng": 116.405}] * 3
    assert api.post(url, {"points": points[:2]}, format="json").status_code == 200
    assert api.post(url, {"points": points}, format="json").status_code == 400


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ([{"lat": 39.9, "lng": 116.4}], {"non_field_errors"}),
        ({}, {"points"}),
        ({"points": {"lat": 39.9, "lng": 116.4}}, {"points"}),
        ({"points": [{"lat": 39.9, "lng": 116.4}, [39.9, 116.4]]}, {"points[1]"}),
        ({"points": [{"lat": 39.9, "lng": 116.4}, {"lng": 116.4}]}, {"points[1].lat"}),
        ({"points": [{"lat": "39.9", "lng": 116.4}]}, {"points[0].lat"}),
        ({"points": [{"lat": 39.9, "lng": True}]}, {"points[0].lng"}),
        ({"points": [{"lat": 39.9, "lng": None}]}, {"points[0].lng"}),
        ({"points": [{"lat": 39.9, "lng": 116.4, "id": {"x": 1}}]}, {"points[0].id"}),
        (
            {
                "points": [
                    {"lat": 39.9, "lng": 116.4},
                    {"lat": 95, "lng": 116.4},
                    {"lat": 1, "lng": 181},
                ]
            },
            {"points[1].lat", "points[2].lng"},
        ),
        ({"crs": "epsg:3857", "points": [{"lat": 39.9, "lng": 116.4}]}, {"crs"}),
        ({"crs": 4326, "points": [{"lat": 39.9, "lng": 116.4}]}, {"crs"}),
    ],
)
def test_post_bad_input_is_a_400_naming_the_point(api, url, small_city, body, fields):
    response = api.post(url, body, format="json")
    assert response.status_code == 400, response.content
    assert set(response.json()["errors"]) == fields


def test_post_nan_in_json_is_refused(api, url, small_city):
    # NaN is not JSON; the strict parser refuses it before any point is read.
    response = api.post(
        url, '{"points": [{"lat": NaN, "lng": 116.4}]}', content_type="application/json"
    )
    assert response.status_code == 400
    assert "detail" in response.json()


def test_post_errors_are_capped(api, url, small_city):
    points = [{"lat": "x", "lng": "y"}] * 500
    response = api.post(url, {"points": points}, format="json")
    assert response.status_code == 400
    assert 0 < len(response.json()["errors"]) <= 21


# --- access and documentation --------------------------------------------------------------


def test_anonymous_callers_are_refused(url, small_city):
    client = APIClient()
    assert client.get(url, {"lat": "39.905", "lng": "116.405"}).status_code in (401, 403)
    response = client.post(url, {"points": [{"lat": 39.905, "lng": 116.405}]}, format="json")
    assert response.status_code in (401, 403)


def test_the_api_schema_documents_locate(api):
    response = api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    operations = schema["paths"]["/api/v1/locate"]
    assert {"get", "post"} <= set(operations)
    params = {p["name"]: p for p in operations["get"]["parameters"]}
    assert params["lat"]["required"] and params["lng"]["required"]
    assert set(params["crs"]["schema"]["enum"]) == {"wgs84", "gcj02", "bd09"}
    assert "400" in operations["post"]["responses"]
