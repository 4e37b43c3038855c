"""Case lists as CSV and Excel files: what a filter shows, without personal data.

Both formats carry the same columns (``COLUMNS``): where a case is, what it
is, where it stands and how late it runs. The reporter's name, phone and
e-mail never appear, nor the free-text description (it may quote them).

- CSV streams (StreamingHttpResponse) as the rows are read, behind a UTF-8 BOM
  so that spreadsheet programs read the Chinese text as UTF-8.
- XLSX is written by openpyxl's write-only workbook into a temporary file
  (spilled to disk past a few megabytes) and sent from there.

The rows are read in keyset batches (``cases.selectors.case_export_batches``)
with their class, grid and department joined, so an export costs one query
per thousand rows. At most ``CIVICGRID["EXPORT_MAX_ROWS"]`` rows (default
100000) are written; past that the file ends with a row saying so and the
response carries ``X-CivicGrid-Truncated: true``. Every export is recorded in
the audit log (``case.export``) with its format, filters and row count before
a byte is sent.

Labels (state, urgency, kind, source, light) are in the language of the
request; times are local (``TIME_ZONE``).
"""

from __future__ import annotations

import csv
import tempfile
import zoneinfo
from collections.abc import Iterable, Iterator
from datetime import datetime

from django.conf import settings
from django.http import FileResponse, Http404, StreamingHttpResponse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext, pgettext_lazy

from accounts.audit import audit_log

from . import selectors, workflow
from .models import Case, CaseState, Kind, Source, Urgency

