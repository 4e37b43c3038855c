"""The scope decisions of the geography API and the helpers behind them, one by one.

The walk (test_scope_walk.py) proves nothing leaks; the matrix
(test_scope_matrix.py) proves who sees what. These pin down the shapes chosen:
what a scoped locate answers, which ancestors a detail names, where a scoped
tree starts, how an import outside the importer's areas is refused, the 404
and 403 of partitioning, and the helpers views build on.
"""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404
from django.test import RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import AuditEntry, Department, Role
from accounts.scopes import (
    METHOD_ACTIONS,
    OutsideScope,
    RestrictedQuerysetMixin,
    ensure_in_scope,
    get_object_for_action,
    restricted_get_object_or_404,
    scope_test,
)
from accounts.testing import verified_login
from geo.models import Area, Building, GridStaff
from geo.testing import box
from geo.versioning import bump_area_version

from .scope_world import World, make_world, user_over

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> World:
    return make_world()


def api_for(user) -> APIClient:
    return verified_login(APIClient(HTTP_ACCEPT_LANGUAGE="en"), user)


def builtin(world: World, code: str) -> Role:
    return world.roles[code]


def role_with(code: str, *perms: str) -> Role:
    from django.contrib.auth.models import Permission

    role = Role.objects.create(code=code, name=code)
    for perm in perms:
        app_label, codename = perm.split(".")
        role.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return role


def centre(area: Area) -> dict:
    return {"lat": (area.min_lat + area.max_lat) / 2, "lng": (area.min_lng + area.max_lng) / 2}


def denials(user) -> int:
    return AuditEntry.objects.filter(action="permission_denied", actor_id=user.pk).count()


# --- locate ---------------------------------------------------------------------------------


def test_locate_names_only_the_links_inside_the_callers_scope(world):
    clerk = user_over("clerk", world.a.community, role=builtin(world, "intake_clerk"))
    api = api_for(clerk)
    mine = api.get(reverse("locate"), centre(world.a.grid)).json()
    assert mine["outside"] is False and mine["in_scope"] is True
    assert mine["grid"]["code"] == world.a.grid.code
    assert mine["community"]["code"] == world.a.community.code
    # Above her community: the street and district are not hers to name.
    assert mine["street"] is None and mine["district"] is None and mine["city"] is None

    theirs = api.get(reverse("locate"), centre(world.b.grid)).json()
    assert theirs["outside"] is False and theirs["in_scope"] is False
    assert all(theirs[k] is None for k in ("grid", "community", "street", "district", "city"))

    nowhere = api.get(reverse("locate"), {"lat": 31.23, "lng": 121.47}).json()
    assert nowhere["outside"] is True and nowhere["in_scope"] is False


def test_locate_batch_answers_like_get_without_a_query_per_point(
    world, django_assert_max_num_queries
):
    clerk = user_over("clerk", world.a.community, role=builtin(world, "intake_clerk"))
    api = api_for(clerk)
    points = [centre(world.a.grids[i % 4]) for i in range(300)]
    points += [centre(world.b.grids[i % 4]) for i in range(300)]
    api.get(reverse("locate"), points[0])  # build the index outside the count
    with django_assert_max_num_queries(12):
        response = api.post(reverse("locate"), {"points": points}, format="json")
    results = response.json()["results"]
    assert [r["in_scope"] for r in results] == [True] * 300 + [False] * 300
    assert results[0] == api.get(reverse("locate"), points[0]).json()
    assert results[-1] == api.get(reverse("locate"), points[-1]).json()


def test_locate_needs_a_role_that_may_view_areas(world):
    auditor = user_over("aud", world.a.community, role=builtin(world, "auditor"))
    api = api_for(auditor)
    assert api.get(reverse("locate"), centre(world.a.grid)).status_code == 403
    assert api.post(reverse("locate"), {"points": []}, format="json").status_code == 403
    assert denials(auditor) == 2


def test_locate_documents_its_scope_in_the_schema(world):
    root = user_over("root", None, is_superuser=True)
    schema = api_for(root).get("/api/schema/", {"format": "json"}).json()
    get = schema["paths"]["/api/v1/locate"]["get"]
    assert "in_scope" in get["description"] and "403" in get["responses"]
    location = schema["components"]["schemas"]["Location"]
    assert "in_scope" in location["properties"] and "in_scope" in location["required"]


