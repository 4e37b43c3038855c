"""Every route, walked by people who must not see community B.

``REGISTRY`` names every URL pattern the project serves (``core.testing.all_routes``):
each is either probed or exempted with the reason. A new route that is
neither makes ``test_every_route_is_probed_or_exempted`` fail, so an endpoint
cannot forget its scope by being forgotten here.

A probe requests the route the way an outsider would reach community B's
objects — B's codes and ids in the URL or the query, or the list without
parameters — as three people: one holding every permission over community
A, one holding them over A's first grid only, and one with no membership at
all. Then:

- no code, name or username of B (and, for the single grid, of A's other
  grids; for the person without a role, of anything) appears in the body,
  as raw text, HTML-escaped or JSON-escaped — except what the request itself
  carried;
- a request that names an object of B answers exactly as for an object that
  does not exist (404 for the scoped people);
- the status is the one the probe expects (so a probe cannot pass by being
  refused at the door when it should have been let in);
- every 403 is in the audit log;
- nothing of B changed, whatever was posted.

The probe role holds every grantable permission except reading the audit
log: audit entries are not located in any area, so the log is readable
city-wide by auditors and admins (accounts.permissions.can_view_audit); the
walk checks that everyone else is refused it, the scope matrix
(tests/test_scope_matrix.py) checks who reads it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiToken, AuditEntry, Department, Membership, User
from cases.models import Case, CaseEvent, CasePhoto, Category, Kind, Source
from core.testing import Route, all_routes
from geo.geometry import measure
from geo.models import Area, Building, GridStaff
from geo.testing import box
from geo.versioning import bump_area_version

from .scope_world import World, leaked, make_world, user_over

pytestmark = pytest.mark.django_db

ABSENT_PK = 987654
ABSENT_CODE = "11010500199901"  # a well-formed grid code nobody has
ABSENT_CASE = "E0101209912310001"  # a well-formed case number nobody has
OK, FOUND = {200}, {302}
NOT_FOUND = {404}
REFUSED = {403}

Kw = Callable[[World], dict]


@dataclass
class Req:
    """One request of a probe.

    ``kwargs`` (URL arguments) and ``query``/``data`` are functions of the world.
    ``absent``: URL arguments naming nothing; the foreign request must answer
    exactly like it. ``expect``: statuses allowed for the two scoped people
    (they hold every permission, so a list must open for them).
    """

    method: str = "get"
    kwargs: Kw | None = None
    query: Kw | None = None
    data: Kw | None = None
    json_body: bool = False
    absent: Kw | None = None
    expect: set[int] = field(default_factory=lambda: OK)


@dataclass
class Probe:
    requests: list[Req]


@dataclass
class Exempt:
    reason: str


def b_grid(w: World) -> dict:
    return {"code": w.b.grid.code}


def b_community(w: World) -> dict:
    return {"code": w.b.community.code}


def b_user(w: World) -> dict:
    return {"pk": w.b.worker.pk}


def b_membership(w: World) -> dict:
    return {"pk": w.b.membership.pk}


def absent_pk(w: World) -> dict:
    return {"pk": ABSENT_PK}


def absent_code(w: World) -> dict:
    return {"code": ABSENT_CODE}


def b_case(w: World) -> dict:
    return {"number": Case.objects.filter(area=w.b.grid).order_by("pk").first().number}


def absent_case(w: World) -> dict:
    return {"number": ABSENT_CASE}


def b_photo(w: World) -> int:
    """A photo of B's case (a row is enough: the view must refuse before the file)."""
    case = Case.objects.filter(area=w.b.grid).order_by("pk").first()
    photo, _created = CasePhoto.objects.get_or_create(
        case=case,
        action="report",
        defaults={
            "image": "cases/photos/probe.jpg",
            "thumbnail": "cases/photos/probe-thumb.jpg",
            "content_type": "image/jpeg",
            "width": 1,
            "height": 1,
            "size": 1,
            "sha256": "0" * 64,
        },
    )
    return photo.pk


