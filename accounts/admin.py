from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import AuditEntry, User


def _superusers_only(request) -> bool:
    # The admin's querysets know nothing of area scopes: a staff user whose
    # role holds a permission over one community would read and change every
    # community's rows there. Scoped staff work in the /system/ pages instead.
    user = request.user
    return bool(user.is_active and user.is_superuser)


admin.site.has_permission = _superusers_only


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    fieldsets = (*BaseUserAdmin.fieldsets, ("CivicGrid", {"fields": ("display_name", "phone")}))
    list_display = ("username", "display_name", "email", "is_staff", "is_active")


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only, here as everywhere."""

    list_display = ("at", "actor_username", "action", "object_type", "object_id", "outcome", "ip")
    list_filter = ("outcome", "action")
    search_fields = ("actor_username", "object_repr", "request_id")
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
