"""The staff's moderation queue (/portal/moderation/): photos of residents' cases
awaiting approval, suggestions to answer, publish or reject, and the blocklist.

Staff only, by permission (cases.change_casephoto, portal.view_suggestion /
change_suggestion, portal.view_blocked / add_blocked / delete_blocked), each
narrowed to the staff member's areas where the object has one. Signed-out
visitors go to the staff sign-in; anyone without the permission gets 403
(written to the audit log). Inline actions work with htmx and without it.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.audit import audit_personal_data_access
from cases.forms import add_domain_errors
from core.errors import DomainError, NotFound

from . import selectors, services
from .forms_residents import AnswerForm, BlockForm, RejectForm
from .models import Suggestion

MODERATION_PERMISSIONS = (
    selectors.PHOTO_PERMISSION,
    selectors.SUGGESTION_VIEW,
    selectors.BLOCKLIST_VIEW,
)
CONTACT_FIELDS = ("contact_email", "contact_phone")


def _require(user, *perms) -> None:
    if not selectors.has_any(user, perms):
        raise PermissionDenied(f"missing permission {' or '.join(perms)}")


def _page(request) -> int:
    try:
        return max(1, min(int(request.GET.get("page", "1")), 1000))
    except ValueError:
        return 1


def _back(request, url: str) -> HttpResponse:
    if request.htmx:
        response = HttpResponse("")
        response["HX-Redirect"] = url
        return response
    return redirect(url)


# --- the queue ------------------------------------------------------------------------------


@login_required
@require_safe
def index(request):
    """What awaits review in my areas: counts, and the photos."""
    user = request.user
    _require(user, *MODERATION_PERMISSIONS)
    counts = selectors.queue_counts(user=user)
    photos, has_next = ([], False)
    if counts["photos"] is not None:
        photos, has_next = selectors.photo_queue(user=user, page=_page(request))
    context = {
        "section": "photos",
        "counts": counts,
        "photos": photos,
        "page": _page(request),
        "has_next": has_next,
    }
    return render(request, "portal/moderation_index.html", context)


# --- photos -----------------------------------------------------------------------------------


@login_required
@require_POST
def photo_review(request, pk: int):
    """Approve the photo for the public, or keep it private."""
    user = request.user
    _require(user, selectors.PHOTO_PERMISSION)
    decision = request.POST.get("decision")
    if decision not in ("approve", "private"):
        return HttpResponse(_("Choose approve or keep private."), status=400)
    try:
        photo = services.photo_review(photo_id=pk, actor=user, approve=decision == "approve")
    except NotFound as exc:
        raise Http404(exc.message) from None
    if request.htmx:
        return render(request, "portal/moderation_photo_card.html", {"photo": photo})
    if photo.is_public:
        messages.success(request, _("The photo is approved for the public."))
    else:
        messages.success(request, _("The photo stays private."))
    return redirect("portal:moderation")


# --- suggestions ------------------------------------------------------------------------------


@login_required
@require_safe
def suggestions(request):
    user = request.user
    _require(user, selectors.SUGGESTION_VIEW)
    status = request.GET.get("status", Suggestion.Status.NEW)
    if status not in Suggestion.Status.values and status != "all":
        status = Suggestion.Status.NEW
    rows, has_next = selectors.suggestion_queue(user=user, status=status, page=_page(request))
    context = {
        "section": "suggestions",
        "suggestions": rows,
        "status": status,
        "statuses": Suggestion.Status.choices,
        "page": _page(request),
        "has_next": has_next,
    }
    return render(request, "portal/moderation_suggestions.html", context)


def _staff_suggestion(user, pk: int) -> Suggestion:
    found = selectors.staff_suggestions(user=user).filter(pk=pk).first()
    if found is None:
        raise Http404("no such suggestion in scope")
    return found


def _suggestion_page(request, suggestion, *, answer_form=None, reject_form=None, status=200):
    may_change = (
        selectors.staff_suggestions(user=request.user, action="change")
        .filter(pk=suggestion.pk)
        .exists()
    )
    context = {
        "section": "suggestions",
        "suggestion": suggestion,
        "may_change": may_change,
        "answer_form": answer_form
        or AnswerForm(initial={"answer": suggestion.answer, "publish": suggestion.is_published}),
        "reject_form": reject_form or RejectForm(),
        "has_contact": bool(suggestion.contact_email or suggestion.contact_phone),
    }
    return render(request, "portal/moderation_suggestion.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def suggestion(request, pk: int):
    """One suggestion: read it, answer it (and publish it or not)."""
    user = request.user
    _require(user, selectors.SUGGESTION_VIEW)
    found = _staff_suggestion(user, pk)
    if request.method == "GET":
        return _suggestion_page(request, found)
    form = AnswerForm(request.POST)
    if form.is_valid():
        try:
            services.suggestion_answer(
                suggestion_id=found.pk,
                actor=user,
                answer=form.cleaned_data["answer"],
                publish=form.cleaned_data["publish"],
            )
        except DomainError as exc:
            add_domain_errors(form, exc)
        else:
            messages.success(request, _("The answer is saved."))
            return _back(request, reverse("portal:moderation_suggestion", args=[found.pk]))
    return _suggestion_page(request, found, answer_form=form, status=400)


@login_required
@require_POST
def suggestion_publish(request, pk: int):
    user = request.user
    _require(user, selectors.SUGGESTION_VIEW)
    found = _staff_suggestion(user, pk)
    published = request.POST.get("published") == "1"
    try:
        services.suggestion_publish(suggestion_id=found.pk, actor=user, published=published)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, _("It is published.") if published else _("It is no longer published.")
        )
    return _back(request, reverse("portal:moderation_suggestion", args=[found.pk]))


@login_required
@require_POST
def suggestion_reject(request, pk: int):
    user = request.user
    _require(user, selectors.SUGGESTION_VIEW)
    found = _staff_suggestion(user, pk)
    form = RejectForm(request.POST)
    if not form.is_valid():
        return _suggestion_page(request, found, reject_form=form, status=400)
    services.suggestion_reject(
        suggestion_id=found.pk, actor=user, reason=form.cleaned_data["reason"]
    )
    messages.success(request, _("The suggestion is rejected; it will never be published."))
    return _back(request, reverse("portal:moderation_suggestions"))


@login_required
@require_safe
def suggestion_contact(request, pk: int):
    """The sender's contact details, to those who answer; every read is audited."""
    user = request.user
    _require(user, selectors.SUGGESTION_VIEW)
    found = _staff_suggestion(user, pk)
    if not selectors.staff_suggestions(user=user, action="change").filter(pk=found.pk).exists():
        raise PermissionDenied("only those who answer a suggestion see its sender's contact")
    if found.contact_email or found.contact_phone:
        audit_personal_data_access(
            actor=user,
            obj=found,
            purpose=f"answer suggestion {found.pk}: contact its sender",
            fields=CONTACT_FIELDS,
        )
    template = (
        "portal/moderation_contact.html" if request.htmx else "portal/moderation_contact_page.html"
    )
    return render(request, template, {"section": "suggestions", "suggestion": found})


