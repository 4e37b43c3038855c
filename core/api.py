"""API plumbing shared by every app."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import DomainError


def _audit_denial(exc, context) -> None:
    # Every refusal (403) of a caller goes into the audit log.
    from accounts.audit import audit_permission_denied

    request = context.get("request")
    if request is not None:
        reason = getattr(exc, "message", None) or str(getattr(exc, "detail", exc))
        audit_permission_denied(request=request, reason=reason)


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        if exc.status_code == 403:
            _audit_denial(exc, context)
        body = {"detail": exc.message, "code": exc.code, "errors": exc.errors}
        response = Response(body, status=exc.status_code)
        if getattr(exc, "retry_after", None):
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, exceptions.PermissionDenied | DjangoPermissionDenied):
        _audit_denial(exc, context)
    return drf_exception_handler(exc, context)
