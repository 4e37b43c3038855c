"""The areas API: list, tree, detail, GeoJSON, export and import, with its permissions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation
from rest_framework.test import APIClient

from accounts.models import AuditEntry, Membership, Role, User
from accounts.roles import sync_builtin_roles
from accounts.testing import verified_login
from geo.importer import import_feature_collection
from geo.models import Area, AreaLevel, GridStaff
from geo.versioning import current_area_version

DATA = Path(__file__).parent / "data"
SMALL_CITY = DATA / "small_city.geojson"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    """Messages are checked in English, whatever LANGUAGE_CODE is."""
    with translation.override("en"):
        yield


@pytest.fixture
def user():
    return User.objects.create_user(username="worker", display_name="王网格")


def client() -> APIClient:
    """A client that asks for English, as the assertions read."""
    return APIClient(HTTP_ACCEPT_LANGUAGE="en")


@pytest.fixture
def api(user):
    return verified_login(client(), user)


@pytest.fixture
def admin_api():
    # Importing a new city needs geo.import_area over it before it exists: a superuser.
    root = User.objects.create_superuser(username="gis-admin", password=None)
    return verified_login(client(), root)


@pytest.fixture
def city(user):
    import_feature_collection(json.loads(SMALL_CITY.read_text(encoding="utf-8")))
    # The reader sees the whole district (reads are narrowed to a role's areas).
    sync_builtin_roles()
    Membership.objects.create(
        user=user, role=Role.objects.get(code="leader"), area=Area.objects.get(code="110105")
    )


def upload(name: str, content: bytes | str) -> SimpleUploadedFile:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def snapshot() -> list[tuple]:
    return list(
        Area.objects.order_by("code").values_list("id", "code", "name", "updated_at", "area_m2")
    )


# --- reads ---------------------------------------------------------------------------------


def test_reads_need_a_signed_in_user(city):
    anonymous = client()
    for name in ("areas-list", "areas-tree", "areas-geojson", "areas-export"):
        assert anonymous.get(reverse(name)).status_code in (401, 403), name
    url = reverse("areas-detail", args=["110105"])
    assert anonymous.get(url).status_code in (401, 403)


def test_list_is_paginated_without_boundaries(api, city):
    response = api.get(reverse("areas-list"))
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 12
    first = body["results"][0]
    assert first == {
        "code": "110105",
        "name": "朝阳区",
        "name_en": "Chaoyang",
        "level": "district",
        "parent_code": None,
        "households": 0,
        "population": 0,
        "area_m2": pytest.approx(first["area_m2"]),
        "bbox": pytest.approx([116.4, 39.9, 116.44, 39.94]),
        "has_boundary": True,
    }
    assert "geometry" not in first
    page = api.get(reverse("areas-list"), {"limit": 5, "offset": 10}).json()
    assert [a["code"] for a in page["results"]] == ["11010500100203", "11010500100204"]


@pytest.mark.parametrize(
    ("params", "codes"),
    [
        ({"level": "community"}, ["110105001001", "110105001002"]),
        ({"parent": "110105001002", "level": "grid"}, [f"1101050010020{i}" for i in range(1, 5)]),
        ({"q": "1101050010010"}, [f"1101050010010{i}" for i in range(1, 5)]),
        ({"q": "社区2第"}, [f"1101050010020{i}" for i in range(1, 5)]),
        ({"q": "jianwai"}, ["110105001"]),
        ({"parent": "110199"}, []),
    ],
)
def test_list_filters(api, city, params, codes):
    response = api.get(reverse("areas-list"), params)
    assert response.status_code == 200
    assert [a["code"] for a in response.json()["results"]] == codes


def test_list_refuses_an_unknown_level(api, city):
    response = api.get(reverse("areas-list"), {"level": "village"})
    assert response.status_code == 400
    assert "level" in response.json()["errors"]


def test_tree_nests_children(api, city):
    body = api.get(reverse("areas-tree")).json()
    assert [n["code"] for n in body] == ["110105"]
    street = body[0]["children"][0]
    assert street["level"] == "street"
    assert [c["code"] for c in street["children"]] == ["110105001001", "110105001002"]
    assert len(street["children"][1]["children"]) == 4
    shallow = api.get(reverse("areas-tree"), {"root": "110105001", "depth": 1}).json()
    assert [c["code"] for c in shallow[0]["children"]] == ["110105001001", "110105001002"]
    assert all(c["children"] == [] for c in shallow[0]["children"])
    assert api.get(reverse("areas-tree"), {"root": "110199"}).status_code == 404
    assert api.get(reverse("areas-tree"), {"depth": "deep"}).status_code == 400


def test_detail_has_ancestors_staff_and_boundary(api, user, city):
    grid = Area.objects.get(code="11010500100102")
    GridStaff.objects.create(area=grid, user=user, role=GridStaff.Role.WORKER)
    response = api.get(reverse("areas-detail", args=[grid.code]))
    assert response.status_code == 200
    body = response.json()
    assert [a["code"] for a in body["ancestors"]] == ["110105", "110105001", "110105001001"]
    assert body["ancestors"][0]["level"] == "district"
    assert body["children_count"] == 0
    (member,) = body["staff"]
    assert (member["role"], member["name"], member["username"]) == ("worker", "王网格", "worker")
    assert member["role_label"]  # "grid worker", in the request's language
    assert body["geometry"]["type"] == "Polygon"
    assert body["bbox"] == pytest.approx([116.41, 39.9, 116.42, 39.92])
    assert (body["households"], body["population"]) == (32, 96)
    community = api.get(reverse("areas-detail", args=["110105001001"])).json()
    assert community["children_count"] == 4 and community["staff"] == []
    missing = api.get(reverse("areas-detail", args=["11010500100109"]))
    assert missing.status_code == 404


def test_geojson_for_the_map(api, city, django_assert_max_num_queries):
    url = reverse("areas-geojson")
    with django_assert_max_num_queries(8):
        response = api.get(url, {"level": "grid", "under": "110105001001"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/geo+json"
    fc = json.loads(response.content)
    assert [f["properties"]["code"] for f in fc["features"]] == [
        f"1101050010010{i}" for i in range(1, 5)
    ]
    # Unchanged areas: the client's copy is still good.
    again = api.get(
        url, {"level": "grid", "under": "110105001001"}, HTTP_IF_NONE_MATCH=response["ETag"]
    )
    assert again.status_code == 304
    Area.objects.filter(code="11010500100101").first().save()  # any change bumps the version
    fresh = api.get(
        url, {"level": "grid", "under": "110105001001"}, HTTP_IF_NONE_MATCH=response["ETag"]
    )
    assert fresh.status_code == 200
    assert api.get(url, {"under": "110199"}).status_code == 404
    assert api.get(url, {"level": "hamlet"}).status_code == 400


def test_export_is_a_download_of_the_same_body(api, city):
    response = api.get(reverse("areas-export"), {"level": "grid"})
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="areas-grid.geojson"'
    exported = json.loads(b"".join(response.streaming_content))
    shown = json.loads(api.get(reverse("areas-geojson"), {"level": "grid"}).content)
    assert exported == shown and len(exported["features"]) == 8


# --- import ------------------------------------------------------------------------------------


def test_import_is_for_admins_only(api):
    response = api.post(
        reverse("areas-import"), {"file": upload("city.geojson", SMALL_CITY.read_bytes())}
    )
    assert response.status_code == 403
    assert not Area.objects.exists()
    anonymous = client().post(reverse("areas-import"), {"file": upload("c.geojson", b"{}")})
    assert anonymous.status_code in (401, 403)


def test_admin_imports_a_file_then_the_same_file_changes_nothing(admin_api):
    url = reverse("areas-import")
    version = current_area_version()
    response = admin_api.post(url, {"file": upload("city.geojson", SMALL_CITY.read_bytes())})
    assert response.status_code == 201, response.content
    report = response.json()
    assert report["created"] == {"district": 1, "street": 1, "community": 2, "grid": 8}
    assert report["written"] and report["source"] == "city.geojson"
    assert Area.objects.count() == 12 and current_area_version() > version
    entry = AuditEntry.objects.get(action="area.import")
    assert entry.actor_username == "gis-admin" and entry.object_repr == "city.geojson"
    assert entry.after["created"]["count"] == 12
    assert "11010500100101" in entry.after["created"]["codes"]
    again = admin_api.post(url, {"file": upload("city.geojson", SMALL_CITY.read_bytes())})
    assert again.status_code == 200
    assert again.json()["totals"] == {"created": 0, "updated": 0, "unchanged": 12}
    # Nothing written, nothing to audit.
    assert AuditEntry.objects.filter(action="area.import").count() == 1


def test_import_options_and_a_csv_division_list(admin_api):
    url = reverse("areas-import")
    csv_bytes = (DATA / "division_list.csv").read_bytes()
    dry = admin_api.post(url, {"file": upload("divisions.csv", csv_bytes), "dry_run": "true"})
    assert dry.status_code == 200
    assert dry.json()["dry_run"] is True and dry.json()["created"]["community"] == 4
    assert not Area.objects.exists()
    done = admin_api.post(url + "?crs=gcj02", {"file": upload("divisions.csv", csv_bytes)})
    assert done.status_code == 201 and done.json()["crs"] == "gcj02"
    assert Area.objects.count() == 7


def test_import_a_json_body(admin_api):
    fc = json.loads(SMALL_CITY.read_text(encoding="utf-8"))
    response = admin_api.post(reverse("areas-import") + "?dry_run=1", fc, format="json")
    assert response.status_code == 200 and response.json()["totals"]["created"] == 12
    assert not Area.objects.exists()
    response = admin_api.post(reverse("areas-import"), fc, format="json")
    assert response.status_code == 201


def test_a_bad_file_is_400_with_every_problem_and_nothing_written(admin_api, city):
    before, version = snapshot(), current_area_version()
    fc = json.loads(SMALL_CITY.read_text(encoding="utf-8"))
    for f in fc["features"]:
        f["properties"]["name"] += "·新"
    fc["features"][3]["properties"]["parent_code"] = "110105001009"
    fc["features"][10]["geometry"] = {"type": "LineString", "coordinates": [[116.4, 39.9]] * 2}
    (x0, y0), _b, (x1, y1), _d, _e = fc["features"][5]["geometry"]["coordinates"][0]
    fc["features"][5]["geometry"]["coordinates"] = [
        [[x0, y0], [x1, y1], [x1, y0], [x0, y1], [x0, y0]]
    ]
    response = admin_api.post(
        reverse("areas-import"), {"file": upload("city.geojson", json.dumps(fc))}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "import_refused"
    problems = body["errors"]["file"]
    assert len(problems) == 3
    assert problems[0].startswith("feature 3 (code 11010500100101): unknown parent 110105001009")
    assert problems[1].startswith("feature 5 (code 11010500100103): the boundary is invalid")
    assert "--repair" in problems[1]
    assert problems[2].startswith("feature 10 (code 11010500100203): the geometry is a LineString")
    assert snapshot() == before and current_area_version() == version


@pytest.mark.parametrize(
    ("name", "content", "field", "text"),
    [
        ("city.geojson", b"\x89PNG\r\n\x1a\n\x00\x00", "file", "not UTF-8"),
        ("city.geojson", "not json at all", "file", "not valid JSON"),
        ("city.geojson", b"", "file", "empty"),
        ("city.geojson", "[1, 2, 3]", "file", "not a GeoJSON FeatureCollection"),
        ("list.csv", "编码,名称\n1,2\n".encode("gbk"), "file", "not UTF-8"),
        ("list.csv", "code;name;level;parent_code\n", "file", "the header lacks"),
        ("upload", "code,name,level,parent_code\n110105,区,district,\n1101,x,y,z\n", "file",
         "line 3"),
    ],
)  # fmt: skip
def test_unreadable_uploads_are_400_not_500(admin_api, name, content, field, text):
    response = admin_api.post(reverse("areas-import"), {"file": upload(name, content)})
    assert response.status_code == 400, response.content
    messages = response.json()["errors"][field]
    assert any(text in m for m in messages), messages
    assert not Area.objects.exists()


@pytest.mark.parametrize(
    ("data", "query", "field"),
    [
        ({}, "", "file"),
        ({"file": None}, "?repair=perhaps", "repair"),
        ({"file": None}, "?crs=web-mercator", "crs"),
    ],
)
def test_bad_requests_name_the_field(admin_api, data, query, field):
    if "file" in data:
        data = {"file": upload("city.geojson", SMALL_CITY.read_bytes())}
    else:
        data = {"other": "x"}
    response = admin_api.post(reverse("areas-import") + query, data)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not Area.objects.exists()


def test_a_json_body_that_is_not_a_feature_collection(admin_api):
    response = admin_api.post(reverse("areas-import"), {"type": "Feature"}, format="json")
    assert response.status_code == 400
    assert "not a GeoJSON FeatureCollection" in response.json()["errors"]["file"][0]
    broken = admin_api.post(reverse("areas-import"), data="{oops", content_type="application/json")
    assert broken.status_code == 400


def test_export_import_round_trip_through_the_api(admin_api, city):
    before = {
        a.code: (a.parent_id and a.parent.code, a.name, bytes(a.geometry))
        for a in Area.objects.select_related("parent")
    }
    exported = b"".join(admin_api.get(reverse("areas-export")).streaming_content)
    Membership.objects.all().delete()  # they hold on to the areas
    for level in sorted(AreaLevel, reverse=True):
        Area.objects.filter(level=level).delete()
    response = admin_api.post(reverse("areas-import"), {"file": upload("areas.geojson", exported)})
    assert response.status_code == 201
    after = {
        a.code: (a.parent_id and a.parent.code, a.name, bytes(a.geometry))
        for a in Area.objects.select_related("parent")
    }
    assert after == before


def test_the_endpoints_are_in_the_openapi_schema():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    for route in (
        "/api/v1/areas/",
        "/api/v1/areas/tree",
        "/api/v1/areas/geojson",
        "/api/v1/areas/export",
        "/api/v1/areas/import",
        "/api/v1/areas/{code}/",
    ):
        assert route in paths, route
    import_op = paths["/api/v1/areas/import"]["post"]
    assert "multipart/form-data" in import_op["requestBody"]["content"]
    assert {"200", "201", "400", "403"} <= set(import_op["responses"])
    listed = {p["name"] for p in paths["/api/v1/areas/"]["get"]["parameters"]}
    assert {"level", "parent", "q", "limit", "offset"} <= listed


def test_ancestors_reach_the_city_in_few_queries(city, django_assert_max_num_queries):
    from geo import selectors

    fc = json.loads(SMALL_CITY.read_text(encoding="utf-8"))
    fc["features"].insert(
        0,
        {
            "type": "Feature",
            "properties": {"code": "110100", "name": "北京市", "level": "city"},
            "geometry": None,
        },
    )
    fc["features"][1]["properties"]["parent_code"] = "110100"
    import_feature_collection(fc)
    grid = selectors.area_get(code="11010500100204")
    with django_assert_max_num_queries(1):
        chain = selectors.area_ancestors(grid)
    assert [a.code for a in chain] == ["110100", "110105", "110105001", "110105001002"]
    assert selectors.area_ancestors(chain[0]) == []
    tree = selectors.area_tree()
    assert [n["code"] for n in tree] == ["110100"]
    assert tree[0]["children"][0]["code"] == "110105"
