"""Public pages of the residents' portal: report, follow, rate, the map, the statistics.

Nothing here needs an account. Reads of cases go through the public selectors
(cases.selectors, "the public view of cases"): no reporter, no staff name, no
note, no description, no photo staff have not approved, and a sensitive class
at a coarse location. Writes go through cases.services, each after
portal.abuse.guard_public_write (the blocklist: 403 page; the rate limits: 429
page with Retry-After). A resident's case is reached only through the secret of
its private link (``/portal/track/<token>/``); there is no look-up by number,
since numbers are easy to guess.
"""

from __future__ import annotations

import json
import math
from datetime import datetime

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.db.models import Max, Min
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
    require_safe,
)

from cases import workflow
from cases.forms import add_domain_errors
from cases.models import CasePhoto, CaseState
from cases.photo_views import photo_response
from cases.selectors import (
    COARSE_STEP,
    PUBLIC_RECENT_DAYS,
    case_by_token,
    public_cases,
    public_location,
    public_photos,
    public_timeline,
)
from cases.services import CaseConflict, case_rate, case_report_result, case_withdraw
from core.errors import DomainError
from core.ratelimit import RateLimited
from geo import exporter
from geo.models import Area, AreaLevel
from geo.versioning import current_area_version

from . import challenge as pow_challenge
from .abuse import Refused, guard_public_write
from .forms import RateForm, ReportForm, WithdrawForm, localized_name, public_category_tree
from .stats import PERIODS, parse_period, public_stats

# The state of a case in public words (what a resident understands).
PUBLIC_STATE = {
    CaseState.REPORTED: gettext_lazy("Received, being reviewed"),
    CaseState.VERIFYING: gettext_lazy("Being verified on site"),
    CaseState.ESCALATED: gettext_lazy("Passed to a higher level"),
    CaseState.FILED: gettext_lazy("Accepted, waiting to be assigned"),
    CaseState.DISPATCHED: gettext_lazy("Assigned to the responsible department"),
    CaseState.ACCEPTED: gettext_lazy("Being handled"),
    CaseState.HANDLED: gettext_lazy("Handled, being checked"),
    CaseState.CHECKING: gettext_lazy("Checked, about to close"),
    CaseState.RATING: gettext_lazy("Waiting for the reporter's rating"),
    CaseState.SUSPENDED: gettext_lazy("On hold"),
    CaseState.CLOSED: gettext_lazy("Closed"),
    CaseState.VOIDED: gettext_lazy("Not taken up"),
    CaseState.MERGED: gettext_lazy("Merged with a report of the same problem"),
}
WITHDRAWN_LABEL = gettext_lazy("Withdrawn by the reporter")
WITHDRAWABLE = frozenset({CaseState.REPORTED, CaseState.VERIFYING})
# Cases on the public map per request at most (the newest in view).
MAP_LIMIT = 500
MAP_AREAS_LEVEL = AreaLevel.STREET


def public_state_label(state: str) -> str:
    return str(PUBLIC_STATE.get(state, state))


def _map_config(**extra) -> dict:
    return {
        "tiles": {
            "url": settings.CIVICGRID["MAP_TILE_URL"],
            "attribution": settings.CIVICGRID["MAP_TILE_ATTRIBUTION"],
        },
        "areasUrl": reverse("portal:map-areas"),
        "bounds": _city_bounds(),
        **extra,
    }


def _city_bounds() -> list[list[float]] | None:
    """[[south, west], [north, east]] of every street with a boundary (cached per version)."""
    key = f"portal:bounds:{current_area_version()}"
    bounds = cache.get(key)
    if bounds is None:
        box = Area.objects.filter(level=MAP_AREAS_LEVEL, min_lng__isnull=False).aggregate(
            w=Min("min_lng"), s=Min("min_lat"), e=Max("max_lng"), n=Max("max_lat")
        )
        bounds = [[box["s"], box["w"]], [box["n"], box["e"]]] if box["w"] is not None else []
        cache.set(key, bounds, 600)
    return bounds or None


def _refusal_page(request, exc: DomainError):
    """The page of a refused public write: 429 with Retry-After, or 403 for a blocked sender."""
    if isinstance(exc, RateLimited):
        response = render(
            request,
            "portal/refused.html",
            {"kind": "rate", "retry_after": exc.retry_after, "wait": _wait_words(exc.retry_after)},
            status=429,
        )
        response["Retry-After"] = str(exc.retry_after)
        return response
    return render(request, "portal/refused.html", {"kind": "blocked"}, status=403)


def _wait_words(seconds: int) -> str:
    if seconds < 120:
        return _("%(count)d seconds") % {"count": seconds}
    return _("%(count)d minutes") % {"count": math.ceil(seconds / 60)}


