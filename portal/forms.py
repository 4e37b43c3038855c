"""Forms of the public portal: the report, the rating, the withdrawal.

They check the shape of the input; the services (cases.services) decide the
rest and answer with field errors that ``add_domain_errors`` puts on the form.
"""

from __future__ import annotations

import re
import uuid

from django import forms
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from cases import workflow
from cases.forms import PhotosField, coordinate_field
from cases.models import Category, Source

DESCRIPTION_MAX = 2000
REASON_MAX = 1000
PHONE_RE = re.compile(r"^\+?[0-9][0-9 ()\-]{4,30}$")


def public_category_tree() -> list[Category]:
    """The major classes, each with ``.minors``: the active minor classes residents may
    report, in order. One query (the minors with their major joined)."""
    minors = list(
        Category.objects.filter(is_active=True, is_public=True, parent__isnull=False)
        .filter(parent__is_active=True)
        .select_related("parent")
        .order_by("kind", "parent__sort_order", "parent__code", "sort_order", "code")
    )
    majors: dict[int, Category] = {}
    for minor in minors:
        major = majors.get(minor.parent_id)
        if major is None:
            major = minor.parent
            major.minors = []
            majors[major.pk] = major
        major.minors.append(minor)
    return list(majors.values())


class ReportForm(forms.Form):
    """A resident's report: what, where, photos, and optionally how to reach her."""

    category = forms.ChoiceField(label=_("What is the problem?"))
    description = forms.CharField(
        label=_("Description"),
        max_length=DESCRIPTION_MAX,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("What is wrong, and anything that helps find it."),
    )
    address = forms.CharField(
        label=_("Address or landmark"),
        max_length=300,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "street-address"}),
    )
    lat = coordinate_field("lat")
    lng = coordinate_field("lng")
    photos = PhotosField(
        label=_("Photos"),
        help_text=_("Up to %(count)d photos. They are shown publicly only after review.")
        % {"count": workflow.MAX_PHOTOS},
    )
    reporter_phone = forms.CharField(
        label=_("Phone"),
        max_length=32,
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "tel"}),
    )
    reporter_email = forms.EmailField(
        label=_("E-mail"),
        required=False,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    # The proof of work of an anonymous report (portal.challenge), filled by challenge.js.
    challenge = forms.CharField(widget=forms.HiddenInput, required=False, max_length=300)
    challenge_counter = forms.CharField(widget=forms.HiddenInput, required=False, max_length=16)
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100, required=False)

    def __init__(self, *args, tree: list[Category], **kwargs):
        kwargs.setdefault("auto_id", "id_%s")
        super().__init__(*args, **kwargs)
        self.minors = {str(m.pk): m for major in tree for m in major.minors}
        self.fields["category"].choices = [
            ("", "—"),
            *[
                (
                    f"{major.get_kind_display()} · {localized_name(major)}",
                    [(str(minor.pk), localized_name(minor)) for minor in major.minors],
                )
                for major in tree
            ],
        ]
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", uuid.uuid4().hex)

    def clean_category(self) -> Category:
        category = self.minors.get(self.cleaned_data["category"])
        if category is None:
            raise forms.ValidationError(_("Choose what the problem is."), code="invalid_choice")
        return category

    def clean_description(self) -> str:
        text = self.cleaned_data["description"].strip()
        if not text:
            raise forms.ValidationError(_("Describe the problem."), code="required")
        return text

    def clean_reporter_phone(self) -> str:
        phone = self.cleaned_data["reporter_phone"].strip()
        if phone and (not PHONE_RE.match(phone) or len(re.sub(r"\D", "", phone)) < 5):
            raise forms.ValidationError(_("Enter a valid phone number."), code="invalid")
        return phone

    def selected_category(self) -> Category | None:
        return self.minors.get(str(self.data.get("category") or self.initial.get("category")))

    def service_fields(self) -> dict:
        """Keyword arguments of cases.services.case_report_result, from clean data."""
        data = self.cleaned_data
        return {
            "category": data["category"],
            "description": data["description"],
            "address": data.get("address", ""),
            "lat": data["lat"],
            "lng": data["lng"],
            "photos": data.get("photos") or [],
            "reporter_phone": data.get("reporter_phone", ""),
            "reporter_email": data.get("reporter_email", ""),
            "source": Source.PORTAL,
            "public": True,
        }


class RateForm(forms.Form):
    """The resident's answer: satisfied, or not (with the reason)."""

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    satisfied = forms.TypedChoiceField(
        label=_("Are you satisfied with the result?"),
        choices=[("yes", _("Yes, satisfied")), ("no", _("No, not satisfied"))],
        coerce=lambda value: value == "yes",
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose whether you are satisfied.")},
    )
    reason = forms.CharField(
        label=_("What is still wrong?"),
        max_length=REASON_MAX,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Needed when you are not satisfied: the case goes back for another round."),
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "rate_%s")
        super().__init__(*args, **kwargs)

    def clean(self):
        data = super().clean()
        if data.get("satisfied") is False and not (data.get("reason") or "").strip():
            self.add_error("reason", _("Tell us what is still wrong."))
        return data


class WithdrawForm(forms.Form):
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    reason = forms.CharField(
        label=_("Why (optional)"),
        max_length=REASON_MAX,
        required=False,
        widget=forms.TextInput(),
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "withdraw_%s")
        super().__init__(*args, **kwargs)


def localized_name(obj) -> str:
    """``name_en`` in English when there is one, else ``name``."""
    english = getattr(obj, "name_en", "")
    if english and (translation.get_language() or "").startswith("en"):
        return english
    return getattr(obj, "name", "") or str(obj)