def b_public_photo(w: World) -> int:
    """A photo of a resident's case in B, awaiting moderation (planted by the fixture)."""
    return CasePhoto.objects.get(case__area=w.b.grid, case__source="portal").pk


def b_suggestion(w: World) -> int:
    from portal.models import Suggestion

    return Suggestion.objects.get(area=w.b.grid).pk


def b_api_key(w: World) -> int:
    from open311.models import ApiKey

    return ApiKey.objects.get(jurisdiction=w.b.community).pk


def _plant_public(world: World) -> None:
    """B's resident-facing records: a resident's case with a photo awaiting
    moderation, a question, an Open311 client's key."""
    from open311.models import ApiKey
    from portal.models import Suggestion

    case = Case.objects.get(area=world.b.grid)
    resident_case = Case.objects.create(
        **{
            f.attname: getattr(case, f.attname)
            for f in Case._meta.concrete_fields
            if f.attname not in ("id", "number", "public_token", "source")
        },
        number=case.number[:-4] + "0999",
        public_token="probe-token-b",
        source="portal",
    )
    CasePhoto.objects.create(
        case=resident_case,
        action="report",
        image="cases/photos/probe.jpg",
        thumbnail="cases/photos/probe-thumb.jpg",
        content_type="image/jpeg",
        width=1,
        height=1,
        size=1,
        sha256="0" * 64,
    )
    Suggestion.objects.create(kind="question", title="probe", text="probe", area=world.b.grid)
    ApiKey.objects.create(
        name="probe", prefix="probe-b", key_hash="0", jurisdiction=world.b.community
    )


def absent_photo(w: World) -> dict:
    return {"pk": ABSENT_PK, "size": "full"}


def _bbox(area: Area) -> str:
    return f"{area.min_lng},{area.min_lat},{area.max_lng},{area.max_lat}"


def _detail(kwargs: Kw, absent: Kw = absent_pk, methods=("get",), **extra) -> list[Req]:
    return [Req(method=m, kwargs=kwargs, absent=absent, expect=NOT_FOUND, **extra) for m in methods]


def _point(area: Area) -> dict:
    return {"lat": (area.min_lat + area.max_lat) / 2, "lng": (area.min_lng + area.max_lng) / 2}


def _b_feature_collection(w: World) -> dict:
    grid = w.b.grid
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": json.loads(json.dumps(grid.shape.__geo_interface__)),
                "properties": {
                    "code": grid.code,
                    "name": "taken over",
                    "level": "grid",
                    "parent_code": w.b.community.code,
                },
            }
        ],
    }


AUDIT_REASON = (
    "the audit log is not located in an area: auditors and admins read it city-wide; "
    "everyone else is refused (probed here), who reads it is in the scope matrix"
)

