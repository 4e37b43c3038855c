"""System management (系统管理): users, roles, departments, memberships, dictionaries, settings.

Pages are declared, not written: a list view is a queryset, a filter set and
columns; an edit view is a form and the service it calls. Every view starts
from a queryset narrowed to what the user may see (so an object out of scope
is a 404), and after a write it checks that the object is still inside it
(otherwise the write is rolled back).
"""

from __future__ import annotations

import base64
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import django_filters
from django import forms
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View

from core import services as core_services
from core.errors import DomainError
from core.models import Dictionary, DictionaryItem
from core.selectors import dictionary_list
from geo.models import Area, AreaLevel

from . import importing, services
from .audit import audit_personal_data_access
from .forms import (
    DepartmentForm,
    DictionaryForm,
    DictionaryItemForm,
    MembershipForm,
    PasswordSetForm,
    RoleForm,
    SettingsForm,
    UserCreateForm,
    UserEditForm,
    UserImportForm,
)
from .models import Department, Membership, Role, User
from .selectors import (
    PERSONAL_FIELDS,
    area_subtree_q,
    department_tree,
    departments_visible,
    mask_email,
    mask_phone,
    memberships_visible,
    permission_prefixes,
    role_list,
    subtree_q,
    user_has_permission,
    user_list,
    user_memberships,
    user_permissions,
    users_visible,
)

# --- the generic machinery ----------------------------------------------------------


@dataclass
class Section:
    label: Any
    url_name: str
    permission: str


SECTIONS = [
    Section(gettext_lazy("Users"), "system:user_list", "accounts.view_user"),
    Section(gettext_lazy("Roles"), "system:role_list", "accounts.view_role"),
    Section(gettext_lazy("Departments"), "system:department_list", "accounts.view_department"),
    Section(gettext_lazy("Dictionaries"), "system:dictionary_list", "core.view_dictionary"),
    Section(gettext_lazy("Settings"), "system:settings", "core.view_systemsetting"),
    Section(gettext_lazy("Open311 keys"), "open311:key_list", "open311.view_apikey"),
]


class SystemView(LoginRequiredMixin, View):
    """Sign-in required; then the view's permission (403 without it)."""

    permission: str = ""
    title: Any = ""

    def get_permission(self) -> str:
        return self.permission

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        permission = self.get_permission()
        if permission and not user_has_permission(request.user, permission):
            # The request-context middleware writes the denial to the audit log.
            raise PermissionDenied(f"missing permission {permission}")
        return super().dispatch(request, *args, **kwargs)

    def context(self, **extra) -> dict[str, Any]:
        user = self.request.user
        sections = []
        for section in SECTIONS:
            if user_has_permission(user, section.permission):
                url = reverse(section.url_name)
                sections.append(
                    {
                        "label": section.label,
                        "url": url,
                        "current": self.request.path.startswith(url),
                    }
                )
        return {
            "title": self.title,
            "sections": sections,
            "held": user_permissions(user),
            **extra,
        }


@dataclass
class Column:
    """One table column: a label and how to get the cell from an object."""

    label: Any
    value: Callable[[Any], Any] | str
    link: bool = False

    def cell(self, obj) -> Any:
        if callable(self.value):
            return self.value(obj)
        result = obj
        for part in self.value.split("."):
            result = getattr(result, part, None) if result is not None else None
        if isinstance(result, bool):
            return _("yes") if result else _("no")
        return "" if result is None else result


class ObjectListView(SystemView, ABC):
    """A filtered, paginated table. htmx requests get only the table back."""

    template_name = "system/list.html"
    table_template = "system/_table.html"
    filterset_class: type[django_filters.FilterSet] | None = None
    columns: list[Column] = []
    add_url_name = ""
    add_permission = ""
    detail_url_name = ""
    paginate_by = 50

    @abstractmethod
    def get_queryset(self) -> QuerySet: ...

    def object_url(self, obj) -> str:
        return reverse(self.detail_url_name, args=[obj.pk]) if self.detail_url_name else ""

    def rows(self, objects) -> list[dict[str, Any]]:
        return [
            {
                "url": self.object_url(obj),
                "cells": [(c.cell(obj), c.link) for c in self.columns],
            }
            for obj in objects
        ]

    def get(self, request):
        queryset = self.get_queryset()
        filterset = None
        if self.filterset_class is not None:
            filterset = self.filterset_class(
                request.GET or None, queryset=queryset, request=request
            )
            queryset = filterset.qs if filterset.is_bound and filterset.is_valid() else queryset
        page = Paginator(queryset, self.paginate_by).get_page(request.GET.get("page"))
        query = request.GET.copy()
        query.pop("page", None)
        context = self.context(
            filterset=filterset,
            columns=self.columns,
            rows=self.rows(page.object_list),
            page=page,
            query=query.urlencode(),
            add_url=reverse(self.add_url_name)
            if self.add_url_name and user_has_permission(request.user, self.add_permission)
            else "",
            table_template=self.table_template,
        )
        template = (
            self.table_template if request.htmx and not request.htmx.boosted else self.template_name
        )
        return render(request, template, context)


