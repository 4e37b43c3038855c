"""Topology API: the overlaps, gaps and children outside their parent, as GeoJSON."""

from __future__ import annotations

from django.urls import path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from geo.selectors import area_frame_get, topology_problems
from geo.topology import problems_feature_collection

from .serializers import ErrorSerializer


class TopologyQuerySerializer(serializers.Serializer):
    under = serializers.CharField(
        required=False, max_length=14, help_text=_("only this area (by code) and those below it")
    )
    tolerance_m2 = serializers.FloatField(
        required=False,
        default=1.0,
        min_value=0.0,
        help_text=_("ignore problems of at most this many square metres (default 1)"),
    )


class TopologyView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=["areas"],
        summary="Topology problems",
        description=(
            "Overlaps between sibling areas, gaps in a parent's coverage and children outside "
            "their parent, as a GeoJSON FeatureCollection in WGS-84. Each feature's properties: "
            "kind (overlap, gap, outside), area_m2, codes (the siblings of an overlap, the child "
            "outside its parent, the children along a gap) and parent_code. Only problems "
            "whose parent and areas all lie in the caller's scope (where a role grants her "
            "geo.view_area). `under` above her scope narrows to her part of it; any other "
            "area outside it answers 404, like an unknown code."
        ),
        parameters=[
            OpenApiParameter("under", str, description="an area code; default the whole tree"),
            OpenApiParameter("tolerance_m2", float, description="default 1"),
        ],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="GeoJSON FeatureCollection"),
            400: ErrorSerializer,
            404: ErrorSerializer,
        },
    )
    def get(self, request):
        query = TopologyQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        under = query.validated_data.get("under")
        root = area_frame_get(code=under, user=request.user) if under else None
        problems = topology_problems(
            user=request.user, root=root, tolerance_m2=query.validated_data["tolerance_m2"]
        )
        return Response(problems_feature_collection(problems))


urlpatterns = [
    path("topology", TopologyView.as_view(), name="topology"),
]
