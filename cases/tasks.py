"""Background tasks of the case loop, run by the Tasks API worker (``manage.py db_worker``).

The overdue sweep keeps itself going: each run queues the next one a minute
later, so one ``schedule_sweeps`` (which ``make run`` calls before starting
the worker) is enough for as long as the task queue lives.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_tasks import TaskResultStatus, task, task_backends

from core.signals import minute_sweep

from . import services

SWEEP_INTERVAL = timedelta(seconds=60)


@task()
def sweep_overdue_task(reschedule: bool = True) -> int:
    """Mark overdue cases (cases.services.cases_sweep_overdue), close unrated residents'
    cases as satisfied by default (cases_close_unrated) and erase reporters' data past
    its retention period (cases_purge_reporter_data); then let other apps do their
    own periodic work (core.signals.minute_sweep) and queue the next sweep."""
    try:
        marked = services.cases_sweep_overdue()
        services.cases_close_unrated()
        services.cases_purge_reporter_data()
        minute_sweep.send(sender=sweep_overdue_task.__class__)
        return marked
    finally:
        # Even a failed sweep queues its successor: one bad minute must not end the chain.
        if reschedule:
            schedule_next_sweep(delay=SWEEP_INTERVAL)


def _sweep_already_queued() -> bool:
    backend = task_backends[sweep_overdue_task.backend]
    try:
        from django_tasks_db.backend import DatabaseBackend
        from django_tasks_db.models import DBTaskResult
    except ImportError:  # pragma: no cover - the database backend is installed
        return False
    if not isinstance(backend, DatabaseBackend):
        return False
    return DBTaskResult.objects.filter(
        task_path=sweep_overdue_task.module_path,
        status=TaskResultStatus.READY,
        backend_name=backend.alias,
    ).exists()


def schedule_next_sweep(*, delay: timedelta | None = SWEEP_INTERVAL) -> bool:
    """Queue a sweep ``delay`` from now unless one is already waiting; whether one was queued.

    A backend that cannot defer (the immediate backend) would run the chain
    recursively at once, so it gets nothing. Two chains started at once (two
    workers finishing together) fold into one: a sweep that finds another
    waiting queues none.
    """
    backend = task_backends[sweep_overdue_task.backend]
    if delay and not backend.supports_defer:
        return False
    if _sweep_already_queued():
        return False
    pending = sweep_overdue_task
    if delay:
        pending = sweep_overdue_task.using(run_after=timezone.now() + delay)
    pending.enqueue()
    return True