class ObjectFormView(SystemView, ABC):
    """Create (no pk) or edit (pk) one object through a form and a service."""

    template_name = "system/form.html"
    model: type | None = None
    cancel_url_name = ""
    # Offer the areas inside the user's scope (for the view's permission) as suggestions.
    suggest_areas = False

    @abstractmethod
    def get_queryset(self) -> QuerySet: ...

    def get_object(self):
        pk = self.kwargs.get("pk")
        if pk is None:
            return None
        return get_object_or_404(self.get_queryset(), pk=pk)

    @abstractmethod
    def get_form(self, data=None, files=None): ...

    @abstractmethod
    def save(self, form, obj):
        """Call the service; return the saved object."""

    @abstractmethod
    def success_url(self, obj) -> str: ...

    def cancel_url(self, obj) -> str:
        # Without a list to go back to, an edit goes back to the object's own page.
        if self.cancel_url_name:
            return reverse(self.cancel_url_name)
        return self.success_url(obj) if obj is not None else ""

    def form_context(self, obj) -> dict[str, Any]:
        """What the page shows besides the form; views add to it."""
        if not self.suggest_areas:
            return {}
        return {"area_suggestions": area_suggestions(self.request.user, self.get_permission())}

    def render_form(self, form, obj, status=200):
        context = {"form": form, "object": obj, "cancel_url": self.cancel_url(obj)}
        context.update(self.form_context(obj))
        return render(self.request, self.template_name, self.context(**context), status=status)

    def get(self, request, **kwargs):
        obj = self.get_object()
        return self.render_form(self.get_form(), obj)

    def post(self, request, **kwargs):
        obj = self.get_object()
        form = self.get_form(request.POST, request.FILES)
        if not form.is_valid():
            return self.render_form(form, obj, status=400)
        try:
            with transaction.atomic():
                saved = self.save(form, obj)
                if not self.get_queryset().filter(pk=saved.pk).exists():
                    raise DomainError(
                        _("The result would be outside the areas you manage."),
                        errors={
                            "non_field_errors": [
                                _("The result would be outside the areas you manage.")
                            ]
                        },
                    )
        except DomainError as exc:
            add_domain_errors(form, exc)
            return self.render_form(form, obj, status=400)
        messages.success(request, _("Saved."))
        return redirect(self.success_url(saved))


class AddEditFormView(ObjectFormView):
    """One view for ``add/`` (no pk) and ``<pk>/edit/``: permission and title follow the URL."""

    add_permission = ""
    change_permission = ""
    add_title: Any = ""
    edit_title: Any = ""

    def get_permission(self):
        return self.change_permission if "pk" in self.kwargs else self.add_permission

    @property
    def title(self):
        return str(self.edit_title if "pk" in self.kwargs else self.add_title)


class ObjectActionView(SystemView, ABC):
    """A confirmed action on one object (deactivate, delete …): GET asks, POST does."""

    template_name = "system/confirm.html"
    question: Any = ""
    button: Any = gettext_lazy("Confirm")
    danger = False

    @abstractmethod
    def get_queryset(self) -> QuerySet: ...

    @abstractmethod
    def perform(self, obj): ...

    @abstractmethod
    def success_url(self, obj) -> str: ...

    def get_object(self):
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])

    def get(self, request, **kwargs):
        obj = self.get_object()
        return render(
            request,
            self.template_name,
            self.context(
                object=obj,
                question=self.question,
                button=self.button,
                danger=self.danger,
                cancel_url=self.success_url(obj),
            ),
        )

    def post(self, request, **kwargs):
        obj = self.get_object()
        try:
            self.perform(obj)
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("Done."))
        return redirect(self.success_url(obj))


