"""The Security page: two-factor setup and verify, personal API tokens."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from core.errors import DomainError

from .tokens import DEFAULT_EXPIRY_DAYS, MAX_EXPIRY_DAYS, token_create, token_list, token_revoke
from .two_factor import (
    confirmed_device,
    pending_device,
    qr_svg,
    secret_for_manual_entry,
    session_is_verified,
    two_factor_confirm,
    two_factor_disable,
    two_factor_required,
    two_factor_verify,
)


class CodeForm(forms.Form):
    code = forms.CharField(
        label=gettext_lazy("Code from your authenticator app"),
        max_length=12,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "pattern": "[0-9 ]*",
                "autofocus": True,
            }
        ),
    )


class TokenForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)
    expires_in_days = forms.IntegerField(
        label=gettext_lazy("Valid for (days)"),
        min_value=1,
        max_value=MAX_EXPIRY_DAYS,
        initial=DEFAULT_EXPIRY_DAYS,
    )


def _safe_next(request, default: str = "home") -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return resolve_url(default)


def _domain_errors_to_form(form: forms.Form, error: DomainError) -> None:
    for field, texts in error.errors.items():
        for text in texts:
            form.add_error(field if field in form.fields else None, text)


@login_required
@never_cache
def security(request):
    device = confirmed_device(request.user)
    context = {
        "device": device,
        "required": two_factor_required(request.user),
        "verified": session_is_verified(request),
        "active_tokens": [t for t in token_list(user=request.user) if t.is_active],
    }
    return render(request, "accounts/security.html", context)


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def two_factor_setup(request):
    user = request.user
    if confirmed_device(user) is not None and not session_is_verified(request):
        # Only a verified session may replace a device; otherwise a stolen
        # password alone would be enough to enrol the thief's phone.
        return redirect(resolve_url("account_2fa_verify") + "?" + urlencode({"next": request.path}))
    device = pending_device(user=user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            two_factor_confirm(request=request, device=device, code=form.cleaned_data["code"])
        except DomainError as error:
            _domain_errors_to_form(form, error)
        else:
            messages.success(request, _("Two-factor sign-in is on."))
            return redirect(_safe_next(request, "account_security"))
    context = {
        "form": form,
        "qr_svg": qr_svg(device),
        "secret": secret_for_manual_entry(device),
        "required": two_factor_required(user),
        "next": request.POST.get("next") or request.GET.get("next", ""),
    }
    return render(request, "accounts/two_factor_setup.html", context)


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def two_factor_verify_view(request):
    if session_is_verified(request):
        return redirect(_safe_next(request))
    if confirmed_device(request.user) is None:
        return redirect("account_2fa_setup")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            two_factor_verify(request=request, code=form.cleaned_data["code"])
        except DomainError as error:
            _domain_errors_to_form(form, error)
        else:
            return redirect(_safe_next(request))
    next_url = request.POST.get("next") or request.GET.get("next", "")
    return render(request, "accounts/two_factor_verify.html", {"form": form, "next": next_url})


@login_required
@require_POST
def two_factor_disable_view(request):
    try:
        two_factor_disable(request=request)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Two-factor sign-in is off."))
    return redirect("account_security")


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def tokens(request):
    form = TokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            token, key = token_create(user=request.user, **form.cleaned_data)
        except DomainError as error:
            _domain_errors_to_form(form, error)
        else:
            # Rendered, not redirected: the key exists only in this response.
            created = {"token": token, "key": key}
            form = TokenForm()
    context = {"form": form, "created": created, "tokens": token_list(user=request.user)}
    return render(request, "accounts/tokens.html", context)


@login_required
@require_POST
def token_revoke_view(request, pk: int):
    token = get_object_or_404(token_list(user=request.user), pk=pk)
    token_revoke(token=token, actor=request.user)
    messages.success(request, _("Token “%(name)s” is revoked.") % {"name": token.name})
    return redirect("account_tokens")