def _is_resident(user) -> bool:
    return bool(user.is_authenticated and getattr(user, "is_resident", False))


# --- home ------------------------------------------------------------------------------


@require_safe
def index(request):
    return render(request, "portal/index.html", {"stats": public_stats(period_days=PERIODS[0])})


# --- report ----------------------------------------------------------------------------


def _category_help(tree) -> list[dict]:
    """The classes for the report script: majors with their minors and help for residents."""
    return [
        {
            "id": major.pk,
            "label": major.label,
            "help": major.resident_help,
            "minors": [
                {
                    "id": minor.pk,
                    "label": localized_name(minor),
                    "help": minor.resident_help or major.resident_help,
                }
                for minor in major.minors
            ],
        }
        for major in tree
    ]


@never_cache
@require_http_methods(["GET", "POST"])
def report(request):
    """Report a problem. Anonymous reporters solve the proof-of-work challenge first."""
    user = request.user
    resident = _is_resident(user)
    needs_challenge = not user.is_authenticated
    tree = public_category_tree()
    for major in tree:
        major.label = f"{major.get_kind_display()} · {localized_name(major)}"
    posted = request.method == "POST"
    form = ReportForm(
        request.POST if posted else None, request.FILES if posted else None, tree=tree
    )
    status = 200
    if posted:
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                guard_public_write(
                    request,
                    "portal.report",
                    email=data.get("reporter_email", ""),
                    phone=data.get("reporter_phone", ""),
                )
            except (RateLimited, Refused) as exc:
                return _refusal_page(request, exc)
            passed = True
            if needs_challenge:
                try:
                    pow_challenge.verify(
                        data.get("challenge", ""), data.get("challenge_counter", "")
                    )
                except pow_challenge.ChallengeFailed as exc:
                    form.add_error(None, str(exc))
                    passed = False
            if passed:
                try:
                    case, _created = case_report_result(
                        actor=user if resident else None,
                        idempotency_key=(data.get("idempotency_key") or None) if resident else None,
                        **form.service_fields(),
                    )
                except DomainError as exc:
                    add_domain_errors(form, exc)
                else:
                    return redirect(
                        reverse("portal:track", args=[case.public_token]) + "?received=1"
                    )
    selected = form.selected_category()
    context = {
        "form": form,
        "tree": tree,
        "selected": selected,
        "selected_major": selected.parent_id if selected else None,
        "category_help": _category_help(tree),
        "needs_challenge": needs_challenge,
        "challenge": pow_challenge.issue() if needs_challenge else None,
        "photos_lost": posted and bool(request.FILES.getlist("photos")),
        "max_photos": workflow.MAX_PHOTOS,
        "map_config": _map_config(
            mode="pick",
            strings={
                "locating": _("Finding your location…"),
                "located": _("Location found (accuracy about %(metres)s m)."),
                "locateFailed": _("Your location is not available: %(reason)s"),
                "locateUnsupported": _("This browser cannot tell your location."),
                "pinHint": _("Tap the map to put the pin where the problem is."),
                "areasFailed": _("Could not load the city's outlines."),
            },
        ),
    }
    return render(request, "portal/report.html", context, status=status)


@never_cache
@require_GET
def report_challenge(request):
    """A fresh proof-of-work challenge for the report form's script (JSON)."""
    issued = pow_challenge.issue()
    return JsonResponse({"challenge": issued.token, "bits": issued.bits, "ttl": issued.ttl})


# --- follow, rate, withdraw ---------------------------------------------------------------


def _case_or_404(token: str):
    case = case_by_token(token)
    if case is None:
        raise Http404
    return case


def _track_context(request, case, **forms) -> dict:
    timeline = public_timeline(case)
    withdrawn = case.state == CaseState.VOIDED and any(
        entry.action == workflow.Action.WITHDRAW for entry in timeline
    )
    lat, lng = public_location(case)
    open_case = case.state in workflow.OPEN_STATES
    context = {
        "case": case,
        "token": case.public_token,
        "category_name": localized_name(case.category),
        "major_name": localized_name(case.category.parent) if case.category.parent_id else "",
        "state_label": str(WITHDRAWN_LABEL) if withdrawn else public_state_label(case.state),
        "is_open": open_case,
        "timeline": list(reversed(timeline)),
        "photos": public_photos(case),
        "location": (lat, lng),
        "coarse": case.category.is_sensitive,
        "expected": timezone.localdate(case.deadline)
        if open_case and case.deadline and case.state != CaseState.RATING
        else None,
        "late": open_case and case.deadline is not None and case.deadline < timezone.now(),
        "received": request.GET.get("received") == "1",
        "link": request.build_absolute_uri(reverse("portal:track", args=[case.public_token])),
        "can_rate": case.state == CaseState.RATING,
        "can_withdraw": case.state in WITHDRAWABLE,
        "rating_days": settings.CIVICGRID.get("RATING_DAYS", 7),
        "map_config": _map_config(
            mode="point", point=[lat, lng], coarse=case.category.is_sensitive
        ),
    }
    if context["can_rate"]:
        context["rate_form"] = forms.get("rate_form") or RateForm(initial={"version": case.version})
    if context["can_withdraw"]:
        context["withdraw_form"] = forms.get("withdraw_form") or WithdrawForm(
            initial={"version": case.version}
        )
    return context


