"""The map page in a real browser: polygons drawn, cards, drill-down, search, topology, partition."""

from __future__ import annotations

import pytest

from accounts.models import Membership, Role, User
from accounts.roles import sync_builtin_roles
from geo.demo import DEMO_ADMIN_USERNAME, DEMO_PASSWORD, DEMO_WORKER_USERNAME, DISTRICT_CODE
from geo.models import Area, AreaLevel, GridStaff

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AREA_PATHS = "path.area-path"

# A point well inside an SVG path that the path itself receives clicks at (not a
# neighbour's border drawn over it), in page coordinates; null when none is found.
POINT_INSIDE = """
(path) => {
  const svg = path.ownerSVGElement;
  const box = path.getBBox();
  const ctm = path.getScreenCTM();
  const cx = box.x + box.width / 2, cy = box.y + box.height / 2;
  const inside = (x, y) => {
    const p = svg.createSVGPoint(); p.x = x; p.y = y;
    return path.isPointInFill(p);
  };
  let best = null;
  const steps = 30;
  for (let i = 1; i < steps; i++) {
    for (let j = 1; j < steps; j++) {
      const x = box.x + (box.width * i) / steps, y = box.y + (box.height * j) / steps;
      if (!inside(x, y) || !inside(x + 4, y) || !inside(x - 4, y) || !inside(x, y + 4) || !inside(x, y - 4)) continue;
      const p = svg.createSVGPoint(); p.x = x; p.y = y;
      const s = p.matrixTransform(ctm);
      if (document.elementFromPoint(s.x, s.y) !== path) continue;
      const d = (x - cx) ** 2 + (y - cy) ** 2;
      if (!best || d < best.d) best = { x: s.x, y: s.y, d };
    }
  }
  return best && { x: best.x, y: best.y };
}
"""


def click_area(page, code: str) -> None:
    path = page.locator(f"path.area-{code}")
    path.wait_for()
    point = path.evaluate(POINT_INSIDE)
    assert point, f"no clickable point inside {code}"
    page.mouse.click(point["x"], point["y"])


def wait_for_panel(page, code: str) -> None:
    page.wait_for_selector(f'#panel .panel-body[data-code="{code}"]')


def wait_for_paths(page, count: int) -> None:
    page.wait_for_function(
        "([selector, n]) => document.querySelectorAll(selector).length === n",
        arg=[AREA_PATHS, count],
    )


def children(code: str) -> list[Area]:
    return list(Area.objects.filter(parent__code=code).order_by("code"))


def district_reader(password: str = "a-long-test-password-1") -> User:
    """Someone who may see the whole demo district (a leader, no two-factor needed)."""
    sync_builtin_roles()
    user = User.objects.create_user(username="zhaolei", password=password, display_name="赵磊")
    Membership.objects.create(
        user=user, role=Role.objects.get(code="leader"), area=Area.objects.get(code=DISTRICT_CODE)
    )
    return user


def test_grid_worker_sees_the_map_and_a_grid_card(demo_city, browsing):
    b = browsing()
    requests: list[str] = []
    b.page.on("request", lambda r: requests.append(r.url))
    b.sign_in(DEMO_WORKER_USERNAME, DEMO_PASSWORD)
    own = GridStaff.objects.filter(
        user__username=DEMO_WORKER_USERNAME, role=GridStaff.Role.WORKER
    ).select_related("area")
    grid = own[0].area

    page = b.page
    page.goto(b.url("/geo/map/"))
    # The worker may see her grids: the map opens on them (tests/browser/test_scoped_map.py
    # checks that they are all she sees).
    wait_for_panel(page, "")
    wait_for_paths(page, len(own))
    assert page.locator("path.leaflet-interactive").count() > 0

    b.mark_map_drawn()
    click_area(page, grid.code)
    wait_for_panel(page, grid.code)
    # The map moves from her grids as a list to the grid among its visible siblings.
    b.wait_for_map_redraw(len(own))
    card = page.locator("#area-card")
    assert card.get_attribute("data-code") == grid.code
    text = card.inner_text()
    assert grid.code in text
    assert grid.name in text and grid.name_en in text
    for staff in GridStaff.objects.filter(area=grid).select_related("user"):
        assert staff.user.display_name in text
    assert "grid worker" in text and "grid leader" in text
    assert card.locator('[data-field="households"]').inner_text() == str(grid.households)
    assert card.locator('[data-field="population"]').inner_text() == str(grid.population)
    assert f"?area={grid.code}" in page.url
    # The chosen grid is outlined; its neighbours are not.
    assert page.locator(f"path.area-{grid.code}").get_attribute("stroke") == "#f59e0b"
    b.screenshot("map_grid_card")

    # Offline by default: nothing was fetched from anywhere but CivicGrid itself.
    assert requests and all(url.startswith(b.base) for url in requests), requests