def cleaned_fields(form: forms.ModelForm) -> dict[str, Any]:
    """The cleaned values of the form's model fields, as keyword arguments for a service."""
    return {f: form.cleaned_data[f] for f in form._meta.fields}


def add_domain_errors(form: forms.Form, exc: DomainError) -> None:
    for field, messages_ in exc.errors.items():
        target = field if field in form.fields else None
        for message in messages_:
            form.add_error(target, message)


# --- filters -------------------------------------------------------------------------


class AreaCodeFilter(django_filters.CharFilter):
    """Objects whose area (through ``path``) lies in the subtree of the typed area code."""

    def __init__(self, *args, path: str = "area", **kwargs):
        self.path = path
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if not value:
            return qs
        area = Area.objects.filter(code=value.strip()).first()
        if area is None:
            return qs.none()
        return qs.filter(area_subtree_q(area, self.path))


class YesNoFilter(django_filters.ChoiceFilter):
    """Yes / no / any, labelled for people rather than for tri-state logic."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", [("yes", gettext_lazy("Yes")), ("no", gettext_lazy("No"))])
        kwargs.setdefault("empty_label", gettext_lazy("Any"))
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if value not in ("yes", "no"):
            return qs
        return django_filters.Filter.filter(self, qs, value == "yes")


class UserFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(label=gettext_lazy("Search"), method="search")
    is_active = YesNoFilter(label=gettext_lazy("Active"))
    role = django_filters.ModelChoiceFilter(
        label=gettext_lazy("Role"), queryset=Role.objects.all(), method="by_role"
    )
    area = django_filters.CharFilter(label=gettext_lazy("Area code"), method="by_area")
    department = django_filters.ModelChoiceFilter(
        label=gettext_lazy("Department"), queryset=Department.objects.none(), method="by_department"
    )

    class Meta:
        model = User
        fields = ["q", "is_active", "role", "area", "department"]

    def __init__(self, *args, request=None, **kwargs):
        super().__init__(*args, request=request, **kwargs)
        if request is not None:
            self.filters["department"].queryset = departments_visible(request.user)

    def search(self, qs, name, value):
        value = value.strip()
        if not value:
            return qs
        return qs.filter(
            Q(username__icontains=value)
            | Q(display_name__icontains=value)
            | Q(email__icontains=value)
            | Q(phone__icontains=value)
        )

    def _with_membership(self, qs, q: Q):
        memberships = Membership.objects.filter(q, user=OuterRef("pk"), is_active=True)
        return qs.filter(Exists(memberships))

    def by_role(self, qs, name, value):
        return self._with_membership(qs, Q(role=value)) if value else qs

    def by_department(self, qs, name, value):
        return self._with_membership(qs, Q(department=value)) if value else qs

    def by_area(self, qs, name, value):
        if not value:
            return qs
        area = Area.objects.filter(code=value.strip()).first()
        if area is None:
            return qs.none()
        return self._with_membership(qs, area_subtree_q(area))


class CodeNameFilterSet(django_filters.FilterSet):
    """Free-text search over a code and both names; the base of code-list filter sets."""

    q = django_filters.CharFilter(label=gettext_lazy("Search"), method="search")

    def search(self, qs, name, value):
        value = value.strip()
        if not value:
            return qs
        return qs.filter(
            Q(code__icontains=value) | Q(name__icontains=value) | Q(name_en__icontains=value)
        )


class DepartmentFilterSet(CodeNameFilterSet):
    kind = django_filters.ChoiceFilter(label=gettext_lazy("Kind"), choices=Department.Kind.choices)
    is_active = YesNoFilter(label=gettext_lazy("Active"))
    area = AreaCodeFilter(label=gettext_lazy("Area code"))

    class Meta:
        model = Department
        fields = ["q", "kind", "is_active", "area"]


class RoleFilterSet(CodeNameFilterSet):
    needs_department = YesNoFilter(label=gettext_lazy("Needs a department"))

    class Meta:
        model = Role
        fields = ["q", "needs_department"]


class DictionaryFilterSet(CodeNameFilterSet):
    class Meta:
        model = Dictionary
        fields = ["q"]


# --- index ---------------------------------------------------------------------------


class IndexView(SystemView):
    title = gettext_lazy("System management")

    def get(self, request):
        context = self.context()
        if not context["sections"] and "accounts.import_user" not in context["held"]:
            raise PermissionDenied("no system management permission")
        return render(request, "system/index.html", context)


# --- users ---------------------------------------------------------------------------


def _memberships_cell(user: User):
    parts = [
        format_html(
            "{} · {}{}",
            m.role,
            m.area.name,
            format_html(" · {}", m.department) if m.department_id else "",
        )
        for m in getattr(user, "active_memberships", [])
    ]
    return format_html("<br>".join(["{}"] * len(parts)), *parts) if parts else "—"


class UserListView(ObjectListView):
    permission = "accounts.view_user"
    title = gettext_lazy("Users")
    filterset_class = UserFilterSet
    detail_url_name = "system:user_detail"
    add_url_name = "system:user_add"
    add_permission = "accounts.add_user"
    columns = [
        Column(gettext_lazy("Username"), "username", link=True),
        Column(gettext_lazy("Display name"), "display_name"),
        Column(gettext_lazy("E-mail"), lambda u: mask_email(u.email)),
        Column(gettext_lazy("Phone"), lambda u: mask_phone(u.phone)),
        Column(gettext_lazy("Memberships"), _memberships_cell),
        Column(gettext_lazy("Active"), "is_active"),
    ]

    def get_queryset(self):
        return user_list(user=self.request.user).order_by("username")


class UserDetailView(SystemView):
    """A user and her memberships. Contact details show masked until revealed with a purpose."""

    permission = "accounts.view_user"

    def render_page(self, user, *, revealed=False, purpose_error="", status=200):
        request = self.request
        manageable = set(
            memberships_visible(request.user, "accounts.change_membership")
            .filter(user=user)
            .values_list("pk", flat=True)
        )
        contact = {
            name: (getattr(user, name) if revealed else mask(getattr(user, name)))
            for name, mask in PERSONAL_FIELDS.items()
        }
        return render(
            request,
            "system/user_detail.html",
            self.context(
                title=str(user),
                object=user,
                contact=contact,
                revealed=revealed,
                purpose_error=purpose_error,
                memberships=user_memberships(user=user, viewer=request.user),
                manageable=manageable,
            ),
            status=status,
        )

    def get(self, request, pk):
        return self.render_page(get_object_or_404(users_visible(request.user), pk=pk))

    def post(self, request, pk):
        user = get_object_or_404(users_visible(request.user), pk=pk)
        if not user_has_permission(request.user, "accounts.view_personal_data"):
            raise PermissionDenied("missing permission accounts.view_personal_data")
        try:
            audit_personal_data_access(
                actor=request.user,
                obj=user,
                purpose=request.POST.get("purpose", ""),
                fields=list(PERSONAL_FIELDS),
            )
        except DomainError as exc:
            return self.render_page(user, purpose_error=exc.message, status=400)
        return self.render_page(user, revealed=True)


class UserPageMixin:
    """Pages about a user (or one of her memberships): the object must be visible for the
    view's permission, and the page ends on her own."""

    visible = staticmethod(users_visible)
    user_pk_attr = "pk"

    def get_queryset(self):
        return self.visible(self.request.user, self.get_permission())

    def success_url(self, obj):
        return reverse("system:user_detail", args=[getattr(obj, self.user_pk_attr)])


