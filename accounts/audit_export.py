"""The audit log as CSV, streamed row by row, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import UTC

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from .audit import audit_personal_data_access
from .models import AuditEntry

COLUMNS = [
    "id",
    "at_utc",
    "actor_id",
    "actor_username",
    "role",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "outcome",
    "ip",
    "request_id",
    "purpose",
    "before",
    "after",
    "detail",
]
# The export holds who signed in from where: personal data.
PERSONAL_FIELDS = ["actor_id", "actor_username", "ip", "before", "after", "detail"]
# Spreadsheets run a cell starting with these as a formula; a username typed
# into a failed sign-in is attacker-controlled text, so such cells get a quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def _row(entry: AuditEntry) -> list[str]:
    return [
        _cell(entry.pk),
        entry.at.astimezone(UTC).isoformat(),
        _cell(entry.actor_id),
        _cell(entry.actor_username),
        _cell(entry.role),
        _cell(entry.action),
        _cell(entry.object_type),
        _cell(entry.object_id),
        _cell(entry.object_repr),
        _cell(entry.outcome),
        _cell(entry.ip),
        _cell(entry.request_id),
        _cell(entry.purpose),
        _cell(entry.before),
        _cell(entry.after),
        _cell(entry.detail),
    ]


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(entries: Iterable[AuditEntry]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    # A BOM so that spreadsheet programs read the Chinese text as UTF-8.
    yield "\ufeff" + writer.writerow(COLUMNS)
    for entry in entries:
        yield writer.writerow(_row(entry))


def audit_csv_response(*, actor, queryset: QuerySet[AuditEntry], purpose: str, filters: dict):
    """Record the export (with its purpose and filters), then stream the rows.

    Raises :class:`core.errors.DomainError` when no purpose is given, before
    anything is sent.
    """
    audit_personal_data_access(
        actor=actor,
        obj=AuditEntry,
        purpose=purpose,
        fields=PERSONAL_FIELDS,
        export=True,
        detail={"filters": {k: v for k, v in filters.items() if v}},
    )
    stamp = timezone.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    response = StreamingHttpResponse(
        csv_lines(queryset.iterator(chunk_size=2000)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="civicgrid-audit-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response
