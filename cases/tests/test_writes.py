"""The report's rows as cases.writes writes them: what the ORM would have written,
all or nothing, numbered without gaps."""

from datetime import UTC, date, datetime

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEntry
from cases.models import Case, CaseEvent, DailyCounter, Kind
from cases.services import case_report
from cases.testing import GRID_POINT, make_case_world
from cases.writes import insert_values

NOON = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
DAY = date(2026, 12, 3)


@pytest.fixture
def world(small_city):
    return make_case_world(small_city)


def report(world, **extra):
    fields = {
        "actor": world["worker"],
        "category": world.garbage,
        "lat": GRID_POINT[0],
        "lng": GRID_POINT[1],
        "description": "路边垃圾",
        "source": "grid_worker",
        **extra,
    }
    return case_report(**fields)


def test_the_rows_are_those_the_orm_reads_back(world):
    with time_machine.travel(NOON, tick=False):
        case = report(world, address="河滨路 3 号", reporter_phone="13800000000")
    stored = Case.objects.get(pk=case.pk)
    for f in Case._meta.concrete_fields:
        assert getattr(stored, f.attname) == getattr(case, f.attname), f.name
    assert stored.number == "E0101202612030001"
    assert stored.area_code == world.city.grids[0].code
    event = CaseEvent.objects.get(case=stored)
    assert event.pk == case.reported.event.pk
    assert (event.action, event.to_state, event.actor_id) == (
        "report",
        "reported",
        world["worker"].pk,
    )
    assert event.deadline == stored.step_deadline
    assert event.data["grid"] == stored.area_code
    entry = AuditEntry.objects.get(action="case.report")
    assert (entry.object_type, entry.object_id, entry.object_repr) == (
        "cases.case",
        str(stored.pk),
        stored.number,
    )
    assert entry.actor_id == world["worker"].pk and entry.after["state"] == "reported"


def test_the_days_first_report_makes_the_counter_and_the_next_ones_count_on(world):
    assert not DailyCounter.objects.exists()
    with time_machine.travel(NOON, tick=False):
        numbers = [report(world).number for _ in range(3)]
        other = report(world, category=world.manhole).number
    assert numbers == [f"E0101202612030{n:03d}" for n in (1, 2, 3)]
    assert other == "C0101202612030001"
    assert DailyCounter.objects.get(date=DAY, kind=Kind.EVENT).last == 3


def test_serials_past_four_digits_keep_every_digit(world):
    DailyCounter.objects.create(date=DAY, kind=Kind.EVENT, last=9998)
    with time_machine.travel(NOON, tick=False):
        numbers = [report(world).number for _ in range(3)]
    assert numbers == ["E0101202612039999", "E01012026120310000", "E01012026120310001"]
    assert [c.number for c in Case.objects.order_by("pk")] == numbers


def test_a_refused_write_leaves_nothing_and_the_transaction_usable(world, monkeypatch):
    from cases import services

    with time_machine.travel(NOON, tick=False):
        first = report(world, idempotency_key="k-1")
    counts = (Case.objects.count(), CaseEvent.objects.count(), AuditEntry.objects.count())
    # The same key again, past the service's own look-up (as when two retries race):
    # the unique constraint refuses the case, and with it the serial, the timeline
    # entry and the audit entry.
    monkeypatch.setattr(services, "_first_with_key", lambda actor, key: None)
    with transaction.atomic():
        with time_machine.travel(NOON, tick=False), pytest.raises(IntegrityError):
            report(world, idempotency_key="k-1")
        assert Case.objects.filter(pk=first.pk).exists()  # the transaction is still usable
    assert (Case.objects.count(), CaseEvent.objects.count(), AuditEntry.objects.count()) == counts
    assert DailyCounter.objects.get(date=DAY, kind=Kind.EVENT).last == 1
    monkeypatch.undo()
    with time_machine.travel(NOON, tick=False):
        assert report(world).number == "E0101202612030002"  # no gap


def test_postgres_writes_the_report_in_one_statement(world):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    with CaptureQueriesContext(connection) as queries, time_machine.travel(NOON, tick=False):
        report(world)
    writes = [q["sql"] for q in queries.captured_queries if "INSERT INTO" in q["sql"]]
    assert len(writes) == 1 and writes[0].startswith("WITH"), writes


def test_insert_values_are_what_the_fields_send(world):
    # The fast path (values passed as they are, instants adapted directly) gives what
    # each field's get_db_prep_save gives, for a case, its timeline entry and its audit
    # entry as a report makes them.
    with time_machine.travel(NOON, tick=False):
        case = report(world, reporter_email="a@example.org", address="河滨路")
    made = [
        Case.objects.get(pk=case.pk),
        CaseEvent.objects.get(case=case),
        AuditEntry.objects.get(action="case.report"),
    ]
    for obj in made:
        obj.pk = None
        columns, values = insert_values(obj)
        fields = [f for f in obj._meta.local_concrete_fields if not f.primary_key]
        assert columns == [f.column for f in fields]
        expected = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
        for column, value, want in zip(columns, values, expected, strict=True):
            # (PostgreSQL's driver may tag a small integer with its type: the same int.)
            # (JSON goes in the driver's wrapper, which compares by identity.)
            value, want = getattr(value, "obj", value), getattr(want, "obj", want)
            assert value == want and isinstance(want, type(value)), (column, value, want)
    columns, _values = insert_values(made[0], leave_out=("number",))
    assert "number" not in columns


@pytest.mark.django_db(transaction=True)
def test_held_audit_entries_go_with_the_report_or_stay_held_when_it_fails(small_city, monkeypatch):
    from accounts import audit
    from cases import services

    world = make_case_world(small_city)
    with audit.holding():
        audit.audit_later(actor=world["worker"], action="token_use")
        with time_machine.travel(NOON, tick=False):
            report(world, idempotency_key="k-1")
        # Written with the report, in its statement or transaction.
        assert AuditEntry.objects.filter(action="token_use").count() == 1
        audit.audit_later(actor=world["worker"], action="token_use")
        monkeypatch.setattr(services, "_first_with_key", lambda actor, key: None)
        with time_machine.travel(NOON, tick=False), pytest.raises(IntegrityError):
            report(world, idempotency_key="k-1")
        assert AuditEntry.objects.filter(action="token_use").count() == 1  # held again
    assert AuditEntry.objects.filter(action="token_use").count() == 2  # the request ended
    assert Case.objects.count() == 1