class UserCreateView(UserPageMixin, ObjectFormView):
    permission = "accounts.add_user"
    title = gettext_lazy("New user")
    cancel_url_name = "system:user_list"

    def get_form(self, data=None, files=None):
        return UserCreateForm(data)

    def save(self, form, obj):
        data = form.cleaned_data
        return services.user_create(
            username=data["username"],
            display_name=data["display_name"],
            email=data["email"],
            phone=data["phone"],
            password=data["password1"] or None,
            actor=self.request.user,
        )


class UserEditView(UserPageMixin, ObjectFormView):
    permission = "accounts.change_user"
    title = gettext_lazy("Edit user")

    def get_form(self, data=None, files=None):
        return UserEditForm.for_user(self.get_object(), data)

    def get(self, request, **kwargs):
        user = self.get_object()
        # The form shows the contact details in full: that is a view of personal data.
        audit_personal_data_access(
            actor=request.user,
            obj=user,
            purpose="edit the user's record",
            fields=list(PERSONAL_FIELDS),
        )
        return self.render_form(self.get_form(), user)

    def save(self, form, obj):
        return services.user_update(user=obj, data=form.cleaned_data, actor=self.request.user)


class UserPasswordView(UserPageMixin, ObjectFormView):
    permission = "accounts.change_user"
    title = gettext_lazy("Set password")

    def get_form(self, data=None, files=None):
        return PasswordSetForm(data)

    def save(self, form, obj):
        services.user_set_password(
            user=obj, password=form.cleaned_data["password1"], actor=self.request.user
        )
        return obj


