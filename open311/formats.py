"""GeoReport v2 bodies in XML and JSON, and its error bodies.

Both formats come from one Python structure, the JSON one by the spec's
"Spark convention": a list of elements becomes a JSON array, an element
with children an object, an empty element ``null``. XML is the spec's
schemaless, namespace-free XML with an ``encoding="utf-8"`` declaration;
ElementTree escapes the text, and characters XML 1.0 cannot carry (control
characters other than tab and line breaks) are dropped, so no stored text
can break the document.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime

from django.http import HttpResponse
from django.utils import timezone

JSON = "json"
XML = "xml"
FORMATS = (XML, JSON)
CONTENT_TYPES = {
    XML: "text/xml; charset=utf-8",
    JSON: "application/json; charset=utf-8",
}
# The MIME types discovery lists for the endpoint.
MIME_TYPES = ["text/xml", "application/json"]

# The element each member of a list is called in XML.
ITEM_NAMES = {
    "services": "service",
    "service_requests": "request",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
    "errors": "error",
}

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def w3c(moment: datetime | None) -> str | None:
    """A moment as the W3C date-time the spec asks for, with its UTC offset (local time)."""
    if moment is None:
        return None
    return timezone.localtime(moment).isoformat(timespec="seconds")


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return _XML_INVALID.sub("", str(value))


def _fill(element: ET.Element, value) -> None:
    if isinstance(value, dict):
        for name, child in value.items():
            _fill(ET.SubElement(element, name), child)
    elif isinstance(value, list):
        item = ITEM_NAMES[element.tag]
        for member in value:
            _fill(ET.SubElement(element, item), member)
    else:
        element.text = _text(value)


def to_xml(root: str, data) -> bytes:
    element = ET.Element(root)
    _fill(element, data)
    body = ET.tostring(element, encoding="unicode")
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + body).encode("utf-8")


def to_json(data) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def render(fmt: str, root: str, data, *, status: int = 200) -> HttpResponse:
    """``data`` under the XML element ``root`` (a list: one child per member), or as JSON."""
    body = to_json(data) if fmt == JSON else to_xml(root, data)
    response = HttpResponse(body, status=status, content_type=CONTENT_TYPES[fmt])
    response["X-Content-Type-Options"] = "nosniff"
    return response


def render_errors(fmt: str, status: int, descriptions, *, code: int | None = None) -> HttpResponse:
    """The spec's error body: ``errors`` → ``error`` with ``code`` and ``description``,
    one per description; ``code`` defaults to the HTTP status."""
    if fmt not in FORMATS:
        fmt = XML  # XML is the format every GeoReport v2 server must speak
    errors = [{"code": code or status, "description": str(d)} for d in descriptions]
    response = render(fmt, "errors", errors, status=status)
    response["Cache-Control"] = "no-store"
    return response
