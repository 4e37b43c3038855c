"""Cases API: the case list as a CSV or Excel file (``GET cases/export.csv`` / ``.xlsx``).

The same filters as ``GET cases``, the same scope (cases the caller may see),
the same columns and cap as the staff search's export (cases.export): no
reporter contact details, at most ``CIVICGRID["EXPORT_MAX_ROWS"]`` rows (then
``X-CivicGrid-Truncated: true`` and a last row saying so), every export in the
audit log. A bad filter answers 400 with field errors in JSON, another format
404.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import renderers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from cases import export, selectors
from geo.api.serializers import ErrorSerializer

from .schema import FILTER_PARAMETERS

TAG = "cases"


class _FileRenderer(renderers.BaseRenderer):
    """Lets a client that asks for the file's type through content negotiation.

    The view answers the file itself; only an error goes through a renderer,
    and errors are always JSON (see ``handle_exception``).
    """

    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return renderers.JSONRenderer().render(data, "application/json", renderer_context)


class CSVRenderer(_FileRenderer):
    media_type = "text/csv"
    format = "csv"


class XLSXRenderer(_FileRenderer):
    media_type = export.CONTENT_TYPES[export.XLSX]
    format = "xlsx"


class CaseExportView(APIView):
    permission_classes = [IsAuthenticated]
    renderer_classes = [renderers.JSONRenderer, CSVRenderer, XLSXRenderer]

    @extend_schema(
        tags=[TAG],
        summary="Export cases",
        operation_id="cases_export",
        description=(
            "The cases the caller may see, filtered as in `GET cases` (newest first), as a "
            "CSV file (UTF-8 with a byte-order mark) or an Excel workbook, named "
            "`cases-YYYYMMDD-HHMM.<format>` in local time. Columns: number, kind, class code "
            "and name, urgency, state, light, grid code and name, address, source, "
            "department, created, step deadline, overall deadline, overdue, reworks, "
            "send-backs, closed at; labels in the request's language, times local. No "
            "reporter contact details. At most `EXPORT_MAX_ROWS` rows (100000 by default): "
            "past that the file ends with a row saying so and the response carries "
            "`X-CivicGrid-Truncated: true`; `X-CivicGrid-Rows` says how many cases the file "
            "holds. Every export is recorded in the audit log with its filters and row count."
        ),
        parameters=[
            OpenApiParameter(
                "fmt",
                str,
                location=OpenApiParameter.PATH,
                enum=list(export.FORMATS),
                description="csv or xlsx",
            ),
            *FILTER_PARAMETERS,
            # DRF's own ?format= picks a renderer; the path says the format here.
            OpenApiParameter("format", exclude=True),
            OpenApiParameter(
                export.ROWS_HEADER,
                int,
                location=OpenApiParameter.HEADER,
                response=True,
                description="how many cases the file holds",
            ),
            OpenApiParameter(
                export.TRUNCATED_HEADER,
                str,
                location=OpenApiParameter.HEADER,
                response=[200],
                description="`true` when the filter found more cases than the file holds",
            ),
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="the CSV file"),
            (200, export.CONTENT_TYPES[export.XLSX]): OpenApiResponse(
                OpenApiTypes.BINARY, description="the Excel workbook"
            ),
            (400, "application/json"): ErrorSerializer,
            (404, "application/json"): ErrorSerializer,
        },
    )
    def get(self, request, fmt: str):
        if fmt not in export.FORMATS:
            raise NotFound()
        filters = selectors.parse_case_filters(request.query_params)
        return export.case_export_response(user=request.user, fmt=fmt, filters=filters)

    def handle_exception(self, exc):
        # A refusal is JSON whatever file type the client asked for.
        response = super().handle_exception(exc)
        self.request.accepted_renderer = renderers.JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return response
