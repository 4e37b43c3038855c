"""No personal data anywhere public.

Cases are made through the services with distinctive personal strings — residents'
names, phones and e-mails on public reports (signed in and anonymous), a hotline
caller's contact entered by staff, timeline notes that name people, suggestions
with contact details, the usernames and names of the staff who acted, the
residents' own account details. Then every route the project serves under
/portal/ and /open311/v2/ (``core.testing.all_routes``, so a route added
tomorrow is scanned without anyone remembering it) is fetched as an anonymous
visitor, its parameters filled with every real value of their kind (tracking
secrets, ids, case numbers, service codes …), and no personal string may
appear in any answer: raw, HTML-escaped, JSON-escaped or URL-encoded.

A route whose parameter this test does not know how to fill fails the test:
teach :data:`FILLERS` the new kind of value.
"""

from __future__ import annotations

import html
import io
import itertools
import json
from urllib.parse import quote

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import NoReverseMatch, reverse
from PIL import Image

from cases.models import Case, CasePhoto, Category, Source
from cases.services import case_report_result, case_transition
from cases.testing import GRID_POINT, OTHER_GRID_POINT, make_case_world
from cases.workflow import Action
from core.testing import Route, all_routes
from portal import services as portal_services
from portal.models import Blocked

pytestmark = pytest.mark.django_db

PUBLIC_PREFIXES = ("portal/", "open311/v2/")
PASSWORD = "Wd7!correct-horse-battery"

# The personal strings: each is unusual enough never to appear by chance.
RESIDENT_NAME = "欧阳翠花"
RESIDENT_PHONE = "13955501234"
RESIDENT_EMAIL = "cuihua.ouyang@example.net"
ANONYMOUS_NAME = "诸葛小明"
ANONYMOUS_PHONE = "13955505678"
ANONYMOUS_EMAIL = "xiaoming.zhuge@example.net"
CALLER_NAME = "慕容复兴"
CALLER_PHONE = "13955509012"
CALLER_EMAIL = "fuxing.murong@example.net"
OPEN311_NAME = "Philippa Quarrington"
OPEN311_PHONE = "13955503456"
OPEN311_EMAIL = "p.quarrington@example.net"
OPEN311_FIRST = "Bartholomew"
OPEN311_LAST = "Featherstonehaugh"
OPEN311_POST_EMAIL = "b.featherstonehaugh@example.net"
OPEN311_POST_PHONE = "13955504321"
SUGGESTER_EMAIL = "suggester.hidden@example.net"
SUGGESTER_PHONE = "13955507777"
ACCOUNT_EMAIL = "account.holder@example.net"
NOTE_NAME = "东方不败"
NOTE_PHONE = "13955502468"
STAFF_NAMES = {
    "worker": "网格员令狐冲",
    "clerk": "受理员司马懿",
    "lead": "值班长上官婉儿",
    "dispatcher": "派遣员独孤求败",
    "handler": "处置员尉迟恭",
    "admin": "管理员长孙无忌",
}


def jpeg() -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), (30, 120, 200)).save(buffer, "JPEG")
    return SimpleUploadedFile("p.jpg", buffer.getvalue(), content_type="image/jpeg")


def act(case: Case, action: str, actor, **extra) -> Case:
    return case_transition(
        case_id=case.pk, expected_version=case.version, action=action, actor=actor, **extra
    )


def report(*, actor, world, public: bool, source: str, point=GRID_POINT, **extra) -> Case:
    case, _created = case_report_result(
        actor=actor,
        category=world.garbage,
        lat=point[0],
        lng=point[1],
        description="Rubbish bags left beside the recycling bins",
        address="Guanghua Road, by the bins",
        source=source,
        public=public,
        **extra,
    )
    return case


