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
