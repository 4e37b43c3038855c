"""Shared pieces of the resident, suggestion and moderation tests."""

from __future__ import annotations

import io

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from cases.models import Case, Source
from cases.services import case_report_result
from cases.testing import GRID_POINT, OTHER_GRID_POINT
from portal import services

PASSWORD = "Wd7!correct-horse-battery"


def english_client(ip: str = "127.0.0.1") -> Client:
    return Client(HTTP_ACCEPT_LANGUAGE="en", REMOTE_ADDR=ip)


def make_resident(*, email: str = "", phone: str = "", password: str = PASSWORD):
    return services.resident_signup(email=email, phone=phone, password=password)


def signed_in(user, ip: str = "127.0.0.1") -> Client:
    client = english_client(ip)
    client.force_login(user)
    return client


def jpeg(name: str = "photo.jpg", size=(40, 30)) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 80, 40)).save(buffer, "JPEG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/jpeg")


def public_report(
    world,
    *,
    resident=None,
    other_grid: bool = False,
    description: str = "Rubbish piled by the bus stop",
    photos=None,
    source: str = Source.PORTAL,
    **contact,
) -> Case:
    """A resident's report through the portal (signed in when ``resident`` is given)."""
    lat, lng = OTHER_GRID_POINT if other_grid else GRID_POINT
    case, _created = case_report_result(
        actor=resident,
        category=world.garbage,
        lat=lat,
        lng=lng,
        description=description,
        source=source,
        public=True,
        photos=photos,
        **contact,
    )
    return case
