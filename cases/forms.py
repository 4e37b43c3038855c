"""Forms of the staff pages: the report and the workflow's actions.

They check the shape of the input (a number is a number, a reason is given
where the workflow needs one) and turn names into objects the services take
(a department, a case to merge into, a grid worker). The services decide
everything else and answer with field errors that :func:`add_domain_errors`
puts on the form.
"""

from __future__ import annotations

import uuid

from django import forms
from django.utils.translation import gettext_lazy as _

from core.errors import DomainError

from . import workflow
from .models import Case, Category, Source, Urgency

DESCRIPTION_MAX = 2000
NOTE_MAX = 2000
DATETIME_LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class PhotosField(forms.FileField):
    """Up to ``workflow.MAX_PHOTOS`` images in one field; cases.photos checks what they hold."""

    def __init__(self, **kwargs):
        attrs = {"accept": "image/*", "multiple": True}
        kwargs.setdefault("widget", MultipleFileInput(attrs=attrs))
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def clean(self, data, initial=None):
        files = [f for f in (data if isinstance(data, list | tuple) else [data]) if f]
        if not files:
            if self.required:
                raise forms.ValidationError(self.error_messages["required"], code="required")
            return []
        if len(files) > workflow.MAX_PHOTOS:
            raise forms.ValidationError(
                _("At most %(count)d photos.") % {"count": workflow.MAX_PHOTOS},
                code="too_many",
            )
        single = super().clean
        return [single(f, initial) for f in files]


def add_domain_errors(form: forms.Form, error: DomainError) -> None:
    """Put a service's field errors on ``form``; what names no field of it goes on top."""
    for name, messages in (error.errors or {}).items():
        target = name if name in form.fields else None
        for message in messages if isinstance(messages, list | tuple) else [messages]:
            form.add_error(target, str(message))


# --- the report ----------------------------------------------------------------------


def _category_choices(tree: list[Category]) -> list:
    groups = []
    for major in tree:
        if not major.minors:
            continue
        label = f"{major.get_kind_display()} {major.code} {major.name}"
        groups.append(
            (label, [(str(minor.pk), f"{minor.code} {minor.name}") for minor in major.minors])
        )
    return groups


def coordinate_field(axis: str) -> forms.FloatField:
    """A WGS-84 latitude (``lat``) or longitude (``lng``) field of a report form, set by
    the map pin or the device's location (every report form uses these)."""
    bound = 90 if axis == "lat" else 180
    return forms.FloatField(
        label=_("Latitude") if axis == "lat" else _("Longitude"),
        min_value=-bound,
        max_value=bound,
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal"}),
        error_messages={"required": _("Put the pin on the map or use your location.")},
    )


class ReportForm(forms.Form):
    """A staff report: a grid worker's own (自行上报), or a hotline call an intake clerk records.

    ``tree`` is :func:`cases.selectors.category_tree` (active classes);
    ``intake`` adds the source and the reporter's contact fields.
    """

    category = forms.ChoiceField(label=_("Class"))
    urgency = forms.ChoiceField(label=_("Urgency"), choices=Urgency.choices, initial=Urgency.NORMAL)
    description = forms.CharField(
        label=_("Description"),
        max_length=DESCRIPTION_MAX,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    address = forms.CharField(label=_("Address"), max_length=300, required=False)
    lat = coordinate_field("lat")
    lng = coordinate_field("lng")
    photos = PhotosField(
        label=_("Photos"),
        help_text=_("Up to %(count)d photos.") % {"count": workflow.MAX_PHOTOS},
    )
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100, required=False)

    INTAKE_FIELDS = ("source", "reporter_name", "reporter_phone", "reporter_email")

    def __init__(self, *args, tree: list[Category], intake: bool = False, **kwargs):
        kwargs.setdefault("auto_id", "id_%s")
        super().__init__(*args, **kwargs)
        self.intake = intake
        self.minors = {str(m.pk): m for major in tree for m in major.minors}
        self.fields["category"].choices = [("", "—"), *_category_choices(tree)]
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", uuid.uuid4().hex)
        if intake:
            self.fields["source"] = forms.ChoiceField(
                label=_("Source"),
                choices=[
                    (Source.HOTLINE, Source.HOTLINE.label),
                    (Source.GRID_WORKER, Source.GRID_WORKER.label),
                ],
                initial=Source.HOTLINE,
            )
            self.fields["reporter_name"] = forms.CharField(
                label=_("Caller's name"), max_length=100, required=False
            )
            self.fields["reporter_phone"] = forms.CharField(
                label=_("Caller's phone"),
                max_length=32,
                required=False,
                widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "off"}),
            )
            self.fields["reporter_email"] = forms.EmailField(
                label=_("Caller's e-mail"), required=False
            )

    def clean_category(self) -> Category:
        category = self.minors.get(self.cleaned_data["category"])
        if category is None:
            raise forms.ValidationError(_("Choose a minor class."), code="invalid_choice")
        return category

    def selected_category(self) -> Category | None:
        """The chosen class as far as the input says (for its criteria on a re-shown form)."""
        return self.minors.get(str(self.data.get("category") or self.initial.get("category")))

    def service_fields(self) -> dict:
        """The keyword arguments of cases.services.case_report_result, from clean data."""
        data = self.cleaned_data
        fields = {
            "category": data["category"],
            "urgency": data["urgency"],
            "description": data["description"],
            "address": data.get("address", ""),
            "lat": data["lat"],
            "lng": data["lng"],
            "photos": data.get("photos") or [],
            "idempotency_key": data.get("idempotency_key") or None,
            "source": Source.GRID_WORKER,
        }
        if self.intake:
            fields.update(
                source=data["source"],
                reporter_name=data.get("reporter_name", ""),
                reporter_phone=data.get("reporter_phone", ""),
                reporter_email=data.get("reporter_email", ""),
            )
        return fields


