"""Areas API: list, tree, detail, GeoJSON, export and (for importers) import.

Thin views: reads go through ``geo.selectors`` and ``geo.exporter``, the import
through ``geo.importer``; refusals are DomainErrors that the project's exception
handler turns into HTTP 400 with field errors.

Every read starts from ``Area.objects.restrict(user, "view")``: a caller sees
the subtrees where a role grants her ``geo.view_area``, and an area outside
them answers 404 exactly like one that does not exist. Importing needs
``geo.import_area``, and every area in the file must lie where she holds it.
"""

from __future__ import annotations

import hashlib

from django.http import HttpResponse, StreamingHttpResponse
from django.urls import path, re_path
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.scopes import RestrictedQuerysetMixin, has_permission, scope_prefixes
from core.errors import DomainError
from geo import exporter, importer, selectors
from geo.crs import CRS_CHOICES
from geo.geometry import to_geojson
from geo.versioning import current_area_version

from .serializers import (
    LEVEL_SLUGS,
    AreaDetailSerializer,
    AreaSerializer,
    AreaTreeNodeSerializer,
    ErrorSerializer,
    ImportReportSerializer,
    ImportUploadSerializer,
)

TAG = "areas"
GEOJSON = "application/geo+json"

LEVEL_PARAM = OpenApiParameter(
    "level", str, enum=LEVEL_SLUGS, description="only areas of this level"
)
UNDER_PARAM = OpenApiParameter(
    "under",
    str,
    description=(
        "only this area (by code) and the areas below it that the caller may see; an area "
        "above her scope narrows to her part of it, any other area outside it answers 404"
    ),
)
FEATURE_COLLECTION = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description=(
        "GeoJSON FeatureCollection in WGS-84, parents first; properties: code, name, name_en, "
        "level, parent_code, households, population, area_m2. Areas without a boundary have "
        '"geometry": null. The same format is accepted by the import.'
    ),
)


def _bool(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    message = _("%(name)s must be true or false.") % {"name": name}
    raise DomainError(message, errors={name: [message]})


def _int(value, name: str, *, minimum: int = 0) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number < minimum:
        message = _("%(name)s must be a whole number from %(min)d.") % {
            "name": name,
            "min": minimum,
        }
        raise DomainError(message, errors={name: [message]})
    return number


IMPORT_AREA = "geo.import_area"


class CanImportAreas(BasePermission):
    """``geo.import_area`` somewhere; where exactly is checked against the file's codes."""

    message = gettext_lazy("You may not import areas.")

    def has_permission(self, request, view):
        return has_permission(request.user, IMPORT_AREA)


def _selection(request):
    level = selectors.parse_level(request.query_params.get("level"))
    under_code = request.query_params.get("under")
    under = selectors.area_frame_get(code=under_code, user=request.user) if under_code else None
    return level, under


def _scope_tag(user) -> str:
    """A short digest of where ``user`` may see areas, for cache validators.

    Two callers with different scopes get different bodies from the same URL,
    so their ETags must differ even when the areas themselves have not changed.
    """
    prefixes = scope_prefixes(user, selectors.VIEW_AREA)
    if prefixes is None:
        return "all"
    return hashlib.sha256(",".join(prefixes).encode()).hexdigest()[:12]


class AreaListView(RestrictedQuerysetMixin, generics.ListAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = AreaSerializer
    filter_backends: list = []

    def get_base_queryset(self):
        params = self.request.query_params
        return selectors.area_list(
            level=params.get("level"), parent=params.get("parent") or None, q=params.get("q")
        )

    @extend_schema(
        tags=[TAG],
        summary="List areas",
        description=(
            "The areas the caller may see (where a role grants geo.view_area), ordered by "
            "code, without boundaries (see the detail or GeoJSON)."
        ),
        parameters=[
            LEVEL_PARAM,
            OpenApiParameter("parent", str, description="only the children of this area code"),
            OpenApiParameter(
                "q", str, description="code prefix, or part of the Chinese or English name"
            ),
        ],
        responses={200: AreaSerializer(many=True), 400: ErrorSerializer},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class AreaTreeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=[TAG],
        summary="Area tree",
        description=(
            "Nested areas from `root` (or from the top of the caller's scope: the tree's "
            "roots for a city-wide reader, her grids for a grid worker) down `depth` levels "
            "(0: the root alone; all levels when omitted). Only areas the caller may see; "
            "a root outside her scope answers 404."
        ),
        parameters=[
            OpenApiParameter("root", str, description="code of the area to start from"),
            OpenApiParameter("depth", int, description="levels below the root to include"),
        ],
        responses={
            200: AreaTreeNodeSerializer(many=True),
            400: ErrorSerializer,
            404: ErrorSerializer,
        },
    )
    def get(self, request):
        depth = _int(request.query_params.get("depth"), "depth")
        root = request.query_params.get("root") or None
        return Response(selectors.area_tree(root=root, depth=depth, user=request.user))


class AreaDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=[TAG],
        summary="One area",
        description=(
            "An area with its ancestors (top down; only those the caller may see), its number "
            "of children, its grid staff (when the caller may see grid staff there) and its "
            "boundary as GeoJSON. An area outside the caller's scope answers 404, like an "
            "unknown code."
        ),
        responses={200: AreaDetailSerializer, 404: ErrorSerializer},
    )
    def get(self, request, code: str):
        user = request.user
        area = selectors.area_get(code=code, user=user)
        area.ancestors = selectors.area_ancestors(area, user=user)
        area.children_count = selectors.area_children_count(area, user=user)
        area.staff_list = [
            {
                "role": member.role,
                "role_label": member.get_role_display(),
                "name": str(member.user),
                "username": member.user.get_username(),
            }
            for member in selectors.area_staff(area, user=user)
        ]
        area.geometry_geojson = to_geojson(area.shape) if area.shape is not None else None
        return Response(AreaDetailSerializer(area).data)


def _feature_collection_response(request, *, attachment: bool):
    level, under = _selection(request)
    visible = selectors.areas_visible(request.user)
    version = current_area_version()
    etag = (
        f'"areas-{version}-{level.slug if level else "all"}-{under.code if under else "all"}'
        f'-{_scope_tag(request.user)}"'
    )
    if not attachment and etag in request.headers.get("If-None-Match", ""):
        response = HttpResponse(status=304)
    elif attachment:
        response = StreamingHttpResponse(
            exporter.iter_feature_collection(level=level, under=under, queryset=visible),
            content_type=GEOJSON,
        )
        parts = ["areas", under.code if under else "", level.slug if level else ""]
        filename = "-".join(p for p in parts if p) + ".geojson"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    else:
        response = HttpResponse(
            exporter.areas_feature_collection_text(level=level, under=under, queryset=visible),
            content_type=GEOJSON,
        )
    # The areas' version changes with every edit, so a client may keep the
    # body and revalidate it cheaply.
    response["ETag"] = etag
    patch_cache_control(response, private=True, no_cache=True)
    return response


class AreaGeoJSONView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=[TAG],
        summary="Areas as GeoJSON",
        description=(
            "Boundaries of the areas the caller may see, for the map; answers 304 to a "
            "matching If-None-Match."
        ),
        parameters=[LEVEL_PARAM, UNDER_PARAM],
        responses={(200, GEOJSON): FEATURE_COLLECTION, 400: ErrorSerializer, 404: ErrorSerializer},
    )
    def get(self, request):
        return _feature_collection_response(request, attachment=False)


