"""API plumbing shared by every app."""

from __future__ import annotations

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import DomainError


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        body = {"detail": exc.message, "code": exc.code, "errors": exc.errors}
        return Response(body, status=exc.status_code)
    return drf_exception_handler(exc, context)