# --- the blocklist ----------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def blocklist(request):
    """The blocklist; POST adds an entry."""
    user = request.user
    _require(user, selectors.BLOCKLIST_VIEW)
    may_add = selectors.has_any(user, [selectors.BLOCKLIST_ADD])
    form = BlockForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if not may_add:
            raise PermissionDenied(f"missing permission {selectors.BLOCKLIST_ADD}")
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.blocked_add(
                    actor=user,
                    kind=data["kind"],
                    value=data["value"],
                    reason=data["reason"],
                    expires_at=data["expires_at"],
                )
            except DomainError as exc:
                add_domain_errors(form, exc)
            else:
                messages.success(request, _("The sender is blocked."))
                return _back(request, reverse("portal:moderation_blocklist"))
        status = 400
    entries, has_next = selectors.blocklist(user=user, page=_page(request))
    context = {
        "section": "blocklist",
        "entries": entries,
        "form": form,
        "may_add": may_add,
        "may_remove": selectors.has_any(user, [selectors.BLOCKLIST_DELETE]),
        "page": _page(request),
        "has_next": has_next,
    }
    return render(request, "portal/moderation_blocklist.html", context, status=status)


@login_required
@require_POST
def blocked_remove(request, pk: int):
    user = request.user
    _require(user, selectors.BLOCKLIST_VIEW)
    try:
        services.blocked_remove(actor=user, blocked_id=pk)
    except NotFound as exc:
        raise Http404(exc.message) from None
    if request.htmx:
        return HttpResponse("")
    messages.success(request, _("The entry is removed."))
    return redirect("portal:moderation_blocklist")
