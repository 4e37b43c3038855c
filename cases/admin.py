from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from .models import Category, RoutingRule, TimeLimit


class TimeLimitInline(admin.TabularInline):
    model = TimeLimit
    extra = 0


class RoutingRuleInline(admin.TabularInline):
    model = RoutingRule
    extra = 0
    raw_id_fields = ("area", "department")


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "name_en", "kind", "parent", "is_active", "sort_order")
    list_filter = ("kind", "is_active")
    search_fields = ("code", "name", "name_en")
    ordering = ("kind", "code")
    raw_id_fields = ("parent",)
    inlines = [TimeLimitInline, RoutingRuleInline]
    fieldsets = (
        (
            None,
            {"fields": ("kind", "code", "parent", "name", "name_en", "is_active", "sort_order")},
        ),
        (_("Criteria"), {"fields": ("filing_criteria", "closing_criteria", "resident_help")}),
        (_("Duplicates"), {"fields": ("duplicate_radius_m", "duplicate_window_hours")}),
    )


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    """Rules with no category (an area's fallback) are edited here."""

    list_display = ("area", "category", "department", "is_active")
    list_filter = ("is_active",)
    search_fields = ("area__code", "area__name", "category__code", "department__name")
    raw_id_fields = ("category", "area", "department")
