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

from contextlib import nullcontext
from datetime import date

from django.db import connection, transaction
from django.db.models import AutoField, BigAutoField, Model, SmallAutoField

from accounts.models import AuditEntry

from .models import Case, CaseEvent, DailyCounter

_AUTO = (AutoField, BigAutoField, SmallAutoField)


def insert_values(obj: Model, *, leave_out: tuple[str, ...] = ()) -> tuple[list[str], list]:
    """The columns and database values ``obj`` (unsaved) would be inserted with: every
    concrete field but an automatic primary key and the attnames in ``leave_out``."""
    columns, values = [], []
    for f in obj._meta.local_concrete_fields:
        if f.attname in leave_out or (f.primary_key and isinstance(f, _AUTO) and obj.pk is None):
            continue
        columns.append(f.column)
        values.append(f.get_db_prep_save(f.pre_save(obj, True), connection))
    return columns, values


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
        f"INSERT INTO {table} ({day}, {kind}, {last}) VALUES (%s, %s, 1) "
        f"ON CONFLICT ({day}, {kind}) DO UPDATE SET {last} = {table}.{last} + 1 "
        f"RETURNING {last}"
    )


def next_daily_serial(*, day: date, kind: str) -> int:
    """The next serial of ``kind`` on ``day``: 1, 2, 3 … with no gap and no repeat.

    One upsert. Call it inside the transaction that uses the number, so a
    rolled-back report gives its serial back: the counter's row lock
    (PostgreSQL) or the database's write lock (SQLite, whose transactions begin
    IMMEDIATE) is held until that transaction ends.
    """
    with connection.cursor() as cursor:
        cursor.execute(_counter_sql(), [connection.ops.adapt_datefield_value(day), kind])
        return int(cursor.fetchone()[0])


# The statements by database and column lists; made once per process.
_SQL: dict[tuple, object] = {}


def _postgres_sql(case_columns, event_columns, entry_columns) -> str:
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
        case_sql = _insert(Case, case_columns, ["number"]).format(f"%s || {serial}")
        event_sql = _insert(CaseEvent, event_columns, ["case_id"]).format(
            f"(SELECT {case_id} FROM c)"
        )
        entry_sql = _insert(AuditEntry, entry_columns, ["object_id", "object_repr"]).format(
            f"(SELECT {case_id} FROM c)::text", f"(SELECT {number} FROM c)"
        )
        event_id = quote(CaseEvent._meta.pk.column)
        entry_id = quote(AuditEntry._meta.pk.column)
        found = _SQL[key] = (
            f"WITH s AS ({_counter_sql()}), "
            f"c AS ({case_sql} RETURNING {case_id}, {number}), "
            f"e AS ({event_sql} RETURNING {event_id}), "
            f"a AS ({entry_sql} RETURNING {entry_id}) "
            f"SELECT c.{case_id}, c.{number}, e.{event_id}, a.{entry_id} FROM c, e, a"
        )
    return found


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
    written and an enclosing transaction usable.
    """
    case_columns, case_values = insert_values(case, leave_out=("number",))
    event_columns, event_values = insert_values(event, leave_out=("case_id",))
    entry_columns, entry_values = insert_values(entry, leave_out=("object_id", "object_repr"))
    if connection.vendor == "postgresql":
        counter = [connection.ops.adapt_datefield_value(day), case.kind]
        sql = _postgres_sql(case_columns, event_columns, entry_columns)
        params = [*counter, *case_values, prefix, *event_values, *entry_values]
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
