"""Django's ``user.has_perm`` answered from roles held through memberships.

``has_perm("geo.view_area")`` is True when the user holds that permission in
any area; whether a given object is inside that area is the queryset's
business (:mod:`accounts.scopes`).
"""

from __future__ import annotations

from django.contrib.auth.backends import BaseBackend

from .scopes import user_grants


class RolePermissionBackend(BaseBackend):
    def authenticate(self, request, **credentials):
        return None

    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous:
            return set()
        return set(user_grants(user_obj))

    def has_perm(self, user_obj, perm, obj=None):
        return perm in self.get_all_permissions(user_obj, obj)
