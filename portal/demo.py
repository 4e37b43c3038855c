"""The demo city's resident: a portal account with reports to follow and a question.

The demo account ``resident`` (geo.demo) becomes a portal resident who signs in
on /portal/me/login/ with :data:`DEMO_RESIDENT_EMAIL` and the demo password.
"""

from __future__ import annotations

from django.db import transaction

from accounts.models import User
from cases.models import Category
from cases.services import case_report_result
from geo.models import Area, AreaLevel

from .models import ResidentLogin, Suggestion

DEMO_RESIDENT_USERNAME = "resident"
DEMO_RESIDENT_EMAIL = "resident@yunxi.example"

REPORTS = (
    ("0101", "小区东门外的垃圾堆了三天没人清运。"),
    ("0501", "人行道上有商户摆摊，轮椅过不去。"),
)


def seed_demo_resident() -> int:
    """Make the demo resident a portal account with a few reports and a question;
    how many reports were made (none when she has some already)."""
    user = User.objects.filter(username=DEMO_RESIDENT_USERNAME).first()
    if user is None:
        return 0
    with transaction.atomic():
        user.is_resident = True
        user.email = DEMO_RESIDENT_EMAIL
        user.save(update_fields=["is_resident", "email"])
        ResidentLogin.objects.update_or_create(
            user=user, defaults={"kind": ResidentLogin.Kind.EMAIL, "value": DEMO_RESIDENT_EMAIL}
        )
        if user.reported_cases.exists():
            return 0
        grids = list(Area.objects.filter(level=AreaLevel.GRID).order_by("code")[:2])
        made = 0
        for grid, (code, text) in zip(grids, REPORTS, strict=False):
            category = Category.objects.filter(code=code, kind="event", is_active=True).first()
            if category is None or grid.shape is None:
                continue
            point = grid.shape.representative_point()
            case_report_result(
                actor=user,
                public=True,
                source="portal",
                category=category,
                lat=point.y,
                lng=point.x,
                description=text,
                reporter_email=DEMO_RESIDENT_EMAIL,
            )
            made += 1
        Suggestion.objects.create(
            kind=Suggestion.Kind.QUESTION,
            title="小区垃圾几点清运？",
            text="想知道我们小区每天垃圾清运的时间，方便按时投放。",
            area=grids[0] if grids else None,
            resident=user,
        )
    return made
