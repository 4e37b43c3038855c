"""Reads of the residents' portal: a resident's own data, suggestions, and the staff's
moderation queue (always narrowed to the staff member's areas).

Nothing public here carries a person: the published suggestions are title,
text and answer only; who asked stays with staff.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts.scopes import scope_prefixes
from cases.models import Case, CasePhoto, CaseState, Source
from cases.selectors import public_timeline
from geo.models import Area, AreaLevel

from .abuse import normalise_email, normalise_phone
from .models import Blocked, ResidentLogin, Suggestion

# A resident withdraws a report nobody has filed yet.
WITHDRAWABLE_STATES = frozenset({CaseState.REPORTED, CaseState.VERIFYING})
MY_REPORTS_LIMIT = 200
MY_SUGGESTIONS_LIMIT = 200
PUBLIC_SUGGESTIONS_PAGE = 20
MODERATION_PAGE = 50
# Staff whose scope reaches this high (a district: 6-digit code, or the city) also
# see suggestions that name no area.
DISTRICT_PREFIX_LENGTH = 6

PHOTO_PERMISSION = "cases.change_casephoto"
SUGGESTION_VIEW = "portal.view_suggestion"
SUGGESTION_CHANGE = "portal.change_suggestion"
BLOCKLIST_VIEW = "portal.view_blocked"
BLOCKLIST_ADD = "portal.add_blocked"
BLOCKLIST_DELETE = "portal.delete_blocked"


# --- a resident's own -------------------------------------------------------------------


def resident_by_login(identifier: str):
    """The active resident account that signs in with this e-mail or phone, or None."""
    identifier = (identifier or "").strip()
    if not identifier:
        return None
    if "@" in identifier:
        wanted = Q(kind=ResidentLogin.Kind.EMAIL, value=normalise_email(identifier))
    else:
        wanted = Q(kind=ResidentLogin.Kind.PHONE, value=normalise_phone(identifier))
    row = (
        ResidentLogin.objects.select_related("user")
        .filter(wanted, user__is_active=True, user__is_resident=True)
        .first()
    )
    return row.user if row is not None else None


def my_reports(*, user, limit: int = MY_REPORTS_LIMIT) -> list[Case]:
    """The resident's reports, newest first (at most ``limit``)."""
    if not getattr(user, "is_authenticated", False):
        return []
    return list(
        Case.objects.filter(reporter=user)
        .select_related("category", "category__parent")
        .order_by("-created_at", "-id")[:limit]
    )


def my_report(*, user, number: str) -> Case | None:
    """One of the resident's reports by its number, or None (someone else's: None too)."""
    if not getattr(user, "is_authenticated", False):
        return None
    return Case.objects.select_related("category").filter(reporter=user, number=number).first()


def my_suggestions(*, user, limit: int = MY_SUGGESTIONS_LIMIT) -> list[Suggestion]:
    if not getattr(user, "is_authenticated", False):
        return []
    return list(Suggestion.objects.filter(resident=user).select_related("area")[:limit])


def resident_data(*, user) -> dict:
    """Everything CivicGrid holds about the resident, as plain JSON-ready data: her
    account, her reports (with her own contact fields, her descriptions and their
    public timelines) and her suggestions. Nothing about anyone else."""
    login = ResidentLogin.objects.filter(user=user).first()
    cases = list(
        Case.objects.filter(reporter=user)
        .select_related("category", "area", "department")
        .order_by("created_at", "id")
    )
    reports = []
    for case in cases:
        reports.append(
            {
                "number": case.number,
                "kind": case.kind,
                "category": case.category.code,
                "category_name": case.category.name,
                "state": case.state,
                "source": case.source,
                "description": case.description,
                "address": case.address,
                "lat": case.lat,
                "lng": case.lng,
                "grid": case.area.code,
                "reporter_name": case.reporter_name,
                "reporter_phone": case.reporter_phone,
                "reporter_email": case.reporter_email,
                "satisfaction": case.satisfaction,
                "created_at": case.created_at.isoformat(),
                "closed_at": case.closed_at.isoformat() if case.closed_at else None,
                "timeline": [
                    {
                        "at": entry.at.isoformat(),
                        "action": entry.action,
                        "label": entry.label,
                        "department": entry.department,
                    }
                    for entry in public_timeline(case)
                ],
            }
        )
    suggestions = [
        {
            "kind": s.kind,
            "title": s.title,
            "text": s.text,
            "area": s.area.code if s.area_id else None,
            "status": s.status,
            "answer": s.answer,
            "answered_at": s.answered_at.isoformat() if s.answered_at else None,
            "published": s.is_published,
            "contact_email": s.contact_email,
            "contact_phone": s.contact_phone,
            "created_at": s.created_at.isoformat(),
        }
        for s in Suggestion.objects.filter(resident=user).select_related("area").order_by("id")
    ]
    return {
        "account": {
            "email": user.email,
            "phone": user.phone,
            "signs_in_with": login.kind if login else None,
            "display_name": user.display_name,
            "date_joined": user.date_joined.isoformat(),
            "last_login": user.last_login.isoformat() if user.last_login else None,
        },
        "reports": reports,
        "suggestions": suggestions,
    }


# --- suggestions, public ------------------------------------------------------------------