REGISTRY: dict[str, Probe | Exempt] = {
    # --- web: sign-in, language, documentation, Django admin --------------------------------
    "login": Exempt("the sign-in form shows no data"),
    "logout": Exempt("signing out shows no data (and would end the walk's session)"),
    "set_language": Exempt("switches the interface language; shows no data"),
    "schema": Exempt("the OpenAPI schema is generated from code, not from data"),
    "api-docs": Exempt("the API documentation page is generated from code, not from data"),
    "home": Probe([Req(expect=FOUND)]),
    # --- web: the person's own account ------------------------------------------------------
    "account_security": Probe([Req()]),
    "account_2fa_setup": Probe([Req()]),
    "account_2fa_verify": Probe([Req(expect=FOUND)]),
    "account_2fa_disable": Probe([Req(method="post", expect=FOUND)]),
    "account_tokens": Probe([Req()]),
    "account_token_revoke": Probe(
        _detail(lambda w: {"pk": w.b.token.pk}, methods=("post",)),
    ),
    # --- web: system management -------------------------------------------------------------
    "system:index": Probe([Req()]),
    "system:user_list": Probe(
        [
            Req(),
            Req(query=lambda w: {"q": "bravo"}),
            Req(query=lambda w: {"area": w.b.community.code}),
            Req(query=lambda w: {"department": w.b.department.pk}),
            Req(query=lambda w: {"q": "shared"}),
        ]
    ),
    "system:user_add": Probe([Req()]),
    "system:user_import": Probe([Req()]),
    "system:user_detail": Probe(
        _detail(b_user, methods=("get", "post"), data=lambda w: {"purpose": "probe"})
        + [Req(kwargs=lambda w: {"pk": w.shared.pk})]
    ),
    "system:user_edit": Probe(_detail(b_user, methods=("get", "post"))),
    "system:user_password": Probe(_detail(b_user, methods=("get", "post"))),
    "system:user_deactivate": Probe(_detail(b_user, methods=("get", "post"))),
    "system:user_reactivate": Probe(_detail(b_user, methods=("get", "post"))),
    "system:membership_add": Probe(
        [
            *_detail(
                lambda w: {"user_pk": w.b.worker.pk},
                absent=lambda w: {"user_pk": ABSENT_PK},
                methods=("get", "post"),
            ),
            Req(kwargs=lambda w: {"user_pk": w.shared.pk}),
        ]
    ),
    "system:membership_edit": Probe(_detail(b_membership, methods=("get", "post"))),
    "system:membership_deactivate": Probe(_detail(b_membership, methods=("get", "post"))),
    "system:membership_delete": Probe(_detail(b_membership, methods=("get", "post"))),
    "system:role_list": Probe([Req()]),
    "system:role_add": Probe([Req()]),
    # Roles are not located in an area (what a role may do is the same everywhere).
    "system:role_edit": Probe([Req(kwargs=lambda w: {"pk": w.roles["handler"].pk})]),
    "system:department_list": Probe(
        [
            Req(),
            Req(query=lambda w: {"area": w.b.community.code}),
            Req(query=lambda w: {"q": "Bravo"}),
        ]
    ),
    "system:department_add": Probe([Req()]),
    "system:department_edit": Probe(
        _detail(lambda w: {"pk": w.b.department.pk}, methods=("get", "post"))
    ),
    # Dictionaries and settings are city-wide code lists, not located in an area.
    "system:dictionary_list": Probe([Req()]),
    "system:dictionary_add": Probe([Req()]),
    "system:dictionary_detail": Probe([Req(kwargs=lambda w: {"pk": w.dictionary.pk})]),
    "system:dictionary_edit": Probe([Req(kwargs=lambda w: {"pk": w.dictionary.pk})]),
    "system:dictionary_delete": Probe([Req(kwargs=lambda w: {"pk": w.dictionary.pk})]),
    "system:dictionary_item_add": Probe(
        [Req(method="post", kwargs=lambda w: {"pk": w.dictionary.pk}, expect={400})]
    ),
    "system:dictionary_item_edit": Probe(
        [Req(kwargs=lambda w: {"item_pk": w.dictionary.items.first().pk})]
    ),
    "system:dictionary_item_row": Probe(
        [Req(kwargs=lambda w: {"item_pk": w.dictionary.items.first().pk})]
    ),
    "system:dictionary_item_delete": Probe(
        [
            Req(
                method="post",
                kwargs=lambda w: {"item_pk": ABSENT_PK},
                expect=NOT_FOUND,
            )
        ]
    ),
    "system:settings": Probe([Req()]),
    # --- web: the audit log -----------------------------------------------------------------
    "audit:list": Probe([Req(expect=REFUSED)]),
    "audit:export": Probe([Req(query=lambda w: {"purpose": "probe"}, expect=REFUSED)]),
    "audit:detail": Probe(
        [Req(kwargs=lambda w: {"pk": w.b.audit_entry_id}, absent=absent_pk, expect=REFUSED)]
    ),
    # --- web: the map -----------------------------------------------------------------------
    "geo:map": Probe(
        [
            Req(),
            Req(query=lambda w: {"area": ""}),
            Req(query=lambda w: {"area": w.b.grid.code}, expect=NOT_FOUND),
            Req(query=lambda w: {"area": w.b.community.code}, expect=NOT_FOUND),
        ]
    ),
    "geo:root-panel": Probe([Req()]),
    "geo:area-panel": Probe(
        _detail(b_community, absent=absent_code) + _detail(b_grid, absent=absent_code)
    ),
    "geo:area-card": Probe(
        _detail(b_community, absent=absent_code) + _detail(b_grid, absent=absent_code)
    ),
    # --- API: areas -------------------------------------------------------------------------
    "areas-list": Probe(
        [
            Req(),
            Req(query=lambda w: {"level": "grid"}),
            Req(query=lambda w: {"parent": w.b.community.code}),
            Req(query=lambda w: {"q": "Community 2"}),
            Req(query=lambda w: {"q": w.b.community.code}),
        ]
    ),
    "areas-tree": Probe(
        [
            Req(),
            Req(query=lambda w: {"depth": "1"}),
            Req(query=lambda w: {"root": w.b.community.code}, expect=NOT_FOUND),
        ]
    ),
    "areas-geojson": Probe(
        [
            Req(),
            Req(query=lambda w: {"level": "grid"}),
            Req(query=lambda w: {"under": w.b.community.code}, expect=NOT_FOUND),
            Req(query=lambda w: {"under": w.b.grid.code}, absent=None, expect=NOT_FOUND),
            # Above the scope: narrows to the caller's part of it.
            Req(query=lambda w: {"under": w.city.street.code}),
            Req(query=lambda w: {"under": w.city.district.code, "level": "grid"}),
        ]
    ),
    "areas-export": Probe(
        [
            Req(),
            Req(query=lambda w: {"under": w.b.community.code}, expect=NOT_FOUND),
            Req(query=lambda w: {"under": w.city.street.code}),
        ]
    ),
    "areas-import": Probe(
        [Req(method="post", data=_b_feature_collection, json_body=True, expect=REFUSED)]
    ),
    "areas-detail": Probe(
        _detail(b_grid, absent=absent_code) + _detail(b_community, absent=absent_code)
    ),
    "locate": Probe(
        [
            Req(query=lambda w: _point(w.b.grid)),
            Req(
                method="post",
                json_body=True,
                data=lambda w: {
                    "points": [
                        {"id": "b", **_point(w.b.grid)},
                        {"id": "b2", **_point(w.b.grids[3])},
                        {"id": "a2", **_point(w.a.grids[1])},
                    ]
                },
            ),
        ]
    ),
    "topology": Probe(
        [
            Req(),
            # Above the scope: narrows to the caller's part of it.
            Req(query=lambda w: {"under": w.city.street.code}),
            Req(query=lambda w: {"under": w.b.community.code}, expect=NOT_FOUND),
        ]
    ),
    "areas-partition": Probe(
        _detail(
            b_community,
            absent=lambda w: {"code": "110105001999"},
            methods=("post",),
            data=lambda w: {"grids": 2, "accept": True},
            json_body=True,
        )
    ),
    # --- API: tokens (a person's own) and the audit log --------------------------------------
    "api-token-list": Probe([Req()]),
    "api-token-detail": Probe(
        _detail(lambda w: {"pk": w.b.token.pk}, methods=("get", "delete")),
    ),
    "api-token-revoke": Probe(_detail(lambda w: {"pk": w.b.token.pk}, methods=("post",))),
    "api-audit-list": Probe([Req(expect=REFUSED)]),
    "api-audit-export": Probe([Req(query=lambda w: {"purpose": "probe"}, expect=REFUSED)]),
    "api-audit-detail": Probe(
        [Req(kwargs=lambda w: {"pk": w.b.audit_entry_id}, absent=absent_pk, expect=REFUSED)]
    ),
    # --- API: cases ----------------------------------------------------------------------------
    "cases-list": Probe(
        [
            Req(),
            Req(query=lambda w: {"area": w.b.community.code}),
            Req(query=lambda w: {"state": "reported", "category": "01", "light": "green,red"}),
            Req(query=lambda w: {"limit": "1"}),
            # Reporting needs a workflow role over the grid; the probe role is none.
            Req(
                method="post",
                json_body=True,
                data=lambda w: {
                    "kind": "event",
                    "category": "0101",
                    "description": "probe",
                    **_point(w.b.grid),
                },
                expect=REFUSED,
            ),
        ]
    ),
    "cases-detail": Probe(_detail(b_case, absent=absent_case)),
    "cases-action": Probe(
        _detail(
            lambda w: {**b_case(w), "action": "file"},
            absent=lambda w: {**absent_case(w), "action": "file"},
            methods=("post",),
            data=lambda w: {"note": "probe", "version": 1},
            json_body=True,
        )
    ),
}

