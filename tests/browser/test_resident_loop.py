"""A resident's whole loop in a real browser: report on the portal (anonymous, the page
solving the anti-robot challenge), follow it through the private link, say "not
satisfied" once, see it go round again, say "satisfied", see it closed.

Staff steps are taken through the services: their own pages have their own tests.
"""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from cases.models import Case, CasePhoto, CaseState, Satisfaction
from cases.services import case_transition
from cases.testing import GRID_POINT, make_case_world
from cases.workflow import Action
from geo.testing import make_small_city

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def world(transactional_db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CIVICGRID = {
        **settings.CIVICGRID,
        "PORTAL_CHALLENGE_BITS": 10,
        "PUBLIC_RATE_LIMITS": {"ip": (100, 3600), "account": (100, 3600), "burst": (100, 60)},
        "UNSATISFIED_ESCALATE_AFTER": 3,
    }
    return make_case_world(make_small_city())


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 120, 200)).save(out, "JPEG")
    return out.getvalue()


def act(action: str, case: Case, actor, **extra) -> Case:
    return case_transition(
        case_id=case.pk, expected_version=case.version, action=action, actor=actor, **extra
    )


def staff_round(world, case: Case, *, file: bool) -> Case:
    """File (the first time), dispatch, handle, check, and ask the resident to rate."""
    if file:
        case = act(Action.FILE, case, world["lead"])
    case = act(Action.DISPATCH, case, world["dispatcher"], department=world.sanitation)
    case = act(Action.ACCEPT, case, world["handler"])
    case = act(Action.HANDLE, case, world["handler"], note="已清运")
    case = act(Action.CHECK_PASS, case, world["worker"])
    case = act(Action.RETURN_VISIT, case, world["lead"])
    assert case.state == CaseState.RATING
    return case


def state_on_page(page) -> str:
    return page.locator("#case-state").get_attribute("data-state")


def test_a_resident_reports_follows_and_rates_until_satisfied(world, browsing):
    b = browsing(locale="en-US", width=390, height=844)  # a phone
    page = b.page
    # "Use my location" with the browser's geolocation, granted to the page.
    b.context.grant_permissions(["geolocation"], origin=b.base)
    b.context.set_geolocation({"latitude": GRID_POINT[0], "longitude": GRID_POINT[1]})

    page.goto(b.url("/portal/"))
    page.click("#start-report")
    page.wait_for_selector("#report-form")
    page.select_option("#id_major", str(world.garbage.parent_id))
    page.select_option("#id_category", str(world.garbage.pk))
    page.fill("#id_description", "Rubbish piled at the gate for three days")
    page.click("#use-location")
    page.wait_for_function("() => document.getElementById('id_lat').value !== ''")
    assert abs(float(page.input_value("#id_lat")) - GRID_POINT[0]) < 1e-6
    assert abs(float(page.input_value("#id_lng")) - GRID_POINT[1]) < 1e-6
    page.set_input_files(
        "#id_photos", {"name": "gate.jpg", "mimeType": "image/jpeg", "buffer": jpeg_bytes()}
    )
    with page.expect_navigation(url="**/portal/track/**"):
        page.click("#report-submit")

    # The page solved the challenge; the report is anonymous, with its photo.
    case = Case.objects.get()
    assert (case.source, case.state) == ("portal", CaseState.REPORTED)
    assert case.reporter is None and case.created_by is None
    assert CasePhoto.objects.filter(case=case).count() == 1
    assert page.locator("#received").is_visible()
    assert page.locator("#case-number").inner_text() == case.number
    link = page.input_value("#private-link")
    assert link.endswith(f"/portal/track/{case.public_token}/")
    assert state_on_page(page) == CaseState.REPORTED

    # Staff take it up and ask the resident; she follows the private link.
    case = staff_round(world, case, file=True)
    page.goto(link)
    assert state_on_page(page) == CaseState.RATING
    assert page.locator('#timeline li[data-action="check_pass"]').count() == 1
    page.check("#rate_satisfied_1")  # not satisfied
    with page.expect_navigation():
        page.click("#rate-submit")
    # Without a reason it is refused beside the field.
    assert page.locator("#rate_reason-error").is_visible()
    page.check("#rate_satisfied_1")
    page.fill("#rate_reason", "Still dirty behind the bins")
    with page.expect_navigation():
        page.click("#rate-submit")
    assert "another round" in page.locator(".p-messages").inner_text()
    case.refresh_from_db()
    assert (case.state, case.unsatisfied_count) == (CaseState.FILED, 1)
    assert state_on_page(page) == CaseState.FILED

    # Another round: dispatched, handled, checked, and asked again.
    case = staff_round(world, case, file=False)
    page.reload()
    assert state_on_page(page) == CaseState.RATING
    page.check("#rate_satisfied_0")  # satisfied
    with page.expect_navigation():
        page.click("#rate-submit")
    case.refresh_from_db()
    assert (case.state, case.satisfaction) == (CaseState.CLOSED, Satisfaction.SATISFIED)
    assert state_on_page(page) == CaseState.CLOSED
    assert page.locator("#case-state").inner_text() == "Closed"
    timeline = page.locator("#timeline").inner_text()
    assert "Closed: the reporter is satisfied" in timeline
    assert "The reporter is not satisfied: another round" in timeline
    assert page.locator("#rate-form").count() == 0
    b.screenshot("portal_track_closed")


def test_the_public_map_and_statistics_draw(world, browsing):
    from cases.services import case_rate, case_report_result

    case, _ = case_report_result(
        actor=None,
        category=world.garbage,
        lat=GRID_POINT[0],
        lng=GRID_POINT[1],
        description="x",
        source="portal",
        public=True,
    )
    b = browsing(locale="zh-CN", width=1280, height=800)
    page = b.page
    page.goto(b.url("/portal/map/"))
    page.wait_for_function("() => document.getElementById('cases-map').dataset.cases === '1'")
    assert page.locator("path.case-open").count() == 1
    # Without a tile layer, the streets' outlines are the background.
    page.wait_for_function("() => Number(document.getElementById('cases-map').dataset.areas) > 0")
    b.screenshot("portal_map")

    case = staff_round(world, case, file=True)
    case_rate(
        case_id=case.pk, expected_version=case.version, satisfied=True, token=case.public_token
    )
    page.goto(b.url("/portal/stats/"))
    assert page.locator('[data-figure="reported"]').inner_text().strip() == "1"
    assert page.locator('[data-figure="closed"]').inner_text().strip() == "1"
    page.wait_for_selector('#chart-categories[data-drawn="1"] svg')
    b.screenshot("portal_stats")

    # The challenge's own SHA-256 (for browsers without Web Crypto) agrees with Python's.
    for text in ("", "abc", "挑战:12345", "x" * 200):
        got = page.evaluate(
            "(t) => new Promise((resolve) => {"
            " const s = document.createElement('script'); s.src = '/static/js/challenge.js';"
            " s.onload = () => resolve(window.CivicGridChallenge.sha256Hex(t));"
            " document.head.appendChild(s); })",
            text,
        )
        assert got == hashlib.sha256(text.encode()).hexdigest()
