import io

import openpyxl
import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command

from accounts.importing import users_import
from accounts.models import AuditEntry, Department, Membership, Role, User
from core.errors import DomainError
from core.services import setting_set

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english", "fresh_cache")]


HEADER = "username,display_name,email,phone,role,area_code,department_code"


@pytest.fixture
def org(small_city):
    worker = Role.objects.create(code="t-worker", name="网格员")
    handler = Role.objects.create(code="t-handler", name="处置人员", needs_department=True)
    bureau = Department.objects.create(code="HW", name="环卫所", area=small_city.street)
    return {"worker": worker, "handler": handler, "bureau": bureau, "city": small_city}


def csv_bytes(*rows: str, bom: bool = False) -> bytes:
    text = "\n".join([HEADER, *rows]) + "\n"
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


def xlsx_bytes(rows: list[list]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    # A second sheet must be ignored.
    workbook.create_sheet("notes").append(["username"])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def snapshot():
    return (
        User.objects.count(),
        Membership.objects.count(),
        AuditEntry.objects.count(),
        list(User.objects.order_by("pk").values_list("username", "display_name", "email")),
        list(Membership.objects.order_by("pk").values_list("is_active", flat=True)),
    )


GOOD = [
    "li.na,李娜,li@example.org,13800000001,t-worker,11010500100101,",
    "li.na,,,,t-worker,11010500100102,",
    "wang,王强,,,t-handler,110105001,HW",
    "zhao,赵敏,,,,,",
]


def test_csv_with_bom_dry_run_reports_and_writes_nothing(org, admin):
    before = snapshot()
    report = users_import(
        file=csv_bytes(*GOOD, bom=True), filename="staff.csv", actor=admin, dry_run=True
    )
    assert report.ok, report.errors
    assert report.rows == 4
    assert [u.username for u in report.users_created] == ["li.na", "wang", "zhao"]
    assert report.users_created[0].fields == {
        "display_name": "李娜",
        "email": "li@example.org",
        "phone": "13800000001",
    }
    assert [(m.line, m.username, m.area) for m in report.memberships_added] == [
        (2, "li.na", "11010500100101"),
        (3, "li.na", "11010500100102"),
        (4, "wang", "110105001"),
    ]
    assert report.memberships_added[2].department == "HW"
    assert not report.applied
    assert snapshot() == before


def test_csv_import_writes_users_memberships_and_audit(org, admin):
    report = users_import(file=csv_bytes(*GOOD), filename="staff.csv", actor=admin, dry_run=False)
    assert report.ok and report.applied
    li = User.objects.get(username="li.na")
    assert (li.display_name, li.email, li.phone) == ("李娜", "li@example.org", "13800000001")
    assert not li.has_usable_password()
    assert li.memberships.count() == 2
    wang = User.objects.get(username="wang")
    assert wang.memberships.get().department == org["bureau"]
    assert User.objects.get(username="zhao").memberships.count() == 0
    assert AuditEntry.objects.filter(action="user.create").count() == 3
    assert AuditEntry.objects.filter(action="membership.create").count() == 3
    summary = AuditEntry.objects.get(action="user.import")
    assert summary.detail["users_created"] == 3
    assert summary.detail["filename"] == "staff.csv"


def test_xlsx_import_reads_the_first_sheet_and_numeric_cells(org, admin):
    data = xlsx_bytes(
        [
            ["用户名", "姓名", "邮箱", "手机", "角色", "区域编码", "部门编码"],
            ["li.na", "李娜", None, 13800000001, "t-worker", 11010500100101, None],
            [None, None, None, None, None, None, None],
            ["wang", "王强", "wang@example.org", None, "t-handler", "110105001", "HW"],
        ]
    )
    report = users_import(file=data, filename="staff.xlsx", actor=admin, dry_run=False)
    assert report.ok, report.errors
    assert report.rows == 2
    li = User.objects.get(username="li.na")
    assert li.phone == "13800000001"
    assert li.memberships.get().area.code == "11010500100101"
    assert [m.line for m in report.memberships_added] == [2, 4]


def test_xlsx_errors_name_the_sheet_row(org, admin):
    data = xlsx_bytes(
        [
            ["username", "role", "area_code"],
            ["ok", "t-worker", "110105001"],
            [None, None, None],
            ["bad", "no-such-role", "110105001"],
        ]
    )
    report = users_import(file=data, filename="staff.xlsx", actor=admin, dry_run=False)
    assert [(e.line, "no-such-role" in e.message) for e in report.errors] == [(4, True)]
    assert not User.objects.filter(username="ok").exists()


def test_reimport_reports_changes_and_unchanged(org, admin):
    users_import(file=csv_bytes(*GOOD), filename="a.csv", actor=admin, dry_run=False)
    membership = Membership.objects.get(user__username="li.na", area__code="11010500100102")
    membership.is_active = False
    membership.save()
    again = csv_bytes(
        "li.na,李娜,new@example.org,,t-worker,11010500100101,",
        "li.na,,,,t-worker,11010500100102,",
        "zhao,赵敏,,,,,",
    )
    report = users_import(file=again, filename="b.csv", actor=admin, dry_run=False)
    assert report.ok and report.applied
    assert report.users_created == []
    assert [(u.username, u.fields) for u in report.users_updated] == [
        # The old address is personal data already on file: shown masked.
        ("li.na", {"email": ["l***@example.org", "new@example.org"]})
    ]
    assert [u.username for u in report.users_unchanged] == ["zhao"]
    assert [m.line for m in report.memberships_unchanged] == [2]
    assert [m.line for m in report.memberships_reactivated] == [3]
    membership.refresh_from_db()
    assert membership.is_active
    update = AuditEntry.objects.get(action="user.update")
    assert update.before == {"email": "li@example.org"}
    assert update.after == {"email": "new@example.org"}


def test_usernames_match_existing_users_ignoring_case(org, admin):
    User.objects.create_user(username="Li.Na", display_name="李娜")
    report = users_import(
        file=csv_bytes("li.na,李娜,,,t-worker,110105001,"),
        filename="a.csv",
        actor=admin,
        dry_run=False,
    )
    assert report.ok and report.users_created == []
    assert User.objects.filter(username__iexact="li.na").count() == 1
    assert Membership.objects.get().user.username == "Li.Na"


@pytest.mark.parametrize(
    "row, message",
    [
        ("li,李,,,no-such-role,110105001,", "Unknown role"),
        ("li,李,,,t-worker,999999,", "Unknown area code"),
        ("li,李,,,t-handler,110105001,", "needs a department"),
        ("li,李,,,t-handler,110105001,NOPE", "Unknown department"),
        ("li,李,not-an-email,,t-worker,110105001,", "Malformed e-mail"),
        ("li,李,,not a phone,t-worker,110105001,", "Malformed phone"),
        (",李,,,t-worker,110105001,", "username is empty"),
        ("has space,李,,,t-worker,110105001,", "has space"),
        ("li,李,,,t-worker,,", "go together"),
        ("li,李,,,,110105001,", "go together"),
        ("li,李,,,,,HW", "needs a role"),
        ("li,李,,,t-handler,110105,HW", "outside the area of department HW"),
        ("li,李,,,t-worker,110105001,,extra", "more cells"),
    ],
)
def test_each_bad_row_names_its_line_and_nothing_is_written(org, admin, row, message):
    before = snapshot()
    data = csv_bytes("ok.user,好,,,t-worker,110105001,", row)
    for dry_run in (True, False):
        report = users_import(file=data, filename="bad.csv", actor=admin, dry_run=dry_run)
        assert not report.applied
        assert [e.line for e in report.errors] == [3], report.errors
        assert message in report.errors[0].message
    assert snapshot() == before


def test_duplicate_rows_and_conflicting_values_name_the_first_line(org, admin):
    data = csv_bytes(
        "li,李,,,t-worker,110105001,",
        "wang,王,,,t-worker,110105001,",
        "li,李,,,t-worker,110105001,",
        "li,,,,t-worker,110105001,",
        "wang,王五,,,,,",
    )
    report = users_import(file=data, filename="dup.csv", actor=admin, dry_run=False)
    assert [(e.line, e.message) for e in report.errors] == [
        (4, "Duplicate of line 2."),
        (5, "Duplicate of line 2."),
        (6, "display_name '王五' differs from '王' given for wang on line 3."),
    ]
    assert not User.objects.filter(username__in=["li", "wang"]).exists()


def test_all_errors_are_collected_in_line_order(org, admin):
    before = snapshot()
    data = csv_bytes(
        "a,,,,no-role,110105001,",
        "good,,,,t-worker,110105001,",
        "b,,bad-mail,,t-worker,000000,",
        ",,,,,,",
        "c,,,,t-worker,110105001,NOPE",
    )
    report = users_import(file=data, filename="many.csv", actor=admin, dry_run=False)
    assert [e.line for e in report.errors] == [2, 4, 6]
    assert snapshot() == before


def test_csv_lines_count_quoted_line_breaks(org, admin):
    data = (
        HEADER + '\nfirst,"two\nlines",,,t-worker,110105001,\nsecond,,,,bad-role,110105001,\n'
    ).encode()
    report = users_import(file=data, filename="q.csv", actor=admin, dry_run=True)
    assert [(e.line, "bad-role" in e.message) for e in report.errors] == [(4, True)]


@pytest.mark.parametrize(
    "data, filename, message, line",
    [
        (b"username,colour\nli,red\n", "a.csv", "Unknown column", 1),
        (b"display_name,email\nli,\n", "a.csv", "no username column", 1),
        (b"username,username\nli,li\n", "a.csv", "appears twice", 1),
        (b"", "a.csv", "empty", 1),
        ("username\nli\n王\n".encode("gbk"), "a.csv", "UTF-8", 3),
        (b"PK\x03\x04 not really a workbook", "a.xlsx", "Excel", 0),
        (b"username\nli\n", "a.xls", "Unsupported file type", 0),
    ],
)
def test_unreadable_files_are_reported_and_nothing_is_written(
    org, admin, data, filename, message, line
):
    before = snapshot()
    report = users_import(file=data, filename=filename, actor=admin, dry_run=False)
    assert len(report.errors) == 1
    assert message in report.errors[0].message
    assert report.errors[0].line == line
    assert snapshot() == before


def test_row_limit_comes_from_the_settings(org, admin):
    setting_set(key="accounts.import_max_rows", value=2, actor=admin)
    data = csv_bytes("a,,,,,,", "b,,,,,,", "c,,,,,,")
    report = users_import(file=data, filename="big.csv", actor=admin, dry_run=True)
    assert [e.line for e in report.errors] == [4]
    assert "at most 2" in report.errors[0].message


def test_scoped_importer_stays_inside_her_area(org, admin):
    city = org["city"]
    importer_role = Role.objects.create(code="t-importer", name="importer")
    importer_role.permissions.set(
        Permission.objects.filter(
            content_type__app_label="accounts",
            codename__in=["import_user", "view_user", "add_membership"],
        )
    )
    importer = User.objects.create_user(username="imp")
    Membership.objects.create(user=importer, role=importer_role, area=city.communities[0])
    data = csv_bytes(
        f"in,,,,t-worker,{city.grids[0].code},",
        f"out,,,,t-worker,{city.grids[5].code},",
    )
    report = users_import(file=data, filename="s.csv", actor=importer, dry_run=False)
    assert [e.line for e in report.errors] == [3]
    assert not User.objects.filter(username__in=["in", "out"]).exists()


def test_importing_needs_the_permission(org):
    nobody = User.objects.create_user(username="nobody")
    with pytest.raises(DomainError):
        users_import(file=csv_bytes(*GOOD), filename="a.csv", actor=nobody, dry_run=True)


# --- the command ----------------------------------------------------------------------


def test_command_dry_run_prints_and_writes_nothing(org, tmp_path):
    path = tmp_path / "staff.csv"
    path.write_bytes(csv_bytes(*GOOD))
    before = snapshot()
    out = io.StringIO()
    call_command("import_users", str(path), "--dry-run", stdout=out)
    text = out.getvalue()
    assert "line 2: create user li.na" in text
    assert "line 4: add membership wang t-handler @ 110105001 / HW" in text
    assert "Dry run, nothing written" in text
    assert snapshot() == before
    call_command("import_users", str(path), stdout=io.StringIO())
    assert User.objects.filter(username__in=["li.na", "wang", "zhao"]).count() == 3


def test_command_error_names_file_and_lines(org, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(csv_bytes("ok,,,,t-worker,110105001,", "li,,,,t-worker,42,", ",,,,,,x"))
    before = snapshot()
    with pytest.raises(CommandError) as exc:
        call_command("import_users", str(path), stdout=io.StringIO())
    message = str(exc.value)
    assert f"{path}: line 3: Unknown area code '42'" in message
    assert f"{path}: line 4:" in message
    assert snapshot() == before


def test_command_missing_file(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_users", str(tmp_path / "missing.csv"))