class UserDeactivateView(UserPageMixin, ObjectActionView):
    permission = "accounts.change_user"
    title = gettext_lazy("Deactivate user")
    question = gettext_lazy(
        "Deactivate this user? She can no longer sign in and her API tokens end; "
        "her memberships and history are kept."
    )
    button = gettext_lazy("Deactivate")
    danger = True

    def perform(self, obj):
        services.user_deactivate(user=obj, actor=self.request.user)


class UserReactivateView(UserDeactivateView):
    title = gettext_lazy("Reactivate user")
    question = gettext_lazy("Reactivate this user? She can sign in again.")
    button = gettext_lazy("Reactivate")
    danger = False

    def perform(self, obj):
        services.user_reactivate(user=obj, actor=self.request.user)


# --- memberships ------------------------------------------------------------------------


class MembershipPageMixin(UserPageMixin):
    visible = staticmethod(memberships_visible)
    user_pk_attr = "user_id"


class MembershipCreateView(MembershipPageMixin, ObjectFormView):
    permission = "accounts.add_membership"
    title = gettext_lazy("New membership")
    suggest_areas = True

    @cached_property
    def member(self) -> User:
        return get_object_or_404(
            users_visible(self.request.user, "accounts.add_membership"), pk=self.kwargs["user_pk"]
        )

    def get_object(self):
        return None

    def get_form(self, data=None, files=None):
        return MembershipForm(data, actor=self.request.user)

    def cancel_url(self, obj):
        return reverse("system:user_detail", args=[self.member.pk])

    def form_context(self, obj):
        return {**super().form_context(obj), "subtitle": str(self.member)}

    def save(self, form, obj):
        data = form.cleaned_data
        return services.membership_create(
            user=self.member,
            role=data["role"],
            area=data["area"],
            department=data["department"],
            actor=self.request.user,
        )


class MembershipEditView(MembershipPageMixin, ObjectFormView):
    permission = "accounts.change_membership"
    title = gettext_lazy("Edit membership")
    suggest_areas = True

    def get_queryset(self):
        return super().get_queryset().select_related("user", "area")

    def get_form(self, data=None, files=None):
        return MembershipForm(data, actor=self.request.user, membership=self.get_object())

    def form_context(self, obj):
        return {**super().form_context(obj), "subtitle": str(obj.user)}

    def save(self, form, obj):
        return services.membership_update(
            membership=obj, data=form.cleaned_data, actor=self.request.user
        )


class MembershipDeactivateView(MembershipPageMixin, ObjectActionView):
    permission = "accounts.change_membership"
    title = gettext_lazy("End membership")
    question = gettext_lazy("End this membership? It stays in the user's history as inactive.")
    button = gettext_lazy("End membership")
    danger = True

    def perform(self, obj):
        services.membership_deactivate(membership=obj, actor=self.request.user)


class MembershipDeleteView(MembershipDeactivateView):
    permission = "accounts.delete_membership"
    title = gettext_lazy("Delete membership")
    question = gettext_lazy(
        "Delete this membership outright? Use this only for one made by mistake; "
        "the audit log keeps a record."
    )
    button = gettext_lazy("Delete")

    def perform(self, obj):
        services.membership_delete(membership=obj, actor=self.request.user)


def area_suggestions(user, perm: str, limit: int = 500) -> list[Area]:
    """Areas above the grid level inside the user's scope, for the area code input."""
    return list(
        Area.objects.filter(subtree_q(permission_prefixes(user, perm), path=""))
        .filter(level__lt=AreaLevel.GRID)
        .order_by("code")[:limit]
    )


# --- roles -------------------------------------------------------------------------------


def _permission_count(role: Role) -> int:
    return len(role.permissions.all())


class RoleListView(ObjectListView):
    permission = "accounts.view_role"
    title = gettext_lazy("Roles")
    filterset_class = RoleFilterSet
    detail_url_name = "system:role_edit"
    add_url_name = "system:role_add"
    add_permission = "accounts.add_role"
    columns = [
        Column(gettext_lazy("Code"), "code", link=True),
        Column(gettext_lazy("Name"), "name"),
        Column(gettext_lazy("English name"), "name_en"),
        Column(gettext_lazy("Needs a department"), "needs_department"),
        Column(gettext_lazy("Permissions"), _permission_count),
        Column(gettext_lazy("Built in"), "is_builtin"),
    ]

    def get_queryset(self):
        return role_list()


