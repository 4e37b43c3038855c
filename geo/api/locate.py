"""``/api/v1/locate``: a point, or a batch of points, to grid → community → street → district.

The serializers here document the API; the batch is checked by hand in one
pass because running a serializer per point would cost more than locating
10,000 points does.

Scope: the caller needs ``geo.view_area`` somewhere. Each link of a located
chain is given only when that area is inside her view scope (else null), and
``in_scope`` says whether the point's grid is; deciding it reads the grants
cached on the user once, so a batch costs no query per point.
"""

from __future__ import annotations

import numpy as np
from django.conf import settings
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.scopes import has_permission, scope_test
from core.errors import DomainError

from ..index import (
    CRS_CHOICES,
    WGS84,
    Location,
    locate,
    locate_many,
    to_wgs84_arrays,
    to_wgs84_point,
)
from .serializers import ErrorSerializer

# Errors name at most this many bad points; the rest would only repeat them.
_MAX_POINT_ERRORS = 20


# --- documentation ------------------------------------------------------------------


class LocatedAreaSerializer(serializers.Serializer):
    """One link of a located point's chain."""

    code = serializers.CharField()
    name = serializers.CharField()
    name_en = serializers.CharField()


class PointSerializer(serializers.Serializer):
    lat = serializers.FloatField(min_value=-90, max_value=90)
    lng = serializers.FloatField(min_value=-180, max_value=180)


class LocationSerializer(serializers.Serializer):
    outside = serializers.BooleanField(help_text="True when the point is in no grid.")
    in_scope = serializers.BooleanField(
        help_text=(
            "True when the point's grid is inside the caller's scope (where she may view "
            "areas). False for a point outside every grid, and for a point in a grid she "
            "may not see: then grid and every link she may not see are null."
        )
    )
    point = PointSerializer(help_text="The point in WGS-84, as located.")
    grid = LocatedAreaSerializer(allow_null=True)
    community = LocatedAreaSerializer(allow_null=True)
    street = LocatedAreaSerializer(allow_null=True)
    district = LocatedAreaSerializer(allow_null=True)
    city = LocatedAreaSerializer(allow_null=True)


class BatchPointSerializer(PointSerializer):
    id = serializers.CharField(
        required=False, help_text="Any string or integer; given back with the result."
    )


class BatchRequestSerializer(serializers.Serializer):
    crs = serializers.ChoiceField(choices=CRS_CHOICES, default=WGS84)
    points = BatchPointSerializer(many=True, help_text="At most LOCATE_BATCH_LIMIT (10,000).")


class BatchResultSerializer(LocationSerializer):
    id = serializers.CharField(required=False)


class BatchResponseSerializer(serializers.Serializer):
    results = BatchResultSerializer(many=True, help_text="In the order of the points sent.")


# --- shaping answers --------------------------------------------------------------------


def _everywhere(code: str) -> bool:
    return True


def _ref(ref, inside) -> dict | None:
    return None if ref is None or not inside(ref.code) else ref.as_dict()


def location_body(location: Location, lat: float, lng: float, inside=_everywhere) -> dict:
    """The answer for one point; ``inside(code)`` says which links the caller may see."""
    grid = location.grid
    return {
        "outside": grid is None,
        "in_scope": grid is not None and inside(grid.code),
        "point": {"lat": lat, "lng": lng},
        "grid": _ref(grid, inside),
        "community": _ref(location.community, inside),
        "street": _ref(location.street, inside),
        "district": _ref(location.district, inside),
        "city": _ref(location.city, inside),
    }


# --- reading a batch ---------------------------------------------------------------------


