"""API authentication with personal tokens: ``Authorization: Bearer <key>`` (or ``Token <key>``)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from .tokens import TokenRejected, token_authenticate

SCHEMES = ("bearer", "token")


class TokenAuthentication(authentication.BaseAuthentication):
    """Authenticate a request by a personal API token.

    A request without an Authorization header, or with another scheme, is
    left to the next authentication class. A token that is unknown, expired
    or revoked is a 401 saying which.
    """

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode("latin-1").lower() not in SCHEMES:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                _("Invalid Authorization header: send 'Bearer <token>'.")
            )
        try:
            key = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed(_("Invalid API token.")) from exc
        try:
            token = token_authenticate(
                key, detail={"method": request.method, "path": request.path[:500]}
            )
        except TokenRejected as exc:
            raise exceptions.AuthenticationFailed(exc.message) from exc
        return token.user, token

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describe the token scheme in the OpenAPI schema."""

    target_class = "accounts.authentication.TokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token (cg_…), created on the Security page.",
        }
