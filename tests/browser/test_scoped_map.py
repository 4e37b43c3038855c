"""Scoped access on the map, in a real browser: a grid worker sees her grids and nothing else."""

from __future__ import annotations

import pytest

from geo.demo import DEMO_LEADER_USERNAME, DEMO_PASSWORD, DEMO_WORKER_USERNAME
from geo.models import Area, AreaLevel, GridStaff

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The area code of each drawn area polygon, read from its class ("area-<code>").
DRAWN_CODES = """
() => Array.from(document.querySelectorAll("path.area-path")).map((path) => {
  const cls = Array.from(path.classList).find((c) => /^area-[0-9]+$/.test(c));
  return cls ? cls.slice("area-".length) : null;
})
"""

# What the page's own script would get from the GeoJSON API, asked from inside the page.
FETCH_FEATURE_CODES = """
async (url) => {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) return { status: response.status, codes: [] };
  const body = await response.json();
  return { status: response.status, codes: body.features.map((f) => f.properties.code) };
}
"""


def own_grids(username: str, role: str) -> list[str]:
    return sorted(
        GridStaff.objects.filter(user__username=username, role=role).values_list(
            "area__code", flat=True
        )
    )


def wait_for_drawn(page, count: int) -> None:
    page.wait_for_function(
        "(n) => document.querySelectorAll('path.area-path').length === n", arg=count
    )


def assert_map_loaded(page) -> None:
    """The map's status line shows no error (such as map data it was refused)."""
    status = page.locator("#map-status")
    assert not (status.is_visible() and "error" in (status.get_attribute("class") or "")), (
        status.inner_text()
    )


def sidebar_codes(page) -> list[str]:
    return page.locator("#panel .arealist a[data-area]").evaluate_all(
        "(links) => links.map((a) => a.dataset.area)"
    )


def search(page, text: str) -> str:
    """Type into the map's search box and return what the result list says."""
    # Cleared first, so that the wait below cannot be met by the previous answer.
    page.evaluate(
        "() => { const r = document.getElementById('search-results');"
        " r.hidden = true; r.replaceChildren(); }"
    )
    page.fill("#area-search", text)
    page.wait_for_function(
        "() => { const r = document.getElementById('search-results');"
        " return !r.hidden && r.children.length > 0; }"
    )
    return page.locator("#search-results").inner_text()


def test_grid_worker_sees_only_her_grids(demo_city, browsing):
    grids = own_grids(DEMO_WORKER_USERNAME, GridStaff.Role.WORKER)
    assert 2 <= len(grids) <= 3
    community = grids[0][:12]
    # A grid of her own community that is not hers, and one of another street.
    neighbour = (
        Area.objects.filter(level=AreaLevel.GRID, parent__code=community)
        .exclude(code__in=grids)
        .order_by("code")
        .first()
    )
    elsewhere = (
        Area.objects.filter(level=AreaLevel.GRID)
        .exclude(code__startswith=community[:9])
        .order_by("-code")
        .first()
    )

    b = browsing()
    b.sign_in(DEMO_WORKER_USERNAME, DEMO_PASSWORD)
    page = b.page
    page.goto(b.url("/geo/map/"))

    # The map draws her grids, exactly, and the sidebar lists them.
    wait_for_drawn(page, len(grids))
    assert_map_loaded(page)
    assert sorted(page.evaluate(DRAWN_CODES)) == grids
    assert sorted(sidebar_codes(page)) == grids
    listed = page.locator("#panel .arealist").inner_text()
    for code in grids:
        assert code in listed
    b.screenshot("scoped_map_grid_worker")

    # The data behind the map holds nothing else, whatever the page asks for.
    for params in ("level=grid", "level=community", "level=street", "level=district", ""):
        got = page.evaluate(FETCH_FEATURE_CODES, b.url(f"/api/v1/areas/geojson?{params}"))
        assert got["status"] == 200, params
        assert set(got["codes"]) <= set(grids), (params, got["codes"])
    got = page.evaluate(FETCH_FEATURE_CODES, b.url("/api/v1/areas/geojson?level=grid"))
    assert sorted(got["codes"]) == grids
    for other in (neighbour.code, elsewhere.code, elsewhere.code[:12]):
        got = page.evaluate(FETCH_FEATURE_CODES, b.url(f"/api/v1/areas/geojson?under={other}"))
        assert got["status"] == 404, other

    # Searching for another grid's code finds nothing; her own grid is found.
    for other in (neighbour, elsewhere):
        text = search(page, other.code)
        assert "No area matches." in text, other.code
        assert page.locator("#search-results [data-code]").count() == 0
        text = search(page, other.name)
        assert "No area matches." in text, other.name
    search(page, grids[-1])
    assert page.locator("#search-results [data-code]").evaluate_all(
        "(items) => items.map((i) => i.dataset.code)"
    ) == [grids[-1]]
    page.fill("#area-search", "")

    # Another grid's card, and its place on the map, answer as if it did not exist.
    for other in (neighbour, elsewhere):
        assert page.request.get(b.url(f"/geo/areas/{other.code}/card/")).status == 404
        assert page.request.get(b.url(f"/geo/areas/{other.code}/panel/")).status == 404
        assert page.request.get(b.url(f"/geo/map/?area={other.code}")).status == 404
        assert page.request.get(b.url(f"/api/v1/areas/{other.code}/")).status == 404
    assert page.request.get(b.url(f"/geo/areas/{grids[0]}/card/")).status == 200

    # Opening one of her grids: its card, and still only her grids on the map.
    b.mark_map_drawn()
    page.click(f'#panel .arealist a[data-area="{grids[0]}"]')
    page.wait_for_selector(f'#panel .panel-body[data-code="{grids[0]}"]')
    card = page.locator("#area-card")
    assert card.get_attribute("data-code") == grids[0]
    assert grids[0] in card.inner_text()
    b.wait_for_map_redraw(len(grids))
    assert sorted(page.evaluate(DRAWN_CODES)) == grids
    assert page.locator(f"path.area-{grids[0]}").get_attribute("stroke") == "#f59e0b"
    assert neighbour.code not in page.locator("#panel").inner_text()
    b.screenshot("scoped_map_grid_worker_card")


def test_grid_leader_sees_her_community_and_no_other(demo_city, browsing):
    grids = own_grids(DEMO_LEADER_USERNAME, GridStaff.Role.LEADER)
    community = Area.objects.get(code=grids[0][:12])
    other = (
        Area.objects.filter(level=AreaLevel.GRID).exclude(parent=community).order_by("code").last()
    )

    b = browsing()
    b.sign_in(DEMO_LEADER_USERNAME, DEMO_PASSWORD)
    page = b.page
    page.goto(b.url("/geo/map/"))
    # One community in scope: the map opens inside it, with all of its grids.
    page.wait_for_selector(f'#panel .panel-body[data-code="{community.code}"]')
    wait_for_drawn(page, len(grids))
    assert_map_loaded(page)
    assert sorted(page.evaluate(DRAWN_CODES)) == grids
    assert sorted(sidebar_codes(page)) == grids

    assert "No area matches." in search(page, other.code)
    assert page.request.get(b.url(f"/geo/areas/{other.code}/card/")).status == 404
    b.screenshot("scoped_map_grid_leader")
