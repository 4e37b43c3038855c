"""Writing a new case with its first timeline entry and its audit entry, as few
statements as the database allows.

A report writes four rows that depend on one another: the day's counter gives the
serial, the serial makes the case's number, the case's id goes into its timeline
entry and its audit entry. Through the ORM that is a transaction of six statements
(begin, four writes, commit), and the day's counter stays locked from the first
write to the commit, so concurrent reports queue behind every one of them.

- PostgreSQL: one statement. The four inserts are data-modifying common table
  expressions that hand the serial and the case's id to one another; a single
  statement is atomic by itself, so it needs no transaction of its own.
- Elsewhere (SQLite): one short transaction (BEGIN IMMEDIATE) with the four
  statements, their SQL and values made before it begins.

Either way the counter is taken with an upsert, so the day's first report needs no
second attempt. The rows are exactly those the ORM would write: the values go
through each field's ``pre_save`` and ``get_db_prep_save``, as in ``Model.save``.
"""

from __future__ import annotations

import ipaddress
import json
from contextlib import nullcontext
from datetime import date, datetime
from decimal import Decimal

from django.db import connection, models, transaction
from django.db.models import AutoField, BigAutoField, Model, SmallAutoField

from accounts.audit import hold_again, take_held
from accounts.models import AuditEntry

from .models import Case, CaseEvent, DailyCounter

_AUTO = (AutoField, BigAutoField, SmallAutoField)


def insert_values(obj: Model, *, leave_out: tuple[str, ...] = ()) -> tuple[list[str], list]:
    """The columns and database values ``obj`` (unsaved) would be inserted with: every
    concrete field but an automatic primary key and the attnames in ``leave_out``."""
    fields, columns = _insert_fields(type(obj), leave_out, obj.pk is None)
    instant = connection.ops.adapt_datetimefield_value
    values = []
    for f, how in fields:
        value = getattr(obj, f.attname)
        # A text, number or truth value, or a key, goes to the database as it is, and
        # an instant as the backend adapts it: the value get_db_prep_save would give,
        # without the trip through the field.
        if how is _AS_IS and type(value) in _PLAIN_VALUES:
            pass
        elif how is _INSTANT and (value is None or type(value) is datetime):
            value = instant(value)
        else:
            value = f.get_db_prep_save(f.pre_save(obj, True), connection)
        values.append(value)
    return columns, values


_PLAIN_VALUES = frozenset({str, int, float, bool, type(None)})
_PLAIN_FIELDS = (
    models.CharField,
    models.TextField,
    models.IntegerField,
    models.FloatField,
    models.BooleanField,
    models.ForeignKey,
)


def _insert_fields(model, leave_out: tuple[str, ...], auto_pk: bool):
    """(field, whether its values pass as they are) and the columns, per model; cached."""
    key = (model, leave_out, auto_pk)
    found = _FIELDS.get(key)
    if found is None:
        fields = [
            f
            for f in model._meta.local_concrete_fields
            if f.attname not in leave_out
            and not (auto_pk and f.primary_key and isinstance(f, _AUTO))
        ]
        found = _FIELDS[key] = (
            [(f, _passes_as_is(f)) for f in fields],
            [f.column for f in fields],
        )
    return found


_AS_IS, _INSTANT = "as is", "instant"


def _passes_as_is(field) -> str | None:
    """How the field's values may skip the field: _AS_IS (a plain value is sent
    unchanged), _INSTANT (a datetime is sent as the backend adapts it), or None
    (through the field: conversions, auto_now, files)."""
    if type(field) is models.DateTimeField and not (field.auto_now or field.auto_now_add):
        return _INSTANT
    if type(field).pre_save is not models.Field.pre_save:
        return None
    if isinstance(field, models.ForeignKey):
        return _AS_IS if _passes_as_is(field.target_field) is _AS_IS else None
    # Their subclasses may convert (a JSON or a UUID kept as text, say): only these.
    plain = type(field) in _PLAIN_FIELDS or (
        isinstance(field, models.IntegerField) and type(field).__module__ == models.Field.__module__
    )
    return _AS_IS if plain else None


_FIELDS: dict[tuple, tuple] = {}


def _quoted(names) -> str:
    return ", ".join(connection.ops.quote_name(n) for n in names)


