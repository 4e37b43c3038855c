"""OpenAPI pieces the cases API's views share."""

from drf_spectacular.utils import OpenApiParameter

from cases import selectors
from cases.models import CaseState, Kind, Source

# The list's filters, which the export takes too.
FILTER_PARAMETERS = [
    OpenApiParameter("state", str, many=True, enum=CaseState.values),
    OpenApiParameter("kind", str, enum=Kind.values),
    OpenApiParameter("category", str, description="class code prefix: 01, 0101"),
    OpenApiParameter("area", str, description="area code prefix: a grid or above"),
    OpenApiParameter("department", str, description="department code"),
    OpenApiParameter(
        "light",
        str,
        many=True,
        enum=list(selectors.LIGHTS),
        description="the current step's light; suspended and finished cases have none",
    ),
    OpenApiParameter("source", str, many=True, enum=Source.values),
    OpenApiParameter("created_from", str, description="local date YYYY-MM-DD, included"),
    OpenApiParameter("created_to", str, description="local date YYYY-MM-DD, included"),
]
