"""The areas' version counter: how every process learns that its index is stale."""

from __future__ import annotations

from core.versioning import bump_version, current_version

AREAS = "areas"


def bump_area_version() -> None:
    """Increment the areas' counter inside the caller's transaction (one UPDATE)."""
    bump_version(AREAS)


def current_area_version() -> int:
    return current_version(AREAS)
