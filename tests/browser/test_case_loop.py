"""The case loop in a real browser, each step taken by the person whose job it is.

One case goes report → file → dispatch → send back → re-dispatch → accept →
handle → failed check → rework → check → close; another climbs from the grid
to the street command center, which dispatches it.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from cases.models import Case, CaseState
from cases.testing import GRID_POINT, make_case_world, member
from geo.testing import make_small_city

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "loop-test-password-1"


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def world(transactional_db):
    world = make_case_world(make_small_city())
    world.users["community_clerk"] = member(
        "community_clerk", "intake_clerk", world.city.grids[0].parent
    )
    for user in world.users.values():
        user.set_password(PASSWORD)
        user.save()
    return world


class Staff:
    """One signed-in person in her own browser context."""

    def __init__(self, browsing, username: str):
        self.b = browsing(locale="en-US", width=1280)
        self.b.sign_in(username, PASSWORD)
        self.page = self.b.page

    def open_case(self, number: str) -> None:
        self.page.goto(self.b.url(f"/cases/{number}/"))
        self.page.wait_for_selector("#case-head")

    def act(self, number: str, action: str, *, to: str, fill=None, select=None, photo=False):
        """Take ``action`` from the case page and wait until the page shows the case
        moved on (a new version) to state ``to``."""
        self.open_case(number)
        page = self.page
        version = page.get_attribute("#case-head", "data-version")
        page.click(f'summary[data-action-toggle="{action}"]')
        for field, value in (fill or {}).items():
            page.fill(f"#id_{action}_{field}", value)
        for field, value in (select or {}).items():
            page.select_option(f"#id_{action}_{field}", value)
        if photo:
            page.set_input_files(
                f"#id_{action}_photos",
                files=[{"name": "result.jpg", "mimeType": "image/jpeg", "buffer": jpeg_bytes()}],
            )
        page.click(f'#action-{action} button[data-action="{action}"]')
        page.wait_for_selector(f'#case-head[data-state="{to}"]:not([data-version="{version}"])')

    def close(self):
        self.b.close()


def report_in_browser(staff: Staff, world, description: str) -> str:
    page = staff.page
    page.goto(staff.b.url("/cases/report/"))
    page.select_option("#id_major", str(world.garbage.parent_id))
    page.select_option("#id_category", str(world.garbage.pk))
    page.fill("#id_description", description)
    # The pin from "use my location", with the browser's geolocation granted to the page.
    staff.b.context.grant_permissions(["geolocation"], origin=staff.b.base)
    staff.b.context.set_geolocation({"latitude": GRID_POINT[0], "longitude": GRID_POINT[1]})
    page.click("#use-location")
    page.wait_for_function("() => document.getElementById('id_lat').value !== ''")
    assert abs(float(page.input_value("#id_lat")) - GRID_POINT[0]) < 1e-6
    assert abs(float(page.input_value("#id_lng")) - GRID_POINT[1]) < 1e-6
    page.set_input_files(
        "#id_photos",
        files=[{"name": "found.jpg", "mimeType": "image/jpeg", "buffer": jpeg_bytes()}],
    )
    page.click("#report-submit")
    page.wait_for_selector('#case-head[data-state="reported"]')
    return page.get_attribute("#case-head", "data-case")


def test_a_case_through_send_back_and_rework_to_closing(browsing, world):
    worker = Staff(browsing, "worker")
    number = report_in_browser(worker, world, "Rubbish piled at the bus stop")
    assert worker.page.locator('#case-photos ul[data-photos="report"] a[data-photo]').count() == 1

    lead = Staff(browsing, "lead")
    lead.act(number, "file", to="filed")
    dispatcher = Staff(browsing, "dispatcher")
    dispatcher.act(
        number, "dispatch", to="dispatched", select={"department": str(world.sanitation.pk)}
    )

    handler = Staff(browsing, "handler")
    handler.act(number, "send_back", to="filed", fill={"note": "Not ours: it is on park land"})
    dispatcher.act(
        number, "dispatch", to="dispatched", select={"department": str(world.sanitation.pk)}
    )
    handler.act(number, "accept", to="accepted")
    handler.act(number, "handle", to="handled", fill={"note": "Cleared"}, photo=True)

    worker.act(number, "check_fail", to="accepted", fill={"note": "Bags still behind the shelter"})
    handler.act(number, "handle", to="handled", fill={"note": "Cleared behind the shelter too"})
    worker.act(number, "check_pass", to="checking")
    lead.act(number, "close", to="closed")

    case = Case.objects.get(number=number)
    assert (case.state, case.send_back_count, case.rework_count) == (CaseState.CLOSED, 1, 1)
    timeline = lead.page.locator("li[data-event]").evaluate_all(
        "(items) => items.map((li) => li.dataset.event)"
    )
    assert timeline == [
        "report",
        "file",
        "dispatch",
        "send_back",
        "dispatch",
        "accept",
        "handle",
        "check_fail",
        "handle",
        "check_pass",
        "close",
    ]
    assert lead.page.locator('#case-photos ul[data-photos="handle"] a[data-photo]').count() == 1
    # A closed case offers its shift lead nothing but reopening.
    offered = lead.page.locator("summary[data-action-toggle]").evaluate_all(
        "(items) => items.map((s) => s.dataset.actionToggle)"
    )
    assert offered == ["reopen"]
    lead.b.screenshot("case_loop_closed")


def test_a_case_escalated_from_the_grid_to_the_street(browsing, world):
    worker = Staff(browsing, "worker")
    number = report_in_browser(worker, world, "Collapsed pavement, too big for the grid")
    worker.act(number, "escalate", to="escalated", fill={"note": "Needs the street's crews"})
    assert Case.objects.get(number=number).level == 4  # the community workstation
    # The grid worker cannot act on it any more; the community can.
    worker.open_case(number)
    assert worker.page.locator('summary[data-action-toggle="escalate"]').count() == 0

    community = Staff(browsing, "community_clerk")
    community.act(number, "escalate", to="escalated", fill={"note": "Beyond the community"})
    assert Case.objects.get(number=number).level == 3  # the street command center
    community.open_case(number)
    assert community.page.locator("summary[data-action-toggle]").count() == 0

    dispatcher = Staff(browsing, "dispatcher")
    dispatcher.act(
        number, "dispatch", to="dispatched", select={"department": str(world.sanitation.pk)}
    )
    case = Case.objects.get(number=number)
    assert (case.state, case.level, case.department) == (
        CaseState.DISPATCHED,
        3,
        world.sanitation,
    )
