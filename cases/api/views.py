"""Cases API: report, list, detail and the workflow's actions.

Thin views: reads go through ``cases.selectors``, writes through
``cases.services``; refusals are DomainErrors that the project's exception
handler turns into HTTP 400/403/404 with field errors.

Every read starts from ``Case.objects.restrict(user, "view")``: a case outside
the caller's scope answers 404 exactly like one that does not exist, on the
detail and on its actions alike. A case's ETag is its version; an action must
say which version it was taken on (If-Match, or ``version`` in the body), so
a caller who read a stale case gets 409 with the current state rather than
overwriting someone else's step.
"""

from __future__ import annotations

import threading

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Department, User
from cases import selectors, services, workflow
from cases.models import Case
from core.errors import DomainError

from .schema import FILTER_PARAMETERS
from .serializers import (
    CaseActionSerializer,
    CaseDetailSerializer,
    CasePageSerializer,
    CaseReportSerializer,
    ConflictSerializer,
    ErrorSerializer,
)

TAG = "cases"


class PreconditionRequired(DomainError):
    """An action sent without the version it was taken on (HTTP 428)."""

    status_code = 428
    code = "precondition_required"


def _plain_errors(errors) -> dict[str, list[str]]:
    """A serializer's errors as the flat ``field -> [messages]`` of DomainError."""
    flat: dict[str, list[str]] = {}
    for name, messages in dict(errors).items():
        if isinstance(messages, dict):
            for inner, texts in _plain_errors(messages).items():
                flat[f"{name}.{inner}"] = texts
        else:
            items = messages if isinstance(messages, list) else [messages]
            flat[name] = [str(m) for m in items]
    return flat


def _valid(serializer, message: str) -> dict:
    if not serializer.is_valid():
        raise DomainError(message, errors=_plain_errors(serializer.errors))
    return serializer.validated_data


def _with_files(request) -> dict:
    """The request's fields, with repeated ``photos`` files as one list (multipart)."""
    if not request.FILES:
        return request.data
    data = {key: request.data.get(key) for key in request.data if key != "photos"}
    data["photos"] = request.FILES.getlist("photos")
    return data


def etag(case: Case) -> str:
    return f'"{case.version}"'


def _if_match_version(request) -> int | None:
    header = request.headers.get("If-Match", "").strip()
    if not header:
        return None
    tag = header
    if tag.startswith("W/"):
        tag = tag[2:]
    if len(tag) >= 2 and tag[0] == tag[-1] == '"':
        tag = tag[1:-1]
    if not tag.isdigit() or len(tag) > 9:
        message = _("If-Match must carry the case's ETag, as the detail sent it.")
        raise DomainError(message, errors={"If-Match": [message]})
    return int(tag)


def expected_version(request, body_version: int | None) -> int:
    header_version = _if_match_version(request)
    if header_version is None and body_version is None:
        message = _("Send the case's ETag in If-Match (or its version in the body).")
        raise PreconditionRequired(message, errors={"If-Match": [message]})
    if header_version is not None and body_version is not None and header_version != body_version:
        message = _("If-Match and the version in the body disagree.")
        raise DomainError(message, errors={"version": [message]})
    return header_version if header_version is not None else body_version


_kept = threading.local()


def _detail_body(case: Case, *, now) -> dict:
    """What CaseDetailSerializer makes of ``case``.

    Building a ModelSerializer's fields is most of its cost, and the fields keep
    nothing of one representation for the next: each thread keeps one serializer
    and hands it the moment through its context (the same dict, updated).
    """
    kept = getattr(_kept, "detail", None)
    if kept is None:
        context: dict = {}
        kept = _kept.detail = (CaseDetailSerializer(context=context), context)
    serializer, context = kept
    context["now"] = now
    return serializer.to_representation(case)