class AreaExportView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=[TAG],
        summary="Export areas",
        description=(
            "The GeoJSON of the areas the caller may see as a file download; re-imports to "
            "the same tree."
        ),
        parameters=[LEVEL_PARAM, UNDER_PARAM],
        responses={(200, GEOJSON): FEATURE_COLLECTION, 400: ErrorSerializer, 404: ErrorSerializer},
    )
    def get(self, request):
        return _feature_collection_response(request, attachment=True)


class AreaImportView(APIView):
    permission_classes = [IsAuthenticated, CanImportAreas]
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        tags=[TAG],
        summary="Import areas",
        description=(
            "A GeoJSON FeatureCollection or CSV division list as the multipart field `file`, "
            "or a FeatureCollection as the JSON body (options then go in the query string). "
            "The whole file is checked first: any problem answers 400 listing every problem "
            "with its feature index or CSV line, and nothing is written. 201 when areas were "
            "created or updated, 200 for a dry run or a file that changes nothing. Needs "
            "geo.import_area (403 without it), and every area of the file must lie where the "
            "caller holds it: otherwise 403 naming each such feature or line, nothing written."
        ),
        parameters=[
            OpenApiParameter("crs", str, enum=list(CRS_CHOICES), description="default wgs84"),
            OpenApiParameter("repair", bool, description="fix invalid boundaries"),
            OpenApiParameter("dry_run", bool, description="check and report only"),
        ],
        request={
            "multipart/form-data": ImportUploadSerializer,
            "application/json": OpenApiTypes.OBJECT,
        },
        responses={
            200: ImportReportSerializer,
            201: ImportReportSerializer,
            400: ErrorSerializer,
            403: ErrorSerializer,
        },
    )
    def post(self, request):
        options = {**request.query_params.dict()}
        if request.content_type.startswith(("multipart/", "application/x-www-form-urlencoded")):
            options.update({k: v for k, v in request.data.items() if k != "file"})
            upload = request.FILES.get("file")
            if upload is None:
                message = _("Send the file in the multipart field 'file'.")
                raise DomainError(message, errors={"file": [message]})
            source_name = upload.name or "upload"
            records = importer.read_file(upload, source_name=source_name)
        else:
            source_name = _("request body")
            records = importer.records_from_feature_collection(
                request.data, source_name=source_name
            )
        crs = str(options.get("crs") or "wgs84")
        report = importer.areas_import(
            records=records,
            crs=crs,
            repair=_bool(options.get("repair"), "repair"),
            dry_run=_bool(options.get("dry_run"), "dry_run"),
            source_name=source_name,
            scope=scope_prefixes(request.user, IMPORT_AREA),
            actor=request.user,
        )
        code = status.HTTP_201_CREATED if report.written else status.HTTP_200_OK
        return Response(report.as_dict(), status=code)


urlpatterns = [
    path("areas/", AreaListView.as_view(), name="areas-list"),
    path("areas/tree", AreaTreeView.as_view(), name="areas-tree"),
    path("areas/geojson", AreaGeoJSONView.as_view(), name="areas-geojson"),
    path("areas/export", AreaExportView.as_view(), name="areas-export"),
    path("areas/import", AreaImportView.as_view(), name="areas-import"),
    re_path(r"^areas/(?P<code>[0-9]{4,14})/$", AreaDetailView.as_view(), name="areas-detail"),
]