def _number(value) -> float | None:
    # JSON booleans are ints to Python; a coordinate is never one.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def parse_batch(data) -> tuple[str, np.ndarray, np.ndarray, list]:
    """``{"crs", "points": [{"lat", "lng", "id"?}, …]}`` → crs, lats, lngs, ids.

    Raises DomainError naming every bad point (``points[i].lat`` …), up to a few.
    """
    if not isinstance(data, dict):
        message = _('Send a JSON object: {"crs": "wgs84", "points": [{"lat": …, "lng": …}]}.')
        raise DomainError(message)
    crs = data.get("crs", WGS84)
    if not isinstance(crs, str):
        message = _("The coordinate system is one of %(choices)s.") % {
            "choices": ", ".join(CRS_CHOICES)
        }
        raise DomainError(message, errors={"crs": [message]})
    points = data.get("points")
    if not isinstance(points, list):
        message = _("A list of points is required.")
        raise DomainError(message, errors={"points": [message]})
    limit = int(settings.CIVICGRID["LOCATE_BATCH_LIMIT"])
    if len(points) > limit:
        message = _("At most %(limit)d points per request; %(count)d were sent.") % {
            "limit": limit,
            "count": len(points),
        }
        raise DomainError(message, errors={"points": [message]}, code="too_many_points")

    n = len(points)
    lats = np.empty(n, dtype=np.float64)
    lngs = np.empty(n, dtype=np.float64)
    ids: list = [None] * n
    errors: dict[str, list[str]] = {}
    not_a_number = _("A number is required.")
    for i, point in enumerate(points):
        if not isinstance(point, dict):
            errors[f"points[{i}]"] = [_('Each point is an object with "lat" and "lng".')]
        else:
            lat = _number(point.get("lat"))
            lng = _number(point.get("lng"))
            if lat is None:
                errors[f"points[{i}].lat"] = [not_a_number]
            else:
                lats[i] = lat
            if lng is None:
                errors[f"points[{i}].lng"] = [not_a_number]
            else:
                lngs[i] = lng
            given = point.get("id")
            if given is not None:
                if isinstance(given, bool) or not isinstance(given, (str, int)):
                    errors[f"points[{i}].id"] = [_("An id is a string or an integer.")]
                else:
                    ids[i] = given
        if len(errors) >= _MAX_POINT_ERRORS:
            break
    if errors:
        first = next(iter(errors))
        message = _("%(where)s: %(problem)s") % {"where": first, "problem": errors[first][0]}
        raise DomainError(message, errors=errors)
    return crs, lats, lngs, ids


# --- the view --------------------------------------------------------------------------


VIEW_AREA = "geo.view_area"


class CanViewAreas(BasePermission):
    message = gettext_lazy("You may not look up areas.")

    def has_permission(self, request, view):
        return has_permission(request.user, VIEW_AREA)


_SCOPE_NOTE = (
    " Only areas inside the caller's scope (where a role grants her geo.view_area) are "
    "named: every other link of the chain is null, and in_scope tells whether the grid "
    "itself is hers. A caller without geo.view_area anywhere is refused (403)."
)


class LocateView(APIView):
    permission_classes = [IsAuthenticated, CanViewAreas]

    @extend_schema(
        operation_id="locate_point",
        summary="Locate a point",
        description=(
            "The grid holding a point and the grid's community, street and district. "
            "A point on a border shared by several grids goes to the one with the lowest "
            "code; a point in no grid is answered with outside=true." + _SCOPE_NOTE
        ),
        parameters=[
            OpenApiParameter("lat", OpenApiTypes.DOUBLE, required=True, description="Latitude."),
            OpenApiParameter("lng", OpenApiTypes.DOUBLE, required=True, description="Longitude."),
            OpenApiParameter(
                "crs",
                OpenApiTypes.STR,
                enum=list(CRS_CHOICES),
                default=WGS84,
                description="Coordinate system of lat/lng (GCJ-02: AMap, Tencent; BD-09: Baidu).",
            ),
        ],
        responses={200: LocationSerializer, 400: ErrorSerializer, 403: ErrorSerializer},
    )
    def get(self, request):
        params = request.query_params
        missing = {
            field: [_("This field is required.")]
            for field in ("lat", "lng")
            if not params.get(field, "").strip()
        }
        if missing:
            raise DomainError(next(iter(missing.values()))[0], errors=missing)
        crs = params.get("crs", "").strip() or WGS84
        lat, lng = to_wgs84_point(params["lat"], params["lng"], crs)
        inside = scope_test(request.user, VIEW_AREA)
        return Response(location_body(locate(lat, lng), lat, lng, inside))

    @extend_schema(
        operation_id="locate_points",
        summary="Locate many points",
        description=(
            "Up to LOCATE_BATCH_LIMIT (10,000) points in one request; results come back "
            "in the order sent, each with the id it was sent with. A bad point makes the "
            "whole request a 400 whose errors name it, e.g. points[3].lat." + _SCOPE_NOTE
        ),
        request=BatchRequestSerializer,
        responses={200: BatchResponseSerializer, 400: ErrorSerializer, 403: ErrorSerializer},
        examples=[
            OpenApiExample(
                "Two points",
                value={
                    "crs": "wgs84",
                    "points": [
                        {"id": "a", "lat": 39.905, "lng": 116.405},
                        {"id": "b", "lat": 39.935, "lng": 116.435},
                    ],
                },
                request_only=True,
            )
        ],
    )
    def post(self, request):
        crs, lats, lngs, ids = parse_batch(request.data)
        lat, lng = to_wgs84_arrays(lats, lngs, crs)
        locations = locate_many(lat, lng)
        inside = scope_test(request.user, VIEW_AREA)
        results = []
        append = results.append
        for i, (location, la, ln) in enumerate(
            zip(locations, lat.tolist(), lng.tolist(), strict=True)
        ):
            body = location_body(location, la, ln, inside)
            if ids[i] is not None:
                body = {"id": ids[i], **body}
            append(body)
        return Response({"results": results})


urlpatterns = [
    path("locate", LocateView.as_view(), name="locate"),
]
