"""Suggestions (建议) and questions (咨询) on the portal (/portal/suggestions/).

Anyone may send one: a signed-in resident as herself, anyone else after the
anti-robot check (portal.challenge). The sender gets a private link to read
the answer. Staff answer and may publish it: the public list shows title,
text and answer only — never who asked or how to reach them.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from cases.forms import add_domain_errors
from core.errors import DomainError
from core.ratelimit import RateLimited

from . import challenge, selectors, services
from .abuse import Refused, guard_public_write
from .forms_residents import SuggestionForm
from .resident_views import refusal


def _page(request) -> int:
    try:
        return max(1, min(int(request.GET.get("page", "1")), 1000))
    except ValueError:
        return 1


def _needs_challenge(user) -> bool:
    return not (user.is_authenticated and user.is_resident)


@require_safe
def suggestion_list(request):
    """Published suggestions and questions with their answers."""
    page = _page(request)
    size = selectors.PUBLIC_SUGGESTIONS_PAGE
    start = (page - 1) * size
    rows = list(selectors.published_suggestions()[start : start + size + 1])
    context = {"suggestions": rows[:size], "page": page, "has_next": len(rows) > size}
    return render(request, "portal/suggestion_list.html", context)


@require_safe
def suggestion_detail(request, pk: int):
    """One published suggestion or question with its answer."""
    suggestion = selectors.published_suggestion(pk)
    if suggestion is None:
        raise Http404("no such published suggestion")
    return render(request, "portal/suggestion_detail.html", {"suggestion": suggestion})


@never_cache
@require_http_methods(["GET", "POST"])
def suggestion_new(request):
    """Send a suggestion or a question."""
    template = "portal/suggestion_form.html"
    form = SuggestionForm(request.POST or None, areas=selectors.suggestion_areas())
    anonymous = _needs_challenge(request.user)

    def context() -> dict:
        return {"form": form, "challenge": challenge.issue() if anonymous else None}

    if request.method == "POST":
        try:
            guard_public_write(
                request,
                "portal.suggestion",
                email=request.POST.get("contact_email", ""),
                phone=request.POST.get("contact_phone", ""),
            )
        except (Refused, RateLimited) as exc:
            return refusal(request, template, context(), exc)
        if form.is_valid():
            data = form.cleaned_data
            try:
                if anonymous:
                    challenge.verify(data["challenge"], data["challenge_counter"])
            except challenge.ChallengeFailed as exc:
                form.add_error(None, str(exc))
            else:
                try:
                    suggestion = services.suggestion_submit(
                        kind=data["kind"],
                        title=data["title"],
                        text=data["text"],
                        area=data["area"],
                        contact_email=data["contact_email"],
                        contact_phone=data["contact_phone"],
                        resident=request.user if request.user.is_authenticated else None,
                    )
                except DomainError as exc:
                    add_domain_errors(form, exc)
                else:
                    messages.success(
                        request,
                        _(
                            "Thank you. Keep the address of this page: it is your private "
                            "link to the answer."
                        ),
                    )
                    return redirect(
                        reverse(
                            "portal:suggestion_track", kwargs={"token": suggestion.public_token}
                        )
                    )
        return render(request, template, context(), status=400)
    return render(request, template, context())


@never_cache
@require_safe
def suggestion_track(request, token: str):
    """The sender's private page: her suggestion, its state and the answer."""
    suggestion = selectors.suggestion_by_token(token)
    if suggestion is None:
        raise Http404("no suggestion behind this link")
    response = render(request, "portal/suggestion_track.html", {"suggestion": suggestion})
    # The link is a secret: it must not leak to other sites through the Referer.
    response["Referrer-Policy"] = "no-referrer"
    return response