def test_drill_down_from_district_to_grid_and_back(demo_city, browsing):
    district_reader()
    b = browsing()
    b.sign_in("zhaolei", "a-long-test-password-1")
    page = b.page
    page.goto(b.url("/geo/map/"))

    streets = children(DISTRICT_CODE)
    wait_for_panel(page, DISTRICT_CODE)
    wait_for_paths(page, len(streets))
    b.screenshot("map_district")

    street = streets[1]
    page.click(f'#panel .arealist a[data-area="{street.code}"]')
    wait_for_panel(page, street.code)
    communities = children(street.code)
    wait_for_paths(page, len(communities))
    assert page.locator(".crumbs").inner_text().count("›") == 2

    community = communities[0]
    click_area(page, community.code)
    wait_for_panel(page, community.code)
    grids = children(community.code)
    wait_for_paths(page, len(grids))
    assert page.locator("#panel .arealist a[data-area]").count() == len(grids)

    grid = grids[-1]
    page.click(f'#panel .arealist a[data-area="{grid.code}"]')
    wait_for_panel(page, grid.code)
    assert grid.code in page.locator("#area-card").inner_text()
    # A grid is shown among its siblings.
    assert page.locator(AREA_PATHS).count() == len(grids)
    b.screenshot("map_drilled_to_grid")

    page.click(f'.crumbs a[data-area="{DISTRICT_CODE}"]')
    wait_for_panel(page, DISTRICT_CODE)
    wait_for_paths(page, len(streets))

    page.go_back()
    wait_for_panel(page, grid.code)
    wait_for_paths(page, len(grids))


def test_search_by_name_and_by_code(demo_city, browsing):
    district_reader()
    b = browsing()
    b.sign_in("zhaolei", "a-long-test-password-1")
    page = b.page
    page.goto(b.url("/geo/map/"))
    wait_for_panel(page, DISTRICT_CODE)

    community = Area.objects.filter(level=AreaLevel.COMMUNITY).order_by("code")[3]
    page.fill("#area-search", community.name[:2])
    result = page.locator(f'#search-results [data-code="{community.code}"]')
    result.wait_for()
    assert community.name in result.inner_text()
    b.screenshot("map_search")
    result.click()
    wait_for_panel(page, community.code)
    wait_for_paths(page, len(children(community.code)))
    assert page.locator("#search-results").is_hidden()

    # A grid's full code, then Enter: the grid's card among its siblings.
    grid = Area.objects.filter(level=AreaLevel.GRID, code__startswith="510177003").first()
    page.fill("#area-search", grid.code)
    page.locator(f'#search-results [data-code="{grid.code}"]').wait_for()
    page.press("#area-search", "Enter")
    wait_for_panel(page, grid.code)
    wait_for_paths(page, len(children(grid.parent.code)))
    assert page.locator(f"path.area-{grid.code}").get_attribute("stroke") == "#f59e0b"

    page.fill("#area-search", "no such place")
    page.locator("#search-results .search-message").wait_for()
    assert "No area matches." in page.locator("#search-results").inner_text()