class Planted:
    """The personal data planted, and the values that fill route parameters."""

    def __init__(self, world):
        self.world = world
        self.markers: set[str] = set()

    def build(self) -> None:
        world = self.world
        for key, display_name in STAFF_NAMES.items():
            user = world[key]
            user.username = f"{key}-staff-q7z"
            user.display_name = display_name
            user.email = f"{key}.q7z@city.example"
            user.save()
            self.markers |= {user.username, display_name, user.email}

        resident = portal_services.resident_signup(phone=RESIDENT_PHONE, password=PASSWORD)
        holder = portal_services.resident_signup(email=ACCOUNT_EMAIL, password=PASSWORD)
        self.markers |= {resident.username, holder.username, ACCOUNT_EMAIL, RESIDENT_PHONE}

        # A signed-in resident's report, carried through to her rating, with photos
        # approved for the public and one kept private.
        mine = report(
            actor=resident,
            world=world,
            public=True,
            source=Source.PORTAL,
            reporter_name=RESIDENT_NAME,
            reporter_phone=RESIDENT_PHONE,
            reporter_email=RESIDENT_EMAIL,
            photos=[jpeg(), jpeg()],
        )
        mine = act(
            mine, Action.FILE, world["lead"], note=f"已联系 {RESIDENT_NAME} {RESIDENT_PHONE}"
        )
        mine = act(
            mine,
            Action.DISPATCH,
            world["dispatcher"],
            department=world.sanitation,
            note=f"请联系{NOTE_NAME} {NOTE_PHONE}",
        )
        mine = act(mine, Action.ACCEPT, world["handler"])
        mine = act(
            mine, Action.HANDLE, world["handler"], note=f"{NOTE_NAME}已清运", photos=[jpeg()]
        )
        mine = act(mine, Action.CHECK_PASS, world["worker"], note=f"核查人 {STAFF_NAMES['worker']}")
        mine = act(mine, Action.RETURN_VISIT, world["lead"], note=f"回访 {RESIDENT_PHONE}")
        photos = list(CasePhoto.objects.filter(case=mine).order_by("id"))
        for photo in photos[:2]:
            portal_services.photo_review(photo_id=photo.pk, actor=world["clerk"], approve=True)
        portal_services.photo_review(photo_id=photos[2].pk, actor=world["clerk"], approve=False)

        # An anonymous resident's report, still open, with a photo awaiting review.
        report(
            actor=None,
            world=world,
            public=True,
            source=Source.PORTAL,
            point=OTHER_GRID_POINT,
            reporter_name=ANONYMOUS_NAME,
            reporter_phone=ANONYMOUS_PHONE,
            reporter_email=ANONYMOUS_EMAIL,
            photos=[jpeg()],
        )
        # One reported through Open311 (the case as the adapter records it) …
        open311 = report(
            actor=None,
            world=world,
            public=True,
            source=Source.OPEN311,
            reporter_name=OPEN311_NAME,
            reporter_phone=OPEN311_PHONE,
            reporter_email=OPEN311_EMAIL,
            event_data={"client": "test client"},
        )
        act(open311, Action.VERIFY_REQUEST, world["clerk"], note=f"{OPEN311_NAME} 说在桥下")
        # … and one posted through the Open311 API itself, when it is there.
        self.post_open311()
        # A hotline call entered by a clerk, voided with a note naming the caller.
        hotline = report(
            actor=world["clerk"],
            world=world,
            public=False,
            source=Source.HOTLINE,
            reporter_name=CALLER_NAME,
            reporter_phone=CALLER_PHONE,
            reporter_email=CALLER_EMAIL,
        )
        act(hotline, Action.VOID, world["lead"], note=f"{CALLER_NAME}（{CALLER_PHONE}）撤回")
        # A grid worker's own report, filed, with a note naming someone.
        patrol = report(actor=world["worker"], world=world, public=False, source=Source.GRID_WORKER)
        act(patrol, Action.FILE, world["lead"], note=f"居民{NOTE_NAME}反映")
        # A resident withdraws her second report.
        second = report(
            actor=resident,
            world=world,
            public=True,
            source=Source.PORTAL,
            reporter_name=RESIDENT_NAME,
        )
        act(second, Action.WITHDRAW, resident, note=f"{RESIDENT_NAME}撤回")

        # Suggestions: one published with its answer, one answered privately, one
        # waiting, one rejected; all with contact details.
        for n, (status, publish) in enumerate(
            [("answer", True), ("answer", False), ("new", False), ("reject", False)]
        ):
            suggestion = portal_services.suggestion_submit(
                kind="question",
                title=f"Library hours {n}",
                text="Is the district library open on Sundays?",
                area=world.city.communities[0] if n % 2 else None,
                contact_email=SUGGESTER_EMAIL,
                contact_phone=SUGGESTER_PHONE,
                resident=holder if n == 0 else None,
            )
            if status == "answer":
                portal_services.suggestion_answer(
                    suggestion_id=suggestion.pk,
                    actor=world["admin"],
                    answer="Yes, from 9:00 to 17:00.",
                    publish=publish,
                )
            elif status == "reject":
                portal_services.suggestion_reject(
                    suggestion_id=suggestion.pk, actor=world["admin"], reason="spam"
                )
        Blocked.objects.create(kind="email", value="blocked.sender@example.net", reason="abuse")
        Blocked.objects.create(kind="phone", value="13955500000", reason="abuse")

        self.markers |= {
            RESIDENT_NAME,
            RESIDENT_EMAIL,
            ANONYMOUS_NAME,
            ANONYMOUS_PHONE,
            ANONYMOUS_EMAIL,
            CALLER_NAME,
            CALLER_PHONE,
            CALLER_EMAIL,
            OPEN311_NAME,
            OPEN311_PHONE,
            OPEN311_EMAIL,
            SUGGESTER_EMAIL,
            SUGGESTER_PHONE,
            NOTE_NAME,
            NOTE_PHONE,
            "blocked.sender@example.net",
            "13955500000",
        }

    def post_open311(self) -> None:
        """POST a service request with a reporter's contact through GeoReport v2, as a
        client would (it makes the request's token, too)."""
        try:
            url = reverse("open311:requests", kwargs={"fmt": "json"})
        except NoReverseMatch:
            return
        from open311.services import api_key_create

        _key, secret = api_key_create(
            actor=None, name="Scan client", jurisdiction=self.world.city.district
        )
        codes = _open311_values(Client(), "service_code")
        code = next((c for c in codes if c.endswith(self.world.garbage.code)), None)
        assert code, "the Open311 service list offers no class to post"
        response = Client().post(
            url,
            {
                "api_key": secret,
                "service_code": code,
                "lat": str(GRID_POINT[0]),
                "long": str(GRID_POINT[1]),
                "description": "Overflowing bin at the corner",
                "first_name": OPEN311_FIRST,
                "last_name": OPEN311_LAST,
                "email": OPEN311_POST_EMAIL,
                "phone": OPEN311_POST_PHONE,
            },
        )
        assert response.status_code in (200, 201), response.content[:500]
        self.markers |= {OPEN311_FIRST, OPEN311_LAST, OPEN311_POST_EMAIL, OPEN311_POST_PHONE}