CSV = "csv"
XLSX = "xlsx"
FORMATS = (CSV, XLSX)
CONTENT_TYPES = {
    CSV: "text/csv; charset=utf-8",
    XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
TRUNCATED_HEADER = "X-CivicGrid-Truncated"
ROWS_HEADER = "X-CivicGrid-Rows"
AUDIT_ACTION = "case.export"

# (key, header). The keys name the values of case_values().
COLUMNS = [
    ("number", gettext_lazy("number")),
    ("kind", gettext_lazy("kind")),
    ("category_code", gettext_lazy("class code")),
    ("category", gettext_lazy("class")),
    ("urgency", gettext_lazy("urgency")),
    ("state", gettext_lazy("state")),
    ("light", pgettext_lazy("time-limit light", "light")),
    ("grid_code", gettext_lazy("grid code")),
    ("grid", gettext_lazy("grid")),
    ("address", gettext_lazy("address")),
    ("source", gettext_lazy("source")),
    ("department", gettext_lazy("department")),
    ("created", gettext_lazy("created")),
    ("step_deadline", gettext_lazy("step deadline")),
    ("deadline", gettext_lazy("overall deadline")),
    ("overdue", gettext_lazy("overdue")),
    ("reworks", gettext_lazy("reworks")),
    ("send_backs", gettext_lazy("send-backs")),
    ("closed", gettext_lazy("closed at")),
]
DATETIME_COLUMNS = frozenset({"created", "step_deadline", "deadline", "closed"})
# Column widths in the workbook, in characters.
XLSX_WIDTHS = {
    "number": 20,
    "category": 18,
    "state": 12,
    "grid": 20,
    "address": 30,
    "department": 16,
    "created": 17,
    "step_deadline": 17,
    "deadline": 17,
    "closed": 17,
}

LIGHT_LABELS = {
    "red": pgettext_lazy("time-limit light", "red"),
    "yellow": pgettext_lazy("time-limit light", "yellow"),
    "green": pgettext_lazy("time-limit light", "green"),
}

# Spreadsheets run a cell that starts with one of these as a formula; an address
# is typed by whoever reported the case, so such text gets a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def local_zone():
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def export_filename(fmt: str, now: datetime) -> str:
    """``cases-YYYYMMDD-HHMM.csv`` (or .xlsx), in local time."""
    return f"cases-{now.astimezone(local_zone()):%Y%m%d-%H%M}.{fmt}"


def headers() -> list[str]:
    return [str(label) for _key, label in COLUMNS]


def _named(obj, prefer_en: bool) -> str:
    if obj is None:
        return ""
    if prefer_en and getattr(obj, "name_en", ""):
        return obj.name_en
    return obj.name


def _label(choices, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value


def case_values(case: Case, *, now: datetime, zone, prefer_en: bool) -> dict:
    """One case as the export's typed values: text, numbers and local naive datetimes.

    Call it under the language the labels are wanted in.
    """

    def local(moment: datetime | None):
        return moment.astimezone(zone).replace(tzinfo=None) if moment else None

    light = selectors.case_light(case, now=now)
    is_open = case.state in workflow.OPEN_STATES
    late = case.overdue or bool(is_open and case.deadline is not None and case.deadline <= now)
    return {
        "number": case.number,
        "kind": _label(Kind, case.kind),
        "category_code": case.category.code,
        "category": _named(case.category, prefer_en),
        "urgency": _label(Urgency, case.urgency),
        "state": _label(CaseState, case.state),
        "light": str(LIGHT_LABELS[light]) if light else "",
        "grid_code": case.area.code,
        "grid": _named(case.area, prefer_en),
        "address": case.address,
        "source": _label(Source, case.source),
        "department": _named(case.department, prefer_en),
        "created": local(case.created_at),
        "step_deadline": local(case.step_deadline) if is_open else None,
        "deadline": local(case.deadline),
        "overdue": pgettext("overdue", "yes") if late else pgettext("overdue", "no"),
        "reworks": case.rework_count,
        "send_backs": case.send_back_count,
        "closed": local(case.closed_at),
    }


def truncation_note(limit: int) -> str:
    return _(
        "Only the first %(limit)d cases are in this file; narrow the filter to export the rest."
    ) % {"limit": limit}


# --- CSV ----------------------------------------------------------------------------------


class _Echo:
    """A file that hands back what is written, for csv.writer in a generator."""

    def write(self, value: str) -> str:
        return value


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def csv_chunks(
    batches: Iterable[list[Case]], *, now: datetime, language: str, truncated_at: int | None
) -> Iterator[str]:
    """The CSV text: a BOM and the header, one chunk per batch, and the truncation row."""
    writer = csv.writer(_Echo())
    zone = local_zone()
    prefer_en = language.startswith("en")
    keys = [key for key, _label in COLUMNS]
    with translation.override(language):
        head = "\ufeff" + writer.writerow(headers())
    yield head
    for batch in batches:
        with translation.override(language):
            lines = []
            for case in batch:
                values = case_values(case, now=now, zone=zone, prefer_en=prefer_en)
                lines.append(writer.writerow([_csv_cell(values[k]) for k in keys]))
        yield "".join(lines)
    if truncated_at is not None:
        with translation.override(language):
            yield writer.writerow([truncation_note(truncated_at)])


# --- XLSX ---------------------------------------------------------------------------------


def write_xlsx(
    batches: Iterable[list[Case]], *, now: datetime, language: str, truncated_at: int | None, out
) -> None:
    """Write the workbook to the binary file ``out``: one sheet, a bold frozen header."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    zone = local_zone()
    prefer_en = language.startswith("en")
    keys = [key for key, _label in COLUMNS]
    workbook = Workbook(write_only=True)
    with translation.override(language):
        sheet = workbook.create_sheet(title=_("Cases")[:31])
        sheet.freeze_panes = "A2"
        for index, key in enumerate(keys, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = XLSX_WIDTHS.get(key, 11)
        bold = Font(bold=True)

        def cell(value, key: str = ""):
            if isinstance(value, str):
                value = ILLEGAL_CHARACTERS_RE.sub("", value)
            made = WriteOnlyCell(sheet, value=value)
            if isinstance(value, str):
                # Text stays text: openpyxl would take "=…" for a formula.
                made.data_type = "s"
            elif key in DATETIME_COLUMNS and value is not None:
                made.number_format = "yyyy-mm-dd hh:mm"
            return made

        header_cells = []
        for title in headers():
            made = cell(title)
            made.font = bold
            header_cells.append(made)
        sheet.append(header_cells)
    for batch in batches:
        with translation.override(language):
            for case in batch:
                values = case_values(case, now=now, zone=zone, prefer_en=prefer_en)
                sheet.append([cell(values[k], k) for k in keys])
    if truncated_at is not None:
        with translation.override(language):
            sheet.append([cell(truncation_note(truncated_at))])
    workbook.save(out)


# --- the response ---------------------------------------------------------------------------


def case_export_response(*, user, fmt: str, filters: selectors.CaseFilters, now=None):
    """The cases ``user`` may see under ``filters`` as a CSV or XLSX download.

    404 for another format. The export is audited (format, filters, rows,
    whether it was cut at the cap) before anything is sent.
    """
    if fmt not in FORMATS:
        raise Http404("unknown export format")
    now = now or timezone.now()
    # Cases reported while the file is written would shift the count: leave them out.
    queryset = selectors.case_list(user=user, filters=filters, now=now).filter(created_at__lte=now)
    limit = selectors.export_max_rows()
    found = queryset.order_by()[: limit + 1].count()
    rows = min(found, limit)
    truncated = found > limit
    audit_log(
        actor=user,
        action=AUDIT_ACTION,
        object_type="cases.case",
        detail={
            "format": fmt,
            "filters": selectors.filters_as_dict(filters),
            "rows": rows,
            "truncated": truncated,
        },
    )
    language = translation.get_language() or settings.LANGUAGE_CODE
    batches = selectors.case_export_batches(queryset=queryset, limit=limit)
    truncated_at = limit if truncated else None
    filename = export_filename(fmt, now)
    if fmt == CSV:
        response = StreamingHttpResponse(
            csv_chunks(batches, now=now, language=language, truncated_at=truncated_at),
            content_type=CONTENT_TYPES[CSV],
        )
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    else:
        # FileResponse closes the file once it is sent.
        out = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
        write_xlsx(batches, now=now, language=language, truncated_at=truncated_at, out=out)
        out.seek(0)
        response = FileResponse(
            out, as_attachment=True, filename=filename, content_type=CONTENT_TYPES[XLSX]
        )
    response["Cache-Control"] = "no-store"
    response[ROWS_HEADER] = str(rows)
    if truncated:
        response[TRUNCATED_HEADER] = "true"
    return response