def published_suggestions() -> QuerySet:
    """Answered and published suggestions and questions, newest answer first."""
    return (
        Suggestion.objects.filter(status=Suggestion.Status.ANSWERED, is_published=True)
        .select_related("area")
        .only(
            "id",
            "kind",
            "title",
            "text",
            "answer",
            "answered_at",
            "created_at",
            "area__code",
            "area__name",
            "area__name_en",
        )
        .order_by("-answered_at", "-id")
    )


def published_suggestion(pk: int) -> Suggestion | None:
    return published_suggestions().filter(pk=pk).first()


def suggestion_by_token(token: str) -> Suggestion | None:
    """The suggestion behind a private link, or None."""
    token = (token or "").strip()
    if not token or len(token) > 64:
        return None
    return Suggestion.objects.select_related("area").filter(public_token=token).first()


def suggestion_areas() -> list[Area]:
    """Areas a resident may say a suggestion is about: districts, streets, communities."""
    return list(
        Area.objects.filter(level__in=(AreaLevel.DISTRICT, AreaLevel.STREET, AreaLevel.COMMUNITY))
        .only("id", "code", "name", "name_en", "level")
        .order_by("code")[:2000]
    )


# --- staff: scope ---------------------------------------------------------------------------


def _area_q(user, perm: str, path: str, *, unlocated: bool = False) -> Q | None:
    """A filter for objects located at ``path`` inside ``user``'s ``perm`` scope; None
    for everywhere. ``unlocated``: objects with no area count as in scope for staff
    whose scope is a district or wider."""
    prefixes = scope_prefixes(user, perm)
    if prefixes is None:
        return None
    if not prefixes:
        return Q(pk__in=[])
    q = Q(pk__in=[])
    for prefix in prefixes:
        q |= Q(**{f"{path}__startswith": prefix})
    if unlocated and any(len(p) <= DISTRICT_PREFIX_LENGTH for p in prefixes):
        q |= Q(**{f"{path.split('__')[0]}__isnull": True})
    return q


def has_any(user, perms) -> bool:
    for perm in perms:
        prefixes = scope_prefixes(user, perm)
        if prefixes is None or prefixes:
            return True
    return False


def staff_suggestions(*, user, action: str = "view") -> QuerySet:
    """The suggestions ``user`` may ``action`` ("view", "change"): those about an area in
    her scope, and those about no area when her scope is a district or wider."""
    q = _area_q(user, f"portal.{action}_suggestion", "area__code", unlocated=True)
    qs = Suggestion.objects.select_related("area")
    return qs if q is None else qs.filter(q)


def suggestion_queue(*, user, status: str = "new", page: int = 1) -> tuple[list, bool]:
    qs = staff_suggestions(user=user)
    if status in Suggestion.Status.values:
        qs = qs.filter(status=status)
    if status == Suggestion.Status.NEW:
        qs = qs.order_by("created_at", "id")  # the oldest waits longest
    start = (max(page, 1) - 1) * MODERATION_PAGE
    rows = list(qs[start : start + MODERATION_PAGE + 1])
    return rows[:MODERATION_PAGE], len(rows) > MODERATION_PAGE


def public_case_q(prefix: str = "case__") -> Q:
    """Cases residents reported (portal, Open311): their photos may become public."""
    return ~Q(**{f"{prefix}public_token": ""}) | Q(
        **{f"{prefix}source__in": [Source.PORTAL, Source.OPEN311]}
    )


def staff_photos(*, user) -> QuerySet:
    """Photos of residents' cases in ``user``'s photo-moderation scope."""
    q = _area_q(user, PHOTO_PERMISSION, "case__area_code")
    qs = CasePhoto.objects.filter(public_case_q()).select_related("case", "case__category")
    return qs if q is None else qs.filter(q)


def photo_queue(*, user, page: int = 1) -> tuple[list, bool]:
    """Photos awaiting review, oldest first."""
    qs = staff_photos(user=user).filter(reviewed_at__isnull=True).order_by("created_at", "id")
    start = (max(page, 1) - 1) * MODERATION_PAGE
    rows = list(qs[start : start + MODERATION_PAGE + 1])
    return rows[:MODERATION_PAGE], len(rows) > MODERATION_PAGE


def queue_counts(*, user) -> dict[str, int | None]:
    """How much awaits review, per queue the user may open (None: she may not)."""
    counts: dict[str, int | None] = {"photos": None, "suggestions": None, "blocked": None}
    if has_any(user, [PHOTO_PERMISSION]):
        counts["photos"] = staff_photos(user=user).filter(reviewed_at__isnull=True).count()
    if has_any(user, [SUGGESTION_VIEW]):
        counts["suggestions"] = (
            staff_suggestions(user=user).filter(status=Suggestion.Status.NEW).count()
        )
    if has_any(user, [BLOCKLIST_VIEW]):
        counts["blocked"] = Blocked.objects.count()
    return counts


def blocklist(*, user, page: int = 1) -> tuple[list, bool]:
    """The blocklist (not located anywhere: the permission alone decides)."""
    if not has_any(user, [BLOCKLIST_VIEW]):
        return [], False
    start = (max(page, 1) - 1) * MODERATION_PAGE
    rows = list(Blocked.objects.order_by("-created_at", "-id")[start : start + MODERATION_PAGE + 1])
    return rows[:MODERATION_PAGE], len(rows) > MODERATION_PAGE
