"""Time-limit lights: green, yellow or red by the share of working time used."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

Light = Literal["green", "yellow", "red"]


def light(
    *,
    started_at: datetime,
    deadline: datetime,
    now: datetime,
    yellow_ratio: float | None = None,
    calendar=None,
) -> Light:
    """Red once ``now`` reaches the deadline; yellow once the working time used
    reaches ``yellow_ratio`` of the working time allowed; green before that.

    ``yellow_ratio`` defaults to the ``sla.yellow_ratio`` setting (预警线) and
    ``calendar`` to this installation's work calendar.
    """
    if now >= deadline:
        return "red"
    if yellow_ratio is None:
        from core.services import setting_get

        yellow_ratio = float(setting_get("sla.yellow_ratio"))
    if not 0 < yellow_ratio < 1:
        raise ValueError("yellow_ratio must be greater than 0 and less than 1")
    if calendar is None:
        from core.calendar_store import work_calendar

        calendar = work_calendar()
    allowed = calendar.working_seconds_between(started_at, deadline)
    if allowed <= 0:
        # A deadline that allows no working time (set by hand, or a limit ending
        # at the moment it starts) warns for its whole, short life.
        return "yellow"
    used = max(0.0, calendar.working_seconds_between(started_at, now))
    return "yellow" if used >= yellow_ratio * allowed else "green"


def _yellow_ratio() -> float:
    from core.services import setting_get

    ratio = float(setting_get("sla.yellow_ratio"))
    if not 0 < ratio < 1:
        raise ValueError("yellow_ratio must be greater than 0 and less than 1")
    return ratio


def yellow_from(
    *, started_at: datetime, deadline: datetime, yellow_ratio: float | None = None, calendar=None
) -> datetime:
    """The moment :func:`light` turns yellow for a step from ``started_at`` to ``deadline``.

    Stored beside the deadline (``Case.step_yellow_at``) so that lists filter
    by light with two indexed comparisons instead of calendar arithmetic per
    row. The yellow line in force when the step starts applies to the whole step.
    """
    if yellow_ratio is None:
        yellow_ratio = _yellow_ratio()
    if calendar is None:
        from core.calendar_store import work_calendar

        calendar = work_calendar()
    allowed = calendar.working_seconds_between(started_at, deadline)
    if allowed <= 0:
        return started_at
    return min(deadline, calendar.add_working_hours(started_at, yellow_ratio * allowed / 3600))


def stored_light(*, yellow_at: datetime | None, deadline: datetime, now: datetime) -> Light:
    """The light from a stored deadline and yellow moment; what the list filters select."""
    if now >= deadline:
        return "red"
    if yellow_at is not None and now >= yellow_at:
        return "yellow"
    return "green"
