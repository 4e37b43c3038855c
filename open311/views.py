"""The Open311 GeoReport v2 endpoint (under /open311/v2/; see docs/open311.md).

Every resource answers in the format its suffix names — ``.xml`` (text/xml) or
``.json`` (application/json) — and every refusal is the spec's error body
(``errors`` → ``error`` with ``code`` and ``description``) with its status:
400 for a bad request, 403 for a missing, wrong or revoked ``api_key``, 404
for what does not exist, 429 past a rate limit (with ``Retry-After``).

Reading needs no key. Posting needs one, sent as the ``api_key`` parameter
or the ``X-Api-Key`` header; a key sent with a read is checked too. Each use
of a key is counted against its own per-minute limit and written to the
audit log; reads without a key are limited per client address.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from accounts.middleware import client_ip
from core.errors import DomainError
from core.ratelimit import Limit, RateLimited, check
from portal.abuse import guard_public_write

from . import selectors
from .formats import FORMATS, MIME_TYPES, XML, render, render_errors
from .services import KeyRefused, api_key_authenticate, audit_key_use, request_create

KEY_HEADER = "HTTP_X_API_KEY"
TOKEN_HEADER = "X-Open311-Token"
DEFAULT_READ_LIMIT = (120, 60)
# Service fields named as the Open311 parameters a client sent.
PARAMETER_NAMES = {
    "lng": "long",
    "category": "service_code",
    "reporter_email": "email",
    "reporter_phone": "phone",
    "reporter_name": "first_name",
    "address": "address_string",
    "urgency": f"attribute[{selectors.ATTRIBUTE_URGENCY}]",
}


def error_descriptions(error: DomainError) -> list[str]:
    """One description per distinct message, prefixed by the parameter(s) it concerns
    unless the message names it already."""
    grouped: dict[str, list[str]] = {}
    for field, messages in error.errors.items():
        name = "" if field == "non_field_errors" else PARAMETER_NAMES.get(field, field)
        for message in messages:
            names = grouped.setdefault(str(message), [])
            if name and name not in names:
                names.append(name)
    descriptions = []
    for message, names in grouped.items():
        if not names or message.startswith(names[0]):
            descriptions.append(message)
        else:
            descriptions.append(f"{', '.join(names)}: {message}")
    return descriptions or [error.message]


def _read_limit() -> Limit:
    configured = settings.CIVICGRID.get("OPEN311_READ_LIMIT") or DEFAULT_READ_LIMIT
    return Limit(*configured)


@method_decorator(csrf_exempt, name="dispatch")
class Endpoint(View):
    """One GeoReport v2 resource: format, key, limits, errors and the audit of key use."""

    endpoint = ""  # the audit action is open311.<endpoint>
    http_method_names = ["get", "head"]

    def dispatch(self, request, *args, fmt: str = "", **kwargs):
        fmt = fmt.lower()
        if fmt not in FORMATS:
            return render_errors(
                XML,
                400,
                [_("Unknown format %(format)s: ask for .xml or .json.") % {"format": fmt[:10]}],
            )
        self.fmt = fmt
        if request.method.lower() not in self.http_method_names:
            response = render_errors(
                fmt, 405, [_("%(method)s is not allowed here.") % {"method": request.method}]
            )
            response["Allow"] = ", ".join(m.upper() for m in self.http_method_names)
            return response
        self.key = None
        self.audited = False
        presented = None
        audit_detail: dict = {}
        try:
            presented = self.presented_key(request)
            if presented is not None or self.needs_key(request):
                try:
                    self.key = api_key_authenticate(presented or "")
                except KeyRefused as refused:
                    self.key = refused.key
                    # Refused attempts count against the address's limit; past it they
                    # answer 429 and are no longer logged one by one (a flood of bad
                    # keys must not flood the audit log).
                    self.audited = True
                    self.limit_address(request, "open311.refused")
                    self.audited = False
                    raise
                check(
                    "open311.key",
                    {"key": (str(self.key.pk), Limit(self.key.requests_per_minute, 60))},
                )
            else:
                self.limit_address(request, "open311.read")
            response = super().dispatch(request, *args, **kwargs)
        except RateLimited as limited:
            response = render_errors(fmt, 429, [limited.message])
            response["Retry-After"] = str(limited.retry_after)
            audit_detail["reason"] = "rate_limited"
        except DomainError as error:
            response = render_errors(fmt, error.status_code, error_descriptions(error))
            audit_detail["reason"] = getattr(error, "reason", error.code)
        if not self.audited and (presented is not None or self.needs_key(request)):
            audit_key_use(
                endpoint=self.endpoint,
                key=self.key,
                presented=presented or "",
                status=response.status_code,
                method=request.method,
                path=request.path,
                detail=audit_detail,
            )
        return response

    def needs_key(self, request) -> bool:
        return False

    def limit_address(self, request, scope: str) -> None:
        """Count a call without a valid key against the client address's limit."""
        ip = getattr(request, "client_ip", None) or client_ip(request) or ""
        check(scope, {"ip": (ip, _read_limit())})

    def presented_key(self, request) -> str | None:
        """The key from the X-Api-Key header or the api_key parameter; None when absent."""
        sent = [
            value.strip()
            for value in (
                request.META.get(KEY_HEADER, ""),
                request.POST.get("api_key", "") if request.method == "POST" else "",
                request.GET.get("api_key", ""),
            )
            if value and value.strip()
        ]
        if not sent:
            return None
        if len(set(sent)) > 1:
            raise KeyRefused(_("Two different API keys were sent."), reason="ambiguous")
        return sent[0]

    def jurisdiction(self, request) -> selectors.Jurisdiction:
        raw = selectors.param(request.GET, "jurisdiction_id")
        if request.method == "POST":
            raw = selectors.param(request.POST, "jurisdiction_id") or raw
        return selectors.jurisdiction_for(raw)

    def render(self, root: str, data, *, status: int = 200) -> HttpResponse:
        return render(self.fmt, root, data, status=status)


