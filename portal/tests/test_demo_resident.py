import pytest
from django.contrib.auth import SESSION_KEY

from accounts.models import User
from cases.testing import make_case_world
from portal.demo import DEMO_RESIDENT_EMAIL, seed_demo_resident
from portal.models import ResidentLogin, Suggestion

pytestmark = pytest.mark.django_db


def test_the_demo_resident_signs_in_on_the_portal_and_has_reports_to_follow(small_city, client):
    make_case_world(small_city)
    resident = User.objects.create_user("resident", password="civicgrid-demo")
    assert seed_demo_resident() == 2
    assert seed_demo_resident() == 0  # once
    resident.refresh_from_db()
    assert resident.is_resident
    assert ResidentLogin.objects.get(user=resident).value == DEMO_RESIDENT_EMAIL
    reports = list(resident.reported_cases.all())
    assert len(reports) == 2 and all(c.public_token and c.source == "portal" for c in reports)
    assert Suggestion.objects.filter(resident=resident).count() == 1
    response = client.post(
        "/portal/me/login/",
        {"identifier": DEMO_RESIDENT_EMAIL, "password": "civicgrid-demo"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 302
    assert client.session[SESSION_KEY] == str(resident.pk)
