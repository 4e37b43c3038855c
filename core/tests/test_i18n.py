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


# --- the whole catalogue -------------------------------------------------------------------

# A printf-style conversion as Python's % operator reads it: "%(name)s", "%d", "%.1f", "%%".
PRINTF = re.compile(
    r"%(?:\((?P<name>[^)]*)\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa%]"
)
BRACE = re.compile(r"(?<!\{)\{(?P<name>[^{}!:]*)(?:![rsa])?(?::[^{}]*)?\}(?!\})")
# HTML elements a message may carry ("<token>" in an API message is not one).
TAG = re.compile(r"</?(?:a|abbr|b|br|code|em|i|kbd|p|small|span|strong)\b[^>]*>")


def _unquote(line: str) -> str:
    text = line.strip()
    assert text.startswith('"') and text.endswith('"'), line
    return (
        text[1:-1]
        .replace('\\"', '"')
        .replace("\\n", "\n")
        .replace("\\t", "\t")
        .replace("\\\\", "\\")
    )


def catalogue_entries() -> list[dict]:
    """The live entries of the .po file: flags, msgctxt, msgid, msgid_plural, msgstr[n]."""
    entries = []
    for block in PO.read_text(encoding="utf-8").split("\n\n"):
        # Obsolete entries ("#~ msgid …", kept by msgmerge) are comments: they have no msgid.
        lines = [line for line in block.splitlines() if line.strip()]
        entry = {"flags": set(), "refs": [], "msgctxt": None, "msgid_plural": None, "msgstr": {}}
        field = None
        for line in lines:
            if line.startswith("#,"):
                entry["flags"] |= {flag.strip() for flag in line[2:].split(",")}
            elif line.startswith("#:"):
                entry["refs"] += line[2:].split()
            elif line.startswith("#"):
                continue
            elif line.startswith('"'):
                if isinstance(field, tuple):
                    entry["msgstr"][field[1]] += _unquote(line)
                else:
                    entry[field] += _unquote(line)
            else:
                keyword, _space, rest = line.partition(" ")
                plural_form = re.fullmatch(r"msgstr\[(\d+)\]", keyword)
                if plural_form:
                    field = ("msgstr", int(plural_form.group(1)))
                    entry["msgstr"][field[1]] = _unquote(rest)
                elif keyword == "msgstr":
                    field = ("msgstr", None)
                    entry["msgstr"][None] = _unquote(rest)
                else:
                    assert keyword in ("msgctxt", "msgid", "msgid_plural"), line
                    field = keyword
                    entry[field] = _unquote(rest)
        if "msgid" in entry:
            entries.append(entry)
    return entries


def _label(entry: dict) -> str:
    context = f"[{entry['msgctxt']}] " if entry["msgctxt"] is not None else ""
    return f"{context}{entry['msgid']!r} ({' '.join(entry['refs'][:2])})"


def _printf(text: str) -> tuple[set[str], list[str]]:
    """The named conversions of ``text`` as a set, its positional ones in order."""
    named, positional = set(), []
    for match in PRINTF.finditer(text):
        spec = match.group(0)
        if spec == "%%":
            continue
        if match.group("name") is not None:
            named.add(spec)
        else:
            positional.append(spec)
    return named, positional


def test_the_catalogue_is_read_whole():
    entries = catalogue_entries()
    header = entries[0]
    assert header["msgid"] == "" and "nplurals=1; plural=0;" in header["msgstr"][None]
    # Chinese has one plural form: every plural entry has exactly msgstr[0].
    plural = [e for e in entries if e["msgid_plural"] is not None]
    assert plural and all(set(e["msgstr"]) == {0} for e in plural)
    # Contexts are read too ("case action", "light" …), and the count is not a handful.
    assert {"case action", "light", "task list"} <= {e["msgctxt"] for e in entries}
    assert len(entries) > 1000


def test_every_string_of_the_catalogue_is_translated():
    """No empty msgstr and no fuzzy entry anywhere, the header aside."""
    missing = []
    for entry in catalogue_entries()[1:]:
        if "fuzzy" in entry["flags"]:
            missing.append("fuzzy " + _label(entry))
        elif not entry["msgstr"] or any(not text.strip() for text in entry["msgstr"].values()):
            missing.append("empty " + _label(entry))
    assert not missing, "\n".join(missing)
    header = catalogue_entries()[0]
    assert "fuzzy" not in header["flags"]


def test_translations_keep_the_placeholders_and_the_markup():
    """A lost or renamed %(name)s raises KeyError (or shows raw) at run time; a lost tag
    breaks the page. Plural entries are held to the plural msgid: msgstr[0] serves every n."""
    wrong = []
    for entry in catalogue_entries()[1:]:
        source = entry["msgid_plural"] if entry["msgid_plural"] is not None else entry["msgid"]
        for index, text in entry["msgstr"].items():
            where = _label(entry) + (f" msgstr[{index}]" if index is not None else "")
            formatted = "python-format" in entry["flags"] or "%(" in source + text
            if formatted and _printf(text) != _printf(source):
                wrong.append(f"{where}: {_printf(source)} → {_printf(text)}")
            if "python-brace-format" in entry["flags"]:
                names = {m.group("name") for m in BRACE.finditer(source)}
                if {m.group("name") for m in BRACE.finditer(text)} != names:
                    wrong.append(f"{where}: braces {names}")
            if sorted(TAG.findall(text)) != sorted(TAG.findall(source)):
                wrong.append(f"{where}: markup {TAG.findall(source)} → {TAG.findall(text)}")
    assert not wrong, "\n".join(wrong)


def test_the_catalogue_is_what_django_serves():
    """The compiled catalogue is current: a sample of the case loop's and the portal's
    strings, with their contexts and plurals, come back in Chinese."""
    entries = catalogue_entries()[1:]
    with translation.override("zh-hans"):
        for entry in entries:
            if entry["msgid_plural"] is not None:
                got = (
                    translation.npgettext(
                        entry["msgctxt"], entry["msgid"], entry["msgid_plural"], 2
                    )
                    if entry["msgctxt"] is not None
                    else translation.ngettext(entry["msgid"], entry["msgid_plural"], 2)
                )
                assert got == entry["msgstr"][0], _label(entry)
            elif entry["msgctxt"] is not None:
                got = translation.pgettext(entry["msgctxt"], entry["msgid"])
                assert got == entry["msgstr"][None], _label(entry)
            else:
                assert translation.gettext(entry["msgid"]) == entry["msgstr"][None], _label(entry)
        # One word, three meanings: the contexts keep them apart. (Passed through
        # variables so that makemessages does not take this file for a source.)
        samples = {
            ("case action", "File"): "立案",
            (None, "File"): "文件",
            ("light", "overdue"): "超期",
        }
        for (context, word), chinese in samples.items():
            if context is None:
                assert translation.gettext(word) == chinese
            else:
                assert translation.pgettext(context, word) == chinese
