"""Suggestions and questions: sending (anonymous with the anti-robot check, or signed in),
the private link, staff answers, publishing, rejecting and the public list."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts.models import AuditEntry
from cases.testing import make_case_world
from core.errors import DomainError, NotFound
from portal import challenge, services
from portal.models import Blocked, Suggestion

from .resident_helpers import english_client, make_resident, signed_in

pytestmark = pytest.mark.django_db

NEW = "portal:suggestion_new"


@pytest.fixture(autouse=True)
def easy_challenge(settings):
    settings.CIVICGRID = {**settings.CIVICGRID, "PORTAL_CHALLENGE_BITS": 4}


@pytest.fixture
def world(small_city):
    return make_case_world(small_city)


def form_data(**extra) -> dict:
    return {
        "kind": "suggestion",
        "title": "More benches on Guanghua Road",
        "text": "The old people have nowhere to sit while waiting for the bus.",
        "area": "",
        "contact_email": "",
        "contact_phone": "",
        **extra,
    }


def solved_form(client, **extra) -> dict:
    """The form as the browser sends it: with the page's challenge, solved."""
    page = client.get(reverse(NEW))
    assert page.status_code == 200
    token = re.search(r'data-challenge="([^"]+)"', page.content.decode()).group(1)
    bits = int(re.search(r'data-challenge-bits="(\d+)"', page.content.decode()).group(1))
    return form_data(challenge=token, challenge_counter=challenge.solve(token, bits), **extra)


def test_an_anonymous_sender_solves_the_challenge_and_gets_a_private_link(world):
    client = english_client()
    data = solved_form(
        client,
        area=world.city.communities[0].code,
        contact_email="Sender@Example.org",
        contact_phone="+86 139 1234 0100",
    )
    response = client.post(reverse(NEW), data)
    assert response.status_code == 302
    suggestion = Suggestion.objects.get()
    assert response["Location"] == reverse(
        "portal:suggestion_track", kwargs={"token": suggestion.public_token}
    )
    assert suggestion.resident_id is None
    assert suggestion.area == world.city.communities[0]
    assert suggestion.contact_email == "sender@example.org"
    assert suggestion.contact_phone == "13912340100"
    assert suggestion.status == Suggestion.Status.NEW and not suggestion.is_published
    page = client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "More benches on Guanghua Road" in html
    assert "sender@example.org" not in html.lower() and "13912340100" not in html
    assert page["Referrer-Policy"] == "no-referrer"
    entry = AuditEntry.objects.get(action="suggestion.submit")
    assert "sender@example.org" not in str(entry.after).lower()
    # A challenge is good once.
    again = client.post(reverse(NEW), data)
    assert again.status_code == 400
    assert b"already used" in again.content
    assert Suggestion.objects.count() == 1


def test_without_the_challenge_nothing_is_sent(world):
    client = english_client()
    response = client.post(reverse(NEW), form_data())
    assert response.status_code == 400
    assert b"anti-robot check is missing" in response.content
    forged = client.post(reverse(NEW), form_data(challenge="abc", challenge_counter="1"))
    assert forged.status_code == 400
    assert not Suggestion.objects.exists()


def test_a_signed_in_resident_needs_no_challenge_and_sees_it_among_hers(world):
    resident = make_resident(phone="13912340101")
    client = signed_in(resident)
    page = client.get(reverse(NEW))
    assert b"data-challenge=" not in page.content
    response = client.post(reverse(NEW), form_data(kind="question", title="Market hours?"))
    assert response.status_code == 302
    suggestion = Suggestion.objects.get()
    assert suggestion.resident == resident and suggestion.kind == "question"
    account = client.get(reverse("portal:account")).content.decode()
    assert "Market hours?" in account


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"title": ""}, b"This field is required"),
        ({"text": "  "}, b"This field is required"),
        ({"kind": "complaint"}, b"Select a valid choice"),
        ({"contact_phone": "12345"}, b"mainland mobile number"),
        ({"contact_email": "nobody@"}, b"valid e-mail"),
        ({"area": "999999"}, b"Select a valid choice"),
    ],
)
def test_bad_input_is_refused_with_field_errors(world, extra, message):
    resident = make_resident(phone="13912340102")
    response = signed_in(resident).post(reverse(NEW), form_data(**extra))
    assert response.status_code == 400
    assert message in response.content
    assert not Suggestion.objects.exists()


