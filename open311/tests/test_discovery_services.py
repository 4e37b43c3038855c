"""Discovery, the service list and service definitions, in XML and JSON, as the spec has them."""

import pytest

from cases.models import Category, Kind

from .conftest import BASE, errors_of, parse

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

SERVICE_FIELDS = [
    "service_code",
    "service_name",
    "description",
    "metadata",
    "type",
    "keywords",
    "group",
]
ATTRIBUTE_FIELDS = [
    "variable",
    "code",
    "datatype",
    "required",
    "datatype_description",
    "order",
    "description",
    "values",
]


def test_discovery_in_both_formats(client, world):
    body = parse(client.get(f"{BASE}/discovery.json"))
    assert list(body) == ["changeset", "contact", "key_service", "endpoints"]
    (endpoint,) = body["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == "http://testserver/open311/v2"
    assert endpoint["type"] == "test"  # not the production settings
    assert endpoint["formats"] == ["text/xml", "application/json"]
    assert endpoint["changeset"] == body["changeset"]

    root = parse(client.get(f"{BASE}/discovery.xml"))
    assert root.tag == "discovery"
    assert [c.tag for c in root] == ["changeset", "contact", "key_service", "endpoints"]
    (xml_endpoint,) = root.find("endpoints")
    assert xml_endpoint.tag == "endpoint"
    assert [c.tag for c in xml_endpoint] == [
        "specification",
        "url",
        "changeset",
        "type",
        "formats",
    ]
    assert [f.text for f in xml_endpoint.find("formats").findall("format")] == [
        "text/xml",
        "application/json",
    ]
    assert root.findtext("changeset") == body["changeset"]


def test_discovery_texts_and_changeset_follow_the_settings_and_the_classes(client, world, settings):
    settings.CIVICGRID = {
        **settings.CIVICGRID,
        "OPEN311_CONTACT": "12345 hotline, open311@example.gov.cn",
        "OPEN311_KEY_SERVICE": "Write to open311@example.gov.cn for a key.",
    }
    settings.PRODUCTION = True
    before = parse(client.get(f"{BASE}/discovery.json"))
    assert before["contact"] == "12345 hotline, open311@example.gov.cn"
    assert before["key_service"] == "Write to open311@example.gov.cn for a key."
    assert before["endpoints"][0]["type"] == "production"
    world.garbage.resident_help = "Garbage left in the street."
    world.garbage.save()
    after = parse(client.get(f"{BASE}/discovery.json"))
    assert after["changeset"] >= before["changeset"]
    assert after["changeset"].endswith("+08:00")


def test_service_list_in_json(client, world):
    services = parse(client.get(f"{BASE}/services.json"))
    by_code = {s["service_code"]: s for s in services}
    assert all(list(s) == SERVICE_FIELDS for s in services)
    garbage = by_code["E0101"]
    assert garbage["service_name"] == "Exposed garbage"
    assert garbage["group"] == "City appearance and sanitation"
    assert garbage["metadata"] is True
    assert garbage["type"] == "realtime"
    assert "暴露垃圾" in garbage["keywords"].split(", ")
    assert garbage["description"]
    # The same code under both kinds stays two services.
    assert by_code["C0101"]["service_name"] == "Water supply manhole cover"
    # Only minor classes: a major class is a group, not a service.
    assert all(len(code) == 5 for code in by_code)


def test_service_list_in_xml(client, world):
    root = parse(client.get(f"{BASE}/services.xml"))
    assert root.tag == "services"
    services = root.findall("service")
    assert len(services) == len(root) > 10
    assert all([c.tag for c in s] == SERVICE_FIELDS for s in services)
    garbage = next(s for s in services if s.findtext("service_code") == "E0101")
    assert garbage.findtext("metadata") == "true"
    assert garbage.findtext("type") == "realtime"
    assert garbage.findtext("group") == "City appearance and sanitation"


def test_service_list_speaks_chinese_by_default(client, world, settings):
    settings.LANGUAGE_CODE = "zh-hans"
    services = parse(client.get(f"{BASE}/services.json", HTTP_ACCEPT_LANGUAGE="zh-hans"))
    garbage = next(s for s in services if s["service_code"] == "E0101")
    assert garbage["service_name"] == "暴露垃圾"
    assert garbage["group"] == "市容环境"


def test_only_classes_residents_may_report_are_services(client, world):
    Category.objects.filter(kind=Kind.EVENT, code="0102").update(is_public=False)
    Category.objects.filter(kind=Kind.EVENT, code="0103").update(is_active=False)
    Category.objects.filter(kind=Kind.EVENT, code="02").update(is_active=False)
    codes = {s["service_code"] for s in parse(client.get(f"{BASE}/services.json"))}
    assert "E0101" in codes
    assert "E0102" not in codes and "E0103" not in codes
    assert not any(code.startswith("E02") for code in codes)
    for code in ("E0102", "E0103", "E0201"):
        response = client.get(f"{BASE}/services/{code}.json")
        assert response.status_code == 404
        assert errors_of(response) == [(404, f"service_code {code} was not found.")]


def test_service_definition_in_json(client, world):
    body = parse(client.get(f"{BASE}/services/E0101.json"))
    assert body["service_code"] == "E0101"
    urgency, detail = body["attributes"]
    assert list(urgency) == ATTRIBUTE_FIELDS
    assert urgency["code"] == "URGENCY"
    assert urgency["datatype"] == "singlevaluelist"
    assert urgency["variable"] is True and urgency["required"] is False
    assert urgency["order"] == 1
    assert [v["key"] for v in urgency["values"]] == ["normal", "urgent"]
    assert all(set(v) == {"key", "name"} for v in urgency["values"])
    assert detail["code"] == "LOCATION_DETAIL"
    assert detail["datatype"] == "string"
    assert detail["order"] == 2
    assert detail["values"] == []


def test_service_definition_in_xml(client, world):
    root = parse(client.get(f"{BASE}/services/C0101.xml"))
    assert root.tag == "service_definition"
    assert [c.tag for c in root] == ["service_code", "attributes"]
    assert root.findtext("service_code") == "C0101"
    attributes = root.find("attributes").findall("attribute")
    assert [a.findtext("code") for a in attributes] == ["URGENCY", "LOCATION_DETAIL"]
    assert all([c.tag for c in a] == ATTRIBUTE_FIELDS for a in attributes)
    values = attributes[0].find("values").findall("value")
    assert [(v.findtext("key"), v.findtext("name")) for v in values] == [
        ("normal", "Normal"),
        ("urgent", "Urgent"),
    ]
    assert attributes[0].findtext("required") == "false"


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("code", ["E9999", "0101", "X0101", "e0101", "E01"])
def test_unknown_service_code_is_404_in_the_asked_format(client, world, fmt, code):
    response = client.get(f"{BASE}/services/{code}.{fmt}")
    assert response.status_code == 404
    assert errors_of(response) == [(404, f"service_code {code} was not found.")]


def test_an_unknown_format_is_400_in_xml(client, world):
    response = client.get(f"{BASE}/services.csv")
    assert response.status_code == 400
    assert errors_of(response) == [(400, "Unknown format csv: ask for .xml or .json.")]


def test_the_format_suffix_is_case_insensitive(client, world):
    assert parse(client.get(f"{BASE}/services.JSON"))[0]["service_code"]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_an_unknown_resource_is_404_in_the_asked_format(client, world, fmt):
    response = client.get(f"{BASE}/nothing/here.{fmt}")
    assert response.status_code == 404
    assert errors_of(response) == [(404, "There is no such resource here.")]


@pytest.mark.parametrize("path", ["services.json", "services/E0101.xml", "discovery.json"])
def test_writing_to_a_read_only_resource_is_refused(client, world, path):
    response = client.post(f"{BASE}/{path}", {"x": "1"})
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert errors_of(response) == [(405, "POST is not allowed here.")]


def test_head_answers_like_get_without_a_body(client, world):
    response = client.head(f"{BASE}/services.xml")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml; charset=utf-8"
    assert response.content == b""