class RoleFormView(AddEditFormView):
    template_name = "system/role_form.html"
    cancel_url_name = "system:role_list"
    add_permission = "accounts.add_role"
    change_permission = "accounts.change_role"
    add_title = gettext_lazy("New role")
    edit_title = gettext_lazy("Edit role")

    def get_queryset(self):
        return Role.objects.all()

    def get_form(self, data=None, files=None):
        return RoleForm(data, role=self.get_object())

    def save(self, form, obj):
        data = dict(form.cleaned_data)
        if obj is None:
            return services.role_create(actor=self.request.user, **data)
        if obj.is_builtin:
            data.pop("code", None)
        return services.role_update(role=obj, data=data, actor=self.request.user)

    def success_url(self, obj):
        return reverse("system:role_list")


# --- departments ------------------------------------------------------------------------


class DepartmentListView(ObjectListView):
    permission = "accounts.view_department"
    title = gettext_lazy("Departments")
    template_name = "system/department_list.html"
    table_template = "system/_department_tree.html"
    filterset_class = DepartmentFilterSet
    add_url_name = "system:department_add"
    add_permission = "accounts.add_department"
    paginate_by = 10_000  # a tree reads badly across pages; departments number in the hundreds

    def get_queryset(self):
        return departments_visible(self.request.user)

    def get(self, request):
        filterset = DepartmentFilterSet(
            request.GET or None, queryset=self.get_queryset(), request=request
        )
        queryset = (
            filterset.qs if filterset.is_bound and filterset.is_valid() else filterset.queryset
        )
        context = self.context(
            filterset=filterset,
            tree=department_tree(queryset),
            can_edit=user_has_permission(request.user, "accounts.change_department"),
            add_url=reverse(self.add_url_name)
            if user_has_permission(request.user, self.add_permission)
            else "",
            table_template=self.table_template,
        )
        template = self.table_template if request.htmx else self.template_name
        return render(request, template, context)


class DepartmentFormView(AddEditFormView):
    cancel_url_name = "system:department_list"
    add_permission = "accounts.add_department"
    change_permission = "accounts.change_department"
    add_title = gettext_lazy("New department")
    edit_title = gettext_lazy("Edit department")
    suggest_areas = True

    def get_queryset(self):
        return departments_visible(self.request.user, self.get_permission()).select_related(
            "area", "parent"
        )

    def get_form(self, data=None, files=None):
        return DepartmentForm(data, actor=self.request.user, department=self.get_object())

    def save(self, form, obj):
        data = form.cleaned_data
        if obj is None:
            return services.department_create(actor=self.request.user, **data)
        return services.department_update(department=obj, data=data, actor=self.request.user)

    def success_url(self, obj):
        return reverse("system:department_list")


# --- dictionaries ---------------------------------------------------------------------------


class DictionaryListView(ObjectListView):
    permission = "core.view_dictionary"
    title = gettext_lazy("Dictionaries")
    filterset_class = DictionaryFilterSet
    detail_url_name = "system:dictionary_detail"
    add_url_name = "system:dictionary_add"
    add_permission = "core.add_dictionary"
    columns = [
        Column(gettext_lazy("Code"), "code", link=True),
        Column(gettext_lazy("Name"), "name"),
        Column(gettext_lazy("English name"), "name_en"),
        Column(gettext_lazy("Items"), "item_count"),
        Column(gettext_lazy("Active items"), "active_item_count"),
    ]

    def get_queryset(self):
        return dictionary_list()


class DictionaryDetailView(SystemView):
    permission = "core.view_dictionary"

    def get(self, request, pk):
        dictionary = get_object_or_404(Dictionary, pk=pk)
        return render(
            request,
            "system/dictionary_detail.html",
            self.context(
                title=str(dictionary),
                object=dictionary,
                dictionary=dictionary,
                items=dictionary.items.order_by("sort_order", "code"),
                item_form=new_item_form(),
            ),
        )


class DictionaryFormView(AddEditFormView):
    cancel_url_name = "system:dictionary_list"
    add_permission = "core.add_dictionary"
    change_permission = "core.change_dictionary"
    add_title = gettext_lazy("New dictionary")
    edit_title = gettext_lazy("Edit dictionary")

    def get_queryset(self):
        return Dictionary.objects.all()

    def get_form(self, data=None, files=None):
        return DictionaryForm(data, instance=self.get_object())

    def save(self, form, obj):
        data = cleaned_fields(form)
        if obj is None:
            return core_services.dictionary_create(actor=self.request.user, **data)
        return core_services.dictionary_update(dictionary=obj, data=data, actor=self.request.user)

    def success_url(self, obj):
        return reverse("system:dictionary_detail", args=[obj.pk])


