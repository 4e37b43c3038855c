"""The staff's moderation queue: photos of residents' reports, suggestions, the blocklist;
who may open it and how far each person's scope reaches."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps as global_apps
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry, Membership, Role
from accounts.roles import BUILTIN_ROLES, MODERATE, STAFF_READ, permissions_by_name
from accounts.testing import verified_login
from cases.models import CasePhoto, Source
from cases.selectors import public_photos
from cases.services import case_report
from cases.testing import GRID_POINT, make_case_world, member
from portal import services
from portal.models import Blocked, Suggestion

from .resident_helpers import english_client, jpeg, make_resident, public_report, signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def world(small_city):
    world = make_case_world(small_city)
    # An intake clerk of the first community only.
    world.users["clerk_a"] = member("clerk_a", "intake_clerk", small_city.communities[0])
    return world


def photo_of(case) -> CasePhoto:
    return CasePhoto.objects.get(case=case)


def review(client, photo, decision, **headers):
    return client.post(
        reverse("portal:moderation_photo_review", args=[photo.pk]),
        {"decision": decision},
        **headers,
    )


# --- who may open it --------------------------------------------------------------------------


def test_the_queue_is_for_staff_with_the_permission(world):
    url = reverse("portal:moderation")
    anonymous = english_client().get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("login"))
    resident = signed_in(make_resident(phone="13912340200"))
    assert resident.get(url).status_code == 403
    worker = signed_in(world["worker"])
    for name in (
        "portal:moderation",
        "portal:moderation_suggestions",
        "portal:moderation_blocklist",
    ):
        assert worker.get(reverse(name)).status_code == 403
    assert AuditEntry.objects.filter(action="permission_denied").count() >= 4
    assert signed_in(world["clerk"]).get(url).status_code == 200
    assert signed_in(world["lead"]).get(url).status_code == 200
    assert verified_login(english_client(), world["admin"]).get(url).status_code == 200


def test_the_built_in_roles_that_screen_reports_moderate():
    roles = {spec["code"]: set(spec["permissions"]) for spec in BUILTIN_ROLES}
    for code in ("intake_clerk", "shift_lead", "admin"):
        assert set(MODERATE) <= roles[code]
    for code in ("grid_worker", "handler", "resident", "auditor"):
        assert not set(MODERATE) & roles[code]


def test_the_upgrade_gives_existing_built_in_roles_the_moderation_permissions(db):
    migration = importlib.import_module("portal.migrations.0003_moderation_permissions")
    clerk = Role.objects.create(code="intake_clerk", name="受理员", is_builtin=True)
    clerk.permissions.set(permissions_by_name(STAFF_READ))
    custom = Role.objects.create(code="shift_lead", name="值班长 (own)", is_builtin=False)
    migration.add_moderation_permissions(global_apps, None)
    granted = {f"{p.content_type.app_label}.{p.codename}" for p in clerk.permissions.all()}
    assert set(MODERATE) | set(STAFF_READ) == granted
    # A role an admin made under a built-in code is left alone.
    assert not custom.permissions.exists()


# --- photos -------------------------------------------------------------------------------------


def test_photos_of_residents_reports_await_review_in_scope(world):
    mine = public_report(world, photos=[jpeg()])
    far = public_report(world, other_grid=True, photos=[jpeg()])
    staff_case = case_report(
        actor=world["worker"],
        category=world.garbage,
        lat=GRID_POINT[0],
        lng=GRID_POINT[1],
        description="Seen on patrol",
        source=Source.GRID_WORKER,
        photos=[jpeg()],
    )
    clerk_a = signed_in(world["clerk_a"])
    html = clerk_a.get(reverse("portal:moderation")).content.decode()
    assert f'data-photo="{photo_of(mine).pk}"' in html
    assert reverse("cases:photo", args=[photo_of(mine).pk, "thumb"]) in html
    assert f'data-photo="{photo_of(far).pk}"' not in html  # another community
    assert f'data-photo="{photo_of(staff_case).pk}"' not in html  # not a resident's case
    # The street's clerk sees both residents' photos.
    street = signed_in(world["clerk"]).get(reverse("portal:moderation")).content.decode()
    assert f'data-photo="{photo_of(far).pk}"' in street
    # Out of scope answers like absent, and changes nothing.
    assert review(clerk_a, photo_of(far), "approve").status_code == 404
    assert review(clerk_a, photo_of(staff_case), "approve").status_code == 404
    far_photo = photo_of(far)
    assert not far_photo.is_public and far_photo.reviewed_at is None


def test_approve_and_keep_private(world):
    approved = public_report(world, photos=[jpeg()])
    private = public_report(world, photos=[jpeg()])
    client = signed_in(world["clerk_a"])
    response = review(client, photo_of(approved), "approve", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b'data-public="yes"' in response.content  # the card, swapped in place
    photo = photo_of(approved)
    assert photo.is_public and photo.reviewed_by_id == world["clerk_a"].pk
    assert photo.reviewed_at is not None
    assert public_photos(approved) == [photo]

    response = review(client, photo_of(private), "private")
    assert response.status_code == 302
    photo = photo_of(private)
    assert not photo.is_public and photo.reviewed_at is not None
    assert public_photos(private) == []
    # Both left the queue.
    html = client.get(reverse("portal:moderation")).content.decode()
    assert "photos-empty" in html
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"photo.approve", "photo.keep_private"} <= actions
    assert review(client, photo_of(private), "maybe").status_code == 400


def test_photo_review_needs_the_permission(world):
    case = public_report(world, photos=[jpeg()])
    worker = signed_in(world["worker"])
    assert review(worker, photo_of(case), "approve").status_code == 403
    assert not photo_of(case).is_public


# --- suggestions ------------------------------------------------------------------------------


def suggestion_in(area, **extra) -> Suggestion:
    return services.suggestion_submit(
        kind="suggestion",
        title=extra.pop("title", "Plant trees"),
        text="Along the canal",
        area=area,
        contact_phone="13912340210",
        **extra,
    )


def test_suggestions_are_scoped_by_area(world):
    here = suggestion_in(world.city.communities[0], title="Here")
    there = suggestion_in(world.city.communities[1], title="There")
    nowhere = suggestion_in(None, title="Nowhere")
    clerk_a = signed_in(world["clerk_a"])
    html = clerk_a.get(reverse("portal:moderation_suggestions")).content.decode()
    assert f'data-suggestion="{here.pk}"' in html
    assert f'data-suggestion="{there.pk}"' not in html
    assert f'data-suggestion="{nowhere.pk}"' not in html
    assert clerk_a.get(reverse("portal:moderation_suggestion", args=[there.pk])).status_code == 404
    assert (
        clerk_a.post(
            reverse("portal:moderation_suggestion", args=[there.pk]), {"answer": "x"}
        ).status_code
        == 404
    )
    admin = verified_login(english_client(), world["admin"])
    html = admin.get(reverse("portal:moderation_suggestions") + "?status=all").content.decode()
    for s in (here, there, nowhere):
        assert f'data-suggestion="{s.pk}"' in html


def test_answer_publish_and_reject_through_the_pages(world):
    here = suggestion_in(world.city.communities[0])
    client = signed_in(world["clerk_a"])
    url = reverse("portal:moderation_suggestion", args=[here.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert b"13912340210" not in page.content  # the contact only on request
    assert client.post(url, {"answer": "  "}).status_code == 400
    response = client.post(url, {"answer": "We will plant 40 trees in spring."})
    assert response.status_code == 302
    here.refresh_from_db()
    assert here.status == Suggestion.Status.ANSWERED and not here.is_published
    publish = reverse("portal:moderation_suggestion_publish", args=[here.pk])
    assert client.post(publish, {"published": "1"}).status_code == 302
    here.refresh_from_db()
    assert here.is_published
    assert b"40 trees" in english_client().get(reverse("portal:suggestions")).content

    reject = reverse("portal:moderation_suggestion_reject", args=[here.pk])
    assert client.post(reject, {"reason": "duplicate"}, HTTP_HX_REQUEST="true").status_code == 200
    here.refresh_from_db()
    assert here.status == Suggestion.Status.REJECTED and not here.is_published
    assert b"40 trees" not in english_client().get(reverse("portal:suggestions")).content
    assert client.post(publish, {"published": "1"}).status_code == 302
    here.refresh_from_db()
    assert not here.is_published


def test_the_senders_contact_is_shown_on_request_and_audited(world):
    here = suggestion_in(world.city.communities[0])
    url = reverse("portal:moderation_suggestion_contact", args=[here.pk])
    client = signed_in(world["clerk_a"])
    response = client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and b"13912340210" in response.content
    entry = AuditEntry.objects.get(action="personal_data_view")
    assert entry.object_id == str(here.pk) and entry.actor_id == world["clerk_a"].pk
    assert "contact_phone" in entry.detail["fields"]
    assert signed_in(world["worker"]).get(url).status_code == 403


# --- the blocklist ------------------------------------------------------------------------------


def test_block_and_unblock_a_sender(world):
    client = signed_in(world["clerk"])
    url = reverse("portal:moderation_blocklist")
    assert client.get(url).status_code == 200
    response = client.post(
        url, {"kind": "email", "value": " Troll@Example.ORG ", "reason": "abusive messages"}
    )
    assert response.status_code == 302
    entry = Blocked.objects.get()
    assert entry.value == "troll@example.org" and entry.created_by == world["clerk"]
    assert entry.expires_at is None
    log = AuditEntry.objects.get(action="blocked.add")
    assert "troll" not in str(log.after) + log.object_repr  # the log names no address
    # Now the sender is refused.
    resident = signed_in(make_resident(phone="13912340220"))
    refused = resident.post(
        reverse("portal:suggestion_new"),
        {"kind": "suggestion", "title": "t", "text": "t", "contact_email": "troll@example.org"},
    )
    assert refused.status_code == 403

    again = client.post(url, {"kind": "email", "value": "troll@example.org", "reason": "again"})
    assert again.status_code == 400 and b"already on the blocklist" in again.content
    bad_ip = client.post(url, {"kind": "ip", "value": "300.1.2.3", "reason": "flood"})
    assert bad_ip.status_code == 400 and b"IP address or a network" in bad_ip.content
    past = (timezone.localtime() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    expired = client.post(
        url, {"kind": "ip", "value": "203.0.113.7", "reason": "flood", "expires_at": past}
    )
    assert expired.status_code == 400 and b"in the future" in expired.content
    future = (timezone.localtime() + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")
    network = client.post(
        url, {"kind": "ip", "value": "203.0.113.9/24", "reason": "flood", "expires_at": future}
    )
    assert network.status_code == 302
    assert Blocked.objects.get(kind="ip").value == "203.0.113.0/24"
    html = client.get(url).content.decode()
    assert "troll@example.org" in html and "203.0.113.0/24" in html

    remove = reverse("portal:moderation_blocked_remove", args=[entry.pk])
    assert client.post(remove, HTTP_HX_REQUEST="true").status_code == 200
    assert not Blocked.objects.filter(pk=entry.pk).exists()
    assert AuditEntry.objects.filter(action="blocked.remove").exists()
    assert client.post(remove).status_code == 404


def test_the_blocklist_needs_its_permissions(world):
    entry = Blocked.objects.create(kind="phone", value="13912340230", reason="abuse")
    worker = signed_in(world["worker"])
    url = reverse("portal:moderation_blocklist")
    assert worker.get(url).status_code == 403
    assert worker.post(url, {"kind": "ip", "value": "192.0.2.1", "reason": "x"}).status_code == 403
    remove = reverse("portal:moderation_blocked_remove", args=[entry.pk])
    assert worker.post(remove).status_code == 403
    # Someone who may read the list but not change it.
    reader_role = Role.objects.create(code="blocklist_reader", name="reader")
    reader_role.permissions.set(permissions_by_name(["portal.view_blocked"]))
    reader = member("reader", "blocklist_reader", world.city.district)
    client = signed_in(reader)
    page = client.get(url)
    assert page.status_code == 200 and b"13912340230" in page.content
    assert b"block-form" not in page.content
    assert client.post(url, {"kind": "ip", "value": "192.0.2.1", "reason": "x"}).status_code == 403
    assert client.post(remove).status_code == 403
    assert Blocked.objects.filter(pk=entry.pk).exists()
    assert Membership.objects.filter(user=reader).count() == 1


def test_photos_of_open311_reports_wait_too(world):
    case = public_report(world, source=Source.OPEN311, photos=[jpeg()])
    html = signed_in(world["clerk"]).get(reverse("portal:moderation")).content.decode()
    assert f'data-photo="{photo_of(case).pk}"' in html