# --- filling route parameters -------------------------------------------------------------


def _model_values(app_label: str, model: str, field: str) -> list[str]:
    try:
        found = apps.get_model(app_label, model)
    except LookupError:
        return []
    return [str(v) for v in found.objects.exclude(**{field: ""}).values_list(field, flat=True)]


def _open311_values(client: Client, key: str) -> list[str]:
    """Values of ``key`` in what the Open311 lists answer (JSON), if they exist."""
    values = []
    for name in ("open311:services", "open311:requests"):
        try:
            response = client.get(reverse(name, kwargs={"fmt": "json"}))
        except NoReverseMatch:
            continue
        try:
            rows = json.loads(response.content)
        except ValueError:
            continue
        if isinstance(rows, list):
            values += [str(r[key]) for r in rows if isinstance(r, dict) and r.get(key)]
    return values


def _tokens(client) -> list[str]:
    return (
        _model_values("cases", "Case", "public_token")
        + _model_values("portal", "Suggestion", "public_token")
        + _model_values("open311", "RequestToken", "token")
    )


def _pks(client) -> list[str]:
    """The ids of every kind of object a public route could name by id."""
    ids = set()
    for label in ("cases.CasePhoto", "cases.Case", "portal.Suggestion", "portal.Blocked"):
        ids |= set(apps.get_model(label).objects.values_list("pk", flat=True))
    if apps.is_installed("open311"):
        ids |= set(apps.get_model("open311.ApiKey").objects.values_list("pk", flat=True))
    return sorted(str(pk) for pk in ids)


def _service_codes(client) -> list[str]:
    """The codes the service list offers for the classes cases were planted in, and
    a couple more; the classes' own codes if there is no such list."""
    listed = _open311_values(client, "service_code")
    planted = set(Case.objects.values_list("category__code", flat=True))
    codes = [c for c in listed if any(c.endswith(code) for code in planted)] + listed[:2]
    if not listed:
        for category in Category.objects.filter(code__in=planted):
            codes += [category.code, f"{category.kind}-{category.code}"]
    return list(dict.fromkeys(codes))


def _request_ids(client) -> list[str]:
    ids = _open311_values(client, "service_request_id")
    ids += list(Case.objects.values_list("number", flat=True))
    return list(dict.fromkeys(ids))


# What each kind of route parameter is filled with: every real value of its kind.
FILLERS = {
    "token": _tokens,
    "pk": _pks,
    "size": lambda client: ["thumb", "full"],
    "number": lambda client: list(Case.objects.values_list("number", flat=True)),
    "fmt": lambda client: ["json", "xml"],
    "service_code": _service_codes,
    "service_request_id": _request_ids,
    "rest": lambda client: ["anything/else"],
}


# Query strings some routes need before they answer with data (tried besides none).
def _city_bbox(client) -> list[str]:
    return ["?bbox=116.3,39.8,116.5,40.0"]


QUERIES = {"portal:map-cases": _city_bbox}
# What the scan adds to every request too: a second page, and an API's JSON format.
EVERY_QUERY = ("", "?page=2", "?format=json")
# Answers that mean nothing was shown: the request was not understood, not found, or
# limited. Every route must answer something else at least once (a page, an API
# answer, or — for a signed-out visitor — a redirect to sign in or 405 for a form).
NOTHING_SHOWN = {400, 404, 429}
# Routes whose whole purpose is to answer 404 (so no filling can make them answer more).
ALWAYS_NOT_FOUND = {"open311:not_found": "the GeoReport 404 body for unknown resources"}