def test_sending_is_rate_limited_with_retry_after(world, settings):
    settings.CIVICGRID = {
        **settings.CIVICGRID,
        "PUBLIC_RATE_LIMITS": {"ip": (100, 3600), "account": (2, 3600), "burst": (100, 60)},
    }
    resident = make_resident(phone="13912340103")
    client = signed_in(resident, ip="198.51.100.20")
    for n in range(2):
        assert client.post(reverse(NEW), form_data(title=f"Idea {n}")).status_code == 302
    refused = client.post(reverse(NEW), form_data(title="Idea 3"))
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert Suggestion.objects.count() == 2
    # Per account: another resident at the same address may still send.
    other = signed_in(make_resident(phone="13912340104"), ip="198.51.100.20")
    assert other.post(reverse(NEW), form_data(title="Idea 4")).status_code == 302


def test_sending_is_rate_limited_per_address_for_anonymous_senders(world, settings):
    settings.CIVICGRID = {
        **settings.CIVICGRID,
        "PUBLIC_RATE_LIMITS": {"ip": (2, 3600), "account": (30, 3600), "burst": (100, 60)},
    }
    client = english_client("198.51.100.21")
    for n in range(2):
        assert client.post(reverse(NEW), solved_form(client, title=f"Idea {n}")).status_code == 302
    refused = client.post(reverse(NEW), solved_form(client, title="Idea 3"))
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0


def test_a_blocked_contact_or_address_is_refused(world):
    Blocked.objects.create(kind="email", value="troll@example.org", reason="abuse")
    Blocked.objects.create(kind="ip", value="203.0.113.0/24", reason="flood")
    resident = make_resident(phone="13912340105")
    response = signed_in(resident).post(reverse(NEW), form_data(contact_email="TROLL@example.org"))
    assert response.status_code == 403
    blocked_ip = signed_in(resident, ip="203.0.113.40").post(reverse(NEW), form_data())
    assert blocked_ip.status_code == 403
    assert not Suggestion.objects.exists()


def test_unknown_private_links_answer_404(world):
    client = english_client()
    assert client.get(reverse("portal:suggestion_track", args=["nope"])).status_code == 404
    assert client.get(reverse("portal:suggestion_detail", args=[98765])).status_code == 404


# --- answers and the public list ----------------------------------------------------------------


def submit(**extra) -> Suggestion:
    fields = {
        "kind": "question",
        "title": "When is the library open?",
        "text": "Is it open on Sundays?",
        "contact_phone": "13912340110",
        "contact_email": "asker@example.org",
        **extra,
    }
    return services.suggestion_submit(**fields)


def test_an_answer_published_shows_on_the_public_list_without_who_asked(world):
    asked = submit(area=world.city.communities[0])
    services.suggestion_answer(
        suggestion_id=asked.pk,
        actor=world["clerk"],
        answer="Yes, from 9 to 17 on Sundays.",
        publish=True,
    )
    asked.refresh_from_db()
    assert asked.status == Suggestion.Status.ANSWERED and asked.is_published
    assert asked.answered_by_id == world["clerk"].pk and asked.answered_at is not None
    client = english_client()
    listing = client.get(reverse("portal:suggestions"))
    assert listing.status_code == 200
    html = listing.content.decode()
    assert "When is the library open?" in html and "from 9 to 17 on Sundays" in html
    detail = client.get(reverse("portal:suggestion_detail", args=[asked.pk]))
    assert detail.status_code == 200
    for page in (html, detail.content.decode()):
        assert "13912340110" not in page and "asker@example.org" not in page
        assert "clerk" not in page  # nor who answered
    # The sender reads the answer on her private link.
    track = client.get(reverse("portal:suggestion_track", args=[asked.public_token]))
    assert b"from 9 to 17 on Sundays" in track.content
    entry = AuditEntry.objects.get(action="suggestion.answer")
    assert entry.after == {"status": "answered", "published": True}


