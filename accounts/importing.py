"""Bulk import of users and memberships from CSV (UTF-8) or Excel (.xlsx).

One row is one user and at most one membership; a user may appear on several
rows to receive several memberships. Columns (English or Chinese headers):

    username, display_name, email, phone, role, area_code, department_code

Only ``username`` is required. ``role`` and ``area_code`` go together; a row
without them only creates or updates the user. An empty cell leaves the
existing value alone. There is no password column, on purpose: a spreadsheet
of passwords is a leak waiting to happen. Imported users get an unusable
password and sign in once an administrator sets one on their page.

The whole file is checked before anything is written. Every bad row is
reported with its line as the user sees it (the header is line 1) and the
reason; with any error, or in a dry run, nothing is written.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.translation import gettext as _

from core.errors import DomainError
from core.services import setting_get
from geo.models import Area

from .audit import audit_log
from .models import Department, Membership, Role, User
from .selectors import PERSONAL_FIELDS, user_has_permission, users_visible
from .services import (
    PHONE_RE,
    grant_problems,
    membership_create,
    membership_problems,
    membership_update,
    user_create,
    user_update,
)

COLUMNS = ["username", "display_name", "email", "phone", "role", "area_code", "department_code"]
USER_COLUMNS = ["display_name", "email", "phone"]
HEADER_ALIASES = {
    "用户名": "username",
    "账号": "username",
    "姓名": "display_name",
    "显示名": "display_name",
    "邮箱": "email",
    "电子邮件": "email",
    "手机": "phone",
    "电话": "phone",
    "角色": "role",
    "区域编码": "area_code",
    "区域代码": "area_code",
    "部门编码": "department_code",
    "部门代码": "department_code",
}
MAX_BYTES = 5 * 1024 * 1024


@dataclass
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return _("line %(line)d: %(message)s") % {"line": self.line, "message": self.message}


@dataclass
class UserChange:
    line: int
    username: str
    # created: field → value; updated: field → [old, new]
    fields: dict[str, Any]


@dataclass
class MembershipChange:
    line: int
    username: str
    role: str
    area: str
    department: str | None


@dataclass
class ImportReport:
    filename: str
    dry_run: bool
    rows: int = 0
    users_created: list[UserChange] = field(default_factory=list)
    users_updated: list[UserChange] = field(default_factory=list)
    users_unchanged: list[UserChange] = field(default_factory=list)
    memberships_added: list[MembershipChange] = field(default_factory=list)
    memberships_reactivated: list[MembershipChange] = field(default_factory=list)
    memberships_unchanged: list[MembershipChange] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    applied: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def has_changes(self) -> bool:
        return bool(
            self.users_created
            or self.users_updated
            or self.memberships_added
            or self.memberships_reactivated
        )

    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "users_created": len(self.users_created),
            "users_updated": len(self.users_updated),
            "users_unchanged": len(self.users_unchanged),
            "memberships_added": len(self.memberships_added),
            "memberships_reactivated": len(self.memberships_reactivated),
            "memberships_unchanged": len(self.memberships_unchanged),
            "errors": len(self.errors),
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ImportFileError(Exception):
    """The file as a whole cannot be read; carries the line when there is one."""

    def __init__(self, message: str, line: int = 0):
        super().__init__(message)
        self.message = message
        self.line = line


# --- reading --------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        # Excel keeps codes and phone numbers typed as numbers as floats.
        return str(int(value))
    return str(value).strip()


def _read_bytes(file: bytes | BinaryIO) -> bytes:
    if isinstance(file, bytes | bytearray):
        data = bytes(file)
    else:
        if hasattr(file, "seek"):
            file.seek(0)
        data = file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ImportFileError(
            _("The file is larger than %(size)d MB.") % {"size": MAX_BYTES // (1024 * 1024)}
        )
    return data


def _csv_rows(data: bytes) -> list[tuple[int, list[str]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportFileError(
            _("The file is not UTF-8 text; save it as “CSV UTF-8”."), line
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = []
    start = 1
    try:
        for values in reader:
            rows.append((start, [_cell(v) for v in values]))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ImportFileError(str(exc), reader.line_num) from None
    return rows


def _xlsx_rows(data: bytes) -> list[tuple[int, list[str]]]:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # any parser failure on an uploaded file is the file's fault
        raise ImportFileError(
            _("The file is not a readable Excel workbook (.xlsx): %(error)s") % {"error": exc}
        ) from None
    try:
        if not workbook.worksheets:
            raise ImportFileError(_("The workbook has no sheet."))
        sheet = workbook.worksheets[0]
        return [
            (line, [_cell(v) for v in values])
            for line, values in enumerate(sheet.iter_rows(values_only=True), start=1)
        ]
    finally:
        workbook.close()


def read_table(file: bytes | BinaryIO, filename: str) -> list[tuple[int, list[str]]]:
    """The file's rows as (line, cells), header included; raises ImportFileError."""
    data = _read_bytes(file)
    name = (filename or "").lower()
    if name.endswith(".xlsx") or (not name.endswith(".csv") and data[:2] == b"PK"):
        return _xlsx_rows(data)
    if name.endswith(".csv") or not name:
        return _csv_rows(data)
    raise ImportFileError(
        _("Unsupported file type %(name)s: upload a .csv or .xlsx file.") % {"name": filename}
    )


