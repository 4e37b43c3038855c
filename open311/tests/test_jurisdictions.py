"""jurisdiction_id as the spec says: required with several, optional with one, 404 unknown."""

import pytest

from cases.models import Case
from cases.services import case_report_result
from cases.testing import GRID_POINT, OTHER_GRID_POINT
from open311.services import api_key_create

from .conftest import BASE, errors_of, parse, post_request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

READS = ["services.{fmt}", "services/E0101.{fmt}", "requests.{fmt}"]


def configure(settings, mapping):
    settings.CIVICGRID = {**settings.CIVICGRID, "OPEN311_JURISDICTIONS": mapping}


def resident_report(world, point):
    case, _created = case_report_result(
        actor=None,
        public=True,
        source="portal",
        category=world.garbage,
        lat=point[0],
        lng=point[1],
        description="垃圾",
    )
    return case


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_without_configured_jurisdictions_an_id_is_unknown(client, world, settings, path, fmt):
    configure(settings, {})
    assert client.get(f"{BASE}/{path.format(fmt=fmt)}").status_code == 200
    response = client.get(f"{BASE}/{path.format(fmt=fmt)}?jurisdiction_id=city.gov")
    assert response.status_code == 404
    assert errors_of(response) == [(404, "jurisdiction_id city.gov was not found.")]


@pytest.mark.parametrize("path", READS)
def test_with_one_jurisdiction_the_id_is_optional(client, world, settings, path):
    configure(settings, {"chaoyang.example.gov.cn": "110105"})
    assert client.get(f"{BASE}/{path.format(fmt='json')}").status_code == 200
    query = "?jurisdiction_id=chaoyang.example.gov.cn"
    assert client.get(f"{BASE}/{path.format(fmt='json')}{query}").status_code == 200
    wrong = client.get(f"{BASE}/{path.format(fmt='xml')}?jurisdiction_id=other.gov")
    assert wrong.status_code == 404
    assert errors_of(wrong) == [(404, "jurisdiction_id other.gov was not found.")]


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_with_several_jurisdictions_the_id_is_required(client, world, settings, path, fmt):
    configure(settings, {"c1.example.gov.cn": "110105001001", "c2.example.gov.cn": "110105001002"})
    response = client.get(f"{BASE}/{path.format(fmt=fmt)}")
    assert response.status_code == 400
    assert errors_of(response) == [
        (
            400,
            "jurisdiction_id was not provided: this endpoint serves several jurisdictions "
            "(c1.example.gov.cn, c2.example.gov.cn).",
        )
    ]
    ok = client.get(f"{BASE}/{path.format(fmt=fmt)}?jurisdiction_id=c1.example.gov.cn")
    assert ok.status_code == 200


def test_a_configured_area_that_does_not_exist_is_404(client, world, settings):
    configure(settings, {"gone.example.gov.cn": "999999"})
    response = client.get(f"{BASE}/services.json")
    assert response.status_code == 404


def test_requests_are_those_of_the_jurisdiction(client, world, settings):
    configure(settings, {"c1.example.gov.cn": "110105001001", "c2.example.gov.cn": "110105001002"})
    first = resident_report(world, GRID_POINT)
    second = resident_report(world, OTHER_GRID_POINT)

    def numbers(jurisdiction):
        response = client.get(f"{BASE}/requests.json?jurisdiction_id={jurisdiction}")
        return [r["service_request_id"] for r in parse(response)]

    assert numbers("c1.example.gov.cn") == [first.number]
    assert numbers("c2.example.gov.cn") == [second.number]
    inside = client.get(f"{BASE}/requests/{first.number}.json?jurisdiction_id=c1.example.gov.cn")
    assert inside.status_code == 200
    outside = client.get(f"{BASE}/requests/{first.number}.json?jurisdiction_id=c2.example.gov.cn")
    assert outside.status_code == 404
    ids = f"{first.number},{second.number}"
    response = client.get(
        f"{BASE}/requests.json?service_request_id={ids}&jurisdiction_id=c2.example.gov.cn"
    )
    assert [r["service_request_id"] for r in parse(response)] == [second.number]


def test_tokens_answer_only_within_the_jurisdiction(client, world, settings, api_key):
    configure(settings, {"c1.example.gov.cn": "110105001001", "c2.example.gov.cn": "110105001002"})
    response = post_request(client, api_key, jurisdiction_id="c1.example.gov.cn")
    assert response.status_code == 200
    token = response["X-Open311-Token"]
    assert (
        client.get(f"{BASE}/tokens/{token}.json?jurisdiction_id=c1.example.gov.cn").status_code
        == 200
    )
    assert (
        client.get(f"{BASE}/tokens/{token}.json?jurisdiction_id=c2.example.gov.cn").status_code
        == 404
    )


def test_posting_names_the_jurisdiction_when_there_are_several(client, world, settings, api_key):
    configure(settings, {"c1.example.gov.cn": "110105001001", "c2.example.gov.cn": "110105001002"})
    missing = post_request(client, api_key)
    assert missing.status_code == 400
    unknown = post_request(client, api_key, jurisdiction_id="elsewhere.gov")
    assert unknown.status_code == 404
    wrong_place = post_request(client, api_key, jurisdiction_id="c2.example.gov.cn")
    assert wrong_place.status_code == 400
    assert errors_of(wrong_place) == [
        (400, "lat, long: This point lies outside jurisdiction c2.example.gov.cn.")
    ]
    ok = post_request(client, api_key, jurisdiction_id="c1.example.gov.cn")
    assert ok.status_code == 200
    case = Case.objects.get()
    assert case.events.get().data["jurisdiction_id"] == "c1.example.gov.cn"


def test_a_key_of_another_jurisdiction_is_403(client, world, settings):
    configure(settings, {"c1.example.gov.cn": "110105001001", "c2.example.gov.cn": "110105001002"})
    _key, secret = api_key_create(
        actor=None, name="Community 2 app", jurisdiction=world.city.communities[1]
    )
    response = post_request(client, secret, jurisdiction_id="c1.example.gov.cn")
    assert response.status_code == 403
    assert errors_of(response) == [(403, "This api_key is for another jurisdiction.")]
    assert not Case.objects.exists()
