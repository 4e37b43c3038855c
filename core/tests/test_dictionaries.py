import pytest
from django.utils import translation

from accounts.models import AuditEntry
from core.errors import DomainError
from core.models import Dictionary, DictionaryItem, SystemSetting
from core.selectors import dictionary_choices, dictionary_items, dictionary_label
from core.services import (
    dictionary_create,
    dictionary_delete,
    dictionary_item_create,
    dictionary_item_delete,
    dictionary_item_update,
    dictionary_update,
    setting_get,
    setting_set,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english", "fresh_cache")]


@pytest.fixture
def urgency(admin):
    dictionary = dictionary_create(code="urgency", name="紧急程度", name_en="Urgency", actor=admin)
    dictionary_item_create(
        dictionary=dictionary, code="normal", label="一般", label_en="Normal", actor=admin
    )
    dictionary_item_create(
        dictionary=dictionary,
        code="urgent",
        label="紧急",
        label_en="Urgent",
        sort_order=1,
        actor=admin,
    )
    return dictionary


def entries(action):
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


# --- dictionaries ----------------------------------------------------------------


def test_dictionary_and_items_are_created_and_audited(urgency):
    assert [e.after["code"] for e in entries("dictionary.create")] == ["urgency"]
    item_entries = entries("dictionary_item.create")
    assert [e.after["code"] for e in item_entries] == ["normal", "urgent"]
    assert item_entries[0].after["dictionary"] == "urgency"


def test_choices_follow_order_activity_and_language(urgency, admin):
    with translation.override("en"):
        assert dictionary_choices("urgency") == [("normal", "Normal"), ("urgent", "Urgent")]
    with translation.override("zh-hans"):
        assert dictionary_choices("urgency") == [("normal", "一般"), ("urgent", "紧急")]
    item = DictionaryItem.objects.get(code="normal")
    dictionary_item_update(item=item, data={"is_active": False}, actor=admin)
    assert [i.code for i in dictionary_items("urgency")] == ["urgent"]
    assert [i.code for i in dictionary_items("urgency", include_inactive=True)] == [
        "normal",
        "urgent",
    ]
    assert dictionary_items("no-such-list") == []
    assert dictionary_label("urgency", "unknown-code") == "unknown-code"


def test_item_update_audits_only_changes(urgency, admin):
    item = DictionaryItem.objects.get(code="urgent")
    dictionary_item_update(item=item, data={"label": "特急", "sort_order": 1}, actor=admin)
    (entry,) = entries("dictionary_item.update")
    assert entry.before == {"label": "紧急"}
    assert entry.after == {"label": "特急"}
    assert entry.detail == {"dictionary": "urgency"}


def test_item_codes_are_unique_within_a_dictionary(urgency, admin):
    with pytest.raises(DomainError):
        dictionary_item_create(dictionary=urgency, code="normal", label="again", actor=admin)
    other = dictionary_create(code="source", name="来源", actor=admin)
    dictionary_item_create(dictionary=other, code="normal", label="ok elsewhere", actor=admin)
    assert DictionaryItem.objects.filter(code="normal").count() == 2


def test_dictionary_code_must_be_a_unique_slug(urgency, admin):
    with pytest.raises(DomainError) as exc:
        dictionary_create(code="urgency", name="dup", actor=admin)
    assert "code" in exc.value.errors
    with pytest.raises(DomainError) as exc:
        dictionary_create(code="has space", name="bad", actor=admin)
    assert "code" in exc.value.errors


def test_dictionary_update_and_deletes_are_audited(urgency, admin):
    dictionary_update(dictionary=urgency, data={"name_en": "Urgency level"}, actor=admin)
    (entry,) = entries("dictionary.update")
    assert entry.before == {"name_en": "Urgency"} and entry.after == {"name_en": "Urgency level"}
    dictionary_item_delete(item=DictionaryItem.objects.get(code="urgent"), actor=admin)
    assert entries("dictionary_item.delete")[0].before["code"] == "urgent"
    dictionary_delete(dictionary=urgency, actor=admin)
    assert not Dictionary.objects.exists() and not DictionaryItem.objects.exists()
    assert entries("dictionary.delete")[0].before["items"] == ["normal"]


# --- settings -----------------------------------------------------------------------


def test_yellow_line_defaults_to_eighty_percent():
    assert setting_get("sla.yellow_ratio") == 0.8
    assert setting_get("sla.yellow_ratio", 0.5) == 0.5


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.2, "abc", None, True, ""])
def test_yellow_line_must_lie_strictly_between_zero_and_one(admin, bad):
    with pytest.raises(DomainError) as exc:
        setting_set(key="sla.yellow_ratio", value=bad, actor=admin)
    assert "value" in exc.value.errors
    assert not SystemSetting.objects.exists()
    assert not AuditEntry.objects.filter(action="setting.set").exists()


def test_setting_set_is_read_back_at_once_and_audited(admin):
    assert setting_get("sla.yellow_ratio") == 0.8  # now cached
    setting_set(key="sla.yellow_ratio", value="0.75", actor=admin)
    assert setting_get("sla.yellow_ratio") == 0.75
    setting_set(key="sla.yellow_ratio", value=0.7, actor=admin)
    assert setting_get("sla.yellow_ratio") == 0.7
    first, second = entries("setting.set")
    assert first.before == {"value": None} and first.after == {"value": 0.75}
    assert second.before == {"value": 0.75} and second.after == {"value": 0.7}
    assert second.object_repr == "sla.yellow_ratio"


def test_unknown_setting_is_refused(admin):
    with pytest.raises(DomainError) as exc:
        setting_set(key="no.such", value=1, actor=admin)
    assert "key" in exc.value.errors
    with pytest.raises(KeyError):
        setting_get("no.such")


def test_site_name_is_trimmed_and_not_empty(admin):
    assert setting_get("site.name") == "CivicGrid"
    with pytest.raises(DomainError):
        setting_set(key="site.name", value="   ", actor=admin)
    setting_set(key="site.name", value="  朝阳区城市管理  ", actor=admin)
    assert setting_get("site.name") == "朝阳区城市管理"


def test_a_corrupt_stored_value_falls_back_to_the_default():
    SystemSetting.objects.create(key="sla.yellow_ratio", value="eighty")
    assert setting_get("sla.yellow_ratio") == 0.8
