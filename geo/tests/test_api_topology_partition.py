"""The topology API and the partition API (preview, accept) with their permissions."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from django.urls import reverse
from django.utils import translation
from rest_framework.test import APIClient

from accounts.models import AuditEntry, Membership, Role, User
from accounts.roles import sync_builtin_roles
from accounts.testing import verified_login
from geo.geometry import measure
from geo.models import Area, AreaLevel, Building, GridStaff
from geo.testing import box
from geo.topology import check_topology

pytestmark = pytest.mark.django_db

COMMUNITY = "110105001001"


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def client() -> APIClient:
    return APIClient(HTTP_ACCEPT_LANGUAGE="en")


def _member_of_district(username: str, role: str, city) -> User:
    sync_builtin_roles()
    user = User.objects.create_user(username=username)
    Membership.objects.create(user=user, role=Role.objects.get(code=role), area=city.district)
    return user


@pytest.fixture
def api(small_city):
    # A leader of the whole district: she sees every area but may not partition.
    return verified_login(client(), _member_of_district("worker", "leader", small_city))


@pytest.fixture
def admin_api(small_city):
    return verified_login(client(), _member_of_district("gis-admin", "admin", small_city))


@pytest.fixture
def buildings(small_city):
    community = small_city.communities[0]
    rng = np.random.default_rng(8)
    x0, y0, x1, y1 = community.shape.bounds
    Building.objects.bulk_create(
        Building(
            community=community,
            name=f"{i + 1}号楼",
            lng=float(rng.uniform(x0, x1)),
            lat=float(rng.uniform(y0, y1)),
            households=int(rng.integers(5, 81)),
            population=int(rng.integers(10, 200)),
        )
        for i in range(50)
    )
    return community


def grid_codes() -> list[str]:
    return list(
        Area.objects.filter(parent__code=COMMUNITY, level=AreaLevel.GRID)
        .order_by("code")
        .values_list("code", flat=True)
    )


def plant_overlap(small_city) -> None:
    x0, y0, x1, y1 = small_city.grid("11010500100101").shape.bounds
    m = measure(box(x0, y0, x1 + 0.001, y1))
    Area.objects.filter(code="11010500100101").update(geometry=m.wkb)


# --- topology ------------------------------------------------------------------------------


def test_topology_needs_a_signed_in_user(small_city):
    assert client().get(reverse("topology")).status_code in (401, 403)


def test_topology_of_a_clean_tree_is_an_empty_collection(api, small_city):
    response = api.get(reverse("topology"))
    assert response.status_code == 200
    assert response.json() == {"type": "FeatureCollection", "features": []}


def test_topology_reports_a_planted_overlap(api, small_city):
    plant_overlap(small_city)
    body = api.get(reverse("topology"), {"under": COMMUNITY}).json()
    (feature,) = body["features"]
    assert feature["geometry"]["type"] == "Polygon"
    properties = feature["properties"]
    assert properties["kind"] == "overlap" and properties["parent_code"] == COMMUNITY
    assert properties["codes"] == ["11010500100101", "11010500100102"]
    (problem,) = check_topology(root=small_city.communities[0])
    assert properties["area_m2"] == pytest.approx(problem.area_m2, abs=0.01)
    # The other community is clean, and a large tolerance hides the overlap.
    assert api.get(reverse("topology"), {"under": "110105001002"}).json()["features"] == []
    big = api.get(reverse("topology"), {"tolerance_m2": problem.area_m2 * 2}).json()
    assert big["features"] == []


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ({"under": "999999"}, 404, "code"),
        ({"tolerance_m2": "-1"}, 400, "tolerance_m2"),
        ({"tolerance_m2": "much"}, 400, "tolerance_m2"),
    ],
)
def test_topology_bad_queries(api, small_city, query, status, field):
    response = api.get(reverse("topology"), query)
    assert response.status_code == status
    body = response.json()
    assert field in body.get("errors", body)


# --- partition -----------------------------------------------------------------------------


def url(code: str = COMMUNITY) -> str:
    return reverse("areas-partition", args=[code])


def test_partition_is_for_admins_only(api, buildings):
    assert client().post(url(), {"grids": 5}, format="json").status_code in (401, 403)
    assert api.post(url(), {"grids": 5}, format="json").status_code == 403
    assert grid_codes() == [f"{COMMUNITY}0{i}" for i in range(1, 5)]


def test_preview_writes_nothing(admin_api, buildings):
    before = list(Area.objects.order_by("code").values_list("code", "geometry"))
    response = admin_api.post(url(), {"grids": 6, "seed": 1}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] is False
    preview = body["preview"]
    assert preview["type"] == "FeatureCollection" and len(preview["features"]) == 6
    codes = [f["properties"]["code"] for f in preview["features"]]
    assert codes == [f"{COMMUNITY}0{i}" for i in range(1, 7)]
    parts = [shapely.geometry.shape(f["geometry"]) for f in preview["features"]]
    assert all(p.geom_type == "Polygon" for p in parts)
    assert shapely.union_all(parts).symmetric_difference(buildings.shape).area < 1e-12
    total = sum(Building.objects.values_list("households", flat=True))
    spread = body["spread"]
    assert spread["grids"] == 6 and spread["total"] == total
    assert spread["min"] <= spread["median"] <= spread["max"]
    assert list(Area.objects.order_by("code").values_list("code", "geometry")) == before


def test_accept_writes_the_grids(admin_api, buildings):
    kept = Area.objects.get(code=f"{COMMUNITY}01").pk
    response = admin_api.post(url(), {"households_per_grid": 300, "accept": True}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["accepted"] is True
    codes = [f["properties"]["code"] for f in body["preview"]["features"]]
    assert grid_codes() == codes
    assert Area.objects.get(code=f"{COMMUNITY}01").pk == kept
    assert not Building.objects.filter(community=buildings, grid=None).exists()
    assert check_topology(root=buildings) == []
    entry = AuditEntry.objects.get(action="grid.partition")
    assert entry.actor_username == "gis-admin" and entry.object_id == str(buildings.pk)
    assert entry.before["grids"] == [f"{COMMUNITY}{n:02d}" for n in range(1, 5)]
    assert entry.after["grids"] == codes
    # The same request again changes nothing.
    again = admin_api.post(url(), {"households_per_grid": 300, "accept": True}, format="json")
    assert again.status_code == 201 and grid_codes() == codes


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "non_field_errors"),
        ({"grids": 3, "households_per_grid": 40}, "non_field_errors"),
        ({"grids": 0}, "grids"),
        ({"grids": 100}, "grids"),
        ({"grids": "many"}, "grids"),
        ({"households_per_grid": 0}, "households_per_grid"),
        ({"households_per_grid": 1}, "households_per_grid"),  # would make more than 99 grids
        ({"grids": 3, "seed": -1}, "seed"),
        ({"grids": 3, "accept": "perhaps"}, "accept"),
    ],
)
def test_partition_bad_requests_name_the_field(admin_api, buildings, data, field):
    response = admin_api.post(url(), data, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body.get("errors", body)
    assert grid_codes() == [f"{COMMUNITY}0{i}" for i in range(1, 5)]


def test_partition_of_what_is_not_a_community(admin_api, small_city):
    response = admin_api.post(url("110105001"), {"grids": 2}, format="json")
    assert response.status_code == 400
    assert "not a community" in response.json()["detail"]
    assert admin_api.post(url("999999999999"), {"grids": 2}, format="json").status_code == 404


def test_accept_refuses_to_remove_a_grid_with_staff(admin_api, buildings):
    grid = Area.objects.get(code=f"{COMMUNITY}04")
    leader = User.objects.create_user(username="zhang", display_name="张组长")
    GridStaff.objects.create(area=grid, user=leader, role=GridStaff.Role.LEADER)
    response = admin_api.post(url(), {"grids": 2, "accept": True}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "staffed"
    assert f"{COMMUNITY}04" in body["errors"]["grids"][0] and "张组长" in body["detail"]
    assert grid_codes() == [f"{COMMUNITY}0{i}" for i in range(1, 5)]


def test_the_endpoints_are_in_the_openapi_schema(api):
    schema = api.get(reverse("schema"), {"format": "json"}).json()
    assert "/api/v1/topology" in schema["paths"]
    assert "post" in schema["paths"]["/api/v1/areas/{code}/partition"]


def test_accept_outside_the_writers_scope_is_rolled_back(buildings):
    from accounts.scopes import OutsideScope
    from geo.partition import partition_community
    from geo.services import grids_partition_accept

    before = list(Area.objects.order_by("code").values_list("code", "geometry"))
    plan = partition_community(community=buildings, n_grids=3)
    with pytest.raises(OutsideScope):
        grids_partition_accept(community=buildings, plan=plan, scope=lambda code: False)
    assert list(Area.objects.order_by("code").values_list("code", "geometry")) == before
    assert not AuditEntry.objects.filter(action="grid.partition").exists()