# --- areas: detail, tree, list, geojson -------------------------------------------------------


def test_detail_names_only_ancestors_in_scope_and_staff_the_role_may_see(world):
    leader = user_over("gl", world.a.community, role=builtin(world, "grid_leader"))
    body = api_for(leader).get(reverse("areas-detail", args=[world.a.grid.code])).json()
    assert [a["code"] for a in body["ancestors"]] == [world.a.community.code]
    assert world.a.worker.username in {s["username"] for s in body["staff"]}

    # A role that may see areas but not the people working them.
    areas_only = role_with("areas_only", "geo.view_area")
    viewer = user_over("v", world.a.community, role=areas_only)
    body = api_for(viewer).get(reverse("areas-detail", args=[world.a.grid.code])).json()
    assert body["staff"] == []
    card = api_for(viewer).get(reverse("geo:area-card", args=[world.a.grid.code]))
    html = card.content.decode()
    assert world.a.worker.username not in html and world.a.building.name not in html


def test_children_are_counted_within_scope(world):
    worker = user_over("w", world.a.grid, role=builtin(world, "grid_worker"))
    leader = user_over("gl", world.a.community, role=builtin(world, "grid_leader"))
    body = api_for(leader).get(reverse("areas-detail", args=[world.a.community.code])).json()
    assert body["children_count"] == 4
    assert (
        api_for(worker).get(reverse("areas-detail", args=[world.a.community.code])).status_code
        == 404
    )


def test_a_scoped_tree_starts_at_the_top_of_the_scope(world):
    worker = user_over("w", world.a.grid, role=builtin(world, "grid_worker"))
    tree = api_for(worker).get(reverse("areas-tree")).json()
    assert [n["code"] for n in tree] == [world.a.grid.code] and tree[0]["children"] == []

    leader = user_over("gl", world.a.community, role=builtin(world, "grid_leader"))
    api = api_for(leader)
    (top,) = api.get(reverse("areas-tree")).json()
    assert top["code"] == world.a.community.code and len(top["children"]) == 4
    (shallow,) = api.get(reverse("areas-tree"), {"depth": 0}).json()
    assert shallow["children"] == []
    assert api.get(reverse("areas-tree"), {"root": world.b.community.code}).status_code == 404
    assert api.get(reverse("areas-tree"), {"root": world.city.street.code}).status_code == 404


def test_a_tree_with_roots_at_several_levels_counts_depth_from_each(world):
    user = user_over("two", world.a.community, role=builtin(world, "grid_leader"))
    user.memberships.create(role=builtin(world, "grid_worker"), area=world.b.grid)
    tree = api_for(user).get(reverse("areas-tree"), {"depth": 1}).json()
    assert [n["code"] for n in tree] == [world.a.community.code, world.b.grid.code]
    assert len(tree[0]["children"]) == 4


