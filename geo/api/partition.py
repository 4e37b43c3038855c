"""Partition API: preview a community's cut into grids and accept it (划分网格).

Needs ``geo.partition_area`` over the community: a community outside the
caller's view scope answers 404 (as an unknown code does), one she may see but
not partition answers 403. The grids written are checked to lie inside her
partition scope before the transaction commits.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.urls import path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.scopes import area_in_scope, scope_test
from geo.partition import MAX_GRIDS, partition_community
from geo.selectors import area_get
from geo.services import grids_partition_accept

from .serializers import ErrorSerializer

PARTITION_AREA = "geo.partition_area"


class PartitionRequestSerializer(serializers.Serializer):
    grids = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_GRIDS, help_text=_("exactly this many grids")
    )
    households_per_grid = serializers.IntegerField(
        required=False, min_value=1, help_text=_("about this many households per grid")
    )
    seed = serializers.IntegerField(
        required=False,
        default=0,
        min_value=0,
        max_value=2**31 - 1,
        help_text=_("another seed gives another layout"),
    )
    accept = serializers.BooleanField(
        required=False, default=False, help_text=_("write the grids (otherwise only a preview)")
    )

    def validate(self, attrs):
        given = [name for name in ("grids", "households_per_grid") if attrs.get(name) is not None]
        if len(given) != 1:
            raise serializers.ValidationError(
                _("Give exactly one of 'grids' and 'households_per_grid'.")
            )
        return attrs


class SpreadSerializer(serializers.Serializer):
    grids = serializers.IntegerField()
    min = serializers.FloatField()
    median = serializers.FloatField()
    max = serializers.FloatField()
    total = serializers.FloatField()


class PartitionResultSerializer(serializers.Serializer):
    preview = serializers.JSONField(help_text=_("GeoJSON FeatureCollection of the grids"))
    spread = SpreadSerializer()
    accepted = serializers.BooleanField()


class AreaPartitionView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=["areas"],
        summary="Cut a community into grids",
        description=(
            "Plans contiguous, compact grids that cover the community exactly and balance the "
            "households of its buildings. With accept=false (the default) only the preview is "
            "returned (200); with accept=true the community's grids are replaced in one "
            "transaction (201): reused codes keep their ids, buildings move to the grid that "
            "holds them. Removing a grid that still has staff is refused (400). Needs "
            "geo.partition_area over the community: 404 when the community is outside the "
            "caller's scope, 403 when she may see it but not partition it."
        ),
        request=PartitionRequestSerializer,
        responses={
            200: PartitionResultSerializer,
            201: PartitionResultSerializer,
            400: ErrorSerializer,
            403: ErrorSerializer,
            404: ErrorSerializer,
        },
    )
    def post(self, request, code: str):
        community = area_get(code=code, user=request.user)
        if not area_in_scope(request.user, PARTITION_AREA, community.code):
            raise PermissionDenied(f"missing permission {PARTITION_AREA} on area {community.code}")
        params = PartitionRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        plan = partition_community(
            community=community,
            n_grids=data.get("grids"),
            households_per_grid=data.get("households_per_grid"),
            seed=data["seed"],
        )
        accepted = bool(data["accept"])
        if accepted:
            grids_partition_accept(
                community=community,
                plan=plan,
                actor=request.user,
                scope=scope_test(request.user, PARTITION_AREA),
            )
        body = {"preview": plan.feature_collection(), "spread": plan.spread, "accepted": accepted}
        return Response(body, status=status.HTTP_201_CREATED if accepted else status.HTTP_200_OK)


urlpatterns = [
    path("areas/<str:code>/partition", AreaPartitionView.as_view(), name="areas-partition"),
]