def _report_fields(request) -> dict:
    """The report's fields as CaseReportSerializer validates them; 400 naming each bad one.

    Like the detail's serializer, the validating one is kept per thread: its fields
    hold nothing of one request for the next, and making them is most of the cost.
    """
    serializer = getattr(_kept, "report", None)
    if serializer is None:
        serializer = _kept.report = CaseReportSerializer()
    try:
        return serializer.run_validation(_with_files(request))
    except serializers.ValidationError as exc:
        raise DomainError(_("The report is not valid."), errors=_plain_errors(exc.detail)) from None


def _detail_response(
    request, case: Case, *, code: int = status.HTTP_200_OK, reported=None
) -> Response:
    """The case's detail; ``reported`` (services.Reported) when this request created it:
    its timeline, photos and duplicates are then those the report just wrote and read."""
    if reported is not None:
        case.timeline_entries = [reported.event]
        case.photo_list = reported.photos
        case.duplicate_list = reported.duplicates
        memberships = reported.memberships
    else:
        case.timeline_entries = selectors.case_timeline(case)
        case.photo_list = selectors.case_photos(case)
        case.duplicate_list = selectors.case_duplicates(case)
        memberships = None
    case.allowed_actions = selectors.case_actions_for(
        case=case, user=request.user, memberships=memberships
    )
    body = _detail_body(case, now=timezone.now())
    response = Response(body, status=code)
    response["ETag"] = etag(case)
    return response


ETAG_HEADER = OpenApiParameter(
    "ETag",
    str,
    location=OpenApiParameter.HEADER,
    response=True,
    description="the case's version, quoted: send it back in If-Match to act on the case",
)


class CaseCollectionView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=[TAG],
        summary="List cases",
        operation_id="cases_list",
        description=(
            "The cases the caller may see (where a role grants cases.view_case), newest "
            "first, one page at a time: pass the answer's `next_cursor` as `cursor` for the "
            "next page. No reporter contact details. Multi-valued filters take repeated "
            "parameters or commas."
        ),
        parameters=[
            *FILTER_PARAMETERS,
            OpenApiParameter("cursor", str, description="from the previous page's next_cursor"),
            OpenApiParameter(
                "limit",
                int,
                description=f"1–{selectors.MAX_PAGE}, default {selectors.DEFAULT_PAGE}",
            ),
        ],
        responses={200: CasePageSerializer, 400: ErrorSerializer},
    )
    def get(self, request):
        params = request.query_params
        filters = selectors.parse_case_filters(params)
        limit = selectors.page_limit(params.get("limit"))
        now = timezone.now()
        queryset = selectors.case_list(user=request.user, filters=filters, now=now)
        rows, next_cursor = selectors.case_page(
            queryset=queryset, cursor=params.get("cursor") or None, limit=limit
        )
        page = CasePageSerializer(
            {"results": rows, "next_cursor": next_cursor}, context={"now": now}
        )
        return Response(page.data)

    @extend_schema(
        tags=[TAG],
        summary="Report a problem",
        operation_id="cases_report",
        description=(
            "Records a case: its grid is found from the point, its department routed, its "
            "deadlines set. Needs a reporting role (grid worker, intake clerk, shift lead, "
            "dispatcher) over the grid (403 otherwise). A point outside every grid answers "
            "400 on lat and lng. With an Idempotency-Key, a retry of the same caller's "
            "request answers 200 with the case the first attempt made, and creates nothing."
        ),
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                location=OpenApiParameter.HEADER,
                description="any unique string up to 100 characters, the same on every retry",
            ),
            ETAG_HEADER,
        ],
        request=CaseReportSerializer,
        responses={
            201: CaseDetailSerializer,
            200: OpenApiResponse(CaseDetailSerializer, description="a retried request"),
            400: ErrorSerializer,
            403: ErrorSerializer,
        },
    )
    def post(self, request):
        fields = _report_fields(request)
        case, created = services.case_report_result(
            actor=request.user,
            idempotency_key=request.headers.get("Idempotency-Key"),
            **fields,
        )
        if created:
            # Written just now, with everything the detail shows: nothing to read back.
            response = _detail_response(
                request, case, code=status.HTTP_201_CREATED, reported=case.reported
            )
        else:
            response = _detail_response(request, selectors.case_reload(case))
        response["Location"] = reverse("cases-detail", kwargs={"number": case.number})
        return response


class CaseDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=[TAG],
        summary="One case",
        operation_id="cases_detail",
        description=(
            "A case with its timeline, its light and the actions the caller may take now. "
            "A case outside the caller's scope answers 404, like an unknown number."
        ),
        parameters=[ETAG_HEADER],
        responses={200: CaseDetailSerializer, 404: ErrorSerializer},
    )
    def get(self, request, number: str):
        return _detail_response(request, selectors.case_get(user=request.user, number=number))


class CaseActionView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=[TAG],
        summary="Act on a case",
        operation_id="cases_action",
        description=(
            "Takes a workflow action (file, dispatch, accept, send_back, handle, check_pass, "
            "check_fail, close, void, merge, escalate, suspend, resume, reopen, "
            "verify_request, verify_confirm, handle_on_spot, postpone_request, "
            "postpone_approve, postpone_reject, supervise) on the case as the caller read "
            "it: send its ETag in If-Match (or `version` in the body); 428 with neither. "
            "409 when the case changed meanwhile, with its current state and version. 403 "
            "without a role for the action over the case, 400 when the state does not "
            "allow it or its input is wrong (void, send_back, check_fail, suspend and "
            "reopen, postpone_request and postpone_reject need a `note`; dispatch a "
            "`department`; merge `merge_into`; postpone_request `until`; verify_request "
            "may name an `assignee`). Steps with photos (verify_confirm, handle, "
            "handle_on_spot, check_pass, check_fail) take up to 9 `photos` as "
            "multipart/form-data. Answers the case as it is now, with its new ETag."
        ),
        parameters=[
            OpenApiParameter(
                "action", str, location=OpenApiParameter.PATH, enum=sorted(workflow.all_actions())
            ),
            OpenApiParameter(
                "If-Match",
                str,
                location=OpenApiParameter.HEADER,
                description="the ETag of the case as the caller read it",
            ),
            ETAG_HEADER,
        ],
        request=CaseActionSerializer,
        responses={
            200: CaseDetailSerializer,
            400: ErrorSerializer,
            403: ErrorSerializer,
            404: ErrorSerializer,
            409: ConflictSerializer,
            428: ErrorSerializer,
        },
    )
    def post(self, request, number: str, action: str):
        user = request.user
        case = selectors.case_get(user=user, number=number)
        fields = _valid(
            CaseActionSerializer(data=_with_files(request)), _("The action is not valid.")
        )
        version = expected_version(request, fields.get("version"))
        department = None
        if fields.get("department"):
            department = Department.objects.filter(code=fields["department"]).first()
            if department is None:
                message = _("No department has this code.")
                raise DomainError(message, errors={"department": [message]})
        merge_into = None
        if fields.get("merge_into"):
            merge_into = (
                Case.objects.restrict(user, "view").filter(number=fields["merge_into"]).first()
            )
            if merge_into is None:
                message = _("No case you may see has this number.")
                raise DomainError(message, errors={"merge_into": [message]})
        assignee = None
        if fields.get("assignee"):
            assignee = User.objects.filter(username=fields["assignee"], is_active=True).first()
            if assignee is None:
                message = _("No active user has this username.")
                raise DomainError(message, errors={"assignee": [message]})
        try:
            case = services.case_transition(
                case_id=case.pk,
                expected_version=version,
                action=action,
                actor=user,
                note=fields["note"],
                department=department,
                merge_into=merge_into,
                until=fields.get("until"),
                assignee=assignee,
                photos=fields["photos"],
            )
        except services.CaseConflict as conflict:
            body = {
                "detail": conflict.message,
                "code": conflict.code,
                "errors": conflict.errors,
                "state": conflict.state,
                "version": conflict.version,
            }
            response = Response(body, status=status.HTTP_409_CONFLICT)
            response["ETag"] = f'"{conflict.version}"'
            return response
        return _detail_response(request, selectors.case_reload(case))