class DictionaryDeleteView(ObjectActionView):
    permission = "core.delete_dictionary"
    title = gettext_lazy("Delete dictionary")
    question = gettext_lazy(
        "Delete this dictionary and all its items? Records that use its codes keep them."
    )
    button = gettext_lazy("Delete")
    danger = True

    def get_queryset(self):
        return Dictionary.objects.all()

    def perform(self, obj):
        core_services.dictionary_delete(dictionary=obj, actor=self.request.user)

    def post(self, request, **kwargs):
        obj = self.get_object()
        self.perform(obj)
        messages.success(request, _("Deleted."))
        return redirect("system:dictionary_list")

    def success_url(self, obj):
        return reverse("system:dictionary_detail", args=[obj.pk])


class DictionaryItemView(SystemView):
    """Add, edit and delete items in place: htmx swaps one table row, plain posts reload."""

    ACTION_PERMISSIONS = {
        "add": "core.add_dictionaryitem",
        "edit": "core.change_dictionaryitem",
        "row": "core.change_dictionaryitem",
        "delete": "core.delete_dictionaryitem",
    }

    def get_permission(self):
        return self.ACTION_PERMISSIONS[self.kwargs["action"]]

    def row(self, request, item, form=None, status=200):
        template = "system/_item_form_row.html" if form is not None else "system/_item_row.html"
        return render(
            request,
            template,
            self.context(item=item, form=form, dictionary=item.dictionary),
            status=status,
        )

    def get(self, request, pk=None, item_pk=None, action="edit"):
        if action not in ("edit", "row"):
            return HttpResponseNotAllowed(["POST"])
        item = get_object_or_404(DictionaryItem.objects.select_related("dictionary"), pk=item_pk)
        if action == "row":
            return self.row(request, item)
        form = DictionaryItemForm(instance=item, prefix=f"item{item.pk}")
        if not request.htmx:
            return self.edit_page(request, item, form)
        return self.row(request, item, form)

    def post(self, request, pk=None, item_pk=None, action="edit"):
        if action == "add":
            return self.add(request, get_object_or_404(Dictionary, pk=pk))
        if action == "row":
            return HttpResponseNotAllowed(["GET"])
        item = get_object_or_404(DictionaryItem.objects.select_related("dictionary"), pk=item_pk)
        detail_url = reverse("system:dictionary_detail", args=[item.dictionary_id])
        if action == "delete":
            core_services.dictionary_item_delete(item=item, actor=request.user)
            if request.htmx:
                return HttpResponse("")
            messages.success(request, _("Deleted."))
            return redirect(detail_url)
        form = DictionaryItemForm(request.POST, instance=item, prefix=f"item{item.pk}")
        if form.is_valid():
            data = cleaned_fields(form)
            try:
                item = core_services.dictionary_item_update(
                    item=item, data=data, actor=request.user
                )
            except DomainError as exc:
                add_domain_errors(form, exc)
            else:
                if request.htmx:
                    return self.row(request, item)
                messages.success(request, _("Saved."))
                return redirect(detail_url)
        item.refresh_from_db()
        if request.htmx:
            return self.row(request, item, form)
        return self.edit_page(request, item, form, status=400)

    def edit_page(self, request, item, form, status=200):
        """The item's form as a page of its own, for browsers without htmx."""
        return render(
            request,
            "system/form.html",
            self.context(
                title=_("Edit item"),
                form=form,
                object=item,
                cancel_url=reverse("system:dictionary_detail", args=[item.dictionary_id]),
            ),
            status=status,
        )

    def add(self, request, dictionary):
        form = new_item_form(request.POST)
        detail_url = reverse("system:dictionary_detail", args=[dictionary.pk])
        if form.is_valid():
            data = cleaned_fields(form)
            try:
                core_services.dictionary_item_create(
                    dictionary=dictionary, actor=request.user, **data
                )
            except DomainError as exc:
                add_domain_errors(form, exc)
            else:
                if not request.htmx:
                    messages.success(request, _("Saved."))
                    return redirect(detail_url)
                form = new_item_form()
        if request.htmx:
            # htmx swaps only successful responses; the form with its errors is one.
            return render(
                request,
                "system/_items_table.html",
                self.context(
                    dictionary=dictionary,
                    items=dictionary.items.order_by("sort_order", "code"),
                    item_form=form,
                ),
            )
        return render(
            request,
            "system/form.html",
            self.context(
                title=_("New item"),
                form=form,
                form_id="new-item-form",
                object=None,
                cancel_url=detail_url,
            ),
            status=400,
        )