REGISTRY.update(
    {
        # --- web: the case pages -------------------------------------------------------------
        # The pages go by workflow roles; the probe role is none, so the lists refuse it.
        "cases:report": Probe(
            [
                Req(expect=REFUSED),
                Req(
                    method="post",
                    data=lambda w: {"category": "0101", "description": "probe", **_point(w.b.grid)},
                    expect=REFUSED,
                ),
            ]
        ),
        "cases:intake": Probe([Req(expect=REFUSED)]),
        "cases:tasks": Probe([Req(expect=REFUSED)]),
        "cases:detail": Probe(_detail(b_case, absent=absent_case)),
        "cases:contact": Probe(_detail(b_case, absent=absent_case)),
        "cases:act": Probe(
            _detail(
                lambda w: {**b_case(w), "action": "file"},
                absent=lambda w: {**absent_case(w), "action": "file"},
                methods=("post",),
                data=lambda w: {"note": "probe", "version": 1},
            )
        ),
        "cases:photo": Probe(
            _detail(lambda w: {"pk": b_photo(w), "size": "full"}, absent=absent_photo)
            + _detail(lambda w: {"pk": b_photo(w), "size": "thumb"}, absent=absent_photo)
        ),
        "cases:console": Probe(
            [
                Req(),
                Req(query=lambda w: {"area": w.b.community.code}),
                Req(query=lambda w: {"department": w.b.department.code}),
                Req(query=lambda w: {"state": "reported"}),
            ]
        ),
        "cases:console-geojson": Probe(
            [
                Req(),
                Req(query=lambda w: {"area": w.b.community.code}),
                Req(query=lambda w: {"bbox": _bbox(w.b.grid)}),
            ]
        ),
        "cases:search": Probe(
            [
                Req(),
                Req(query=lambda w: {"area": w.b.community.code}),
                Req(query=lambda w: {"state": "closed"}),
            ]
        ),
        # The workbook is compressed, so the walk reads the CSV; a unit test
        # checks that the workbook's rows are the CSV's.
        "cases:export": Probe(
            [
                Req(kwargs=lambda w: {"fmt": "csv"}),
                Req(kwargs=lambda w: {"fmt": "csv"}, query=lambda w: {"area": w.b.community.code}),
            ]
        ),
        "cases-export": Probe(
            [
                Req(kwargs=lambda w: {"fmt": "csv"}),
                Req(kwargs=lambda w: {"fmt": "csv"}, query=lambda w: {"area": w.b.community.code}),
            ]
        ),
    }
)