def _insert(model, columns: list[str], extra: list[str]) -> str:
    """INSERT INTO model (columns…, extra…) VALUES (%s…, {0}…): ``extra`` columns
    take the SQL expressions formatted in later."""
    placeholders = ["%s"] * len(columns) + [f"{{{i}}}" for i in range(len(extra))]
    return (
        f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} "
        f"({_quoted([*columns, *extra])}) VALUES ({', '.join(placeholders)})"
    )


def _counter_sql() -> str:
    meta, quote = DailyCounter._meta, connection.ops.quote_name
    table = quote(meta.db_table)
    day, kind, last = (quote(meta.get_field(n).column) for n in ("date", "kind", "last"))
    return (
        f"INSERT INTO {table} ({day}, {kind}, {last}) VALUES (%s, %s, %s) "
        f"ON CONFLICT ({day}, {kind}) DO UPDATE SET {last} = {table}.{last} + EXCLUDED.{last} "
        f"RETURNING {last}"
    )


def next_daily_serial(*, day: date, kind: str, count: int = 1) -> int:
    """The next serial of ``kind`` on ``day``: 1, 2, 3 … with no gap and no repeat; with
    ``count``, that many serials taken at once, and the last of them answered.

    One upsert. Call it inside the transaction that uses the number, so a
    rolled-back report gives its serial back: the counter's row lock
    (PostgreSQL) or the database's write lock (SQLite, whose transactions begin
    IMMEDIATE) is held until that transaction ends.
    """
    with connection.cursor() as cursor:
        cursor.execute(_counter_sql(), [connection.ops.adapt_datefield_value(day), kind, count])
        return int(cursor.fetchone()[0])


# The statements by database and column lists; made once per process.
_SQL: dict[tuple, object] = {}


def _postgres_sql(case_columns, event_columns, entry_columns) -> str:
    """The one statement; its parameters: the day and kind of the counter, the number's
    prefix and the three rows as JSON objects by column (:func:`_json_row`)."""
    key = ("postgresql", tuple(case_columns), tuple(event_columns), tuple(entry_columns))
    found = _SQL.get(key)
    if found is None:
        quote = connection.ops.quote_name
        last = quote(DailyCounter._meta.get_field("last").column)
        case_id, number = quote(Case._meta.pk.column), quote(Case._meta.get_field("number").column)
        serial = (
            f"(SELECT CASE WHEN {last} < 10000 THEN lpad({last}::text, 4, '0') "
            f"ELSE {last}::text END FROM s)"
        )
        case_sql = _from_json(Case, case_columns, ["number"]).format(f"%s || {serial}")
        event_sql = _from_json(CaseEvent, event_columns, ["case_id"]).format(
            f"(SELECT {case_id} FROM c)"
        )
        entry_sql = _from_json(AuditEntry, entry_columns, ["object_id", "object_repr"]).format(
            f"(SELECT {case_id} FROM c)::text", f"(SELECT {number} FROM c)"
        )
        event_id = quote(CaseEvent._meta.pk.column)
        entry_id = quote(AuditEntry._meta.pk.column)
        audit = quote(AuditEntry._meta.db_table)
        held = [f.column for f in AuditEntry._meta.local_concrete_fields if not f.primary_key]
        found = _SQL[key] = (
            f"WITH s AS ({_counter_sql()}), "
            f"c AS ({case_sql} RETURNING {case_id}, {number}), "
            f"e AS ({event_sql} RETURNING {event_id}), "
            f"a AS ({entry_sql} RETURNING {entry_id}), "
            # The request's held audit entries (accounts.audit.audit_later), if any.
            f"h AS (INSERT INTO {audit} ({_quoted(held)}) "
            f"SELECT {', '.join(f'r.{quote(c)}' for c in held)} "
            f"FROM jsonb_populate_recordset(NULL::{audit}, %s::jsonb) r) "
            f"SELECT c.{case_id}, c.{number}, e.{event_id}, a.{entry_id} FROM c, e, a"
        )
    return found


def _from_json(model, columns: list[str], extra: list[str]) -> str:
    """INSERT INTO model (columns…, extra…) SELECT the columns of one JSON object read as
    a row of the table (``jsonb_populate_record``), then {0}…: the ``extra`` columns
    take the SQL expressions formatted in later.

    One parameter for the row instead of one per column: the driver parses and
    caches a statement's placeholders only up to 50 of them, and adapts each
    parameter on every call; PostgreSQL casts each value to its column's type.
    """
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    picked = ", ".join(f"r.{quote(c)}" for c in columns)
    expressions = ", ".join(f"{{{i}}}" for i in range(len(extra)))
    return (
        f"INSERT INTO {table} ({_quoted([*columns, *extra])}) "
        f"SELECT {picked}, {expressions} FROM jsonb_populate_record(NULL::{table}, %s::jsonb) r"
    )


