"""Named version counters: how every process learns that an in-memory copy is stale."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F

from .models import VersionCounter


def bump_version(key: str) -> None:
    """Increment ``key`` inside the caller's transaction (one UPDATE)."""
    with transaction.atomic():
        if not VersionCounter.objects.filter(key=key).update(version=F("version") + 1):
            VersionCounter.objects.get_or_create(key=key, defaults={"version": 1})


def current_version(key: str) -> int:
    row = VersionCounter.objects.filter(key=key).values_list("version", flat=True).first()
    return int(row or 0)