class DiscoveryView(Endpoint):
    """The service discovery document: where the endpoint is, what it speaks."""

    endpoint = "discovery"

    def get(self, request):
        base = reverse("open311:discovery", kwargs={"fmt": XML}).rsplit("/", 1)[0]
        changeset = selectors.changeset()
        return self.render(
            "discovery",
            {
                "changeset": changeset,
                "contact": settings.CIVICGRID.get("OPEN311_CONTACT")
                or _("Ask the city's CivicGrid administrators."),
                "key_service": settings.CIVICGRID.get("OPEN311_KEY_SERVICE")
                or _(
                    "Read requests need no key. To post service requests, ask the city's "
                    "CivicGrid administrators for an API key."
                ),
                "endpoints": [
                    {
                        "specification": selectors.SPECIFICATION,
                        "url": request.build_absolute_uri(base),
                        "changeset": changeset,
                        "type": "production" if getattr(settings, "PRODUCTION", False) else "test",
                        "formats": list(MIME_TYPES),
                    }
                ],
            },
        )


class ServiceListView(Endpoint):
    endpoint = "services"

    def get(self, request):
        self.jurisdiction(request)
        return self.render("services", selectors.service_list())


class ServiceDefinitionView(Endpoint):
    endpoint = "service_definition"

    def get(self, request, service_code: str):
        self.jurisdiction(request)
        category = selectors.category_for_code(service_code)
        if category is None:
            message = _("service_code %(code)s was not found.") % {"code": service_code[:20]}
            return render_errors(self.fmt, 404, [message])
        return self.render("service_definition", selectors.service_definition(category))


class RequestsView(Endpoint):
    """GET: the public service requests; POST: a new one (needs an api_key)."""

    http_method_names = ["get", "head", "post"]

    @property
    def endpoint(self):
        return "post" if self.request.method == "POST" else "requests"

    def needs_key(self, request) -> bool:
        return request.method == "POST"

    def get(self, request):
        jurisdiction = self.jurisdiction(request)
        filters = selectors.parse_request_filters(request.GET)
        cases = selectors.request_page(jurisdiction=jurisdiction, filters=filters)
        rows = selectors.request_rows(cases, build_url=request.build_absolute_uri)
        return self.render("service_requests", rows)

    def post(self, request):
        if request.FILES:
            message = _("Send media as a media_url; files are not accepted here.")
            raise DomainError(message, errors={"media_url": [message]})
        if not request.POST and request.body:
            message = _("Send the request as application/x-www-form-urlencoded.")
            raise DomainError(message)
        jurisdiction = self.jurisdiction(request)
        guard_public_write(
            request,
            "open311.post",
            email=selectors.param(request.POST, "email"),
            phone=selectors.param(request.POST, "phone"),
        )
        created = request_create(
            api_key=self.key,
            jurisdiction=jurisdiction,
            params=request.POST,
            method=request.method,
            path=request.path,
        )
        self.audited = True  # with the case, in its transaction
        response = self.render(
            "service_requests",
            [
                {
                    "service_request_id": created.case.number,
                    "service_notice": created.service_notice,
                    "account_id": created.account_id,
                }
            ],
        )
        response[TOKEN_HEADER] = created.token
        response["Cache-Control"] = "no-store"
        return response


class RequestDetailView(Endpoint):
    endpoint = "request"

    def get(self, request, service_request_id: str):
        jurisdiction = self.jurisdiction(request)
        case = selectors.request_by_id(jurisdiction=jurisdiction, number=service_request_id)
        if case is None:
            message = _("service_request_id %(id)s was not found.") % {
                "id": service_request_id[:30]
            }
            return render_errors(self.fmt, 404, [message])
        rows = selectors.request_rows([case], build_url=request.build_absolute_uri)
        return self.render("service_requests", rows)


class TokenView(Endpoint):
    endpoint = "token"

    def get(self, request, token: str):
        jurisdiction = self.jurisdiction(request)
        found = selectors.token_for(jurisdiction=jurisdiction, token=token)
        if found is None:
            return render_errors(self.fmt, 404, [_("This token was not found.")])
        return self.render(
            "service_requests",
            [{"service_request_id": found.case.number, "token": found.token}],
        )


@csrf_exempt
def not_found(request, rest: str, fmt: str):
    """Anything else under the endpoint with a format suffix: the spec's 404."""
    fmt = fmt.lower()
    return render_errors(
        fmt if fmt in FORMATS else XML, 404, [_("There is no such resource here.")]
    )