def _json_row(columns: list[str], values: list) -> str:
    """The row as one JSON object by column, as :func:`_from_json` reads it."""
    return json.dumps(dict(zip(columns, values, strict=True)), default=_json_value)


def _json_value(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "obj"):  # the driver's JSON wrapper: the value it wraps
        return value.obj
    if isinstance(value, (Decimal, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot go into a row as JSON")


def _other_sql(case_columns, event_columns, entry_columns) -> tuple[str, str, str]:
    key = (connection.vendor, tuple(case_columns), tuple(event_columns), tuple(entry_columns))
    found = _SQL.get(key)
    if found is None:
        found = _SQL[key] = (
            _insert(Case, case_columns, ["number"]).format("%s"),
            _insert(CaseEvent, event_columns, ["case_id"]).format("%s"),
            _insert(AuditEntry, entry_columns, ["object_id", "object_repr"]).format("%s", "%s"),
        )
    return found


def write_report(*, case: Case, event: CaseEvent, entry: AuditEntry, day: date, prefix: str):
    """Write ``case`` (unsaved, numbered ``prefix`` + the day's next serial of its kind),
    its first timeline entry ``event`` and its audit entry ``entry``; all or nothing.

    Fills in what the writing decides: the ids, the number, the entry's object. An
    IntegrityError (say, the idempotency key taken meanwhile) leaves nothing
    written and an enclosing transaction usable. Audit entries the request holds
    (a token's use, accounts.audit.audit_later) go with the rows when this is a
    transaction of its own; should it fail they stay held.
    """
    held = take_held()
    try:
        _write(case=case, event=event, entry=entry, day=day, prefix=prefix, held=held)
    except BaseException:
        hold_again(held)
        raise
    for other in held:
        other._state.adding = False
        other._state.db = connection.alias


def _write(*, case, event, entry, day, prefix, held) -> None:
    case_columns, case_values = insert_values(case, leave_out=("number",))
    event_columns, event_values = insert_values(event, leave_out=("case_id",))
    entry_columns, entry_values = insert_values(entry, leave_out=("object_id", "object_repr"))
    if connection.vendor == "postgresql":
        counter = [connection.ops.adapt_datefield_value(day), case.kind, 1]
        sql = _postgres_sql(case_columns, event_columns, entry_columns)
        params = [
            *counter,
            prefix,
            _json_row(case_columns, case_values),
            _json_row(event_columns, event_values),
            _json_row(entry_columns, entry_values),
            "[" + ",".join(_json_row(*insert_values(other)) for other in held) + "]",
        ]
        # One statement is atomic by itself; inside a transaction a savepoint keeps a
        # failing one from spoiling the rest of it.
        atomic = transaction.atomic() if connection.in_atomic_block else nullcontext()
        with atomic, connection.cursor() as cursor:
            cursor.execute(sql, params)
            case_id, number, event_id, entry_id = cursor.fetchone()
    else:
        case_sql, event_sql, entry_sql = _other_sql(case_columns, event_columns, entry_columns)
        with transaction.atomic(), connection.cursor() as cursor:
            number = f"{prefix}{next_daily_serial(day=day, kind=case.kind):04d}"
            cursor.execute(case_sql, [*case_values, number])
            case_id = cursor.lastrowid
            cursor.execute(event_sql, [*event_values, case_id])
            event_id = cursor.lastrowid
            cursor.execute(entry_sql, [*entry_values, str(case_id), number[:200]])
            entry_id = cursor.lastrowid
            if held:
                columns, _values = insert_values(held[0])
                cursor.executemany(
                    _insert(AuditEntry, columns, []), [insert_values(other)[1] for other in held]
                )
    _saved(case, pk=case_id, number=number)
    event.case = case
    _saved(event, pk=event_id)
    _saved(entry, pk=entry_id, object_id=str(case_id), object_repr=number[:200])


def _saved(obj: Model, *, pk, **fields) -> None:
    obj.pk = pk
    for name, value in fields.items():
        setattr(obj, name, value)
    obj._state.adding = False
    obj._state.db = connection.alias