PUBLIC = (
    "public by design (the residents' portal): city-wide public data, no scope; "
    "tests/test_public_data_scan.py checks it for personal data"
)
OPEN311_PUBLIC = (
    "Open311 GeoReport v2 is public by the spec: city-wide, no scope; "
    "tests/test_public_data_scan.py checks it for personal data"
)

REGISTRY.update(
    {
        # --- the residents' portal: public pages ----------------------------------------------
        **{
            f"portal:{name}": Exempt(PUBLIC)
            for name in (
                "index",
                "report",
                "challenge",
                "track",
                "rate",
                "withdraw",
                "photo",
                "map",
                "map-cases",
                "map-areas",
                "stats",
                "suggestions",
                "suggestion_new",
                "suggestion_detail",
                "suggestion_track",
                "account_signup",
                "account_login",
            )
        },
        "portal:account_logout": Exempt("signing out shows no data (and would end the session)"),
        # --- a resident's own account: staff are not residents ----------------------------
        "portal:account": Probe([Req(expect=REFUSED)]),
        "portal:account_export": Probe([Req(expect=REFUSED)]),
        "portal:account_erase": Probe([Req(expect=REFUSED)]),
        "portal:account_withdraw": Probe(
            [
                Req(
                    method="post",
                    kwargs=b_case,
                    absent=absent_case,
                    expect=REFUSED,
                )
            ]
        ),
        # --- moderation: scoped by the case's or the suggestion's area ---------------------
        "portal:moderation": Probe([Req()]),
        "portal:moderation_suggestions": Probe(
            [Req(), Req(query=lambda w: {"status": "answered"})]
        ),
        "portal:moderation_photo_review": Probe(
            _detail(
                lambda w: {"pk": b_public_photo(w)},
                methods=("post",),
                data=lambda w: {"decision": "approve"},
            )
        ),
        **{
            f"portal:{name}": Probe(_detail(lambda w: {"pk": b_suggestion(w)}, methods=methods))
            for name, methods in (
                ("moderation_suggestion", ("get", "post")),
                ("moderation_suggestion_publish", ("post",)),
                ("moderation_suggestion_reject", ("post",)),
                ("moderation_suggestion_contact", ("get",)),
            )
        },
        "portal:moderation_blocklist": Probe([Req()]),
        "portal:moderation_blocked_remove": Exempt(
            "the blocklist is city-wide, not located in any area: the permission alone "
            "decides who changes it (portal/tests/test_moderation.py)"
        ),
        # --- Open311 -------------------------------------------------------------------------
        **{
            f"open311:{name}": Exempt(OPEN311_PUBLIC)
            for name in (
                "discovery",
                "services",
                "service_definition",
                "requests",
                "request",
                "token",
                "not_found",
            )
        },
        "open311:key_list": Probe(
            [
                Req(),
                Req(
                    method="post",
                    data=lambda w: {"name": "probe client", "jurisdiction": w.b.community.code},
                    expect={400},
                ),
            ]
        ),
        "open311:key_revoke": Probe(
            _detail(lambda w: {"pk": b_api_key(w)}, methods=("get", "post"))
        ),
    }
)