def public_routes() -> list[Route]:
    return [r for r in all_routes() if r.pattern.startswith(PUBLIC_PREFIXES)]


def route_urls(route: Route, client: Client) -> list[str]:
    """Every URL of the route with its parameters filled in with real values."""
    if not route.params:
        if route.name is not None:
            return [route.url()]
        return ["/" + str(route.pattern)] if isinstance(route.pattern, str) else []
    missing = [p for p in route.params if p not in FILLERS]
    assert not missing, (
        f"route {route.key} has parameters {missing} this scan cannot fill: "
        "add them to FILLERS in tests/test_public_data_scan.py"
    )
    assert route.name is not None, f"route {route.pattern} takes parameters but has no name"
    choices = [FILLERS[p](client) for p in route.params]
    urls = []
    for combination in itertools.product(*choices):
        try:
            urls.append(route.url(**dict(zip(route.params, combination, strict=True))))
        except NoReverseMatch:
            continue  # a value of a shape this route does not take
    return urls


def variants(marker: str) -> set[str]:
    """How a string may show up in a body: raw, HTML/XML-escaped, JSON-escaped, URL-encoded."""
    return {
        marker,
        html.escape(marker),
        html.escape(marker, quote=False),
        json.dumps(marker)[1:-1],
        json.dumps(marker, ensure_ascii=False)[1:-1],
        quote(marker),
        quote(marker, safe=""),
    }


def leaks(body: str, markers: set[str]) -> list[str]:
    found = []
    lowered = body.lower()
    for marker in markers:
        for variant in variants(marker):
            if variant and variant.lower() in lowered:
                found.append(marker)
                break
    return found


def test_no_public_page_or_api_answer_carries_personal_data(small_city, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    # The scan reads far more than any visitor: no limit may cut it short.
    settings.CIVICGRID = {
        **settings.CIVICGRID,
        "PUBLIC_RATE_LIMITS": {"ip": (10_000, 60), "account": (10_000, 60), "burst": (10_000, 60)},
        "OPEN311_READ_LIMIT": (100_000, 60),
    }
    world = make_case_world(small_city)
    planted = Planted(world)
    planted.build()
    assert Case.objects.filter(reporter_name__gt="").count() >= 4  # the data is there

    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    routes = public_routes()
    names = {r.key for r in routes}
    # The scan reaches the portal's public pages and the residents' pages at least.
    for expected in ("portal:index", "portal:track", "portal:suggestions", "portal:account"):
        assert expected in names, f"{expected} is not among the public routes"

    problems: list[str] = []
    scanned = 0
    for route in routes:
        urls = route_urls(route, client)
        assert urls, f"route {route.key} could not be filled with any value"
        statuses = []
        queries = EVERY_QUERY + tuple(QUERIES.get(route.key, lambda client: [])(client))
        for url in urls:
            for query in queries:
                response = client.get(url + query)
                statuses.append(response.status_code)
                scanned += 1
                if response.streaming:
                    body = b"".join(response.streaming_content)
                else:
                    body = response.content
                text = body.decode("utf-8", errors="replace")
                text += "\n" + "\n".join(f"{k}: {v}" for k, v in response.items())
                found = leaks(text, planted.markers)
                if found:
                    problems.append(f"{url}{query} ({response.status_code}): {sorted(found)}")
        if route.key not in ALWAYS_NOT_FOUND:
            assert set(statuses) - NOTHING_SHOWN, (
                f"route {route.key} answered only {sorted(set(statuses))}, so nothing real "
                "was scanned: teach FILLERS its kind of value, or QUERIES what it needs"
            )
    assert scanned > len(routes)
    assert not problems, "personal data in public answers:\n" + "\n".join(problems)


def test_the_scan_finds_a_planted_leak():
    """The scanner itself: each encoding of a marker is caught."""
    markers = {RESIDENT_NAME, RESIDENT_EMAIL}
    assert leaks(f"<p>{RESIDENT_NAME}</p>", markers) == [RESIDENT_NAME]
    assert leaks(json.dumps({"name": RESIDENT_NAME}), markers) == [RESIDENT_NAME]
    assert leaks("a href=mailto:" + quote(RESIDENT_EMAIL, safe=""), markers) == [RESIDENT_EMAIL]
    assert leaks(html.escape(f"<{RESIDENT_EMAIL.upper()}>"), markers) == [RESIDENT_EMAIL]
    assert leaks("nothing here", markers) == []