def new_item_form(data=None) -> DictionaryItemForm:
    return DictionaryItemForm(data, prefix="new", html_form="new-item-form")


# --- settings ---------------------------------------------------------------------------


class SettingsView(SystemView):
    title = gettext_lazy("Settings")

    def get_permission(self):
        return (
            "core.change_systemsetting"
            if self.request.method == "POST"
            else "core.view_systemsetting"
        )

    def render_page(self, form, status=200):
        return render(
            self.request,
            "system/settings.html",
            self.context(
                form=form,
                settings_rows=core_services.setting_values(),
                can_edit=user_has_permission(self.request.user, "core.change_systemsetting"),
            ),
            status=status,
        )

    def get(self, request):
        return self.render_page(SettingsForm())

    def post(self, request):
        form = SettingsForm(request.POST)
        form.is_valid()
        # Check every value first, so all mistakes show at once and none is half-saved.
        changes = {}
        for key, value in form.values().items():
            try:
                cleaned = core_services.setting_spec(key).clean(value)
            except ValueError as exc:
                form.add_error(form.field_name(key), str(exc))
                continue
            if cleaned != core_services.setting_get(key):
                changes[key] = cleaned
        if form.errors:
            return self.render_page(form, status=400)
        try:
            with transaction.atomic():
                for key, value in changes.items():
                    core_services.setting_set(key=key, value=value, actor=request.user)
        except DomainError as exc:
            add_domain_errors(form, exc)
            return self.render_page(form, status=400)
        messages.success(request, _("Settings saved."))
        return redirect("system:settings")


# --- bulk import --------------------------------------------------------------------------

_IMPORT_SESSION_KEY = "system_user_import"


class UserImportView(SystemView):
    """Upload → dry-run report → confirm. The checked file waits in the session meanwhile."""

    permission = "accounts.import_user"
    title = gettext_lazy("Import users")

    def render_page(self, form, report=None, token="", status=200):
        return render(
            self.request,
            "system/user_import.html",
            self.context(
                form=form,
                report=report,
                token=token,
                columns=importing.COLUMNS,
            ),
            status=status,
        )

    def get(self, request):
        return self.render_page(UserImportForm())

    def post(self, request):
        if "confirm" in request.POST:
            return self.confirm(request)
        form = UserImportForm(request.POST, request.FILES)
        if not form.is_valid():
            return self.render_page(form, status=400)
        upload = form.cleaned_data["file"]
        if upload.size > importing.MAX_BYTES:
            form.add_error("file", _("The file is too large."))
            return self.render_page(form, status=400)
        data = upload.read()
        report = importing.users_import(
            file=data, filename=upload.name, actor=request.user, dry_run=True
        )
        token = ""
        if report.ok and report.has_changes:
            token = hashlib.sha256(data).hexdigest()
            request.session[_IMPORT_SESSION_KEY] = {
                "token": token,
                "filename": upload.name,
                "data": base64.b64encode(data).decode("ascii"),
            }
        return self.render_page(
            UserImportForm(), report=report, token=token, status=200 if report.ok else 400
        )

    def confirm(self, request):
        pending = request.session.get(_IMPORT_SESSION_KEY)
        if not pending or pending.get("token") != request.POST.get("token"):
            messages.error(request, _("The checked file is no longer available; upload it again."))
            return redirect("system:user_import")
        report = importing.users_import(
            file=base64.b64decode(pending["data"]),
            filename=pending["filename"],
            actor=request.user,
            dry_run=False,
        )
        request.session.pop(_IMPORT_SESSION_KEY, None)
        if not report.applied:
            return self.render_page(UserImportForm(), report=report, status=400)
        counts = report.counts()
        messages.success(
            request,
            _(
                "Imported: %(users_created)d users created, %(users_updated)d updated, "
                "%(memberships_added)d memberships added, %(memberships_reactivated)d reactivated."
            )
            % counts,
        )
        return self.render_page(UserImportForm(), report=report)