# Whole namespaces left out, with the reason.
EXEMPT_NAMESPACES = {
    "admin": (
        "Django's admin site opens to superusers only (accounts/admin.py), who see "
        "everything by definition; test_the_admin_site_is_for_superusers_only checks it"
    ),
}


def _exempt_unnamed(route: Route) -> str | None:
    if route.view_path.startswith("django.views.static."):
        return "uploaded media served by Django in DEBUG only; not reachable in production"
    return None


def _accounted(route: Route) -> bool:
    if route.key in REGISTRY:
        return True
    if route.namespace.split(":")[0] in EXEMPT_NAMESPACES:
        return True
    return _exempt_unnamed(route) is not None


# --- coverage ----------------------------------------------------------------------------


def test_every_route_is_probed_or_exempted():
    routes = all_routes()
    missing = [f"{r.key}  ({r.pattern} → {r.view_path})" for r in routes if not _accounted(r)]
    assert not missing, (
        "Routes with neither a scope probe nor an exemption in tests/test_scope_walk.py "
        "REGISTRY:\n  " + "\n  ".join(missing)
    )
    names = {r.key for r in routes}
    stale = sorted(set(REGISTRY) - names)
    assert not stale, f"REGISTRY names routes that no longer exist: {stale}"
    for key, entry in REGISTRY.items():
        if isinstance(entry, Exempt):
            assert entry.reason.strip(), key


