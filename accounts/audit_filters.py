"""One filter for the audit log, used by the auditor pages, the API and both CSV exports."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .models import AuditEntry


def _local_datetime_widget() -> forms.DateTimeInput:
    # The browser's picker sends (and shows) local time as 2025-03-01T17:30.
    return forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class AuditEntryFilterSet(django_filters.FilterSet):
    person = django_filters.CharFilter(
        label=_("Person"),
        method="filter_person",
        help_text=_("Username, or the numeric id of the user."),
    )
    object_type = django_filters.CharFilter(
        label=_("Object type"), field_name="object_type", lookup_expr="exact"
    )
    object_id = django_filters.CharFilter(
        label=_("Object id"), field_name="object_id", lookup_expr="exact"
    )
    action = django_filters.CharFilter(label=_("Action"), field_name="action", lookup_expr="exact")
    outcome = django_filters.ChoiceFilter(
        label=_("Outcome"), choices=AuditEntry.Outcome.choices, empty_label=_("any")
    )
    request_id = django_filters.CharFilter(label=_("Request id"), field_name="request_id")
    since = django_filters.IsoDateTimeFilter(
        label=_("From"),
        field_name="at",
        lookup_expr="gte",
        widget=_local_datetime_widget(),
    )
    until = django_filters.IsoDateTimeFilter(
        label=_("Until"),
        field_name="at",
        lookup_expr="lt",
        widget=_local_datetime_widget(),
    )

    class Meta:
        model = AuditEntry
        fields: list[str] = []

    def filter_person(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        match = Q(actor_username__iexact=value)
        if value.isdigit():
            match |= Q(actor_id=int(value))
        return queryset.filter(match)