def test_narrow_screen_puts_the_tree_under_the_map(demo_city, browsing):
    b = browsing(width=390, height=844)
    b.sign_in(DEMO_WORKER_USERNAME, DEMO_PASSWORD)
    page = b.page
    page.goto(b.url("/geo/map/"))
    page.wait_for_selector(AREA_PATHS)
    map_box = page.locator("#map").bounding_box()
    sidebar_box = page.locator(".sidebar").bounding_box()
    assert map_box["width"] >= 380
    assert sidebar_box["y"] >= map_box["y"] + map_box["height"] - 1
    page.screenshot(path=str(b.screenshot("map_narrow")), full_page=True)


def test_the_page_speaks_chinese_by_default_and_switches_to_english(demo_city, browsing):
    grid = GridStaff.objects.filter(user__username=DEMO_WORKER_USERNAME).first().area
    b = browsing(locale="zh-CN")
    b.sign_in(DEMO_WORKER_USERNAME, DEMO_PASSWORD)
    page = b.page
    page.goto(b.url(f"/geo/map/?area={grid.code}"))
    page.wait_for_selector(AREA_PATHS)
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert "户数" in page.locator("#area-card").inner_text()
    assert "拓扑问题" in page.locator(".maptools").inner_text()
    b.screenshot("map_zh")

    with page.expect_navigation():
        page.select_option(".langswitch select", "en")
    page.wait_for_selector(AREA_PATHS)
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Households" in page.locator("#area-card").inner_text()


def test_topology_problems_are_drawn(demo_city, browsing):
    from geo.testing import reshape_area

    district_reader()
    community = Area.objects.filter(level=AreaLevel.COMMUNITY).order_by("code").first()
    b = browsing()
    b.sign_in("zhaolei", "a-long-test-password-1")
    page = b.page
    page.goto(b.url(f"/geo/map/?area={community.code}"))
    wait_for_paths(page, len(children(community.code)))
    page.check("#toggle-topology")
    page.wait_for_function(
        "() => document.getElementById('map-status').textContent.includes('No topology problems')"
    )

    # Grow one grid over its neighbour: an overlap between siblings.
    first, second = children(community.code)[:2]
    reshape_area(first.code, first.shape.union(second.shape.buffer(-0.0002)))
    page.uncheck("#toggle-topology")
    page.check("#toggle-topology")
    page.wait_for_selector('path[fill="url(#cg-hatch-overlap)"]')
    assert "Topology problems:" in page.locator("#map-status").inner_text()
    b.screenshot("map_topology")


def test_admin_previews_and_accepts_a_partition(demo_city, admin_totp_key, browsing):
    community = Area.objects.filter(level=AreaLevel.COMMUNITY).order_by("code")[2]
    before = len(children(community.code))
    b = browsing()
    b.sign_in(DEMO_ADMIN_USERNAME, DEMO_PASSWORD, totp_key=admin_totp_key)
    page = b.page
    page.goto(b.url(f"/geo/map/?area={community.code}"))
    wait_for_paths(page, before)

    # Fewer grids would drop grids that still have staff: refused, with the reason shown.
    page.fill("#partition-value", str(before - 5))
    page.click("#partition-form button[type=submit]")
    page.locator("#partition-result").wait_for()
    page.click("#partition-accept")
    page.wait_for_selector("#partition-status.error")
    assert len(children(community.code)) == before

    # More grids keep every staffed code and add new ones.
    wanted = before + 3
    page.fill("#partition-value", str(wanted))
    page.click("#partition-form button[type=submit]")
    page.locator("#partition-result").wait_for()
    page.wait_for_function(
        "([n]) => document.querySelectorAll('path[stroke-dasharray=\"6 4\"]').length === n",
        arg=[wanted],
    )
    spread = page.locator("#partition-spread dd").all_inner_texts()
    assert len(spread) == 4
    total = int(spread[3].replace(",", ""))
    assert total == sum(g.households for g in children(community.code))
    b.screenshot("map_partition_preview")
    # Nothing is written by a preview.
    assert len(children(community.code)) == before

    page.click("#partition-accept")
    page.wait_for_function(
        "([n]) => document.querySelectorAll('#panel .arealist a[data-area]').length === n",
        arg=[wanted],
    )
    wait_for_paths(page, wanted)
    assert len(children(community.code)) == wanted
    assert page.locator("path.area-path").first.get_attribute("stroke-dasharray") is None
