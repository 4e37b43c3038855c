from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    fieldsets = (*BaseUserAdmin.fieldsets, ("CivicGrid", {"fields": ("display_name", "phone")}))
    list_display = ("username", "display_name", "email", "is_staff", "is_active")
