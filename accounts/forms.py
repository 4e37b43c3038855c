"""Forms of the system management pages. They only translate input; services decide."""

from __future__ import annotations

from django import forms
from django.contrib.auth.models import Permission
from django.utils.translation import gettext_lazy as _

from core.models import Dictionary, DictionaryItem
from core.services import SETTINGS, setting_get
from geo.models import Area

from .models import Department, Membership, Role, User
from .selectors import departments_for_membership, departments_visible, permission_groups


class AreaCodeField(forms.ModelChoiceField):
    """An area typed by its code (there can be thousands; a drop-down does not scale)."""

    default_error_messages = {
        "invalid_choice": _("No area has this code."),
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("queryset", Area.objects.all())
        kwargs.setdefault("to_field_name", "code")
        kwargs.setdefault(
            "widget",
            forms.TextInput(attrs={"list": "area-codes", "inputmode": "numeric", "size": 16}),
        )
        kwargs.setdefault("help_text", _("Area code, e.g. 110105001 for a street."))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, int):
            return Area.objects.filter(pk=value).values_list("code", flat=True).first() or ""
        return super().prepare_value(value)


class UserCreateForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150)
    display_name = forms.CharField(label=_("Display name"), max_length=100, required=False)
    email = forms.EmailField(label=_("E-mail"), required=False)
    phone = forms.CharField(label=_("Phone"), max_length=32, required=False)
    password1 = forms.CharField(
        label=_("Password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("Leave empty: the user cannot sign in until a password is set for her."),
    )
    password2 = forms.CharField(
        label=_("Password again"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        data = super().clean()
        if data.get("password1", "") != data.get("password2", ""):
            self.add_error("password2", _("The two passwords differ."))
        return data


class UserEditForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150)
    display_name = forms.CharField(label=_("Display name"), max_length=100, required=False)
    email = forms.EmailField(label=_("E-mail"), required=False)
    phone = forms.CharField(label=_("Phone"), max_length=32, required=False)

    @classmethod
    def for_user(cls, user: User, data=None):
        initial = {f: getattr(user, f) for f in ("username", "display_name", "email", "phone")}
        return cls(data=data, initial=initial)


class PasswordSetForm(forms.Form):
    password1 = forms.CharField(
        label=_("New password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label=_("New password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        data = super().clean()
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", _("The two passwords differ."))
        return data


class MembershipForm(forms.Form):
    role = forms.ModelChoiceField(label=_("Role"), queryset=Role.objects.all())
    area = AreaCodeField(label=_("Area"))
    department = forms.ModelChoiceField(
        label=_("Department"),
        queryset=Department.objects.none(),
        required=False,
        help_text=_("Required for roles that act for a department."),
    )

    def __init__(self, *args, actor, membership: Membership | None = None, **kwargs):
        perm = "accounts.change_membership" if membership else "accounts.add_membership"
        if membership is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "role": membership.role_id,
                "area": membership.area.code,
                "department": membership.department_id,
            }
        super().__init__(*args, **kwargs)
        self.fields["department"].queryset = departments_for_membership(
            actor, perm
        ) | Department.objects.filter(pk=membership.department_id if membership else None)


class DepartmentForm(forms.Form):
    code = forms.CharField(label=_("Code"), max_length=32)
    name = forms.CharField(label=_("Name"), max_length=100)
    name_en = forms.CharField(label=_("English name"), max_length=200, required=False)
    kind = forms.ChoiceField(label=_("Kind"), choices=Department.Kind.choices)
    parent = forms.ModelChoiceField(
        label=_("Parent"), queryset=Department.objects.none(), required=False
    )
    area = AreaCodeField(label=_("Area"))
    phone = forms.CharField(label=_("Phone"), max_length=32, required=False)
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)

    def __init__(self, *args, actor, department: Department | None = None, **kwargs):
        if department is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "code": department.code,
                "name": department.name,
                "name_en": department.name_en,
                "kind": department.kind,
                "parent": department.parent_id,
                "area": department.area.code,
                "phone": department.phone,
                "is_active": department.is_active,
            }
        super().__init__(*args, **kwargs)
        parents = departments_visible(actor, "accounts.view_department")
        if department is not None:
            parents = parents.exclude(pk=department.pk)
        self.fields["parent"].queryset = parents.order_by("code")
        if department is None:
            del self.fields["is_active"]


class PermissionCheckboxes(forms.MultipleChoiceField):
    widget = forms.CheckboxSelectMultiple


class RoleForm(forms.Form):
    code = forms.SlugField(label=_("Code"), max_length=40)
    name = forms.CharField(label=_("Name"), max_length=100)
    name_en = forms.CharField(label=_("English name"), max_length=100, required=False)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    needs_department = forms.BooleanField(
        label=_("Needs a department"),
        required=False,
        help_text=_("Memberships with this role must name the department they act for."),
    )
    permissions = PermissionCheckboxes(label=_("Permissions"), required=False)

    def __init__(self, *args, role: Role | None = None, **kwargs):
        self.role = role
        if role is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "code": role.code,
                "name": role.name,
                "name_en": role.name_en,
                "description": role.description,
                "needs_department": role.needs_department,
                "permissions": [
                    f"{p.content_type.app_label}.{p.codename}"
                    for p in Permission.objects.filter(civicgrid_roles=role).select_related(
                        "content_type"
                    )
                ],
            }
        super().__init__(*args, **kwargs)
        self.groups = permission_groups()
        self.fields["permissions"].choices = [
            (c.key, c.label) for g in self.groups for c in g.choices
        ]
        if role is not None and role.is_builtin:
            self.fields["code"].disabled = True
            self.fields["code"].help_text = _("The code of a built-in role cannot change.")

    def selected_permissions(self) -> set[str]:
        if self.is_bound:
            return set(self.data.getlist(self.add_prefix("permissions")))
        return set(self.initial.get("permissions", []))


class DictionaryForm(forms.ModelForm):
    class Meta:
        model = Dictionary
        fields = ["code", "name", "name_en", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def validate_unique(self):
        # Uniqueness is the service's to check, with the one error type.
        pass


class DictionaryItemForm(forms.ModelForm):
    class Meta:
        model = DictionaryItem
        fields = ["code", "label", "label_en", "sort_order", "is_active"]

    def __init__(self, *args, html_form: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        if html_form:
            # The inputs sit in a table row, outside the <form> element they belong to.
            for field in self.fields.values():
                field.widget.attrs["form"] = html_form

    def validate_unique(self):
        pass

    def _post_clean(self):
        # The model is validated by the service, which knows the dictionary.
        pass


class SettingsForm(forms.Form):
    """One field per declared system setting."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for spec in SETTINGS.values():
            current = setting_get(spec.key)
            if spec.kind is float:
                field = forms.FloatField(widget=forms.NumberInput(attrs={"step": "0.01"}))
            elif spec.kind is int:
                field = forms.IntegerField()
            else:
                field = forms.CharField(max_length=200)
            field.label = spec.label
            field.help_text = spec.help_text
            field.initial = current
            self.fields[self.field_name(spec.key)] = field

    @staticmethod
    def field_name(key: str) -> str:
        return key.replace(".", "__")

    def values(self) -> dict[str, object]:
        """The submitted values that passed the form's own checks, by setting key."""
        return {
            key: self.cleaned_data[self.field_name(key)]
            for key in SETTINGS
            if self.field_name(key) in self.cleaned_data
        }


class UserImportForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        help_text=_("CSV (UTF-8) or Excel .xlsx; the first line holds the column names."),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx"}),
    )
