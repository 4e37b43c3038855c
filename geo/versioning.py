"""The areas' version counter: how every process learns that its index is stale."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F

from .models import GeoVersion


def bump_area_version() -> None:
    """Increment the counter inside the caller's transaction (one UPDATE)."""
    with transaction.atomic():
        updated = GeoVersion.objects.filter(key=GeoVersion.AREAS).update(version=F("version") + 1)
        if not updated:
            GeoVersion.objects.get_or_create(key=GeoVersion.AREAS, defaults={"version": 1})


def current_area_version() -> int:
    row = GeoVersion.objects.filter(key=GeoVersion.AREAS).values_list("version", flat=True).first()
    return int(row or 0)
