"""Case categories, their time limits, their routing to departments, and the cases."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from accounts.scopes import RestrictedQuerySet
from core.models import AppendOnlyError, AppendOnlyModel, AppendOnlyQuerySet, TimeStampedModel


class Kind(models.TextChoices):
    EVENT = "event", _("event")  # 事件
    COMPONENT = "component", _("component")  # 部件


class Urgency(models.TextChoices):
    """A fixed set, not a dictionary: time limits, lights and the sweep depend on it."""

    NORMAL = "normal", _("normal")
    URGENT = "urgent", _("urgent")
    EMERGENCY = "emergency", _("emergency")


class Step(models.TextChoices):
    # One-word labels carry a context: "file" is also a file to import elsewhere.
    VERIFY = "verify", pgettext_lazy("case step", "verify")  # 核实
    FILE = "file", pgettext_lazy("case step", "file")  # 立案
    DISPATCH = "dispatch", pgettext_lazy("case step", "dispatch")  # 派遣
    HANDLE = "handle", pgettext_lazy("case step", "handle")  # 处置
    CHECK = "check", pgettext_lazy("case step", "check")  # 核查
    CLOSE = "close", pgettext_lazy("case step", "close")  # 结案


MAJOR_CODE_LENGTH = 2
MINOR_CODE_LENGTH = 4


class Category(TimeStampedModel):
    """A major class (2-digit code, no parent) or a minor class (its major's code + 2 digits)."""

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    code = models.CharField(
        _("code"),
        max_length=MINOR_CODE_LENGTH,
        help_text=_("2 digits for a major class, 4 for a minor class"),
    )
    parent = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
        verbose_name=_("major class"),
    )
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=200, blank=True)
    filing_criteria = models.TextField(
        _("filing criteria"),
        blank=True,
        help_text=_("When a report of this class is filed (立案)."),
    )
    closing_criteria = models.TextField(
        _("closing criteria"),
        blank=True,
        help_text=_("When a case of this class may be closed (结案)."),
    )
    resident_help = models.TextField(
        _("help for residents"), blank=True, help_text=_("Shown to residents choosing a class.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    is_public = models.BooleanField(
        _("residents may report it"),
        default=True,
        help_text=_("Offered on the public portal and through Open311."),
    )
    is_sensitive = models.BooleanField(
        _("sensitive"),
        default=False,
        help_text=_("Public maps show cases of this class at a coarser location."),
    )
    sort_order = models.PositiveIntegerField(_("order"), default=0)
    duplicate_radius_m = models.PositiveIntegerField(
        _("duplicate radius (m)"),
        default=50,
        validators=[MaxValueValidator(5000)],
        help_text=_(
            "Open cases of this class this close to a new report are offered as duplicates."
        ),
    )
    duplicate_window_hours = models.PositiveIntegerField(
        _("duplicate window (hours)"),
        default=72,
        validators=[MaxValueValidator(24 * 365)],
        help_text=_("Only cases reported this recently are offered as duplicates."),
    )

    class Meta:
        ordering = ["kind", "code"]
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        constraints = [
            models.UniqueConstraint(fields=["kind", "code"], name="cases_category_kind_code"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.code} {self.name}"

    @property
    def is_major(self) -> bool:
        return self.parent_id is None

    def clean(self) -> None:
        errors: dict[str, str] = {}
        code = (self.code or "").strip()
        want = MAJOR_CODE_LENGTH if self.parent_id is None else MINOR_CODE_LENGTH
        if not code.isdigit() or len(code) != want:
            errors["code"] = (
                _("A major class code has 2 digits.")
                if self.parent_id is None
                else _("A minor class code has 4 digits.")
            )
        if self.parent_id is not None:
            parent = self.parent
            if parent.parent_id is not None:
                errors["parent"] = _("A minor class must belong to a major class.")
            elif parent.kind != self.kind:
                errors["parent"] = _("A minor class must have the kind of its major class.")
            elif "code" not in errors and not code.startswith(parent.code):
                errors["code"] = _(
                    "A minor class code starts with its major class code %(code)s."
                ) % {"code": parent.code}
            if self.pk and self.children.exists():
                errors["parent"] = _(
                    "A major class with minor classes cannot become a minor class."
                )
        if errors:
            raise ValidationError(errors)


class TimeLimit(models.Model):
    """How long one step of a case of this class may take, for one urgency."""

    class Unit(models.TextChoices):
        WORKING_HOURS = "working_hours", _("working hours")
        WORKING_DAYS = "working_days", _("working days")

    category = models.ForeignKey(
        Category, on_delete=models.CASCADE, related_name="time_limits", verbose_name=_("category")
    )
    step = models.CharField(_("step"), max_length=10, choices=Step.choices)
    urgency = models.CharField(
        _("urgency"), max_length=10, choices=Urgency.choices, default=Urgency.NORMAL
    )
    amount = models.DecimalField(
        _("amount"),
        max_digits=6,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    unit = models.CharField(_("unit"), max_length=16, choices=Unit.choices)

    class Meta:
        ordering = ["category", "step", "urgency"]
        verbose_name = _("time limit")
        verbose_name_plural = _("time limits")
        constraints = [
            models.UniqueConstraint(
                fields=["category", "step", "urgency"], name="cases_timelimit_unique"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="cases_timelimit_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.category.code} {self.step} {self.urgency}: {self.amount} {self.unit}"

    def clean(self) -> None:
        if (
            self.unit == self.Unit.WORKING_DAYS
            and self.amount is not None
            and self.amount != int(self.amount)
        ):
            raise ValidationError(
                {"amount": _("A limit in working days is a whole number; use working hours.")}
            )

    def deadline_from(self, start: datetime, calendar) -> datetime:
        """The deadline of a step that starts at ``start`` (a core.calendar.WorkCalendar)."""
        if self.unit == self.Unit.WORKING_DAYS:
            return calendar.add_working_days(start, int(self.amount))
        return calendar.add_working_hours(start, float(self.amount))


class RoutingRule(TimeStampedModel):
    """Cases of ``category`` (a major class covers its minor classes; none: every class)
    located in ``area``'s subtree go to ``department``.

    The most specific rule wins: the deepest area first, then the most specific
    class (minor, major, none). A rule with no class on a district is that
    district's fallback.
    """

    category = models.ForeignKey(
        Category,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="routing_rules",
        verbose_name=_("category"),
        help_text=_("Empty: every class (a fallback for the area)."),
    )
    area = models.ForeignKey(
        "geo.Area", on_delete=models.PROTECT, related_name="routing_rules", verbose_name=_("area")
    )
    department = models.ForeignKey(
        "accounts.Department",
        on_delete=models.PROTECT,
        related_name="routing_rules",
        verbose_name=_("department"),
    )
    is_active = models.BooleanField(_("active"), default=True)
    note = models.CharField(_("note"), max_length=200, blank=True)

    objects = RestrictedQuerySet.as_manager()
    scope_path = "area__code"

    class Meta:
        ordering = ["area__code", "category__code"]
        verbose_name = _("routing rule")
        verbose_name_plural = _("routing rules")
        constraints = [
            models.UniqueConstraint(fields=["category", "area"], name="cases_routing_unique"),
            # NULLs are distinct in the constraint above: one fallback per area.
            models.UniqueConstraint(
                fields=["area"],
                condition=Q(category__isnull=True),
                name="cases_routing_one_fallback",
            ),
        ]

    def __str__(self) -> str:
        what = self.category.code if self.category_id else "*"
        return f"{what} @ {self.area.code} → {self.department}"


# --- the case record ------------------------------------------------------------------


class Source(models.TextChoices):
    GRID_WORKER = "grid_worker", _("grid worker")  # 自行上报
    HOTLINE = "hotline", _("hotline")  # 12345 热线
    PORTAL = "portal", _("public portal")
    API = "api", _("API")
    OPEN311 = "open311", _("Open311")


class CaseState(models.TextChoices):
    """The states of cases/workflow.py's transition table (see docs/cases.md)."""

    REPORTED = "reported", _("reported")  # 上报
    VERIFYING = "verifying", _("verifying")  # 核实中
    FILED = "filed", _("filed")  # 立案
    DISPATCHED = "dispatched", _("dispatched")  # 派遣
    ACCEPTED = "accepted", _("accepted")  # 签收
    HANDLED = "handled", _("handled")  # 处置反馈, awaiting the on-site check
    CHECKING = "checking", _("checked, closing")  # 核查通过, awaiting 结案
    RATING = "rating", _("awaiting the resident's rating")  # 回访
    CLOSED = "closed", _("closed")  # 结案
    VOIDED = "voided", _("voided")  # 作废
    MERGED = "merged", _("merged")  # 合并
    ESCALATED = "escalated", _("escalated")  # 上报上级
    SUSPENDED = "suspended", _("suspended")  # 挂账


# A case in one of these has ended; in any other it is open (cases/workflow.py).
FINAL_STATES = frozenset({CaseState.CLOSED, CaseState.VOIDED, CaseState.MERGED})
OPEN_STATES = frozenset(CaseState.values) - FINAL_STATES


class Satisfaction(models.TextChoices):
    SATISFIED = "satisfied", _("satisfied")
    UNSATISFIED = "unsatisfied", _("unsatisfied")
    # Nobody answered within the rating period: closed as satisfied, marked so.
    DEFAULT = "default", _("satisfied by default (no answer)")


class CaseQuerySet(RestrictedQuerySet):
    pass


class Case(models.Model):
    """One problem, from report to close.

    Personal data: ``reporter_name``, ``reporter_phone`` and ``reporter_email``
    identify a caller or resident. They are kept until the retention period
    (``CIVICGRID["REPORTER_RETENTION_DAYS"]`` after the case is finished) ends
    and are then erased by a sweep; lists, exports and the timeline never
    carry them, and every staff read of them is audited.

    ``version`` grows by one with every transition; each transition is one
    conditional UPDATE on (state, version), so a stale writer changes nothing
    (cases.services).
    """

    number = models.CharField(_("number"), max_length=24, unique=True)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, related_name="cases", verbose_name=_("category")
    )
    urgency = models.CharField(
        _("urgency"), max_length=10, choices=Urgency.choices, default=Urgency.NORMAL
    )
    area = models.ForeignKey(
        "geo.Area", on_delete=models.PROTECT, related_name="cases", verbose_name=_("grid")
    )
    # The grid's code, copied from the grid whenever the case is saved (see save()):
    # scopes and area filters compare it on the case row itself, with no join. A
    # grid keeps its code for life (a partition updates reused grids in place, an
    # import matches areas by code), and a case never moves to another grid.
    area_code = models.CharField(_("grid code"), max_length=14, editable=False, default="")
    # The level of the area now responsible: the grid, or one above it after escalation.
    level = models.PositiveSmallIntegerField(_("handling level"), default=5)
    state = models.CharField(
        _("state"), max_length=12, choices=CaseState.choices, default=CaseState.REPORTED
    )
    version = models.PositiveIntegerField(_("version"), default=1)
    description = models.TextField(_("description"))
    lat = models.FloatField(_("latitude"))
    lng = models.FloatField(_("longitude"))
    address = models.CharField(_("address"), max_length=300, blank=True)
    source = models.CharField(_("source"), max_length=12, choices=Source.choices)
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="reported_cases",
        verbose_name=_("reporter"),
    )
    reporter_name = models.CharField(_("reporter's name"), max_length=100, blank=True)
    reporter_phone = models.CharField(_("reporter's phone"), max_length=32, blank=True)
    reporter_email = models.EmailField(_("reporter's e-mail"), blank=True)
    # Who entered the report (a clerk for a hotline call); with the key, a retried
    # report finds the case its first attempt made.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="entered_cases",
        verbose_name=_("entered by"),
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=100, blank=True)
    department = models.ForeignKey(
        "accounts.Department",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="cases",
        verbose_name=_("department"),
    )
    merged_into = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="duplicates",
        verbose_name=_("merged into"),
    )
    step = models.CharField(_("step"), max_length=10, choices=Step.choices, blank=True)
    step_started_at = models.DateTimeField(_("step started"), null=True, blank=True)
    step_deadline = models.DateTimeField(_("step deadline"), null=True, blank=True)
    # When the step's light turns yellow (the 预警线 in the step's working time),
    # stored with the deadline so that a light is a plain, indexable comparison.
    step_yellow_at = models.DateTimeField(_("step warning from"), null=True, blank=True)
    deadline = models.DateTimeField(_("overall deadline"), null=True, blank=True)
    step_overdue = models.BooleanField(_("step overdue"), default=False)
    overdue = models.BooleanField(_("ever overdue"), default=False)
    # Where a suspended case goes back to, and since when its clock is paused.
    suspended_from = models.CharField(
        _("suspended from"), max_length=12, choices=CaseState.choices, blank=True
    )
    suspended_at = models.DateTimeField(_("suspended at"), null=True, blank=True)
    # The person the open task names: the grid worker asked to verify or to check.
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_cases",
        verbose_name=_("assigned to"),
    )
    # A grid worker who handled it on the spot (自处理) may not check it too.
    handled_on_spot_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("handled on the spot by"),
    )
    # A department's pending request for more time (延期), until approved or refused.
    postpone_until = models.DateTimeField(_("postponement asked until"), null=True, blank=True)
    postpone_count = models.PositiveIntegerField(_("postponements"), default=0)
    # 督办: a leader's supervision raises the case above the others in every queue.
    supervise_count = models.PositiveIntegerField(_("supervisions"), default=0)
    supervised_at = models.DateTimeField(_("supervised at"), null=True, blank=True)
    # A resident's report: the secret of its private tracking link (empty for staff
    # reports), how the resident rated the result and how often it went back.
    public_token = models.CharField(_("tracking secret"), max_length=64, blank=True)
    satisfaction = models.CharField(
        _("resident's rating"), max_length=20, choices=Satisfaction.choices, blank=True
    )
    unsatisfied_count = models.PositiveIntegerField(_("unsatisfied rounds"), default=0)
    # When the reporter's contact details were erased after the retention period.
    reporter_purged_at = models.DateTimeField(_("reporter data purged"), null=True, blank=True)
    rework_count = models.PositiveIntegerField(_("reworks"), default=0)
    send_back_count = models.PositiveIntegerField(_("send-backs"), default=0)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    objects = CaseQuerySet.as_manager()
    scope_path = "area_code"

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("case")
        verbose_name_plural = _("cases")
        indexes = [
            models.Index(fields=["area", "state"], name="cases_case_area_state"),
            models.Index(fields=["created_at", "id"], name="cases_case_created_id"),
            models.Index(fields=["category", "created_at"], name="cases_case_cat_created"),
            # The open cases by class and place: a report's duplicate check reads the
            # class's cases in a band of latitude around the point and settles longitude
            # and time from the index entry (selectors.duplicate_candidates, which
            # names the states exactly so, for the database to see the index applies).
            models.Index(
                fields=["category", "lat", "lng", "created_at"],
                condition=Q(state__in=sorted(OPEN_STATES)),
                name="cases_case_open_nearby",
            ),
            # A list narrowed to one value of these reads its newest cases in index order
            # and stops after a page; a few values are read alike, one after the other
            # (selectors.case_list). The trailing columns let the database decide the
            # scope (area_code), a light (the step's clock) and the console's groups
            # (supervise_count) from the index entry, before it touches the row.
            models.Index(
                fields=[
                    "state",
                    "created_at",
                    "id",
                    "step_deadline",
                    "step_yellow_at",
                    "supervise_count",
                    "area_code",
                ],
                name="cases_case_state_created",
            ),
            models.Index(fields=["area_code", "created_at", "id"], name="cases_case_area_created"),
            models.Index(
                fields=["department", "created_at", "id", "area_code"],
                name="cases_case_dept_created",
            ),
            models.Index(
                fields=["department", "state", "created_at", "id", "area_code"],
                name="cases_case_dept_state_created",
            ),
            models.Index(fields=["assignee", "state"], name="cases_case_assignee_state"),
            models.Index(fields=["reporter_purged_at", "updated_at"], name="cases_case_retention"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["created_by", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="cases_case_idempotency",
            ),
            models.UniqueConstraint(
                fields=["public_token"],
                condition=~Q(public_token=""),
                name="cases_case_public_token",
            ),
        ]

    def __str__(self) -> str:
        return self.number

    def save(self, *args, **kwargs):
        # Keep area_code in step with the grid: from the grid object when it is at
        # hand (no query), else read once when the code is missing.
        if self.area_id is not None and (not self.area_code or Case.area.is_cached(self)):
            code = self.area.code
            if code != self.area_code:
                self.area_code = code
                if kwargs.get("update_fields") is not None:
                    kwargs["update_fields"] = {*kwargs["update_fields"], "area_code"}
        super().save(*args, **kwargs)


class CaseEventIsAppendOnly(AppendOnlyError):
    """Raised on any attempt to change or remove a timeline entry through the ORM."""


class CaseEvent(AppendOnlyModel):
    """One entry of a case's timeline: an action, who took it, and the state it moved.

    Append-only, like accounts.AuditEntry: the actor is kept as id and username
    rather than a foreign key, so removing a user never rewrites a timeline.
    """

    case = models.ForeignKey(
        Case, on_delete=models.PROTECT, related_name="events", verbose_name=_("case")
    )
    at = models.DateTimeField(_("time"), default=timezone.now)
    actor_id = models.BigIntegerField(_("actor id"), null=True, blank=True)
    actor_username = models.CharField(_("actor"), max_length=150, blank=True)
    role = models.CharField(_("role"), max_length=40, blank=True)
    action = models.CharField(_("action"), max_length=20)
    from_state = models.CharField(_("from"), max_length=12, blank=True)
    to_state = models.CharField(_("to"), max_length=12)
    note = models.TextField(_("note"), blank=True)
    deadline = models.DateTimeField(_("deadline at that moment"), null=True, blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)

    AppendOnly = CaseEventIsAppendOnly
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["case", "at", "id"]
        verbose_name = _("timeline entry")
        verbose_name_plural = _("timeline entries")
        indexes = [models.Index(fields=["case", "at", "id"], name="cases_event_case_at")]

    def __str__(self) -> str:
        return f"{self.case_id} {self.action} {self.from_state}→{self.to_state}"


class DailyCounter(models.Model):
    """The last serial handed out for one kind of case on one local date."""

    date = models.DateField(_("date"))
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    last = models.PositiveIntegerField(_("last serial"), default=0)

    class Meta:
        verbose_name = _("daily case counter")
        verbose_name_plural = _("daily case counters")
        constraints = [
            models.UniqueConstraint(fields=["date", "kind"], name="cases_dailycounter_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.kind} {self.last}"


def photo_path(instance: CasePhoto, filename: str) -> str:
    """Where a photo is stored: by month, under a random name (never the uploaded one)."""
    now = timezone.now()
    return f"cases/photos/{now:%Y/%m}/{filename}"


class CasePhoto(models.Model):
    """A photo taken at one step of a case (report, verification, handling, check).

    Stored re-encoded, without EXIF or GPS, with a thumbnail, through Django's
    storage API (cases.photos). Not public until staff approve it.
    """

    case = models.ForeignKey(
        Case, on_delete=models.CASCADE, related_name="photos", verbose_name=_("case")
    )
    event = models.ForeignKey(
        CaseEvent,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="photos",
        verbose_name=_("timeline entry"),
    )
    action = models.CharField(_("step"), max_length=20)
    image = models.FileField(_("image"), upload_to=photo_path, max_length=200)
    thumbnail = models.FileField(_("thumbnail"), upload_to=photo_path, max_length=200)
    content_type = models.CharField(_("content type"), max_length=20)
    width = models.PositiveIntegerField(_("width"))
    height = models.PositiveIntegerField(_("height"))
    size = models.PositiveIntegerField(_("size (bytes)"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    uploaded_by_id = models.BigIntegerField(_("uploaded by"), null=True, blank=True)
    is_public = models.BooleanField(_("approved for the public"), default=False)
    # When staff moderated it (approved or kept private); empty: awaiting moderation.
    reviewed_at = models.DateTimeField(_("reviewed"), null=True, blank=True)
    reviewed_by_id = models.BigIntegerField(_("reviewed by"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        ordering = ["case", "created_at", "id"]
        verbose_name = _("photo")
        verbose_name_plural = _("photos")

    def __str__(self) -> str:
        return f"{self.case_id} {self.action} {self.image.name}"


class CaseNotice(models.Model):
    """A message about a case to one person (a supervision, a task), until read.

    Written in the transaction of the transition that causes it, so it is
    never lost; the person's task list shows the unread ones.
    """

    class Kind(models.TextChoices):
        SUPERVISED = "supervised", _("supervised")  # 督办
        TASK = "task", _("new task")
        POSTPONE = "postpone", _("postponement")

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="case_notices",
        verbose_name=_("recipient"),
    )
    case = models.ForeignKey(
        Case, on_delete=models.CASCADE, related_name="notices", verbose_name=_("case")
    )
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    text = models.CharField(_("text"), max_length=300)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    read_at = models.DateTimeField(_("read"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("case notice")
        verbose_name_plural = _("case notices")
        indexes = [
            models.Index(fields=["recipient", "read_at"], name="cases_notice_unread"),
        ]

    def __str__(self) -> str:
        return f"{self.recipient_id} {self.kind} {self.case_id}"
