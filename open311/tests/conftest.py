"""Shared fixtures of the Open311 tests: the staffed small city, a client key, and
helpers that speak GeoReport v2 in either format."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

# pytest finds fixtures by name in a conftest, so importing them is what shares them.
from accounts.testing import english  # noqa: F401
from cases.testing import GRID_POINT, make_case_world
from open311.services import api_key_create

BASE = "/open311/v2"


@pytest.fixture(autouse=True)
def _roomy_public_limits(settings):
    """Room for a test's posts from one address; the limits' own tests narrow them again."""
    settings.CIVICGRID = {
        **settings.CIVICGRID,
        "PUBLIC_RATE_LIMITS": {"ip": (1000, 3600), "account": (1000, 3600), "burst": (1000, 60)},
        "OPEN311_JURISDICTIONS": {},
    }


@pytest.fixture
def world(small_city):
    return make_case_world(small_city)


@pytest.fixture
def api_key(world):
    """A key for the whole district, its secret kept on it as ``secret``."""
    key, secret = api_key_create(
        actor=None, name="Street app", jurisdiction=world.city.district, requests_per_minute=100
    )
    key.secret = secret
    return key


def parse(response):
    """The body as Python: JSON as is; XML as an ElementTree element (root checked)."""
    content_type = response["Content-Type"]
    if content_type.startswith("application/json"):
        assert content_type == "application/json; charset=utf-8"
        return json.loads(response.content)
    assert content_type == "text/xml; charset=utf-8", content_type
    assert response.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(response.content)


def errors_of(response) -> list[tuple[int, str]]:
    """The spec's error body, in either format, as (code, description) pairs."""
    body = parse(response)
    if isinstance(body, list):
        assert all(set(e) == {"code", "description"} for e in body), body
        return [(e["code"], e["description"]) for e in body]
    assert body.tag == "errors"
    pairs = []
    for error in body:
        assert error.tag == "error"
        assert [c.tag for c in error] == ["code", "description"]
        pairs.append((int(error.findtext("code")), error.findtext("description")))
    return pairs


def report_data(**extra) -> dict:
    data = {
        "service_code": "E0101",
        "lat": str(GRID_POINT[0]),
        "long": str(GRID_POINT[1]),
        "description": "小区门口垃圾没人清",
        "email": "zhang.san@example.com",
        "phone": "13900001111",
        "first_name": "三",
        "last_name": "张",
    }
    data.update(extra)
    return {k: v for k, v in data.items() if v is not None}


def post_request(client, key=None, fmt="json", *, header=False, **extra):
    data = report_data(**extra)
    headers = {}
    if key is not None:
        secret = key if isinstance(key, str) else key.secret
        if header:
            headers["HTTP_X_API_KEY"] = secret
        else:
            data["api_key"] = secret
    return client.post(f"{BASE}/requests.{fmt}", data, **headers)