def test_geojson_etag_differs_between_scopes(world):
    a = api_for(user_over("a", world.a.community, role=builtin(world, "leader")))
    b = api_for(user_over("b", world.b.community, role=builtin(world, "leader")))
    first = a.get(reverse("areas-geojson"))
    assert a.get(reverse("areas-geojson"), HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    # The same URL, unchanged areas, another scope: B must not be told "use your copy".
    other = b.get(reverse("areas-geojson"), HTTP_IF_NONE_MATCH=first["ETag"])
    assert other.status_code == 200 and other["ETag"] != first["ETag"]
    codes = {f["properties"]["code"] for f in json.loads(other.content)["features"]}
    assert world.b.grid.code in codes and world.a.grid.code not in codes


# --- import -------------------------------------------------------------------------------------


def _feature(area: Area, name: str) -> dict:
    return {
        "type": "Feature",
        "geometry": json.loads(json.dumps(area.shape.__geo_interface__)),
        "properties": {
            "code": area.code,
            "name": name,
            "level": "grid",
            "parent_code": area.parent.code,
        },
    }


def _collection(*features) -> dict:
    return {"type": "FeatureCollection", "features": list(features)}


def test_an_importer_writes_inside_her_areas_only(world):
    importer = user_over("imp", world.a.community, role=role_with("importer", "geo.import_area"))
    api = api_for(importer)
    ok = api.post(
        reverse("areas-import"), _collection(_feature(world.a.grid, "新名")), format="json"
    )
    assert ok.status_code == 201, ok.content
    assert Area.objects.get(code=world.a.grid.code).name == "新名"

    refused = api.post(
        reverse("areas-import"),
        _collection(_feature(world.a.grids[1], "甲"), _feature(world.b.grid, "乙")),
        format="json",
    )
    assert refused.status_code == 403
    body = refused.json()
    assert body["code"] == "outside_scope"
    (problem,) = body["errors"]["file"]
    assert problem.startswith(f"feature 1 (code {world.b.grid.code}): is outside the areas")
    # Nothing written, not even the feature inside her areas; the refusal is audited.
    assert Area.objects.get(code=world.a.grids[1].code).name == world.a.grids[1].name
    assert Area.objects.get(code=world.b.grid.code).name == world.b.grid.name
    assert denials(importer) == 1


def test_importing_needs_the_import_permission(world):
    admin_of_nothing = user_over("l", world.a.community, role=builtin(world, "leader"))
    response = api_for(admin_of_nothing).post(
        reverse("areas-import"), _collection(_feature(world.a.grid, "x")), format="json"
    )
    assert response.status_code == 403
    assert Area.objects.get(code=world.a.grid.code).name == world.a.grid.name


def test_is_staff_alone_grants_nothing(world):
    staff = user_over("st", None, is_staff=True)
    api = api_for(staff)
    assert api.get(reverse("areas-list")).json()["count"] == 0
    response = api.post(
        reverse("areas-import"), _collection(_feature(world.a.grid, "x")), format="json"
    )
    assert response.status_code == 403
    partition = reverse("areas-partition", args=[world.a.community.code])
    assert api.post(partition, {"grids": 2}, format="json").status_code == 404


# --- topology and partition ---------------------------------------------------------------------


def _grow(area: Area, into: Area) -> None:
    """Stretch ``area`` east over part of ``into``: an overlap (and an outside) to report."""
    from geo.geometry import measure

    m = measure(box(area.min_lng, area.min_lat, into.min_lng + 0.001, area.max_lat))
    Area.objects.filter(pk=area.pk).update(
        geometry=m.wkb, min_lng=m.min_lng, max_lng=m.max_lng, area_m2=m.area_m2
    )
    bump_area_version()


def test_topology_shows_problems_inside_the_scope_only(world):
    _grow(world.a.grids[0], world.a.grids[1])  # inside community A
    _grow(world.a.community, world.b.community)  # A's boundary over B's: a street problem
    leader = user_over("gl", world.a.community, role=builtin(world, "grid_leader"))
    body = api_for(leader).get(reverse("topology")).json()
    parents = {f["properties"]["parent_code"] for f in body["features"]}
    assert parents == {world.a.community.code}
    street_reader = user_over("st", world.city.street, role=builtin(world, "leader"))
    wide = api_for(street_reader).get(reverse("topology")).json()
    assert world.city.street.code in {f["properties"]["parent_code"] for f in wide["features"]}
    worker = user_over("w", world.a.grid, role=builtin(world, "grid_worker"))
    assert api_for(worker).get(reverse("topology")).json()["features"] == []


def test_partition_is_404_out_of_scope_and_403_without_the_permission(world):
    leader = user_over("gl", world.a.community, role=builtin(world, "grid_leader"))
    api = api_for(leader)
    mine = reverse("areas-partition", args=[world.a.community.code])
    theirs = reverse("areas-partition", args=[world.b.community.code])
    assert api.post(theirs, {"grids": 2}, format="json").status_code == 404
    assert api.post(mine, {"grids": 2}, format="json").status_code == 403
    assert denials(leader) == 1

    admin = user_over("ad", world.a.community, role=builtin(world, "admin"))
    api = api_for(admin)
    assert api.post(theirs, {"grids": 2}, format="json").status_code == 404
    assert api.post(mine, {"grids": 2}, format="json").status_code == 200


def test_the_partition_tool_shows_for_the_permission_not_for_is_staff(world, client):
    staff = user_over("st", world.a.community, role=builtin(world, "leader"), is_staff=True)
    client.force_login(staff)
    panel = reverse("geo:area-panel", args=[world.a.community.code])
    assert 'id="partition-form"' not in client.get(panel).content.decode()
    admin = user_over("ad", world.a.community, role=builtin(world, "admin"))
    verified_login(client, admin)
    assert 'id="partition-form"' in client.get(panel).content.decode()


# --- the helpers ----------------------------------------------------------------------------------


def test_restricted_get_object_or_404_treats_out_of_scope_as_absent(world):
    dispatcher = user_over("d", world.a.community, role=builtin(world, "dispatcher"))
    found = restricted_get_object_or_404(Department, dispatcher, pk=world.a.department.pk)
    assert found == world.a.department
    for pk in (world.b.department.pk, 987654):
        with pytest.raises(Http404):
            restricted_get_object_or_404(Department.objects.all(), dispatcher, pk=pk)


def test_get_object_for_action_is_404_unseen_and_403_unpermitted(world):
    dispatcher = user_over("d", world.a.community, role=builtin(world, "dispatcher"))
    with pytest.raises(PermissionDenied):
        get_object_for_action(Department, dispatcher, "change", pk=world.a.department.pk)
    with pytest.raises(Http404):
        get_object_for_action(Department, dispatcher, "change", pk=world.b.department.pk)
    admin = user_over("ad", world.a.community, role=builtin(world, "admin"))
    obj = get_object_for_action(Department, admin, "change", pk=world.a.department.pk)
    assert obj == world.a.department


def test_ensure_in_scope_rolls_a_write_back(world):
    admin = user_over("ad", world.a.community, role=builtin(world, "admin"))
    department = world.a.department
    with pytest.raises(OutsideScope), transaction.atomic():
        Department.objects.filter(pk=department.pk).update(area=world.b.community)
        department.refresh_from_db()
        ensure_in_scope(department, admin, "change")
    department.refresh_from_db()
    assert department.area_id == world.a.community.pk
    ensure_in_scope(department, admin, "change")  # inside: no error


def test_scope_test_decides_codes_without_queries(world, django_assert_num_queries):
    leader = user_over("gl", world.a.community, role=builtin(world, "grid_leader"))
    inside = scope_test(leader, "geo.view_area")
    with django_assert_num_queries(0):
        assert inside(world.a.grid.code) and not inside(world.b.grid.code)
        assert not inside(world.city.street.code)
    root = user_over("root", None, is_superuser=True)
    assert scope_test(root, "geo.view_area")(world.b.grid.code)
    assert not scope_test(user_over("n", None), "geo.view_area")(world.a.grid.code)


def test_buildings_are_in_their_community_and_in_their_grid(world):
    worker = user_over("w", world.a.grid, role=builtin(world, "grid_worker"))
    names = set(Building.objects.restrict(worker, "view").values_list("name", flat=True))
    assert names == {world.a.building.name}
    leader = user_over("gl", world.a.community, role=builtin(world, "grid_leader"))
    names = set(Building.objects.restrict(leader, "view").values_list("name", flat=True))
    assert names == {world.a.building.name, world.neighbour_building.name}


def test_the_mixin_restricts_by_the_requests_action(world):
    class Base:
        def get_queryset(self):
            return GridStaff.objects.all()

    class View(RestrictedQuerysetMixin, Base):
        pass

    worker = user_over("w", world.a.grid, role=builtin(world, "grid_worker"))
    view = View()
    view.request = RequestFactory().get("/")
    view.request.user = worker
    assert {s.area_id for s in view.get_queryset()} == {world.a.grid.pk}
    view.request = RequestFactory().delete("/")
    view.request.user = worker
    assert not view.get_queryset().exists()  # grid workers may not delete grid staff
    assert METHOD_ACTIONS["PATCH"] == "change" and METHOD_ACTIONS["POST"] == "add"
    view.restrict_action = "view"
    assert view.get_queryset().exists()
