"""zh-Hans and English from the first page; times in the configured zone, stored in UTC."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import translation

from accounts.models import Membership, Role
from accounts.roles import sync_builtin_roles
from geo.models import Area, AreaLevel

PO = settings.BASE_DIR / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
GRID = "11010500100102"


@pytest.fixture(scope="module", autouse=True)
def zh_catalogue():
    """The compiled catalogue (``make`` builds it; so does this, when the .po is newer)."""
    mo = PO.with_suffix(".mo")
    if not mo.exists() or mo.stat().st_mtime < PO.stat().st_mtime:
        call_command("compilemessages", locale=["zh_Hans"], verbosity=0)
        from django.utils.translation.reloader import translation_file_changed

        # Forget catalogues this process may have read before the compile.
        translation_file_changed(sender=None, file_path=mo)


@pytest.fixture
def reader(small_city, client, django_user_model):
    sync_builtin_roles()
    user = django_user_model.objects.create_user(username="reader", display_name="读者")
    Membership.objects.create(
        user=user, role=Role.objects.get(code="leader"), area=small_city.district
    )
    client.force_login(user)
    return client


def test_chinese_is_the_default(reader):
    html = reader.get(reverse("geo:map")).content.decode()
    assert '<html lang="zh-hans">' in html
    for text in [
        "户数",
        "人口",
        "面积",
        "街道",
        "拓扑问题",
        "按编码或名称搜索",
        "地图",
        "退出登录",
    ]:
        assert text in html, text
    assert "Households" not in html and "Topology problems" not in html


def test_english_when_the_browser_asks_for_it(reader):
    html = reader.get(reverse("geo:map"), HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()
    assert '<html lang="en">' in html
    for text in ["Households", "People", "Streets", "Topology problems", "Sign out"]:
        assert text in html, text
    assert "户数" not in html


def test_strings_for_the_script_are_translated(reader):
    html = reader.get(reverse("geo:map")).content.decode()
    config = re.search(r'id="map-config" type="application/json">(.*?)</script>', html, re.S)
    import json

    data = json.loads(config.group(1))
    assert data["levels"]["grid"] == "网格" and data["levels"]["street"] == "街道"
    assert data["strings"]["overlap"] == "重叠"
    assert data["strings"]["householdsCount"] == "%(count)s 户"


def test_switching_language_through_set_language(reader):
    map_url = reverse("geo:map")
    response = reader.post(reverse("set_language"), {"language": "en", "next": map_url})
    assert response.status_code == 302 and response["Location"] == map_url
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"
    assert "Households" in reader.get(map_url).content.decode()

    reader.post(reverse("set_language"), {"language": "zh-hans", "next": map_url})
    assert "户数" in reader.get(map_url).content.decode()


def test_grid_card_in_both_languages(reader, small_city, django_user_model):
    from geo.models import GridStaff

    worker = django_user_model.objects.create_user(username="liu", display_name="刘洋")
    GridStaff.objects.create(area=small_city.grid(GRID), user=worker, role=GridStaff.Role.WORKER)
    url = reverse("geo:area-card", args=[GRID])
    zh = reader.get(url).content.decode()
    assert "网格员" in zh and ">网格<" in zh and "刘洋" in zh
    en = reader.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "grid worker" in en and ">grid<" in en and "刘洋" in en


def test_level_names_are_translated():
    with translation.override("zh-hans"):
        assert [str(level.label) for level in AreaLevel] == ["市", "区", "街道", "社区", "网格"]
    with translation.override("en"):
        assert str(AreaLevel.COMMUNITY.label) == "community"


def test_times_are_stored_in_utc_and_shown_in_shanghai(reader, small_city):
    assert settings.TIME_ZONE == "Asia/Shanghai" and settings.USE_TZ
    moment = dt.datetime(2026, 3, 1, 16, 30, tzinfo=dt.UTC)
    Area.objects.filter(code=GRID).update(updated_at=moment)
    stored = Area.objects.get(code=GRID).updated_at
    assert stored == moment and stored.utcoffset() == dt.timedelta(0)
    html = reader.get(reverse("geo:area-card", args=[GRID])).content.decode()
    # 16:30 UTC on 1 March is half past midnight on 2 March in Shanghai (UTC+8).
    assert "2026-03-02 00:30" in html
    assert 'datetime="2026-03-02T00:30:00+08:00"' in html


def test_every_string_of_the_map_page_is_translated():
    """The map page, its partials and the base template: no empty or fuzzy entry."""
    text = PO.read_text(encoding="utf-8")
    ours = ("geo/templates/", "geo/views.py", "templates/base.html", "geo/models.py")
    missing = []
    for block in text.split("\n\n")[1:]:
        refs = " ".join(line for line in block.splitlines() if line.startswith("#:"))
        if not any(o in refs for o in ours):
            continue
        fuzzy = any(line.startswith("#,") and "fuzzy" in line for line in block.splitlines())
        empty = re.search(r'msgstr(\[0\])? ""\n?$', block.strip() + "\n") is not None
        if fuzzy or empty:
            missing.append(block.split("msgid", 1)[1].split("\n", 1)[0])
    assert not missing, missing
