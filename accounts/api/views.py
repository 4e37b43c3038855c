"""API for personal tokens and, for auditors, the audit log."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, renderers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from ..audit_export import audit_csv_response
from ..audit_filters import AuditEntryFilterSet
from ..models import ApiToken, AuditEntry
from ..permissions import can_export_audit, can_view_audit
from ..tokens import token_create, token_list, token_revoke
from .serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    AuditEntrySerializer,
)


class TokenListCreateView(generics.ListAPIView):
    """Your own API tokens. Creating one returns its key this once."""

    serializer_class = ApiTokenSerializer
    pagination_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return token_list(user=self.request.user)

    @extend_schema(request=ApiTokenCreateSerializer, responses={201: ApiTokenCreatedSerializer})
    def post(self, request):
        if isinstance(request.auth, ApiToken):
            # A leaked token must not be able to mint more tokens.
            raise PermissionDenied(_("Create tokens from a signed-in browser session."))
        incoming = ApiTokenCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        token, key = token_create(user=request.user, **incoming.validated_data)
        token.key = key
        body = ApiTokenCreatedSerializer(token).data
        response = Response(body, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


class TokenDetailView(APIView):
    """One of your tokens; DELETE revokes it (the record stays, marked revoked)."""

    serializer_class = ApiTokenSerializer

    def _token(self, pk: int) -> ApiToken:
        return get_object_or_404(token_list(user=self.request.user), pk=pk)

    def get(self, request, pk: int):
        return Response(ApiTokenSerializer(self._token(pk)).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, pk: int):
        token_revoke(token=self._token(pk), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenRevokeView(TokenDetailView):
    """Revoke one of your tokens; returns it as it now is."""

    http_method_names = ["post", "options"]

    @extend_schema(request=None, responses={200: ApiTokenSerializer})
    def post(self, request, pk: int):
        token = token_revoke(token=self._token(pk), actor=request.user)
        return Response(ApiTokenSerializer(token).data)


class CanViewAudit(permissions.BasePermission):
    message = _("Only auditors and administrators may read the audit log.")

    def has_permission(self, request, view):
        return can_view_audit(request.user)


class CSVRenderer(renderers.BaseRenderer):
    """Lets ``?format=csv`` through content negotiation; the view streams the body itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else str(data or "").encode()


_PURPOSE = OpenApiParameter(
    "purpose",
    OpenApiTypes.STR,
    description="Why the log is exported (required for CSV; recorded in the audit log).",
)
_NOT_FILTERS = {"purpose", "format", "limit", "offset"}


def _export(request, queryset):
    if not can_export_audit(request.user):
        raise PermissionDenied(_("You may not export the audit log."))
    purpose = request.query_params.get("purpose", "")
    if not purpose.strip():
        raise ValidationError({"purpose": [_("Say why you export the audit log.")]})
    filters = {k: v for k, v in request.query_params.items() if k not in _NOT_FILTERS}
    return audit_csv_response(
        actor=request.user, queryset=queryset, purpose=purpose, filters=filters
    )


class AuditEntryListView(generics.ListAPIView):
    """The audit log, newest first, for auditors and administrators.

    ``?format=csv&purpose=…`` returns the whole filtered list as CSV.
    """

    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    permission_classes = [permissions.IsAuthenticated, CanViewAudit]
    filter_backends = [DjangoFilterBackend]
    filterset_class = AuditEntryFilterSet
    renderer_classes = [renderers.JSONRenderer, renderers.BrowsableAPIRenderer, CSVRenderer]

    @extend_schema(parameters=[_PURPOSE])
    def get(self, request, *args, **kwargs):
        if request.accepted_renderer.format == "csv":
            return _export(request, self.filter_queryset(self.get_queryset()))
        return super().get(request, *args, **kwargs)


class AuditEntryExportView(AuditEntryListView):
    """The filtered audit log as CSV; ``purpose`` is required and recorded."""

    renderer_classes = [CSVRenderer, renderers.JSONRenderer]

    @extend_schema(parameters=[_PURPOSE], responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request, *args, **kwargs):
        return _export(request, self.filter_queryset(self.get_queryset()))


class AuditEntryDetailView(generics.RetrieveAPIView):
    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    permission_classes = [permissions.IsAuthenticated, CanViewAudit]