def _header(cells: list[str]) -> tuple[list[str | None], list[RowError]]:
    errors: list[RowError] = []
    columns: list[str | None] = []
    seen: set[str] = set()
    for cell in cells:
        raw = cell.strip()
        key = HEADER_ALIASES.get(raw, raw.lower().replace(" ", "_").replace("-", "_"))
        if not raw:
            columns.append(None)
            continue
        if key not in COLUMNS:
            errors.append(
                RowError(
                    1,
                    _("Unknown column %(column)s; the columns are %(columns)s.")
                    % {"column": repr(raw), "columns": ", ".join(COLUMNS)},
                )
            )
        elif key in seen:
            errors.append(RowError(1, _("Column %(column)s appears twice.") % {"column": key}))
        seen.add(key)
        columns.append(key if key in COLUMNS else None)
    if "username" not in seen:
        errors.append(RowError(1, _("The header has no username column.")))
    return columns, errors


# --- planning ---------------------------------------------------------------------


@dataclass
class _UserPlan:
    line: int
    username: str
    existing: User | None
    values: dict[str, str] = field(default_factory=dict)
    value_lines: dict[str, int] = field(default_factory=dict)
    memberships: list[tuple[int, Role, Area, Department | None, Membership | None]] = field(
        default_factory=list
    )