def _private(response: HttpResponse) -> HttpResponse:
    """A tracking page holds its secret in the URL: keep it out of caches and search engines."""
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    # Never the whole URL to another site; "no-referrer" would also make the browser
    # send "Origin: null" with the page's own forms, which CSRF protection refuses.
    response["Referrer-Policy"] = "same-origin"
    return response


@require_safe
def track(request, token: str):
    """The resident's private page of her report: state, timeline, rating, withdrawal."""
    case = _case_or_404(token)
    return _private(render(request, "portal/track.html", _track_context(request, case)))


def _resident_actor(request):
    return request.user if _is_resident(request.user) else None


@require_POST
def track_rate(request, token: str):
    """The reporter's rating: satisfied closes the case, unsatisfied sends it back."""
    case = _case_or_404(token)
    form = RateForm(request.POST)
    if form.is_valid():
        try:
            guard_public_write(request, "portal.rate")
        except (RateLimited, Refused) as exc:
            return _refusal_page(request, exc)
        satisfied = form.cleaned_data["satisfied"]
        try:
            case_rate(
                case_id=case.pk,
                expected_version=form.cleaned_data["version"],
                satisfied=satisfied,
                reason=form.cleaned_data.get("reason", ""),
                actor=_resident_actor(request),
                token=token,
            )
        except CaseConflict:
            messages.warning(request, _("The case changed meanwhile. See where it stands now."))
            return redirect("portal:track", token=token)
        except DomainError as exc:
            errors = dict(exc.errors or {})
            if "note" in errors:  # the services call the reason a note
                errors["reason"] = errors.pop("note")
            add_domain_errors(form, DomainError(exc.message, errors=errors))
        else:
            messages.success(
                request,
                _("Thank you. The case is closed.")
                if satisfied
                else _("Thank you. The case goes back for another round."),
            )
            return redirect("portal:track", token=token)
        case = _case_or_404(token)
    return _private(
        render(
            request, "portal/track.html", _track_context(request, case, rate_form=form), status=400
        )
    )


@require_POST
def track_withdraw(request, token: str):
    """The reporter withdraws a report nobody has taken up yet."""
    case = _case_or_404(token)
    form = WithdrawForm(request.POST)
    if form.is_valid():
        try:
            guard_public_write(request, "portal.withdraw")
        except (RateLimited, Refused) as exc:
            return _refusal_page(request, exc)
        try:
            case_withdraw(
                case_id=case.pk,
                expected_version=form.cleaned_data["version"],
                actor=_resident_actor(request),
                token=token,
                reason=form.cleaned_data.get("reason", ""),
            )
        except CaseConflict:
            messages.warning(request, _("The case changed meanwhile. See where it stands now."))
            return redirect("portal:track", token=token)
        except DomainError as exc:
            add_domain_errors(form, exc)
        else:
            messages.success(request, _("Your report is withdrawn."))
            return redirect("portal:track", token=token)
        case = _case_or_404(token)
    return _private(
        render(
            request,
            "portal/track.html",
            _track_context(request, case, withdraw_form=form),
            status=400,
        )
    )


@require_safe
def photo(request, pk: int, size: str):
    """An approved photo of a public case; anything else answers 404."""
    approved = CasePhoto.objects.filter(is_public=True, case__category__is_public=True).exclude(
        case__state__in=[CaseState.VOIDED, CaseState.MERGED]
    )
    # Short: a photo staff withdraw from the public drops out of caches soon.
    return photo_response(approved, pk=pk, size=size, cache_control="public, max-age=300")


# --- the public map ----------------------------------------------------------------------


@require_safe
def public_map(request):
    config = _map_config(
        mode="cases",
        casesUrl=reverse("portal:map-cases"),
        limit=MAP_LIMIT,
        strings={
            "loadFailed": _("Could not load the cases for the map."),
            "shown": _("Cases in view: %(count)s"),
            "truncated": _("The %(count)s newest cases in view are shown: zoom in for more."),
            "none": _("No case in view."),
            "reported": _("Reported %(date)s"),
            "closedOn": _("closed %(date)s"),
            "age": _("%(days)s days ago"),
            "today": _("today"),
            "coarse": _("Shown at an approximate location."),
        },
    )
    return render(
        request,
        "portal/map.html",
        {"map_config": config, "recent_days": PUBLIC_RECENT_DAYS},
    )


