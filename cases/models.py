"""Case categories, their time limits and their routing to departments."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from accounts.scopes import RestrictedQuerySet
from core.models import TimeStampedModel


class Kind(models.TextChoices):
    EVENT = "event", _("event")  # 事件
    COMPONENT = "component", _("component")  # 部件


class Urgency(models.TextChoices):
    """A fixed set, not a dictionary: time limits, lights and the sweep depend on it."""

    NORMAL = "normal", _("normal")
    URGENT = "urgent", _("urgent")
    EMERGENCY = "emergency", _("emergency")


class Step(models.TextChoices):
    VERIFY = "verify", _("verify")  # 核实
    FILE = "file", _("file")  # 立案
    DISPATCH = "dispatch", _("dispatch")  # 派遣
    HANDLE = "handle", _("handle")  # 处置
    CHECK = "check", _("check")  # 核查
    CLOSE = "close", _("close")  # 结案


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