def test_unpublished_and_unanswered_ones_stay_off_the_public_list(world):
    # About no area: answered by staff of the district (the admin), not of a street.
    waiting = submit(title="Waiting question")
    private = submit(title="Private answer")
    services.suggestion_answer(
        suggestion_id=private.pk, actor=world["admin"], answer="Answered privately."
    )
    html = english_client().get(reverse("portal:suggestions")).content.decode()
    assert "Waiting question" not in html and "Private answer" not in html
    assert (
        b"Nothing has been published yet"
        in english_client().get(reverse("portal:suggestions")).content
    )
    for pk in (waiting.pk, private.pk):
        assert (
            english_client().get(reverse("portal:suggestion_detail", args=[pk])).status_code == 404
        )
    # Publishing later puts it on the list; unpublishing takes it off.
    services.suggestion_publish(suggestion_id=private.pk, actor=world["admin"], published=True)
    assert b"Private answer" in english_client().get(reverse("portal:suggestions")).content
    services.suggestion_publish(suggestion_id=private.pk, actor=world["admin"], published=False)
    assert b"Private answer" not in english_client().get(reverse("portal:suggestions")).content
    with pytest.raises(DomainError):
        services.suggestion_publish(suggestion_id=waiting.pk, actor=world["admin"], published=True)


def test_a_rejected_suggestion_is_never_published(world):
    spam = submit(title="Buy cheap watches")
    services.suggestion_reject(suggestion_id=spam.pk, actor=world["admin"], reason="spam")
    spam.refresh_from_db()
    assert spam.status == Suggestion.Status.REJECTED and not spam.is_published
    with pytest.raises(DomainError):
        services.suggestion_publish(suggestion_id=spam.pk, actor=world["admin"], published=True)
    with pytest.raises(DomainError):
        services.suggestion_answer(
            suggestion_id=spam.pk, actor=world["admin"], answer="x", publish=True
        )
    assert b"Buy cheap watches" not in english_client().get(reverse("portal:suggestions")).content
    track = english_client().get(reverse("portal:suggestion_track", args=[spam.public_token]))
    assert b"not taken up" in track.content
    assert AuditEntry.objects.get(action="suggestion.reject").after["reason"] == "spam"


def test_the_public_list_is_paged(world):
    for n in range(25):
        asked = submit(title=f"Question number {n:02d}")
        services.suggestion_answer(
            suggestion_id=asked.pk, actor=world["admin"], answer="Answer.", publish=True
        )
    client = english_client()
    first = client.get(reverse("portal:suggestions")).content.decode()
    second = client.get(reverse("portal:suggestions") + "?page=2").content.decode()
    assert first.count('data-suggestion="') == 20 and second.count('data-suggestion="') == 5
    assert 'rel="next"' in first and 'rel="prev"' in second
    assert client.get(reverse("portal:suggestions") + "?page=abc").status_code == 200


def test_a_suggestion_about_no_area_is_for_district_staff(world):
    nowhere = submit()
    with pytest.raises(NotFound):
        services.suggestion_answer(suggestion_id=nowhere.pk, actor=world["clerk"], answer="x")
    services.suggestion_answer(suggestion_id=nowhere.pk, actor=world["admin"], answer="Done.")
    nowhere.refresh_from_db()
    assert nowhere.status == Suggestion.Status.ANSWERED


def test_senders_contacts_are_erased_after_the_retention_period(settings):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    from cases.tasks import sweep_overdue_task
    from portal.models import Suggestion

    settings.CIVICGRID = {**settings.CIVICGRID, "REPORTER_RETENTION_DAYS": 30}
    old = Suggestion.objects.create(
        kind="question",
        title="t",
        text="x",
        status="answered",
        answer="a",
        answered_at=timezone.now(),
        contact_email="asker@example.com",
        contact_phone="13900002222",
    )
    waiting = Suggestion.objects.create(
        kind="question", title="t", text="x", contact_email="new@example.com"
    )
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        # The minute sweep erases them, through the signal the portal listens to.
        sweep_overdue_task.call(reschedule=False)
    old.refresh_from_db()
    waiting.refresh_from_db()
    assert (old.contact_email, old.contact_phone) == ("", "")
    assert waiting.contact_email == "new@example.com"  # not answered yet
