"""Template helpers of the case pages (and of the navigation's links to them).

``{% load case_pages %}`` then ``{% case_nav as nav %}`` gives ``nav.report``,
``nav.intake`` and ``nav.tasks``: whether the signed-in user may open those pages.
"""

from __future__ import annotations

from datetime import timedelta

from django import template
from django.utils.translation import gettext as _

from cases import views

register = template.Library()


@register.filter
def action_label(action: str) -> str:
    return views.action_label(action)


@register.filter
def localized_name(obj) -> str:
    return views.localized_name(obj)


@register.filter
def age(delta) -> str:
    """A compact age: "12 min", "5 h", "3 d"."""
    if not isinstance(delta, timedelta):
        return ""
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return _("%(count)d min") % {"count": minutes}
    hours = minutes // 60
    if hours < 48:
        return _("%(count)d h") % {"count": hours}
    return _("%(count)d d") % {"count": hours // 24}


@register.simple_tag(takes_context=True)
def case_nav(context) -> dict[str, bool]:
    request = context.get("request")
    user = getattr(request, "user", None) or context.get("user")
    return views.nav_flags(user)
