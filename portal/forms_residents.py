"""Forms of resident accounts, suggestions and the staff's moderation pages.

They check the shape of the input; the rules live in portal.services, whose
field errors come back onto the form (cases.forms.add_domain_errors).
"""

from __future__ import annotations

from django import forms
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from .models import BlockedKind, Suggestion


def area_label(area) -> str:
    """An area's name in the language of the page (its English name in English)."""
    english = (translation.get_language() or "").startswith("en")
    return (area.name_en if english and area.name_en else area.name) or area.code


class IdentifierField(forms.CharField):
    """An e-mail address or a mainland mobile number, in one box."""

    def __init__(self, **kwargs):
        kwargs.setdefault("label", _("E-mail or mobile number"))
        kwargs.setdefault("max_length", 254)
        kwargs.setdefault(
            "widget", forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"})
        )
        super().__init__(**kwargs)


def split_identifier(value: str) -> tuple[str, str]:
    """(email, phone): an identifier with an @ is an e-mail address, else a phone."""
    value = (value or "").strip()
    return (value, "") if "@" in value else ("", value)


class SignupForm(forms.Form):
    identifier = IdentifierField(
        help_text=_("You sign in with it. It is never shown on public pages.")
    )
    password = forms.CharField(
        label=_("Password"),
        strip=False,
        max_length=128,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password_again = forms.CharField(
        label=_("Password again"),
        strip=False,
        max_length=128,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        data = super().clean()
        if (
            data.get("password")
            and data.get("password_again")
            and data["password"] != data["password_again"]
        ):
            self.add_error("password_again", _("The two passwords differ."))
        return data


class LoginForm(forms.Form):
    identifier = IdentifierField()
    password = forms.CharField(
        label=_("Password"),
        strip=False,
        max_length=128,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class EraseForm(forms.Form):
    password = forms.CharField(
        label=_("Your password"),
        strip=False,
        max_length=128,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    confirm = forms.BooleanField(
        label=_("I understand that my account and my personal data are erased for good."),
        required=True,
    )


class WithdrawForm(forms.Form):
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    reason = forms.CharField(label=_("Why (optional)"), max_length=500, required=False)


class SuggestionForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("This is a"), choices=Suggestion.Kind.choices, widget=forms.RadioSelect
    )
    title = forms.CharField(label=_("Title"), max_length=200)
    text = forms.CharField(
        label=_("Your suggestion or question"),
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("Do not write names, phone numbers or addresses of people here."),
    )
    area = forms.ChoiceField(label=_("About which area (optional)"), required=False)
    contact_email = forms.CharField(
        label=_("E-mail (optional)"),
        max_length=254,
        required=False,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    contact_phone = forms.CharField(
        label=_("Mobile number (optional)"),
        max_length=32,
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "tel"}),
        help_text=_("Only staff see your contact details, to reach you about the answer."),
    )
    # The proof of work of an anonymous sender (portal.challenge), filled by challenge.js.
    challenge = forms.CharField(widget=forms.HiddenInput, required=False, max_length=300)
    challenge_counter = forms.CharField(widget=forms.HiddenInput, required=False, max_length=16)

    def __init__(self, *args, areas=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.areas = {area.code: area for area in areas}
        self.fields["area"].choices = [("", _("Not about one place"))] + [
            (area.code, area_label(area)) for area in areas
        ]

    def clean_area(self):
        code = self.cleaned_data.get("area") or ""
        return self.areas.get(code)


class AnswerForm(forms.Form):
    answer = forms.CharField(
        label=_("Answer"),
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("A published answer is public: name no one."),
    )
    publish = forms.BooleanField(label=_("Publish it with the answer"), required=False)


class RejectForm(forms.Form):
    reason = forms.CharField(label=_("Reason (for the log)"), max_length=300, required=False)


class BlockForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind"), choices=BlockedKind.choices)
    value = forms.CharField(
        label=_("E-mail, phone, IP address or network"),
        max_length=254,
        help_text=_("A network in CIDR form blocks all its addresses, e.g. 203.0.113.0/24."),
    )
    reason = forms.CharField(label=_("Reason"), max_length=300)
    expires_at = forms.DateTimeField(
        label=_("Until (optional)"),
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
