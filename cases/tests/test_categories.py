import io
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, transaction

from cases.models import Category, Kind, Step, TimeLimit, Urgency
from cases.selectors import category_tree, step_deadline, time_limit_for
from cases.taxonomy import COMPONENTS, EVENTS, seed_categories
from core.calendar import WorkCalendar, china_year_rules

pytestmark = pytest.mark.django_db
SH = ZoneInfo("Asia/Shanghai")


def test_migration_seeded_the_standard_taxonomy():
    majors = {(c.kind, c.code): c.name for c in Category.objects.filter(parent=None)}
    assert majors[("event", "01")] == "市容环境"
    assert majors[("event", "05")] == "街面秩序"
    assert majors[("component", "01")] == "公用设施"
    assert majors[("component", "06")] == "其他设施"
    assert len(majors) == len(EVENTS) + len(COMPONENTS) == 11
    garbage = Category.objects.get(kind=Kind.EVENT, code="0101")
    assert garbage.name == "暴露垃圾" and garbage.parent.code == "01"
    assert garbage.name_en and garbage.filing_criteria and garbage.closing_criteria
    # The same code under both kinds.
    assert Category.objects.filter(code="0101").count() == 2
    names = set(Category.objects.values_list("name", flat=True))
    for expected in ["非法小广告", "施工占道", "路面塌陷", "店外经营", "路灯", "消火栓", "行道树"]:
        assert expected in names


def test_seeding_again_adds_nothing_and_keeps_edits():
    Category.objects.filter(kind=Kind.EVENT, code="0101").update(name="暴露垃圾（本市）")
    TimeLimit.objects.filter(category__code="0101", category__kind=Kind.EVENT).delete()
    counts = seed_categories()
    assert counts == {"categories": 0, "time_limits": 3}
    assert Category.objects.get(kind=Kind.EVENT, code="0101").name == "暴露垃圾（本市）"
    out = io.StringIO()
    call_command("seed_categories", stdout=out)
    assert "0 categories and 0 time limits added" in out.getvalue()
    assert seed_categories() == {"categories": 0, "time_limits": 0}


def test_every_step_and_urgency_has_a_limit_for_every_class():
    for category in Category.objects.all():
        for step in Step.values:
            for urgency in Urgency.values:
                assert time_limit_for(category=category, step=step, urgency=urgency), (
                    category,
                    step,
                    urgency,
                )


def test_handling_limits_follow_the_class():
    def handle(kind, code, urgency=Urgency.NORMAL):
        cat = Category.objects.get(kind=kind, code=code)
        limit = time_limit_for(category=cat, step=Step.HANDLE, urgency=urgency)
        return limit.amount, limit.unit

    assert handle(Kind.COMPONENT, "0102") == (Decimal("2"), "working_hours")  # manhole cover
    assert handle(Kind.EVENT, "0101") == (Decimal("1"), "working_days")  # exposed garbage
    assert handle(Kind.COMPONENT, "0109") == (Decimal("3"), "working_days")  # street light
    assert handle(Kind.COMPONENT, "0109", Urgency.URGENT) == (Decimal("12"), "working_hours")
    assert handle(Kind.COMPONENT, "0102", Urgency.EMERGENCY) == (Decimal("0.5"), "working_hours")


def test_minor_inherits_limits_of_its_major_unless_it_has_its_own():
    garbage = Category.objects.get(kind=Kind.EVENT, code="0101")
    verify = time_limit_for(category=garbage, step=Step.VERIFY)
    assert verify.category.code == "01"
    own = TimeLimit.objects.create(
        category=garbage, step=Step.VERIFY, urgency=Urgency.NORMAL, amount=3, unit="working_hours"
    )
    assert time_limit_for(category=garbage, step=Step.VERIFY) == own


def test_step_deadline_in_working_time():
    calendar = WorkCalendar(tz=SH, rules_for_year=china_year_rules)
    cover = Category.objects.get(kind=Kind.COMPONENT, code="0101")
    friday_evening = datetime(2026, 11, 27, 19, 0, tzinfo=SH)
    deadline = step_deadline(
        category=cover,
        step=Step.HANDLE,
        urgency=Urgency.NORMAL,
        start=friday_evening,
        calendar=calendar,
    )
    assert deadline == datetime(2026, 11, 30, 10, 30, tzinfo=SH)
    light = Category.objects.get(kind=Kind.COMPONENT, code="0109")
    assert step_deadline(
        category=light, step=Step.HANDLE, urgency=Urgency.NORMAL, start=friday_evening
    ) == datetime(2026, 12, 2, 17, 30, tzinfo=SH)


def test_category_tree():
    tree = category_tree(kind=Kind.EVENT)
    assert [m.code for m in tree] == ["01", "02", "03", "04", "05"]
    assert tree[0].minors[0].code == "0101"


@pytest.mark.parametrize(
    ("code", "parent_code", "field"),
    [
        ("1", None, "code"),
        ("0101", None, "code"),
        ("01", "01", "code"),
        ("0299", "01", "code"),
        ("01ab", "01", "code"),
    ],
)
def test_category_codes_are_checked(code, parent_code, field):
    parent = Category.objects.get(kind=Kind.EVENT, code=parent_code) if parent_code else None
    category = Category(kind=Kind.EVENT, code=code, parent=parent, name="x")
    with pytest.raises(ValidationError) as info:
        category.full_clean()
    assert field in info.value.message_dict


def test_minor_class_must_share_its_major_kind_and_sit_under_a_major():
    event_major = Category.objects.get(kind=Kind.EVENT, code="01")
    minor = Category.objects.get(kind=Kind.EVENT, code="0101")
    with pytest.raises(ValidationError) as refused:
        Category(kind=Kind.COMPONENT, code="0199", parent=event_major, name="x").full_clean()
    assert "parent" in refused.value.message_dict
    with pytest.raises(ValidationError):
        Category(kind=Kind.EVENT, code="0199", parent=minor, name="x").full_clean()
    Category(kind=Kind.EVENT, code="0199", parent=event_major, name="其他").full_clean()


def test_kind_and_code_are_unique():
    with pytest.raises(IntegrityError), transaction.atomic():
        Category.objects.create(kind=Kind.EVENT, code="01", name="dup")


def test_limits_in_days_are_whole_and_positive():
    cat = Category.objects.get(kind=Kind.EVENT, code="0101")
    with pytest.raises(ValidationError):
        TimeLimit(
            category=cat, step="check", urgency="urgent", amount=Decimal("1.5"), unit="working_days"
        ).full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        TimeLimit.objects.filter(category=cat, step=Step.HANDLE, urgency=Urgency.NORMAL).update(
            amount=0
        )
