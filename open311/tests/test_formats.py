"""The two formats: escaping, characters XML cannot carry, error bodies."""

import json
import xml.etree.ElementTree as ET

import pytest

from cases.services import case_report_result
from cases.testing import GRID_POINT
from open311.formats import render_errors, to_json, to_xml

from .conftest import BASE, parse

pytestmark = pytest.mark.usefixtures("english")

NASTY = 'A & B <b>"x"</b> \x00\x07\x1b tab\tline\nend ]]> 中文'


def test_xml_escapes_markup_and_drops_what_xml_cannot_carry():
    body = to_xml("services", [{"service_name": NASTY, "metadata": True, "group": None}])
    root = ET.fromstring(body)
    (service,) = root
    assert service.findtext("service_name") == 'A & B <b>"x"</b>  tab\tline\nend ]]> 中文'
    assert service.findtext("metadata") == "true"
    assert service.find("group").text is None
    assert b"<b>" not in body


def test_json_keeps_the_text_and_its_types():
    body = json.loads(to_json([{"service_name": NASTY, "metadata": True, "group": None}]))
    assert body == [{"service_name": NASTY, "metadata": True, "group": None}]


@pytest.mark.parametrize("fmt", ["json", "xml", "csv"])
def test_error_bodies(fmt):
    response = render_errors(fmt, 403, ["Invalid api_key.", "Second <problem>"])
    assert response.status_code == 403
    assert response["Cache-Control"] == "no-store"
    if fmt == "json":
        assert json.loads(response.content) == [
            {"code": 403, "description": "Invalid api_key."},
            {"code": 403, "description": "Second <problem>"},
        ]
    else:  # XML, the format every server must speak, also for an unknown one
        assert response["Content-Type"] == "text/xml; charset=utf-8"
        root = ET.fromstring(response.content)
        assert root.tag == "errors"
        assert [(e.findtext("code"), e.findtext("description")) for e in root] == [
            ("403", "Invalid api_key."),
            ("403", "Second <problem>"),
        ]


@pytest.mark.django_db
def test_stored_text_cannot_break_the_xml(client, world):
    case, _created = case_report_result(
        actor=None,
        public=True,
        source="portal",
        category=world.garbage,
        lat=GRID_POINT[0],
        lng=GRID_POINT[1],
        description="x",
        address=NASTY.replace("\x00", ""),  # PostgreSQL stores no NUL
    )
    root = parse(client.get(f"{BASE}/requests/{case.number}.xml"))
    assert root.find("request").findtext("address").startswith("A & B <b>")
    (row,) = parse(client.get(f"{BASE}/requests/{case.number}.json"))
    assert row["address"] == case.address