def test_the_walker_sees_nested_namespaces_and_parameters():
    routes = {r.key: r for r in all_routes()}
    detail = routes["system:user_detail"]
    assert detail.params == ("pk",)
    assert detail.url(pk=7) == "/system/users/7/"
    assert routes["areas-detail"].params == ("code",)
    assert any(r.namespace == "admin" for r in routes.values())
    assert routes["api-token-list"].url() == "/api/v1/tokens"


# --- the walk ---------------------------------------------------------------------------------


def _plant_overlap(world: World) -> None:
    """Make B's second grid reach into its first: a topology problem inside B only."""
    grid1, grid2 = world.b.grids[0], world.b.grids[1]
    shape = box(grid1.max_lng - 0.002, grid2.min_lat, grid2.max_lng, grid2.max_lat)
    m = measure(shape)
    Area.objects.filter(pk=grid2.pk).update(
        geometry=m.wkb,
        min_lng=m.min_lng,
        min_lat=m.min_lat,
        max_lng=m.max_lng,
        max_lat=m.max_lat,
        area_m2=m.area_m2,
    )
    bump_area_version()


def _plant_case(world: World) -> Case:
    """A case in B's first grid whose description names B's department (a marker)."""
    grid, now = world.b.grid, timezone.now()
    case = Case.objects.create(
        number="E0101202601010001",
        kind=Kind.EVENT,
        category=Category.objects.get(kind=Kind.EVENT, code="0101"),
        area=grid,
        description=f"{world.b.department.name} 门前垃圾",
        source=Source.GRID_WORKER,
        reporter=world.b.worker,
        created_by=world.b.worker,
        step="file",
        step_started_at=now,
        step_yellow_at=now + timedelta(minutes=48),
        step_deadline=now + timedelta(hours=1),
        **_point(grid),
    )
    CaseEvent.objects.create(
        case=case,
        actor_id=world.b.worker.pk,
        actor_username=world.b.worker.username,
        role="grid_worker",
        action="report",
        to_state=case.state,
    )
    return case


def _snapshot(world: World) -> dict:
    """What must not change: B's rows, as stored."""
    side = world.b
    codes = [side.community.code, *[g.code for g in side.grids]]
    users = [u.pk for u in side.users]
    return {
        "areas": list(
            Area.objects.filter(code__in=codes)
            .order_by("code")
            .values_list("code", "name", "updated_at", "geometry")
        ),
        "departments": list(Department.objects.filter(pk=side.department.pk).values()),
        "memberships": list(
            Membership.objects.filter(area__code__in=codes).order_by("pk").values()
        ),
        "users": list(User.objects.filter(pk__in=users).order_by("pk").values()),
        "staff": list(GridStaff.objects.filter(area__code__in=codes).order_by("pk").values()),
        "buildings": list(Building.objects.filter(community=side.community).values()),
        "tokens": list(ApiToken.objects.filter(user__in=users).values()),
        "cases": list(Case.objects.filter(area__code__in=codes).order_by("pk").values()),
        "timeline": CaseEvent.objects.filter(case__area__code__in=codes).count(),
    }


def _request(client: Client, route: Route, req: Req, world: World, kwargs: dict | None):
    url = route.url(**(kwargs or {}))
    query = req.query(world) if req.query else {}
    data = req.data(world) if req.data else {}
    headers = {"HTTP_ACCEPT_LANGUAGE": "en"}
    if req.method == "get":
        response = client.get(url, query, **headers)
        sent = url + json.dumps(query, ensure_ascii=False) + str(query)
    else:
        call = getattr(client, req.method)
        if req.json_body:
            response = call(url, json.dumps(data), content_type="application/json", **headers)
        else:
            response = call(url, data, **headers)
        sent = url + json.dumps(data, ensure_ascii=False) + str(data)
    return url, sent, response


