"""The public portal: report, follow, rate, withdraw, photos, the map and the statistics."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from accounts.models import User
from cases.models import Case, CasePhoto, CaseState, Category, Satisfaction
from cases.selectors import COARSE_STEP
from cases.services import case_rate, case_report_result, case_transition
from cases.testing import GRID_POINT, make_case_world
from cases.workflow import Action
from portal import challenge
from portal.models import Blocked

pytestmark = pytest.mark.django_db
S = CaseState


@pytest.fixture(autouse=True)
def portal_settings(settings, tmp_path):
    settings.LANGUAGE_CODE = "en"
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CIVICGRID = {
        **settings.CIVICGRID,
        "PORTAL_CHALLENGE_BITS": 6,
        "PUBLIC_RATE_LIMITS": {"ip": (1000, 3600), "account": (1000, 3600), "burst": (1000, 60)},
        "UNSATISFIED_ESCALATE_AFTER": 3,
    }


@pytest.fixture
def world(small_city):
    return make_case_world(small_city)


def jpeg(color=(200, 30, 30)) -> SimpleUploadedFile:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(out, "JPEG")
    return SimpleUploadedFile("photo.jpg", out.getvalue(), content_type="image/jpeg")


def solved_challenge() -> dict:
    issued = challenge.issue()
    return {
        "challenge": issued.token,
        "challenge_counter": challenge.solve(issued.token, issued.bits),
    }


def report_data(world, **extra) -> dict:
    data = {
        "category": str(world.garbage.pk),
        "description": "小区门口垃圾没人清",
        "address": "幸福路 1 号",
        "lat": str(GRID_POINT[0]),
        "lng": str(GRID_POINT[1]),
        **solved_challenge(),
    }
    data.update(extra)
    return {k: v for k, v in data.items() if v is not None}


def post_report(client, world, **extra):
    return client.post(reverse("portal:report"), report_data(world, **extra))


def public_case(world, **extra) -> Case:
    fields = {
        "actor": None,
        "category": world.garbage,
        "lat": GRID_POINT[0],
        "lng": GRID_POINT[1],
        "description": "楼下垃圾堆了三天",
        "source": "portal",
        "reporter_phone": "13900001111",
        "reporter_email": "resident@example.com",
        "public": True,
    }
    fields.update(extra)
    return case_report_result(**fields)[0]


def act(action, case, actor, **extra) -> Case:
    return case_transition(
        case_id=case.pk, expected_version=case.version, action=action, actor=actor, **extra
    )


def to_rating(world, case, *, filed=False) -> Case:
    if not filed:
        case = act(Action.FILE, case, world["lead"])
    case = act(Action.DISPATCH, case, world["dispatcher"], department=world.sanitation)
    case = act(Action.ACCEPT, case, world["handler"])
    case = act(Action.HANDLE, case, world["handler"], note="已清运，处置人员张三")
    case = act(Action.CHECK_PASS, case, world["worker"], note="网格员核查通过")
    return act(Action.RETURN_VISIT, case, world["lead"])


def track_url(case) -> str:
    return reverse("portal:track", args=[case.public_token])


def text_of(response) -> str:
    return response.content.decode()


# --- pages that only read --------------------------------------------------------------------


def test_home_and_report_pages_render(client, world):
    home = client.get(reverse("portal:index"))
    assert home.status_code == 200
    assert reverse("portal:report") in text_of(home)
    page = client.get(reverse("portal:report"))
    assert page.status_code == 200
    body = text_of(page)
    assert 'name="challenge"' in body and "data-challenge-url" in body
    # Without script the page says why an anonymous report cannot be sent.
    assert re.search(r'<noscript><div class="alert warn" id="needs-js">', body)
    # Only public, active minor classes are offered, grouped by their major class.
    hidden = Category.objects.filter(parent__isnull=False).exclude(pk=world.garbage.pk).first()
    hidden.is_public = False
    hidden.save()
    body = text_of(client.get(reverse("portal:report")))
    assert f'value="{world.garbage.pk}"' in body
    assert f'value="{hidden.pk}"' not in body


def test_report_page_shows_the_help_for_residents(client, world):
    world.garbage.resident_help = "垃圾请拍清楚堆放位置"
    world.garbage.save()
    body = text_of(client.get(reverse("portal:report")))
    data = re.search(r'id="category-help-data"[^>]*>(.*?)</script>', body, re.S).group(1)
    minors = {m["id"]: m for major in json.loads(data) for m in major["minors"]}
    assert minors[world.garbage.pk]["help"] == "垃圾请拍清楚堆放位置"


# --- report ------------------------------------------------------------------------------------


def test_an_anonymous_report_with_the_challenge_and_a_photo(client, world):
    response = client.post(
        reverse("portal:report"),
        {**report_data(world, reporter_email="me@example.com"), "photos": [jpeg()]},
    )
    assert response.status_code == 302, text_of(response)
    case = Case.objects.get()
    assert response["Location"] == track_url(case) + "?received=1"
    assert (case.source, case.state) == ("portal", S.REPORTED)
    assert len(case.public_token) >= 32
    assert case.reporter is None and case.created_by is None
    assert case.reporter_email == "me@example.com"
    photo = CasePhoto.objects.get(case=case)
    assert photo.action == "report" and not photo.is_public
    page = client.get(response["Location"])
    body = text_of(page)
    assert page.status_code == 200
    assert case.number in body and case.public_token in body
    assert 'id="received"' in body
    assert "e-mail" in body.lower()  # where updates would go, said without pretending
    assert "me@example.com" not in body


def test_an_anonymous_report_without_the_challenge_is_refused(client, world):
    response = post_report(client, world, challenge=None, challenge_counter=None)
    assert response.status_code == 400
    assert "anti-robot" in text_of(response)
    assert not Case.objects.exists()
    # The page comes back with a fresh challenge to solve.
    assert re.search(r'name="challenge"[^>]*value="[^"]+"', text_of(response))


def test_a_reused_challenge_is_refused(client, world):
    data = report_data(world)
    assert client.post(reverse("portal:report"), data).status_code == 302
    again = client.post(reverse("portal:report"), data)
    assert again.status_code == 400 and "already used" in text_of(again)
    assert Case.objects.count() == 1


def test_a_signed_in_resident_skips_the_challenge_and_is_the_reporter(client, world):
    resident = User.objects.create_user("resident1", password="x", is_resident=True)
    client.force_login(resident)
    page = client.get(reverse("portal:report"))
    assert "data-challenge-url" not in text_of(page)
    assert 'id="signed-in-note"' in text_of(page)
    data = report_data(world, challenge=None, challenge_counter=None, idempotency_key="k-1")
    first = client.post(reverse("portal:report"), data)
    assert first.status_code == 302
    case = Case.objects.get()
    assert case.reporter == resident and case.created_by == resident
    # A double submit with the same key answers the same case.
    again = client.post(reverse("portal:report"), data)
    assert again.status_code == 302 and again["Location"] == first["Location"]
    assert Case.objects.count() == 1


def test_a_point_outside_every_grid_is_a_form_error(client, world):
    response = post_report(client, world, lat="30.0", lng="120.0")
    assert response.status_code == 400
    body = text_of(response)
    assert "outside every grid" in body
    assert 'id="id_lat-error"' in body
    assert not Case.objects.exists()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"category": ""}, "category"),
        ({"category": "999999"}, "category"),
        ({"category": "abc"}, "category"),
        ({"description": "   "}, "description"),
        ({"lat": "abc"}, "lat"),
        ({"lat": "95"}, "lat"),
        ({"lng": ""}, "lng"),
        ({"reporter_email": "not-an-address"}, "reporter_email"),
        ({"reporter_phone": "call me"}, "reporter_phone"),
        ({"description": "x" * 2001}, "description"),
    ],
)
def test_bad_input_is_a_form_error_not_a_server_error(client, world, extra, field):
    response = post_report(client, world, **extra)
    assert response.status_code == 400
    assert f'id="id_{field}-error"' in text_of(response)
    assert not Case.objects.exists()


def test_bad_photos_are_form_errors(client, world):
    fake = SimpleUploadedFile("photo.jpg", b"<script>alert(1)</script>", "image/jpeg")
    response = client.post(reverse("portal:report"), {**report_data(world), "photos": [fake]})
    assert response.status_code == 400
    assert 'id="id_photos-error"' in text_of(response)
    too_many = [jpeg() for _ in range(10)]
    response = client.post(reverse("portal:report"), {**report_data(world), "photos": too_many})
    assert response.status_code == 400
    assert 'id="id_photos-error"' in text_of(response)
    assert not Case.objects.exists()


def test_a_class_residents_may_not_report_is_refused(client, world):
    world.garbage.is_public = False
    world.garbage.save()
    response = post_report(client, world)
    assert response.status_code == 400
    assert 'id="id_category-error"' in text_of(response)


def test_the_rate_limit_answers_429_with_retry_after(client, world, settings):
    settings.CIVICGRID = {
        **settings.CIVICGRID,
        "PUBLIC_RATE_LIMITS": {"ip": (2, 3600), "account": (30, 3600), "burst": (10, 60)},
    }
    for _ in range(2):
        assert post_report(client, world).status_code == 302
    response = post_report(client, world)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert 'id="rate-limited"' in text_of(response)
    assert Case.objects.count() == 2


def test_the_rate_limit_counts_per_account_too(client, world, settings):
    settings.CIVICGRID = {
        **settings.CIVICGRID,
        "PUBLIC_RATE_LIMITS": {"ip": (100, 3600), "account": (1, 3600), "burst": (100, 60)},
    }
    client.force_login(User.objects.create_user("resident2", is_resident=True))
    assert post_report(client, world).status_code == 302
    assert post_report(client, world).status_code == 429


def test_a_blocked_email_phone_or_address_gets_403(client, world):
    Blocked.objects.create(kind="email", value="spam@example.com", reason="spam")
    Blocked.objects.create(kind="phone", value="13900001111", reason="abuse")
    response = post_report(client, world, reporter_email="SPAM@example.com")
    assert response.status_code == 403 and 'id="blocked"' in text_of(response)
    assert post_report(client, world, reporter_phone="+86 139 0000 1111").status_code == 403
    Blocked.objects.create(kind="ip", value="10.9.0.0/16", reason="flood")
    response = client.post(reverse("portal:report"), report_data(world), REMOTE_ADDR="10.9.8.7")
    assert response.status_code == 403
    assert not Case.objects.exists()


# --- follow -----------------------------------------------------------------------------------


def test_an_unknown_token_is_404(client, world):
    assert client.get(reverse("portal:track", args=["nope"])).status_code == 404
    assert client.get(reverse("portal:track", args=["x" * 80])).status_code == 404
    assert client.post(reverse("portal:rate", args=["nope"]), {}).status_code == 404
    assert client.post(reverse("portal:withdraw", args=["nope"]), {}).status_code == 404


def test_the_track_page_shows_the_public_timeline_and_nothing_personal(client, world):
    case = to_rating(world, public_case(world))
    response = client.get(track_url(case))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "same-origin"
    body = text_of(response)
    assert case.number in body
    assert "Report received" in body
    assert "Sent to the responsible department" in body and world.sanitation.name in body
    assert "Checked on site: done" in body
    assert 'id="rate-form"' in body
    assert 'id="withdraw-form"' not in body
    for secret in (
        "13900001111",
        "resident@example.com",
        "楼下垃圾堆了三天",  # the description may hold personal data
        "已清运",  # staff notes
        "网格员核查通过",
        "张三",
    ):
        assert secret not in body, secret
    for staff in ("lead", "dispatcher", "handler", "worker"):
        assert f">{staff}<" not in body and f" {staff} " not in body
        assert not re.search(rf"\b{staff}\b", body.split('id="timeline"')[1].split("</ol>")[0])


def test_the_expected_completion_date_comes_from_the_deadline(client, world):
    case = public_case(world)
    body = text_of(client.get(track_url(case)))
    assert 'id="expected"' in body
    assert case.deadline is not None


def test_the_track_page_reads_a_bounded_number_of_rows(
    client, world, django_assert_max_num_queries
):
    case = to_rating(world, public_case(world))
    client.get(track_url(case))  # warm the caches (calendar, areas)
    with django_assert_max_num_queries(8):
        assert client.get(track_url(case)).status_code == 200


# --- rate --------------------------------------------------------------------------------------


def test_satisfied_closes_the_case(client, world):
    case = to_rating(world, public_case(world))
    response = client.post(
        reverse("portal:rate", args=[case.public_token]),
        {"version": case.version, "satisfied": "yes"},
    )
    assert response.status_code == 302 and response["Location"] == track_url(case)
    case.refresh_from_db()
    assert (case.state, case.satisfaction) == (S.CLOSED, Satisfaction.SATISFIED)
    body = text_of(client.get(track_url(case)))
    assert "Closed: the reporter is satisfied" in body
    assert 'id="rate-form"' not in body


def test_unsatisfied_needs_a_reason_and_sends_the_case_back(client, world):
    case = to_rating(world, public_case(world))
    url = reverse("portal:rate", args=[case.public_token])
    response = client.post(url, {"version": case.version, "satisfied": "no", "reason": "  "})
    assert response.status_code == 400
    assert 'id="rate_reason-error"' in text_of(response)
    case.refresh_from_db()
    assert case.state == S.RATING
    response = client.post(url, {"version": case.version, "satisfied": "no", "reason": "还是很脏"})
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.state, case.unsatisfied_count, case.satisfaction) == (
        S.FILED,
        1,
        Satisfaction.UNSATISFIED,
    )
    body = text_of(client.get(track_url(case)))
    assert "another round" in body
    assert "还是很脏" not in body  # the reason is a note: not on the public page


def test_rating_answers_errors_not_500(client, world):
    case = public_case(world)
    url = reverse("portal:rate", args=[case.public_token])
    assert client.post(url, {}).status_code == 400
    assert client.post(url, {"version": "x", "satisfied": "maybe"}).status_code == 400
    # Not waiting for a rating: the workflow refuses it.
    response = client.post(url, {"version": case.version, "satisfied": "yes"})
    assert response.status_code == 400
    case.refresh_from_db()
    assert case.state == S.REPORTED
    assert client.get(url).status_code == 405


def test_a_stale_rating_is_told_the_case_changed(client, world):
    case = to_rating(world, public_case(world))
    case_rate(
        case_id=case.pk, expected_version=case.version, satisfied=True, token=case.public_token
    )
    response = client.post(
        reverse("portal:rate", args=[case.public_token]),
        {"version": case.version, "satisfied": "no", "reason": "x"},
        follow=True,
    )
    assert response.status_code == 200
    assert "changed meanwhile" in text_of(response)
    case.refresh_from_db()
    assert case.state == S.CLOSED


def test_rating_needs_the_csrf_token(world):
    case = to_rating(world, public_case(world))
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(
        reverse("portal:rate", args=[case.public_token]),
        {"version": case.version, "satisfied": "yes"},
    )
    assert response.status_code == 403
    case.refresh_from_db()
    assert case.state == S.RATING


def test_rating_is_rate_limited_and_blocked_senders_refused(client, world, settings):
    case = to_rating(world, public_case(world))
    settings.CIVICGRID = {
        **settings.CIVICGRID,
        "PUBLIC_RATE_LIMITS": {"ip": (1, 3600), "account": (30, 3600), "burst": (10, 60)},
    }
    url = reverse("portal:rate", args=[case.public_token])
    # An invalid form is refused before anything is counted.
    assert client.post(url, {"version": case.version, "satisfied": "no"}).status_code == 400
    Blocked.objects.create(kind="ip", value="127.0.0.1", reason="abuse")
    blocked = client.post(url, {"version": case.version, "satisfied": "yes"})
    assert blocked.status_code == 403 and 'id="blocked"' in text_of(blocked)
    Blocked.objects.all().delete()
    assert client.post(url, {"version": case.version, "satisfied": "yes"}).status_code == 302
    again = client.post(url, {"version": case.version, "satisfied": "yes"})
    assert again.status_code == 429 and int(again["Retry-After"]) > 0


# --- withdraw -----------------------------------------------------------------------------------


def test_the_reporter_withdraws_a_report_not_yet_taken_up(client, world):
    case = public_case(world)
    assert 'id="withdraw-form"' in text_of(client.get(track_url(case)))
    response = client.post(
        reverse("portal:withdraw", args=[case.public_token]),
        {"version": case.version, "reason": "已经有人清理了"},
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.state == S.VOIDED
    body = text_of(client.get(track_url(case)))
    assert "Withdrawn by the reporter" in body and 'id="withdraw-form"' not in body


def test_a_filed_case_cannot_be_withdrawn(client, world):
    case = act(Action.FILE, public_case(world), world["lead"])
    assert 'id="withdraw-form"' not in text_of(client.get(track_url(case)))
    response = client.post(
        reverse("portal:withdraw", args=[case.public_token]), {"version": case.version}
    )
    assert response.status_code == 400
    case.refresh_from_db()
    assert case.state == S.FILED


# --- photos ----------------------------------------------------------------------------------


def test_only_approved_photos_of_public_cases_are_served(client, world):
    case = public_case(world, photos=[jpeg(), jpeg((10, 200, 10))])
    first, second = CasePhoto.objects.filter(case=case).order_by("id")
    for size in ("full", "thumb"):
        assert client.get(reverse("portal:photo", args=[first.pk, size])).status_code == 404
    assert f"/portal/photos/{first.pk}/" not in text_of(client.get(track_url(case)))
    CasePhoto.objects.filter(pk=first.pk).update(is_public=True)
    for size in ("full", "thumb"):
        response = client.get(reverse("portal:photo", args=[first.pk, size]))
        assert response.status_code == 200
        assert response["Content-Type"] == "image/jpeg"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert b"".join(response.streaming_content)[:2] == b"\xff\xd8"
    body = text_of(client.get(track_url(case)))
    assert f"/portal/photos/{first.pk}/thumb/" in body
    assert f"/portal/photos/{second.pk}/" not in body
    assert client.get(reverse("portal:photo", args=[second.pk, "full"])).status_code == 404
    assert client.get(reverse("portal:photo", args=[first.pk, "huge"])).status_code == 404
    assert client.get(reverse("portal:photo", args=[999999, "full"])).status_code == 404
    # A class taken off the portal takes its photos with it.
    world.garbage.is_public = False
    world.garbage.save()
    assert client.get(reverse("portal:photo", args=[first.pk, "full"])).status_code == 404


# --- the public map -------------------------------------------------------------------------------


def geojson(client, bbox: str):
    response = client.get(reverse("portal:map-cases"), {"bbox": bbox})
    return response, json.loads(response.content) if response.status_code in (200, 400) else None


def around(lat, lng, pad=0.01) -> str:
    return f"{lng - pad},{lat - pad},{lng + pad},{lat + pad}"


def test_the_map_shows_public_cases_without_personal_data(client, world):
    open_case = public_case(world)
    closed = to_rating(world, public_case(world, lat=39.915, lng=116.402))
    closed = case_rate(
        case_id=closed.pk,
        expected_version=closed.version,
        satisfied=True,
        token=closed.public_token,
    )
    withdrawn = public_case(world)
    act(Action.WITHDRAW, withdrawn, None, token=withdrawn.public_token)
    response, body = geojson(client, "116.3,39.8,116.5,40.0")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/geo+json"
    assert len(body["features"]) == 2 and body["truncated"] is False
    by_open = {f["properties"]["open"]: f for f in body["features"]}
    assert by_open[True]["geometry"]["coordinates"] == [open_case.lng, open_case.lat]
    assert by_open[False]["properties"]["closed"] is not None
    assert by_open[True]["properties"]["label"] == "Received, being reviewed"
    assert by_open[True]["properties"]["category"] in (world.garbage.name, world.garbage.name_en)
    raw = response.content.decode()
    for secret in (
        open_case.number,
        closed.number,
        open_case.public_token,
        "楼下垃圾堆了三天",
        "13900001111",
        "resident@example.com",
        "description",
        "reporter",
    ):
        assert secret not in raw, secret


def test_a_sensitive_class_is_mapped_coarsely_and_a_small_box_cannot_find_it(client, world):
    world.garbage.is_sensitive = True
    world.garbage.save()
    lat, lng = 39.9112345, 116.4067891
    case = public_case(world, lat=lat, lng=lng)
    _response, body = geojson(client, around(lat, lng))
    (feature,) = body["features"]
    shown_lng, shown_lat = feature["geometry"]["coordinates"]
    assert (shown_lat, shown_lng) != (case.lat, case.lng)
    assert abs(shown_lat - lat) <= COARSE_STEP / 2 + 1e-9
    assert abs(shown_lng - lng) <= COARSE_STEP / 2 + 1e-9
    assert feature["properties"]["coarse"] is True
    # A box around the exact point that leaves out the coarse one shows nothing.
    tiny = around(lat, lng, pad=0.0001)
    assert not (
        lat - 0.0001 <= shown_lat <= lat + 0.0001 and lng - 0.0001 <= shown_lng <= lng + 0.0001
    )
    assert geojson(client, tiny)[1]["features"] == []
    # And the track page shows the coarse point, not the exact one.
    body = text_of(client.get(track_url(case)))
    assert str(lat) not in body and str(lng) not in body


@pytest.mark.parametrize(
    "bbox",
    ["", "1,2,3", "a,b,c,d", "10,10,5,20", "-200,0,10,10", "0,0,10,100", "nan,0,1,1", "inf,0,1,1"],
)
def test_a_bad_bbox_is_400(client, world, bbox):
    response, body = geojson(client, bbox)
    assert response.status_code == 400 and "bbox" in body["errors"]


def test_the_map_reads_a_bounded_number_of_rows(client, world, django_assert_max_num_queries):
    for _ in range(12):
        public_case(world)
    with django_assert_max_num_queries(3):
        response, body = geojson(client, "116.3,39.8,116.5,40.0")
    assert len(body["features"]) == 12


def test_the_map_page_and_the_outlines(client, world):
    page = client.get(reverse("portal:map"))
    assert page.status_code == 200 and 'id="cases-map"' in text_of(page)
    outlines = client.get(reverse("portal:map-areas"))
    assert outlines.status_code == 200
    data = json.loads(outlines.content)
    assert {f["properties"]["level"] for f in data["features"]} == {"street"}
    cached = client.get(reverse("portal:map-areas"), HTTP_IF_NONE_MATCH=outlines["ETag"])
    assert cached.status_code == 304


# --- statistics --------------------------------------------------------------------------------------


def test_the_statistics_page_shows_counts_and_medians(client, world):
    closed = to_rating(world, public_case(world))
    case_rate(
        case_id=closed.pk,
        expected_version=closed.version,
        satisfied=True,
        token=closed.public_token,
    )
    public_case(world)
    Case.objects.filter(pk=closed.pk).update(created_at=timezone.now() - timedelta(hours=30))
    response = client.get(reverse("portal:stats"), {"period": "90"})
    assert response.status_code == 200
    body = text_of(response)
    figures = dict(re.findall(r'data-figure="(\w+)">([^<]+)<', body))
    assert figures["reported"].strip() == "2"
    assert figures["closed"].strip() == "1"
    assert figures["open"].strip() == "1"
    assert figures["median"].strip() == "30.0 h"
    assert 'id="by-category"' in body and 'id="by-street"' in body
    street = world.city.street
    assert (street.name_en or street.name) in body
    assert "13900001111" not in body and "楼下垃圾堆了三天" not in body
    # A period nobody offers falls back to the default; the page still renders.
    assert client.get(reverse("portal:stats"), {"period": "abc"}).status_code == 200


def test_the_statistics_read_a_bounded_number_of_rows(world, django_assert_max_num_queries):
    from portal.stats import public_stats

    for _ in range(5):
        closed = to_rating(world, public_case(world))
        case_rate(
            case_id=closed.pk,
            expected_version=closed.version,
            satisfied=True,
            token=closed.public_token,
        )
    with django_assert_max_num_queries(4):
        figures = public_stats(period_days=30)
    assert figures.closed == 5 and figures.by_category[0].closed == 5
    with django_assert_max_num_queries(0):  # cached
        public_stats(period_days=30)
