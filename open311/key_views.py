"""Pages where administrators create, list and revoke Open311 client keys.

A key is shown once, in the answer to the form that created it (rendered, not
redirected, and never cached). Everyone sees only the keys whose jurisdiction
lies in the areas they manage (``open311.view_apikey`` to list,
``add_apikey`` to create, ``change_apikey`` to revoke).
"""

from __future__ import annotations

from django import forms
from django.core.paginator import Paginator
from django.shortcuts import render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache

from accounts.selectors import user_has_permission
from accounts.system_views import ObjectActionView, SystemView, area_suggestions
from core.errors import DomainError
from geo.models import Area

from .selectors import api_keys_visible
from .services import (
    ADD_PERMISSION,
    DEFAULT_REQUESTS_PER_MINUTE,
    MAX_REQUESTS_PER_MINUTE,
    api_key_create,
    api_key_revoke,
)

VIEW_PERMISSION = "open311.view_apikey"
CHANGE_PERMISSION = "open311.change_apikey"
PAGE_SIZE = 50


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label=gettext_lazy("Client application"),
        max_length=100,
        help_text=gettext_lazy("Who will use the key, e.g. the city's mobile app."),
    )
    jurisdiction = forms.CharField(
        label=gettext_lazy("Jurisdiction (area code)"),
        max_length=14,
        help_text=gettext_lazy("The key may post service requests only inside this area."),
        widget=forms.TextInput(attrs={"list": "area-codes", "inputmode": "numeric"}),
    )
    requests_per_minute = forms.IntegerField(
        label=gettext_lazy("Requests per minute"),
        min_value=1,
        max_value=MAX_REQUESTS_PER_MINUTE,
        initial=DEFAULT_REQUESTS_PER_MINUTE,
    )
    contact = forms.CharField(
        label=gettext_lazy("Contact"),
        max_length=200,
        required=False,
        help_text=gettext_lazy("Whom to call about this client: a team, an address."),
    )

    def clean_jurisdiction(self):
        code = self.cleaned_data["jurisdiction"].strip()
        area = Area.objects.filter(code=code).first()
        if area is None:
            raise forms.ValidationError(_("No area has this code."))
        return area


@method_decorator(never_cache, name="dispatch")
class KeyListView(SystemView):
    """The keys in the user's areas, and the form that creates one."""

    title = gettext_lazy("Open311 API keys")

    def get_permission(self):
        return ADD_PERMISSION if self.request.method == "POST" else VIEW_PERMISSION

    def render_page(self, form, *, created=None, status=200):
        user = self.request.user
        keys = Paginator(api_keys_visible(user, "view"), PAGE_SIZE).get_page(
            self.request.GET.get("page")
        )
        can_add = user_has_permission(user, ADD_PERMISSION)
        return render(
            self.request,
            "open311/keys.html",
            self.context(
                form=form if can_add else None,
                created=created,
                keys=keys,
                can_revoke=user_has_permission(user, CHANGE_PERMISSION),
                area_suggestions=area_suggestions(user, ADD_PERMISSION) if can_add else [],
                endpoint=self.request.build_absolute_uri(
                    reverse("open311:discovery", kwargs={"fmt": "xml"})
                ),
            ),
            status=status,
        )

    def get(self, request):
        return self.render_page(ApiKeyForm())

    def post(self, request):
        form = ApiKeyForm(request.POST)
        if not form.is_valid():
            return self.render_page(form, status=400)
        try:
            key, secret = api_key_create(actor=request.user, **form.cleaned_data)
        except DomainError as error:
            for field, messages in error.errors.items():
                for message in messages:
                    form.add_error(field if field in form.fields else None, message)
            return self.render_page(form, status=400)
        # Rendered, not redirected: the secret exists only in this response.
        return self.render_page(ApiKeyForm(), created={"key": key, "secret": secret})


class KeyRevokeView(ObjectActionView):
    permission = CHANGE_PERMISSION
    title = gettext_lazy("Revoke API key")
    question = gettext_lazy(
        "Revoke this key? The client can no longer post service requests with it; "
        "this cannot be undone."
    )
    button = gettext_lazy("Revoke")
    danger = True

    def get_queryset(self):
        return api_keys_visible(self.request.user, "change")

    def perform(self, obj):
        api_key_revoke(key=obj, actor=self.request.user)

    def success_url(self, obj):
        return reverse("open311:key_list")
