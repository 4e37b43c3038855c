"""Auditor pages: the audit log filtered, one entry with its before and after, CSV export."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from core.errors import DomainError

from .audit import audit_personal_data_access
from .audit_export import PERSONAL_FIELDS, audit_csv_response
from .audit_filters import AuditEntryFilterSet
from .models import AuditEntry
from .permissions import can_export_audit, can_view_audit

PAGE_SIZE = 50
_NOT_FILTERS = {"purpose", "page"}
# Recorded when an auditor opens one entry: its before/after may hold personal data.
DETAIL_PURPOSE = "audit review"


def _require_auditor(request) -> None:
    if not can_view_audit(request.user):
        raise PermissionDenied(_("Only auditors and administrators may read the audit log."))


def _filters(request) -> dict[str, str]:
    return {k: v for k, v in request.GET.items() if k not in _NOT_FILTERS and v}


@login_required
@never_cache
def entry_list(request):
    _require_auditor(request)
    filterset = AuditEntryFilterSet(request.GET or None, queryset=AuditEntry.objects.all())
    # Unbound (no filters): everything; bound but invalid: nothing, with the errors shown.
    valid = not filterset.is_bound or filterset.is_valid()
    entries = filterset.qs if valid else AuditEntry.objects.none()
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    known = AuditEntry.objects.order_by()
    context = {
        "filterset": filterset,
        "page": page,
        "actions": known.values_list("action", flat=True).distinct().order_by("action"),
        "object_types": known.exclude(object_type="")
        .values_list("object_type", flat=True)
        .distinct()
        .order_by("object_type"),
        "can_export": can_export_audit(request.user),
        "filters": _filters(request),
    }
    return render(request, "accounts/audit_list.html", context)


def _pretty(value) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


def _changes(before, after) -> list[dict]:
    if not isinstance(before, dict) and not isinstance(after, dict):
        return []
    before, after = before or {}, after or {}
    rows = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        rows.append(
            {"field": key, "before": _pretty(old), "after": _pretty(new), "changed": old != new}
        )
    return rows


@login_required
@never_cache
def entry_detail(request, pk: int):
    _require_auditor(request)
    entry = get_object_or_404(AuditEntry, pk=pk)
    audit_personal_data_access(
        actor=request.user, obj=entry, purpose=DETAIL_PURPOSE, fields=PERSONAL_FIELDS
    )
    context = {
        "entry": entry,
        "changes": _changes(entry.before, entry.after),
        "before": _pretty(entry.before),
        "after": _pretty(entry.after),
        "detail": _pretty(entry.detail),
    }
    return render(request, "accounts/audit_detail.html", context)


@login_required
def export_csv(request):
    _require_auditor(request)
    if not can_export_audit(request.user):
        raise PermissionDenied(_("You may not export the audit log."))
    filters = _filters(request)
    back = reverse("audit:list") + ("?" + request.GET.urlencode() if request.GET else "")
    filterset = AuditEntryFilterSet(filters or None, queryset=AuditEntry.objects.all())
    if filters and not filterset.is_valid():
        messages.error(request, _("Fix the filters before exporting."))
        return redirect(back)
    try:
        return audit_csv_response(
            actor=request.user,
            queryset=filterset.qs,
            purpose=request.GET.get("purpose", ""),
            filters=filters,
        )
    except DomainError as error:
        messages.error(request, error.message)
        return redirect(back)
