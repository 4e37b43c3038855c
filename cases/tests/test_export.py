"""Case exports: CSV and Excel from the search page and the API, read back and checked."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import time_machine
from rest_framework.test import APIClient

from accounts.models import AuditEntry, User
from accounts.tokens import token_create
from cases import export, selectors
from cases.models import Case
from cases.services import case_file, case_report, case_void
from cases.testing import GRID_POINT, OTHER_GRID_POINT, make_case_world

TZ = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2026, 3, 2, tzinfo=TZ)  # a working day
EXPORT = "/cases/search/export.{}"
API_EXPORT = "/api/v1/cases/export.{}"
PERSONAL = ("张三丰", "13912345678", "zhang@example.com")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def at(hour: int, minute: int = 0) -> datetime:
    return MONDAY.replace(hour=hour, minute=minute)


@pytest.fixture
def world(small_city):
    return make_case_world(small_city)


def report(world, *, actor=None, point=GRID_POINT, **extra) -> Case:
    return case_report(
        actor=actor or world["clerk"],
        category=extra.pop("category", world.garbage),
        lat=point[0],
        lng=point[1],
        description=extra.pop("description", "垃圾堆在路边，来电人张三丰"),
        source=extra.pop("source", "hotline"),
        reporter_name=PERSONAL[0],
        reporter_phone=PERSONAL[1],
        reporter_email=PERSONAL[2],
        **extra,
    )


def file(world, case: Case) -> Case:
    return case_file(case_id=case.pk, expected_version=case.version, actor=world["lead"])


def signed_in(client, user: User):
    client.force_login(user)
    return client


def content(response) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def csv_rows(response) -> list[list[str]]:
    raw = content(response)
    assert raw.startswith("\ufeff".encode())  # so that Excel reads the Chinese text as UTF-8
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def xlsx_rows(response) -> list[list]:
    workbook = openpyxl.load_workbook(io.BytesIO(content(response)))
    sheet = workbook.worksheets[0]
    return [list(row) for row in sheet.iter_rows(values_only=True)]


@pytest.fixture
def made(world):
    """At 10:00 on MONDAY: a filed case reported at 09:00, a reported one (09:30) and a
    voided one, in the first grid; one in the other community."""
    with time_machine.travel(at(9), tick=False):
        filed = file(world, report(world, address='=HYPERLINK("http://x")'))
    with time_machine.travel(at(9, 30), tick=False):
        reported = report(world, urgency="urgent")
        voided = report(world)
        voided = case_void(
            case_id=voided.pk, expected_version=1, actor=world["clerk"], note="重复来电"
        )
        far = report(world, actor=world["far_worker"], point=OTHER_GRID_POINT, source="grid_worker")
    return {"filed": filed, "reported": reported, "voided": voided, "far": far}


# --- CSV ----------------------------------------------------------------------------------


def test_csv_holds_what_the_filter_shows_in_the_users_language(world, made, client):
    signed_in(client, world["dispatcher"])
    with time_machine.travel(at(10), tick=False):
        response = client.get(
            EXPORT.format("csv"),
            {"state": "filed,reported", "area": world.grid.code},
            HTTP_ACCEPT_LANGUAGE="en",
        )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="cases-20260302-1000.csv"'
    assert response[export.ROWS_HEADER] == "2"
    assert export.TRUNCATED_HEADER not in response
    rows = csv_rows(response)
    header, body = rows[0], rows[1:]
    assert header == [
        "number",
        "kind",
        "class code",
        "class",
        "urgency",
        "state",
        "light",
        "grid code",
        "grid",
        "address",
        "source",
        "department",
        "created",
        "step deadline",
        "overall deadline",
        "overdue",
        "reworks",
        "send-backs",
        "closed at",
    ]
    by_number = {row[0]: dict(zip(header, row, strict=True)) for row in body}
    assert list(by_number) == [made["reported"].number, made["filed"].number]  # newest first
    filed = by_number[made["filed"].number]
    assert filed["kind"] == "event" and filed["class code"] == "0101"
    assert filed["state"] == "filed" and filed["urgency"] == "normal"
    assert filed["grid code"] == world.grid.code and filed["source"] == "hotline"
    # Local times; the formula-looking address is defused.
    assert filed["created"] == "2026-03-02 09:00"
    assert filed["address"] == '\'=HYPERLINK("http://x")'
    assert filed["step deadline"]  # the dispatch step runs
    assert filed["reworks"] == "0" and filed["send-backs"] == "0" and filed["closed at"] == ""
    assert by_number[made["reported"].number]["urgency"] == "urgent"
    # At 10:00 the filing of the 09:30 urgent report (half an hour) is due: red.
    assert by_number[made["reported"].number]["light"] == "red"
    text = content(client.get(EXPORT.format("csv"))).decode("utf-8-sig")
    for secret in PERSONAL:
        assert secret not in text
    assert "来电人" not in text  # nor the description, which may quote the caller


def test_csv_labels_follow_the_language(world, made, client):
    signed_in(client, world["dispatcher"])
    response = client.get(EXPORT.format("csv"), {"state": "voided"}, HTTP_ACCEPT_LANGUAGE="en")
    rows = csv_rows(response)
    assert rows[0][0] == "number" and rows[1][5] == "voided"
    assert [r[0] for r in rows[1:]] == [made["voided"].number]
    # The grid's English name in English, its own name otherwise.
    assert rows[1][8] == world.grid.name_en
    chinese = csv_rows(
        client.get(EXPORT.format("csv"), {"state": "voided"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    )
    assert chinese[1][8] == world.grid.name


def test_exports_keep_to_the_users_scope(world, made, client):
    signed_in(client, world["far_worker"])
    rows = csv_rows(client.get(EXPORT.format("csv")))
    assert [r[0] for r in rows[1:]] == [made["far"].number]
    signed_in(client, world["far_dispatcher"])
    assert csv_rows(client.get(EXPORT.format("csv")))[1:] == []


# --- XLSX ---------------------------------------------------------------------------------


def test_xlsx_holds_the_same_rows_typed(world, made, client):
    signed_in(client, world["dispatcher"])
    with time_machine.travel(at(10), tick=False):
        response = client.get(
            EXPORT.format("xlsx"), {"area": world.grid.code}, HTTP_ACCEPT_LANGUAGE="en"
        )
        as_csv = csv_rows(
            client.get(EXPORT.format("csv"), {"area": world.grid.code}, HTTP_ACCEPT_LANGUAGE="en")
        )
    assert response.status_code == 200
    assert response["Content-Type"] == XLSX_TYPE
    assert response["Content-Disposition"] == 'attachment; filename="cases-20260302-1000.xlsx"'
    workbook = openpyxl.load_workbook(io.BytesIO(content(response)))
    rows = [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]
    assert rows[0] == as_csv[0]
    numbers = [r[0] for r in rows[1:]]
    assert numbers == [r[0] for r in as_csv[1:]]
    assert set(numbers) == {made["filed"].number, made["reported"].number, made["voided"].number}
    filed = dict(zip(rows[0], rows[1 + numbers.index(made["filed"].number)], strict=True))
    # Dates are dates, in local time; counts are numbers; text stays text.
    assert filed["created"] == datetime(2026, 3, 2, 9, 0)
    assert isinstance(filed["step deadline"], datetime)
    assert filed["reworks"] == 0
    assert filed["address"] == '=HYPERLINK("http://x")'
    cell = workbook.worksheets[0].cell(row=2 + numbers.index(made["filed"].number), column=10)
    assert cell.data_type == "s"  # not a formula
    flat = repr(rows)
    for secret in PERSONAL:
        assert secret not in flat


# --- the cap, bad input, the audit ------------------------------------------------------------


def test_the_cap_cuts_the_file_and_says_so(world, client, settings):
    settings.CIVICGRID = {**settings.CIVICGRID, "EXPORT_MAX_ROWS": 3}
    with time_machine.travel(at(9), tick=False):
        made = [report(world) for _ in range(5)]  # one instant: batches cut by id
    signed_in(client, world["dispatcher"])
    response = client.get(EXPORT.format("csv"), HTTP_ACCEPT_LANGUAGE="en")
    assert response[export.TRUNCATED_HEADER] == "true" and response[export.ROWS_HEADER] == "3"
    rows = csv_rows(response)
    assert [r[0] for r in rows[1:4]] == [c.number for c in reversed(made)][:3]
    assert len(rows) == 5 and rows[4][0].startswith("Only the first 3 cases")
    xlsx = client.get(EXPORT.format("xlsx"), HTTP_ACCEPT_LANGUAGE="en")
    assert xlsx[export.TRUNCATED_HEADER] == "true"
    sheet = xlsx_rows(xlsx)
    assert len(sheet) == 5 and sheet[4][0].startswith("Only the first 3 cases")
    # At the cap exactly, nothing is cut.
    settings.CIVICGRID = {**settings.CIVICGRID, "EXPORT_MAX_ROWS": 5}
    whole = client.get(EXPORT.format("csv"))
    assert export.TRUNCATED_HEADER not in whole and len(csv_rows(whole)) == 6


def test_bad_filters_answer_400_and_unknown_formats_404(world, client):
    signed_in(client, world["dispatcher"])
    response = client.get(EXPORT.format("csv"), {"state": "lost", "created_to": "yesterday"})
    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="error-state"' in body and 'id="error-created_to"' in body
    assert client.get(EXPORT.format("pdf")).status_code == 404
    assert client.get(EXPORT.format("CSV")).status_code == 404
    assert not AuditEntry.objects.filter(action=export.AUDIT_ACTION).exists()


def test_every_export_is_audited_with_its_filters_and_rows(world, made, client):
    signed_in(client, world["dispatcher"])
    content(client.get(EXPORT.format("csv"), {"state": ["filed", "reported"], "kind": "event"}))
    content(client.get(EXPORT.format("xlsx")))
    entries = list(AuditEntry.objects.filter(action=export.AUDIT_ACTION).order_by("pk"))
    assert [e.actor_username for e in entries] == ["dispatcher", "dispatcher"]
    assert entries[0].object_type == "cases.case"
    assert entries[0].detail == {
        "format": "csv",
        "filters": {"states": ["filed", "reported"], "kind": "event"},
        "rows": 3,
        "truncated": False,
    }
    assert entries[1].detail["format"] == "xlsx" and entries[1].detail["rows"] == 4
    assert entries[1].detail["filters"] == {}


# --- the API ---------------------------------------------------------------------------------


def test_api_export_with_a_token(world, made):
    _token, key = token_create(user=world["far_worker"], name="export script")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api.get(API_EXPORT.format("csv"), HTTP_ACCEPT="text/csv")
    assert response.status_code == 200, content(response)
    assert re.fullmatch(
        r'attachment; filename="cases-\d{8}-\d{4}\.csv"', response["Content-Disposition"]
    )
    rows = csv_rows(response)
    assert [r[0] for r in rows[1:]] == [made["far"].number]
    entry = AuditEntry.objects.get(action=export.AUDIT_ACTION)
    assert entry.actor_username == "far_worker" and entry.detail["rows"] == 1
    # Without a credential: refused.
    assert APIClient().get(API_EXPORT.format("csv")).status_code == 401


def test_api_export_in_a_session_and_its_errors(world, made):
    api = APIClient()
    api.force_login(world["dispatcher"])
    response = api.get(API_EXPORT.format("xlsx"), {"state": "filed"})
    assert response.status_code == 200 and response["Content-Type"] == XLSX_TYPE
    assert [r[0] for r in xlsx_rows(response)[1:]] == [made["filed"].number]
    bad = api.get(
        API_EXPORT.format("csv"), {"light": "purple", "area": "x"}, HTTP_ACCEPT="text/csv"
    )
    assert bad.status_code == 400
    assert bad["Content-Type"] == "application/json"
    assert set(bad.json()["errors"]) == {"light", "area"}
    missing = api.get(API_EXPORT.format("ods"))
    assert missing.status_code == 404 and missing["Content-Type"] == "application/json"


def test_the_api_schema_documents_the_export(world):
    api = APIClient()
    api.force_login(world["dispatcher"])
    schema = api.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/cases/export.{fmt}"]["get"]
    assert operation["operationId"] == "cases_export"
    assert set(operation["responses"]["200"]["content"]) == {"text/csv", XLSX_TYPE}
    names = {p["name"] for p in operation["parameters"]}
    assert {"fmt", "state", "light", "area", "created_from"} <= names


# --- cost ------------------------------------------------------------------------------------


def test_exports_read_in_keyset_batches(world, client, monkeypatch, django_assert_max_num_queries):
    monkeypatch.setattr(selectors, "EXPORT_BATCH", 4)
    with time_machine.travel(at(9), tick=False):
        made = [file(world, report(world)) for _ in range(10)]
    signed_in(client, world["dispatcher"])
    client.get("/cases/search/")  # the session and grants, once
    batches = list(
        selectors.case_export_batches(
            queryset=selectors.case_list(user=world["dispatcher"]), limit=100, batch=4
        )
    )
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [c.number for b in batches for c in b] == [c.number for c in reversed(made)]
    # The page's queries plus one per batch; none per row.
    with django_assert_max_num_queries(12):
        rows = csv_rows(client.get(EXPORT.format("csv")))
    assert len(rows) == 11
    with django_assert_max_num_queries(12):
        assert len(xlsx_rows(client.get(EXPORT.format("xlsx")))) == 11
