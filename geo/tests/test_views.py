"""The map page and its server-rendered sidebar pieces (panel, card)."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from accounts.models import Membership
from accounts.roles import sync_builtin_roles
from accounts.testing import verified_login
from geo.models import Area, GridStaff

GRID = "11010500100102"
COMMUNITY = "110105001001"


@pytest.fixture
def staffed_city(small_city, django_user_model):
    worker = django_user_model.objects.create_user(username="liming", display_name="李明")
    leader = django_user_model.objects.create_user(username="wangfang", display_name="王芳")
    for grid in small_city.grids[:4]:
        GridStaff.objects.create(area=grid, user=leader, role=GridStaff.Role.LEADER)
    GridStaff.objects.create(area=small_city.grid(GRID), user=worker, role=GridStaff.Role.WORKER)
    return small_city


def _member(django_user_model, username: str, role_code: str, code: str, **extra):
    """A user who may see the subtree of ``code`` through a built-in role."""
    sync_builtin_roles()
    user = django_user_model.objects.create_user(username=username, **extra)
    Membership.objects.create(
        user=user, role_id=_role_id(role_code), area=Area.objects.get(code=code)
    )
    return user


def _role_id(code: str) -> int:
    from accounts.models import Role

    return Role.objects.get(code=code).pk


@pytest.fixture
def viewer(staffed_city, client, django_user_model):
    user = _member(django_user_model, "viewer", "leader", "110105")
    client.force_login(user)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def _config(response) -> dict:
    html = response.content.decode()
    match = re.search(r'<script id="map-config" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the page carries its map configuration"
    return json.loads(match.group(1))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        reverse("geo:map"),
        reverse("geo:root-panel"),
        reverse("geo:area-panel", args=[COMMUNITY]),
        reverse("geo:area-card", args=[GRID]),
    ],
)
def test_pages_require_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_map_page_starts_inside_the_only_root(viewer):
    response = viewer.get(reverse("geo:map"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-code="110105"' in html
    # The streets of the district are listed with the households of their grids.
    assert 'data-area="110105001"' in html
    assert "vendor/leaflet/leaflet.js" in html and "js/map.js" in html
    config = _config(response)
    assert config["urls"]["geojson"] == reverse("areas-geojson")
    assert config["urls"]["list"] == reverse("areas-list")
    assert config["urls"]["card"].replace(config["placeholder"], GRID) == reverse(
        "geo:area-card", args=[GRID]
    )
    assert config["isStaff"] is False


def test_map_page_at_the_top_lists_the_roots(viewer):
    response = viewer.get(reverse("geo:map") + "?area=")
    html = response.content.decode()
    assert 'data-code=""' in html
    assert 'data-area="110105"' in html


def test_offline_map_has_no_tile_layer(viewer, settings):
    settings.CIVICGRID = {**settings.CIVICGRID, "MAP_TILE_URL": ""}
    response = viewer.get(reverse("geo:map"))
    assert _config(response)["tiles"]["url"] == ""
    assert "no-tiles" in response.content.decode()
    tiles = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    settings.CIVICGRID = {**settings.CIVICGRID, "MAP_TILE_URL": tiles}
    response = viewer.get(reverse("geo:map"))
    assert _config(response)["tiles"]["url"] == tiles
    assert "no-tiles" not in response.content.decode()


def test_grid_card_shows_names_staff_and_figures(viewer, staffed_city):
    grid = staffed_city.grid(GRID)
    response = viewer.get(reverse("geo:area-card", args=[GRID]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # a fragment for htmx, not a page
    assert GRID in html
    assert grid.name in html and grid.name_en in html
    assert "李明" in html and "liming" in html
    assert "王芳" in html
    assert "grid worker" in html and "grid leader" in html
    assert f'data-field="households">{grid.households}<' in html
    assert f'data-field="population">{grid.population}<' in html
    # About 0.85 km × 2.2 km: in square kilometres.
    assert f'data-field="area">{grid.area_m2 / 1e6:.2f}<small class="unit">km²' in html
    # Smaller than a square kilometre: in square metres, with separators.
    Area.objects.filter(code=GRID).update(area_m2=65915.4)
    html = viewer.get(reverse("geo:area-card", args=[GRID])).content.decode()
    assert 'data-field="area">65,915<small class="unit">m²' in html


def test_grid_card_without_staff_says_so(viewer, staffed_city):
    response = viewer.get(reverse("geo:area-card", args=["11010500100201"]))
    assert "No staff assigned." in response.content.decode()


def test_community_card_sums_its_grids_and_names_its_leader(viewer, staffed_city):
    response = viewer.get(reverse("geo:area-panel", args=[COMMUNITY]))
    html = response.content.decode()
    grids = [g for g in staffed_city.grids if g.code.startswith(COMMUNITY)]
    total = sum(g.households for g in grids)
    assert f'data-field="households">{total}<' in html
    assert f'data-field="grids">{len(grids)}<' in html
    assert "王芳" in html and "Grid leaders" in html
    for g in grids:
        assert f'data-area="{g.code}"' in html
    # The path up the tree, each step a link.
    assert 'data-area="110105"' in html and 'data-area="110105001"' in html


def test_grid_panel_has_the_card_and_no_children(viewer):
    response = viewer.get(reverse("geo:area-panel", args=[GRID]))
    html = response.content.decode()
    assert 'id="area-card"' in html and f'data-code="{GRID}"' in html
    assert f'data-parent="{COMMUNITY}"' in html
    assert 'class="arealist"' not in html


@pytest.mark.parametrize("name", ["geo:area-card", "geo:area-panel"])
def test_unknown_code_is_404(viewer, name):
    assert viewer.get(reverse(name, args=["99999999999999"])).status_code == 404
    assert viewer.get(reverse(name, args=["not-a-code"])).status_code == 404


def test_unknown_code_on_the_map_page_is_404(viewer):
    assert viewer.get(reverse("geo:map") + "?area=123").status_code == 404


def test_areas_outside_the_scope_are_404(staffed_city, client, django_user_model):
    user = _member(django_user_model, "scoped", "grid_worker", COMMUNITY)
    client.force_login(user)
    assert client.get(reverse("geo:area-card", args=[GRID])).status_code == 200
    assert client.get(reverse("geo:area-card", args=["11010500200201"])).status_code == 404
    assert client.get(reverse("geo:area-panel", args=["110105002"])).status_code == 404
    # The map opens at the top of what the user may see, the path above it is not a link.
    response = client.get(reverse("geo:map"))
    html = response.content.decode()
    assert f'data-code="{COMMUNITY}"' in html
    assert 'data-area="110105"' not in html
    assert '<span class="closed">朝阳区</span>' in html


def test_user_without_any_role_sees_no_areas(staffed_city, client, django_user_model):
    client.force_login(django_user_model.objects.create_user(username="nobody"))
    response = client.get(reverse("geo:map"), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert "No areas yet." in response.content.decode()
    assert client.get(reverse("geo:area-card", args=[GRID])).status_code == 404


def test_partition_panel_is_for_admins_on_communities(staffed_city, client, django_user_model):
    # The admin role carries geo.partition_area; admins pass two-factor first.
    staff = _member(django_user_model, "staffer", "admin", "110105", is_staff=True)
    verified_login(client, staff)
    html = client.get(reverse("geo:area-panel", args=[COMMUNITY])).content.decode()
    assert 'id="partition-form"' in html
    assert (
        'id="partition-form"'
        not in client.get(reverse("geo:area-panel", args=["110105001"])).content.decode()
    )
    assert _config(client.get(reverse("geo:map")))["isStaff"] is True


def test_partition_panel_is_hidden_from_other_staff(viewer):
    html = viewer.get(reverse("geo:area-panel", args=[COMMUNITY])).content.decode()
    assert 'id="partition-form"' not in html


def test_admin_sees_the_whole_tree(admin_client, staffed_city):
    response = admin_client.get(reverse("geo:map"))
    assert response.status_code == 200
    assert 'data-code="110105"' in response.content.decode()
    assert _config(response)["isStaff"] is True


def test_panel_queries_do_not_grow_with_the_children(
    viewer, django_assert_max_num_queries, staffed_city
):
    # Session, user, memberships, the area, its path, children and one grouped sum.
    with django_assert_max_num_queries(12):
        viewer.get(reverse("geo:area-panel", args=["110105"]))
    with django_assert_max_num_queries(12):
        viewer.get(reverse("geo:area-panel", args=[COMMUNITY]))