class _Planner:
    def __init__(self, actor):
        self.actor = actor
        self.errors: list[RowError] = []
        self.roles = {r.code.lower(): r for r in Role.objects.all()}
        self.plans: dict[str, _UserPlan] = {}
        self.seen_memberships: dict[tuple, int] = {}
        self.seen_rows: dict[tuple, int] = {}
        self._areas: dict[str, Area | None] = {}
        self._departments: dict[str, Department | None] = {}
        system = actor is None or (actor.is_active and actor.is_superuser)
        self.visible_user_ids = (
            None
            if system
            else set(users_visible(actor, "accounts.import_user").values_list("pk", flat=True))
        )

    def error(self, line: int, message: str) -> None:
        self.errors.append(RowError(line, message))

    def area(self, code: str) -> Area | None:
        if code not in self._areas:
            self._areas[code] = Area.objects.filter(code=code).first()
        return self._areas[code]

    def department(self, code: str) -> Department | None:
        if code not in self._departments:
            self._departments[code] = (
                Department.objects.select_related("area").filter(code=code).first()
            )
        return self._departments[code]

    def plan_for(self, line: int, username: str) -> _UserPlan:
        key = username.lower()
        if key not in self.plans:
            existing = User.objects.filter(username__iexact=username).first()
            self.plans[key] = _UserPlan(line=line, username=username, existing=existing)
        return self.plans[key]

    def row(self, line: int, row: dict[str, str]) -> None:
        username = row.get("username", "")
        if not username:
            self.error(line, _("The username is empty."))
            return
        same = tuple(sorted((k, v.lower() if k == "username" else v) for k, v in row.items()))
        if same in self.seen_rows:
            self.error(line, _("Duplicate of line %(line)d.") % {"line": self.seen_rows[same]})
            return
        self.seen_rows[same] = line
        bad = False
        try:
            User.username_validator(username)
        except ValidationError as exc:
            self.error(line, f"{username}: {' '.join(exc.messages)}")
            bad = True
        if len(username) > 150:
            self.error(line, _("The username is longer than 150 characters."))
            bad = True
        email = row.get("email", "")
        if email:
            try:
                validate_email(email)
            except ValidationError:
                self.error(line, _("Malformed e-mail address %(email)s.") % {"email": repr(email)})
                bad = True
        phone = row.get("phone", "")
        if phone and not PHONE_RE.match(phone):
            self.error(line, _("Malformed phone number %(phone)s.") % {"phone": repr(phone)})
            bad = True
        if len(row.get("display_name", "")) > 100:
            self.error(line, _("The display name is longer than 100 characters."))
            bad = True
        if bad:
            return

        plan = self.plan_for(line, username)
        for name in USER_COLUMNS:
            value = row.get(name, "")
            if not value:
                continue
            if name in plan.values and plan.values[name] != value:
                self.error(
                    line,
                    _(
                        "%(field)s %(value)s differs from %(other)s given for %(user)s on line %(line)d."
                    )
                    % {
                        "field": name,
                        "value": repr(value),
                        "other": repr(plan.values[name]),
                        "user": username,
                        "line": plan.value_lines[name],
                    },
                )
                continue
            plan.values[name] = value
            plan.value_lines.setdefault(name, line)

        self.membership_row(line, plan, row)

    def membership_row(self, line: int, plan: _UserPlan, row: dict[str, str]) -> None:
        role_code, area_code = row.get("role", ""), row.get("area_code", "")
        department_code = row.get("department_code", "")
        if not role_code and not area_code:
            if department_code:
                self.error(line, _("A department needs a role and an area code on the same row."))
            return
        if not role_code or not area_code:
            self.error(line, _("The role and the area code go together; one of them is empty."))
            return
        ok = True
        role = self.roles.get(role_code.lower())
        if role is None:
            self.error(line, _("Unknown role %(role)s.") % {"role": repr(role_code)})
            ok = False
        area = self.area(area_code)
        if area is None:
            self.error(line, _("Unknown area code %(code)s.") % {"code": repr(area_code)})
            ok = False
        department = None
        if department_code:
            department = self.department(department_code)
            if department is None:
                self.error(
                    line, _("Unknown department %(code)s.") % {"code": repr(department_code)}
                )
                ok = False
        if not ok:
            return
        key = (plan.username.lower(), role.pk, area.pk, department.pk if department else None)
        if key in self.seen_memberships:
            self.error(
                line,
                _("Duplicate of line %(line)d.") % {"line": self.seen_memberships[key]},
            )
            return
        self.seen_memberships[key] = line

        existing = None
        user = plan.existing or User(username=plan.username)
        if plan.existing is not None:
            existing = Membership.objects.filter(
                user=plan.existing, role=role, area=area, department=department
            ).first()
        if existing is None or not existing.is_active:
            problems = membership_problems(
                user=user,
                role=role,
                area=area,
                department=department,
                exclude_pk=existing.pk if existing else None,
            )
            problems.update(
                grant_problems(actor=self.actor, role=role, area=area, perm="accounts.import_user")
            )
            for messages in problems.values():
                for message in messages:
                    self.error(line, message)
            if problems:
                return
        plan.memberships.append((line, role, area, department, existing))

    def report(self, report: ImportReport) -> None:
        for plan in self.plans.values():
            user = plan.existing
            if user is None:
                report.users_created.append(UserChange(plan.line, plan.username, dict(plan.values)))
            else:
                # Old contact details are personal data: the report shows them masked.
                diff = {
                    name: [PERSONAL_FIELDS.get(name, str)(getattr(user, name)), value]
                    for name, value in plan.values.items()
                    if getattr(user, name) != value
                }
                if diff:
                    if self.visible_user_ids is not None and user.pk not in self.visible_user_ids:
                        self.error(
                            plan.line,
                            _("User %(user)s is outside the areas where you manage users.")
                            % {"user": user.username},
                        )
                    report.users_updated.append(UserChange(plan.line, user.username, diff))
                else:
                    report.users_unchanged.append(UserChange(plan.line, user.username, {}))
            for line, role, area, department, existing in plan.memberships:
                change = MembershipChange(
                    line,
                    user.username if user else plan.username,
                    role.code,
                    area.code,
                    department.code if department else None,
                )
                if existing is None:
                    report.memberships_added.append(change)
                elif not existing.is_active:
                    report.memberships_reactivated.append(change)
                else:
                    report.memberships_unchanged.append(change)


