"""Per-request security plumbing: request id and client IP, denials, two-factor.

The request id and client IP live in a context variable for the length of the
request, so :func:`accounts.audit.audit_log` can stamp them on an entry
written anywhere below the view (services, signals) without passing the
request around.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

REQUEST_ID_HEADER = "X-Request-ID"
# What we accept from a client or proxy: short, printable, no spaces; anything
# else is replaced, so a request id can never smuggle text into logs.
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    ip: str | None


_current: ContextVar[RequestContext | None] = ContextVar("civicgrid_request", default=None)


def current_context() -> RequestContext | None:
    """The request (or job) being served on this thread or task, if any."""
    return _current.get()


@contextmanager
def request_context(*, request_id: str | None = None, ip: str | None = None) -> Iterator:
    """Give audit entries written outside a web request (a command, a task) a request id."""
    token = _current.set(RequestContext(request_id=request_id or uuid.uuid4().hex, ip=ip))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def _networks(entries) -> list:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            continue
    return networks


def _parse_ip(raw: str | None):
    if not raw:
        return None
    try:
        return ipaddress.ip_address(raw.strip())
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: the peer, or what trusted proxies say it was.

    X-Forwarded-For is believed only when the peer is a configured trusted
    proxy; then the list is read from the right, skipping further trusted
    proxies, and the first other address is the client. A header sent by
    anyone else is ignored, since a client can write whatever it likes there.
    """
    peer = _parse_ip(request.META.get("REMOTE_ADDR"))
    if peer is None:
        return None
    trusted = _networks(settings.CIVICGRID.get("TRUSTED_PROXIES", []))
    if not trusted or not any(peer in net for net in trusted):
        return str(peer)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for raw in reversed(forwarded.split(",")):
        hop = _parse_ip(raw)
        if hop is None:
            # A garbled hop: stop believing anything further left.
            break
        if not any(hop in net for net in trusted):
            return str(hop)
    return str(peer)


def axes_client_ip(request: HttpRequest) -> str | None:
    """The same client address for django-axes' lockout bookkeeping."""
    return getattr(request, "client_ip", None) or client_ip(request)


def _incoming_request_id(request: HttpRequest) -> str | None:
    raw = request.META.get("HTTP_X_REQUEST_ID", "")
    return raw if _REQUEST_ID_RE.match(raw) else None


class RequestContextMiddleware:
    """Assign the request id and client IP; answer with X-Request-ID; audit denials."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = _incoming_request_id(request) or uuid.uuid4().hex
        ip = client_ip(request)
        request.request_id = request_id
        request.client_ip = ip
        token = _current.set(RequestContext(request_id=request_id, ip=ip))
        try:
            from .audit import holding

            # Entries held for the request's own write (a token's use) are written
            # at the latest here, still stamped with this request.
            with holding():
                response = self.get_response(request)
        finally:
            _current.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response

    def process_exception(self, request: HttpRequest, exception: Exception):
        if isinstance(exception, PermissionDenied):
            from .audit import audit_permission_denied

            audit_permission_denied(request=request, reason=str(exception))
        # Let Django turn the exception into its usual response.
        return None


# --- Two-factor ------------------------------------------------------------------

# URL names an admin may reach before finishing two-factor: the two-factor
# pages themselves, signing out and switching the language.
_TWO_FACTOR_OPEN_URLS = ("account_2fa_setup", "account_2fa_verify", "logout", "set_language")


def _open_paths() -> tuple[str, ...]:
    paths = []
    for name in _TWO_FACTOR_OPEN_URLS:
        try:
            paths.append(reverse(name))
        except NoReverseMatch:  # a route missing from a trimmed URLconf
            continue
    return tuple(paths)


class TwoFactorMiddleware:
    """Hold a signed-in user at the two-factor pages until the session is verified.

    A user with a confirmed TOTP device must pass the verify step in every new
    session; an admin without one must set one up first. API requests that
    authenticate with a personal token never carry a session user, so they
    are not held here (tokens are created only from a verified session).
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self._open: tuple[str, ...] | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        held = self._hold(request)
        return held if held is not None else self.get_response(request)

    def _is_open(self, path: str) -> bool:
        if self._open is None:
            self._open = _open_paths()
        static_url = "/" + settings.STATIC_URL.lstrip("/")
        return path.startswith(static_url) or path in self._open

    def _hold(self, request: HttpRequest) -> HttpResponse | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or self._is_open(request.path):
            return None
        from .two_factor import two_factor_state

        state = two_factor_state(request)
        if state.satisfied:
            return None
        target = "account_2fa_verify" if state.has_device else "account_2fa_setup"
        if request.path.startswith("/api/"):
            return JsonResponse(
                {
                    "detail": _("Finish two-factor sign-in in the browser first."),
                    "code": "two_factor_required",
                },
                status=403,
            )
        url = reverse(target)
        if request.method == "GET":
            url += "?" + urlencode({"next": request.get_full_path()})
        return redirect(url)