# --- the workflow's actions ------------------------------------------------------------


class ActionForm(forms.Form):
    """One action on one case: the version read, a note, and what ACTION_INPUTS names.

    ``departments`` are the ones a dispatch may choose (those serving the
    case's area) and ``routed`` the one routing suggests; ``visible_cases`` is
    the queryset a merge target is looked up in (the cases the user may see);
    ``assignees`` the grid workers a verification may name.
    """

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    note = forms.CharField(
        label=_("Note"),
        max_length=NOTE_MAX,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(
        self,
        *args,
        action: str,
        case: Case,
        departments=(),
        routed=None,
        visible_cases=None,
        assignees=(),
        **kwargs,
    ):
        kwargs.setdefault("auto_id", f"id_{action}_%s")
        super().__init__(*args, **kwargs)
        self.action = action
        self.case = case
        self.visible_cases = visible_cases
        if not self.is_bound:
            self.initial.setdefault("version", case.version)
        if action in workflow.NEEDS_NOTE:
            self.fields["note"].required = True
            self.fields["note"].label = _("Reason")
        inputs = workflow.ACTION_INPUTS.get(action, ())
        if "department" in inputs:
            choices = [(str(d.pk), str(d)) for d in departments]
            self.departments = {str(d.pk): d for d in departments}
            self.fields["department"] = forms.ChoiceField(
                label=_("Department"), choices=[("", "—"), *choices]
            )
            if routed is not None and str(routed.pk) in self.departments:
                self.initial.setdefault("department", str(routed.pk))
        if "merge_into" in inputs:
            self.fields["merge_into"] = forms.CharField(
                label=_("Duplicate of case number"),
                max_length=24,
                widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
            )
        if "until" in inputs:
            self.fields["until"] = forms.DateTimeField(
                label=_("New deadline"),
                input_formats=DATETIME_LOCAL_FORMATS,
                widget=forms.DateTimeInput(
                    attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
                ),
            )
        if "assignee" in inputs:
            self.assignees = {user.get_username(): user for user in assignees}
            self.fields["assignee"] = forms.ChoiceField(
                label=_("Grid worker"),
                required=False,
                choices=[
                    ("", _("The grid's own grid worker")),
                    *(
                        (name, f"{user.get_full_name() or name} ({name})")
                        for name, user in self.assignees.items()
                    ),
                ],
            )
        if "photos" in inputs:
            self.fields["photos"] = PhotosField(label=_("Photos"))

    def clean_department(self):
        department = self.departments.get(self.cleaned_data["department"])
        if department is None:
            raise forms.ValidationError(_("Choose the department to send the case to."))
        return department

    def clean_merge_into(self) -> Case:
        number = self.cleaned_data["merge_into"].strip().upper()
        target = None
        if number and self.visible_cases is not None:
            target = self.visible_cases.filter(number=number).first()
        if target is None:
            raise forms.ValidationError(_("No case you may see has this number."))
        if target.pk == self.case.pk:
            raise forms.ValidationError(_("A case cannot duplicate itself."))
        if target.state not in workflow.OPEN_STATES:
            raise forms.ValidationError(_("A case can only be merged into an open case."))
        return target

    def clean_assignee(self):
        username = self.cleaned_data["assignee"]
        if not username:
            return None
        user = self.assignees.get(username)
        if user is None:
            raise forms.ValidationError(_("Choose a grid worker of this case's grid."))
        return user

    def service_fields(self) -> dict:
        """The keyword arguments of cases.services.case_transition besides the case and actor."""
        data = self.cleaned_data
        return {
            "expected_version": data["version"],
            "note": data.get("note", ""),
            "department": data.get("department"),
            "merge_into": data.get("merge_into"),
            "until": data.get("until"),
            "assignee": data.get("assignee"),
            "photos": data.get("photos") or [],
        }
