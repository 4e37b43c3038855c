"""Reads of the shared code lists (dictionaries)."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet
from django.utils.translation import get_language

from .models import Dictionary, DictionaryItem


def item_label(item: DictionaryItem, language: str | None = None) -> str:
    """The label in the current language: English when asked for and present, else Chinese."""
    language = (language or get_language() or "").lower()
    if language.startswith("en") and item.label_en:
        return item.label_en
    return item.label


def dictionary_list(*, q: str = "") -> QuerySet[Dictionary]:
    qs = Dictionary.objects.annotate(
        item_count=Count("items"),
        active_item_count=Count("items", filter=Q(items__is_active=True)),
    )
    if q:
        qs = qs.filter(Q(code__icontains=q) | Q(name__icontains=q) | Q(name_en__icontains=q))
    return qs.order_by("code")


def dictionary_items(code: str, *, include_inactive: bool = False) -> list[DictionaryItem]:
    """The items of the dictionary ``code`` in display order; empty when it does not exist."""
    qs = DictionaryItem.objects.filter(dictionary__code=code)
    if not include_inactive:
        qs = qs.filter(is_active=True)
    return list(qs.order_by("sort_order", "code"))


def dictionary_choices(code: str, *, include_inactive: bool = False) -> list[tuple[str, str]]:
    """``(code, label)`` pairs for a form's choices, labels in the current language."""
    return [
        (i.code, item_label(i)) for i in dictionary_items(code, include_inactive=include_inactive)
    ]


def dictionary_label(code: str, item_code: str) -> str:
    """The label of one item, or the item code itself when it is unknown."""
    item = DictionaryItem.objects.filter(dictionary__code=code, code=item_code).first()
    return item_label(item) if item else item_code