def _body(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


def _walk(client: Client, user: User, world: World, markers: set[str], *, scoped: bool):
    problems: list[str] = []
    routes = {r.key: r for r in all_routes()}
    for key, entry in REGISTRY.items():
        if isinstance(entry, Exempt):
            continue
        route = routes[key]
        for i, req in enumerate(entry.requests):
            where = f"{key}[{i}] {req.method.upper()}"
            kwargs = req.kwargs(world) if req.kwargs else None
            denied_before = AuditEntry.objects.filter(action="permission_denied").count()
            url, sent, response = _request(client, route, req, world, kwargs)
            status = response.status_code
            body = _body(response)
            where = f"{where} {url}"
            found = leaked(body, markers, sent=sent)
            if found:
                problems.append(f"{where} → {status} shows {found}")
            if scoped and status not in req.expect:
                problems.append(f"{where} → {status}, expected one of {sorted(req.expect)}")
            if not scoped and status in (200, 201, 204) and req.method != "get":
                problems.append(f"{where} → {status}: a person without a role changed something")
            if req.absent is not None:
                _, _, absent = _request(client, route, req, world, req.absent(world))
                if absent.status_code != status:
                    problems.append(
                        f"{where} → {status}, but {absent.status_code} for an absent object: "
                        "out of scope must look like absent"
                    )
                if status not in (403, 404):
                    problems.append(f"{where} → {status} for another community's object")
            if status == 403:
                denied = AuditEntry.objects.filter(action="permission_denied", actor_id=user.pk)
                if denied.count() <= denied_before:
                    problems.append(f"{where} → 403 without a permission_denied audit entry")
    return problems


@pytest.fixture
def world():
    w = make_world()
    _plant_overlap(w)
    _plant_case(w)
    _plant_public(w)
    return w


VIEWERS = ["community", "grid", "nobody"]


@pytest.mark.parametrize("viewer", VIEWERS)
def test_an_outsider_sees_nothing_of_another_area(world, viewer, client):
    if viewer == "community":
        user = user_over("probe_community", world.a.community)
        markers = world.b.markers()
    elif viewer == "grid":
        user = user_over("probe_grid", world.a.grid)
        markers = world.b.markers() | world.grid_markers()
    else:
        user = user_over("probe_nobody", None)
        markers = world.all_markers()
    client.force_login(user)
    before = _snapshot(world)
    problems = _walk(client, user, world, markers, scoped=viewer != "nobody")
    assert not problems, f"{viewer} viewer:\n  " + "\n  ".join(problems)
    assert _snapshot(world) == before, "a probe changed community B"


def test_the_probes_can_fail(world, client):
    """The same walk as someone who may see B finds B everywhere: the probes are live."""
    user = user_over("probe_street", world.city.street)
    client.force_login(user)
    problems = _walk(client, user, world, world.b.markers(), scoped=True)
    leaks = {p.split(" ")[0] for p in problems if " shows " in p}
    for key in (
        "system:user_list[0]",
        "system:department_list[0]",
        "areas-list[0]",
        "areas-geojson[0]",
        "locate[0]",
        "topology[0]",
        "geo:area-panel[0]",
        "cases-list[0]",
    ):
        assert key in leaks, (key, problems)
    found = {p.split(" ")[0] for p in problems if "expected one of [404]" in p}
    assert "areas-detail[0]" in found and "system:user_detail[0]" in found
    assert "cases-detail[0]" in found


def test_the_admin_site_is_for_superusers_only(world, client):
    staff = user_over("scoped_staff", world.a.community, role=world.roles["admin"], is_staff=True)
    from accounts.testing import verified_login

    verified_login(client, staff)
    response = client.get(reverse("admin:accounts_user_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert world.b.worker.username not in response.content.decode()
    root = User.objects.create_superuser(username="root", password=None)
    verified_login(client, root)
    page = client.get(reverse("admin:accounts_user_changelist")).content.decode()
    assert world.b.worker.username in page