def _apply(planner: _Planner, actor) -> None:
    for plan in planner.plans.values():
        line = plan.line
        try:
            if plan.existing is None:
                user = user_create(username=plan.username, actor=actor, **plan.values)
            else:
                user = plan.existing
                diff = {k: v for k, v in plan.values.items() if getattr(user, k) != v}
                if diff:
                    user = user_update(user=user, data=diff, actor=actor)
            for line, role, area, department, existing in plan.memberships:  # noqa: B007
                if existing is None:
                    membership_create(
                        user=user, role=role, area=area, department=department, actor=actor
                    )
                elif not existing.is_active:
                    membership_update(membership=existing, data={"is_active": True}, actor=actor)
        except DomainError as exc:
            raise ImportFileError(exc.message, line) from exc


def users_import(
    *, file: bytes | BinaryIO, filename: str, actor, dry_run: bool = False
) -> ImportReport:
    """Check a user file and, unless ``dry_run`` or anything is wrong, write it in one go.

    The report lists what changes (or would change); ``report.errors`` non-empty
    means nothing was written.
    """
    if actor is not None and not user_has_permission(actor, "accounts.import_user"):
        raise DomainError(_("You may not import users."), code="permission_denied")
    report = ImportReport(filename=filename, dry_run=dry_run)
    try:
        table = read_table(file, filename)
    except ImportFileError as exc:
        report.errors.append(RowError(exc.line, exc.message))
        return report
    if not table or not any(table[0][1]):
        report.errors.append(RowError(1, _("The file is empty; the first line is the header.")))
        return report

    columns, header_errors = _header(table[0][1])
    report.errors.extend(header_errors)
    if header_errors:
        return report

    data_rows = [(line, cells) for line, cells in table[1:] if any(cells)]
    report.rows = len(data_rows)
    limit = setting_get("accounts.import_max_rows")
    if report.rows > limit:
        report.errors.append(
            RowError(
                data_rows[limit][0],
                _("The file has %(rows)d rows; at most %(limit)d may be imported at once.")
                % {"rows": report.rows, "limit": limit},
            )
        )
        return report

    planner = _Planner(actor)
    for line, cells in data_rows:
        extra = [c for c in cells[len(columns) :] if c]
        if extra:
            planner.error(line, _("The row has more cells than the header has columns."))
            continue
        row = {col: cells[i] if i < len(cells) else "" for i, col in enumerate(columns) if col}
        planner.row(line, row)
    planner.report(report)
    report.errors = sorted(planner.errors, key=lambda e: e.line)
    if report.errors or dry_run:
        return report

    try:
        with transaction.atomic():
            _apply(planner, actor)
            audit_log(
                actor=actor,
                action="user.import",
                object_type="accounts.user",
                object_repr=filename[:200],
                detail={"filename": filename, **report.counts()},
            )
    except ImportFileError as exc:
        # Another writer got in between the check and the write; nothing is kept.
        report.errors.append(RowError(exc.line, exc.message))
        return report
    report.applied = True
    return report
