"""Resident accounts on the portal (/portal/me/): sign up, sign in and out, my reports,
withdraw a report, download all my data, erase my data.

A resident account holds no role: staff pages refuse it (403), and these pages
refuse staff accounts. Signing in goes through Django's ``authenticate``, so
django-axes counts failures and locks out exactly as on the staff sign-in.
"""

from __future__ import annotations

import functools
import hashlib
import json

from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from cases.forms import add_domain_errors
from cases.services import case_withdraw
from core.errors import DomainError
from core.ratelimit import RateLimited

from . import selectors, services
from .abuse import Refused, guard_public_write, normalise_email, normalise_phone
from .forms_residents import EraseForm, LoginForm, SignupForm, WithdrawForm, split_identifier
from .views import public_state_label


def track_url(case) -> str:
    """The private tracking page of a resident's report ("" when there is none)."""
    if not case.public_token:
        return ""
    try:
        return reverse("portal:track", kwargs={"token": case.public_token})
    except NoReverseMatch:
        return ""


def refusal(request, template: str, context: dict, exc: DomainError) -> HttpResponse:
    """A blocked sender (403) or one over the rate limit (429 with Retry-After), shown
    on the page of the form."""
    context = {**context, "refusal": exc.message}
    response = render(request, template, context, status=exc.status_code)
    if isinstance(exc, RateLimited):
        response["Retry-After"] = str(exc.retry_after)
    return response


def _safe_next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if (
        target.startswith("/portal/")
        and not target.startswith("/portal/moderation/")
        and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
    ):
        return target
    return reverse("portal:account")


def resident_required(view):
    """Signed-out visitors go to the portal sign-in; accounts that are not a resident's
    (staff) are refused."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            login_url = reverse("portal:account_login")
            return redirect(f"{login_url}?next={request.path}")
        if not user.is_resident:
            raise PermissionDenied("the portal's account pages are for residents")
        return view(request, *args, **kwargs)

    return wrapped


# --- sign up, sign in, sign out ---------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def signup(request):
    """Open a resident account with an e-mail address or a mobile number."""
    if request.user.is_authenticated and request.user.is_resident:
        return redirect("portal:account")
    template = "portal/account_signup.html"
    form = SignupForm(request.POST or None)
    if request.method == "POST":
        email, phone = split_identifier(request.POST.get("identifier", ""))
        try:
            # Every attempt counts, valid or not: a flood of bad forms is a flood too.
            guard_public_write(request, "portal.signup", email=email, phone=phone)
        except (Refused, RateLimited) as exc:
            return refusal(request, template, {"form": form}, exc)
        if form.is_valid():
            email, phone = split_identifier(form.cleaned_data["identifier"])
            try:
                user = services.resident_signup(
                    email=email, phone=phone, password=form.cleaned_data["password"]
                )
            except DomainError as exc:
                add_domain_errors(form, exc)
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(request, _("Welcome! Your account is ready."))
                return redirect("portal:account")
        return render(request, template, {"form": form}, status=400)
    return render(request, template, {"form": form})


@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request):
    """Sign in with the e-mail address or mobile number and the password."""
    if request.user.is_authenticated and request.user.is_resident:
        return redirect(_safe_next(request))
    template = "portal/account_login.html"
    form = LoginForm(request.POST or None)
    context = {"form": form, "next": request.POST.get("next") or request.GET.get("next", "")}
    if request.method == "POST":
        if form.is_valid():
            identifier = form.cleaned_data["identifier"].strip()
            resident = selectors.resident_by_login(identifier)
            # An unknown sign-in is still checked (and counted by django-axes) under a
            # name no account has, so it costs the same as a wrong password; the name
            # is a digest, so what was typed (an e-mail, a phone) is not logged.
            username = resident.username if resident else _unknown_username(identifier)
            user = authenticate(request, username=username, password=form.cleaned_data["password"])
            if user is not None and user.is_resident:
                login(request, user)
                return redirect(_safe_next(request))
            form.add_error(None, _("The e-mail address, mobile number or password is not correct."))
        return render(request, template, context, status=400)
    return render(request, template, context)


def _unknown_username(identifier: str) -> str:
    email, phone = split_identifier(identifier)
    normalised = normalise_email(email) if email else normalise_phone(phone)
    return "resident:" + hashlib.sha256(normalised.encode()).hexdigest()[:24]


@require_POST
def logout_view(request):
    logout(request)
    messages.info(request, _("You are signed out."))
    return redirect("portal:index")


# --- my reports --------------------------------------------------------------------------------


@never_cache
@resident_required
def account(request):
    """My reports and my suggestions."""
    user = request.user
    reports = selectors.my_reports(user=user)
    for case in reports:
        case.public_state = public_state_label(case.state)
        case.track_url = track_url(case)
        case.may_withdraw = case.state in selectors.WITHDRAWABLE_STATES and bool(case.public_token)
    suggestions = selectors.my_suggestions(user=user)
    for suggestion in suggestions:
        suggestion.track_url = (
            reverse("portal:suggestion_track", kwargs={"token": suggestion.public_token})
            if suggestion.public_token
            else ""
        )
    context = {
        "reports": reports,
        "suggestions": suggestions,
        "signs_in_with": user.email or user.phone,
    }
    return render(request, "portal/account_home.html", context)


@require_POST
@resident_required
def withdraw(request, number: str):
    """Withdraw one of my reports nobody has filed yet."""
    case = selectors.my_report(user=request.user, number=number)
    if case is None:
        raise Http404("no such report of this resident")
    form = WithdrawForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("The form was not complete. Please try again."))
    else:
        try:
            case_withdraw(
                case_id=case.pk,
                expected_version=form.cleaned_data["version"],
                actor=request.user,
                reason=form.cleaned_data["reason"],
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request, _("Report %(number)s is withdrawn.") % {"number": case.number}
            )
    url = reverse("portal:account")
    if request.htmx:
        response = HttpResponse("")
        response["HX-Redirect"] = url
        return response
    return redirect(url)


# --- my data -----------------------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
@resident_required
def export(request):
    """GET: what the download holds. POST: the download (a JSON file), audited."""
    if request.method == "GET":
        return render(request, "portal/account_export.html")
    data = services.resident_export(user=request.user)
    body = json.dumps(data, ensure_ascii=False, indent=2)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="civicgrid-my-data-{stamp}.json"'
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@require_http_methods(["GET", "POST"])
@resident_required
def erase(request):
    """Erase my personal data and my account, confirmed with the password."""
    template = "portal/account_erase.html"
    form = EraseForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                services.resident_erase(user=request.user, password=form.cleaned_data["password"])
            except DomainError as exc:
                add_domain_errors(form, exc)
            else:
                logout(request)
                messages.success(
                    request,
                    _(
                        "Your account and your personal data are erased. "
                        "Your reports stay in the statistics without anything about you."
                    ),
                )
                return redirect("portal:index")
        return render(request, template, {"form": form}, status=400)
    return render(request, template, {"form": form})