class BadBBox(ValueError):
    pass


def parse_bbox(raw: str | None) -> tuple[float, float, float, float]:
    """``west,south,east,north`` in degrees (WGS-84); BadBBox when it is not that."""
    if not raw:
        raise BadBBox(_("Give bbox=west,south,east,north."))
    parts = raw.split(",")
    if len(parts) != 4:
        raise BadBBox(_("bbox takes four numbers: west,south,east,north."))
    try:
        west, south, east, north = (float(p) for p in parts)
    except ValueError as exc:
        raise BadBBox(_("bbox takes four numbers: west,south,east,north.")) from exc
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise BadBBox(_("bbox takes four numbers: west,south,east,north."))
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise BadBBox(_("bbox must lie within the world, west before east, south before north."))
    return west, south, east, north


def _days_between(start: datetime, end: datetime) -> int:
    return max(0, (timezone.localdate(end) - timezone.localdate(start)).days)


@require_safe
def map_cases(request):
    """Public cases inside ``bbox`` as GeoJSON points: class, public state, age. No
    description, no number, no person; a sensitive class at its coarse location (the
    box is applied to the location shown, so a small box cannot reveal the exact one)."""
    try:
        west, south, east, north = parse_bbox(request.GET.get("bbox"))
    except BadBBox as exc:
        return JsonResponse({"detail": str(exc), "errors": {"bbox": [str(exc)]}}, status=400)
    margin = COARSE_STEP
    rows = list(
        public_cases()
        .filter(
            lat__gte=south - margin,
            lat__lte=north + margin,
            lng__gte=west - margin,
            lng__lte=east + margin,
        )
        .only(
            "state",
            "lat",
            "lng",
            "created_at",
            "closed_at",
            "category__name",
            "category__name_en",
            "category__is_sensitive",
            "category__parent__name",
            "category__parent__name_en",
        )
        .select_related(None)
        .select_related("category", "category__parent")
        .order_by("-created_at", "-id")[: MAP_LIMIT * 2]
    )
    now = timezone.now()
    features = []
    for case in rows:
        lat, lng = public_location(case)
        if not (south <= lat <= north and west <= lng <= east):
            continue
        if len(features) >= MAP_LIMIT:
            break
        is_open = case.state in workflow.OPEN_STATES
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [lng, lat]},
                "properties": {
                    "category": localized_name(case.category),
                    "major": localized_name(case.category.parent)
                    if case.category.parent_id
                    else "",
                    "state": case.state if case.state in PUBLIC_STATE else "",
                    "label": public_state_label(case.state),
                    "open": is_open,
                    "reported": timezone.localdate(case.created_at).isoformat(),
                    "closed": timezone.localdate(case.closed_at).isoformat()
                    if case.closed_at and not is_open
                    else None,
                    "age_days": _days_between(case.created_at, now),
                    "coarse": case.category.is_sensitive,
                },
            }
        )
    truncated = len(features) >= MAP_LIMIT and len(rows) > len(features)
    body = {"type": "FeatureCollection", "features": features, "truncated": truncated}
    response = HttpResponse(
        json.dumps(body, ensure_ascii=False), content_type="application/geo+json"
    )
    response["Cache-Control"] = "public, max-age=60"
    return response


@require_safe
def map_areas(request):
    """The streets' outlines (public boundaries, no people), for the maps' background."""
    version = current_area_version()
    key = f"portal:areas:{version}"
    text = cache.get(key)
    if text is None:
        text = exporter.areas_feature_collection_text(level=MAP_AREAS_LEVEL)
        cache.set(key, text, 3600)
    etag = f'"portal-areas-{version}"'
    if etag in request.headers.get("If-None-Match", ""):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(text, content_type="application/geo+json")
    response["ETag"] = etag
    response["Cache-Control"] = "public, max-age=300"
    return response


# --- statistics -----------------------------------------------------------------------------


@require_safe
def stats(request):
    period = parse_period(request.GET.get("period"))
    figures = public_stats(period_days=period)
    chart = {
        "categories": [
            {"label": g.label, "hours": g.median_hours, "closed": g.closed}
            for g in figures.by_category
        ],
        "streets": [
            {"label": g.label, "hours": g.median_hours, "closed": g.closed}
            for g in figures.by_street
        ],
        "strings": {
            "median": _("Median time to close"),
            "closed": _("Closed cases"),
            "days": _("days"),
            "hours": _("hours"),
        },
    }
    return render(
        request,
        "portal/stats.html",
        {"stats": figures, "periods": PERIODS, "period": period, "chart": chart},
    )
