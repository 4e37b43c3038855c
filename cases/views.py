"""Staff pages of the case loop: the report form, the intake queue, my tasks, one case.

Thin views: reads go through ``cases.selectors`` (always narrowed to what the
user may see, so a case outside her scope answers 404 like an unknown
number), writes through ``cases.services``. A refusal of a service comes back
as field errors on the form that was posted (400), a conflict as "changed
meanwhile" (409), a missing role as 403 (written to the audit log by the
request-context middleware).

The pages work without JavaScript; with htmx an action's form swaps itself
for its errors, and a success redirects with ``HX-Redirect``.
"""

from __future__ import annotations

from collections import defaultdict

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.audit import audit_permission_denied, audit_personal_data_access
from core.errors import DomainError, NotFound

from . import selectors, services, workflow
from .forms import ActionForm, ReportForm, add_domain_errors
from .models import Case, CaseNotice, CaseState
from .workflow import Action

# --- labels ----------------------------------------------------------------------------

# One label per workflow action (and per timeline entry that is not a transition).
# "file", "close" and the like are also words of other screens: they carry a context.
ACTION_LABELS = {
    Action.VERIFY_REQUEST: pgettext_lazy("case action", "Send to verify"),  # 派核实
    Action.VERIFY_CONFIRM: pgettext_lazy("case action", "Verified on site"),  # 核实确认
    Action.FILE: pgettext_lazy("case action", "File"),  # 立案
    Action.VOID: pgettext_lazy("case action", "Void"),  # 作废
    Action.MERGE: pgettext_lazy("case action", "Merge as duplicate"),  # 合并
    Action.DISPATCH: pgettext_lazy("case action", "Dispatch"),  # 派遣
    Action.ACCEPT: pgettext_lazy("case action", "Sign for"),  # 签收
    Action.SEND_BACK: pgettext_lazy("case action", "Send back"),  # 回退
    Action.HANDLE: pgettext_lazy("case action", "Report handled"),  # 处置反馈
    Action.CHECK_PASS: pgettext_lazy("case action", "Check passed"),  # 核查通过
    Action.CHECK_FAIL: pgettext_lazy("case action", "Check failed, rework"),  # 核查不通过, 返工
    Action.CLOSE: pgettext_lazy("case action", "Close"),  # 结案
    Action.ESCALATE: pgettext_lazy("case action", "Escalate"),  # 上报上级
    Action.SUSPEND: pgettext_lazy("case action", "Suspend"),  # 挂账
    Action.RESUME: pgettext_lazy("case action", "Resume"),  # 恢复
    Action.REOPEN: pgettext_lazy("case action", "Reopen"),  # 重新打开
    Action.HANDLE_ON_SPOT: pgettext_lazy("case action", "Handled on the spot"),  # 自处理
    Action.POSTPONE_REQUEST: pgettext_lazy("case action", "Ask for more time"),  # 申请延期
    Action.POSTPONE_APPROVE: pgettext_lazy("case action", "Grant more time"),  # 批准延期
    Action.POSTPONE_REJECT: pgettext_lazy("case action", "Refuse more time"),  # 驳回延期
    Action.SUPERVISE: pgettext_lazy("case action", "Supervise"),  # 督办
    Action.RETURN_VISIT: pgettext_lazy("case action", "Ask the resident to rate"),  # 回访
    Action.RATE_SATISFIED: pgettext_lazy("case action", "Rated satisfied"),  # 满意
    Action.RATE_UNSATISFIED: pgettext_lazy("case action", "Rated not satisfied"),  # 不满意
    Action.WITHDRAW: pgettext_lazy("case action", "Withdrawn by the reporter"),  # 撤回
    "report": pgettext_lazy("case action", "Reported"),  # 上报
    "overdue": pgettext_lazy("case action", "Overdue"),  # 超时
}
# Actions that end or undo work: their buttons look dangerous.
DANGEROUS_ACTIONS = frozenset({Action.VOID, Action.SEND_BACK, Action.CHECK_FAIL, Action.SUSPEND})

TASK_HEADINGS = {
    "verify": pgettext_lazy("task list", "Verify on site"),  # 核实
    "check": pgettext_lazy("task list", "Check on site"),  # 核查
    "department": pgettext_lazy("task list", "Sign for and handle"),  # 签收, 处置
    "close": pgettext_lazy("task list", "Checked, to close"),  # 待结案
    "postpone": pgettext_lazy("task list", "Requests for more time"),  # 延期申请
    "supervise": pgettext_lazy("task list", "Supervised and overdue"),  # 督办, 超时
}

STATE_LABELS = dict(CaseState.choices)
CONTACT_FIELDS = ("reporter_name", "reporter_phone", "reporter_email")
INTAKE_PAGE_SIZE = 50
MAX_INTAKE_PAGE = 1000


def action_label(action: str) -> str:
    """The translated label of a workflow action or timeline entry; the code when unknown."""
    label = ACTION_LABELS.get(action)
    return str(label) if label is not None else action


def localized_name(obj) -> str:
    """``name_en`` in English when there is one, else ``name`` (categories, areas, roles …)."""
    if obj is None:
        return ""
    english = getattr(obj, "name_en", "")
    if english and (translation.get_language() or "").startswith("en"):
        return english
    return getattr(obj, "name", "") or str(obj)


def nav_flags(user) -> dict[str, bool]:
    """Which of the case pages ``user`` may open, for the navigation. At most one query."""
    if user is None or not user.is_authenticated:
        return {"report": False, "intake": False, "tasks": False}
    return {
        "report": selectors.holds_case_role(user, workflow.REPORT_ROLES),
        "intake": selectors.holds_case_role(user, selectors.INTAKE_QUEUE_ROLES),
        "tasks": selectors.holds_case_role(user, selectors.CASE_ROLES),
    }


def _require_role(user, roles, page: str) -> None:
    if not selectors.holds_case_role(user, roles):
        raise PermissionDenied(f"no case role for the {page} page")


def _map_config(**extra) -> dict:
    return {
        "tiles": {
            "url": settings.CIVICGRID["MAP_TILE_URL"],
            "attribution": settings.CIVICGRID["MAP_TILE_ATTRIBUTION"],
        },
        "strings": {
            "locating": _("Finding your location…"),
            "located": _("Location found (accuracy about %(metres)s m)."),
            "locateFailed": _("Your location is not available: %(reason)s"),
            "locateUnsupported": _("This browser cannot tell your location."),
            "pinHint": _("Tap the map to put the pin where the problem is."),
            "gridsFailed": _("Could not load the grid boundaries."),
        },
        **extra,
    }


# --- report --------------------------------------------------------------------------


def _category_data(tree) -> list[dict]:
    """The classes for the report form's script: majors with their minors and criteria."""
    return [
        {
            "id": major.pk,
            "label": f"{major.get_kind_display()} {major.code} {localized_name(major)}",
            "minors": [
                {
                    "id": minor.pk,
                    "label": f"{minor.code} {localized_name(minor)}",
                    "filing": minor.filing_criteria or major.filing_criteria,
                    "closing": minor.closing_criteria or major.closing_criteria,
                }
                for minor in major.minors
            ],
        }
        for major in tree
        if major.minors
    ]


def _report_map_config(user) -> dict:
    url = reverse("areas-geojson") + "?level=grid"
    holds = [h for h in selectors.case_role_holds(user) if h.role in workflow.REPORT_ROLES]
    codes = {h.code for h in holds}
    if len(codes) == 1:
        url += "&under=" + codes.pop()
    return _map_config(mode="pick", gridsUrl=url)


@login_required
@require_http_methods(["GET", "POST"])
def report_page(request):
    """Report a problem: a grid worker's own report, or a hotline call an intake clerk records."""
    user = request.user
    _require_role(user, workflow.REPORT_ROLES, "report")
    intake = selectors.holds_case_role(user, workflow.INTAKE)
    tree = selectors.category_tree()
    posted = request.method == "POST"
    form = ReportForm(
        request.POST if posted else None,
        request.FILES if posted else None,
        tree=tree,
        intake=intake,
    )
    status = 200
    if posted:
        status = 400
        if form.is_valid():
            try:
                case, created = services.case_report_result(actor=user, **form.service_fields())
            except services.CaseActionDenied as exc:
                audit_permission_denied(request=request, reason=str(exc))
                message = _("You may not report cases at this point: it is outside your grids.")
                form.add_error("lat", message)
                status = 403
            except DomainError as exc:
                add_domain_errors(form, exc)
            else:
                if created:
                    messages.success(
                        request, _("Case %(number)s is reported.") % {"number": case.number}
                    )
                return redirect("cases:detail", number=case.number)
    selected = form.selected_category()
    criteria = {}
    if selected is not None:
        major = next((m for m in tree if m.pk == selected.parent_id), None)
        criteria = {
            "filing": selected.filing_criteria or getattr(major, "filing_criteria", ""),
            "closing": selected.closing_criteria or getattr(major, "closing_criteria", ""),
        }
    context = {
        "criteria": criteria,
        "form": form,
        "intake": intake,
        "selected_category": selected,
        "selected_major": selected.parent_id if selected else None,
        "majors": [m for m in tree if m.minors],
        "category_data": _category_data(tree),
        "map_config": _report_map_config(user),
        "max_photos": workflow.MAX_PHOTOS,
    }
    return render(request, "cases/report.html", context, status=status)


# --- lists ---------------------------------------------------------------------------


def _page_number(raw) -> int:
    try:
        page = int(raw or 1)
    except (TypeError, ValueError):
        return 1
    return min(max(page, 1), MAX_INTAKE_PAGE)


@login_required
@require_GET
def intake_queue(request):
    """Cases awaiting intake in the user's areas: supervised, most urgent, oldest first."""
    user = request.user
    _require_role(user, selectors.INTAKE_QUEUE_ROLES, "intake")
    page = _page_number(request.GET.get("page"))
    now = timezone.now()
    rows, has_next = selectors.intake_queue(user=user, page=page, per_page=INTAKE_PAGE_SIZE)
    duplicates = selectors.duplicate_counts(rows, user=user, now=now)
    for case in rows:
        case.light = selectors.case_light(case, now=now)
        case.duplicate_count = duplicates.get(case.pk, 0)
        case.age = now - case.created_at
    context = {
        "cases": rows,
        "page": page,
        "has_next": has_next,
        "now": now,
    }
    return render(request, "cases/intake.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def my_tasks(request):
    """What waits for the user, by the roles she holds, and her unread notices.

    POST ``notice`` marks that notice read (the user's own only; another's is a 404).
    """
    user = request.user
    _require_role(user, selectors.CASE_ROLES, "tasks")
    if request.method == "POST":
        try:
            notice_id = int(request.POST.get("notice", ""))
        except ValueError:
            return HttpResponse(_("Say which notice to mark read."), status=400)
        if not CaseNotice.objects.filter(pk=notice_id, recipient=user).exists():
            raise Http404("no such notice")
        services.case_notice_mark_read(user=user, notice_id=notice_id)
        if request.htmx:
            # The notice's row is swapped for nothing.
            return HttpResponse("")
        return redirect("cases:tasks")
    now = timezone.now()
    lists = selectors.my_task_lists(user=user, now=now)
    for task_list in lists:
        task_list.heading = TASK_HEADINGS[task_list.key]
        for case in task_list.cases:
            case.light = selectors.case_light(case, now=now)
            case.age = now - case.created_at
    context = {
        "lists": lists,
        "notices": selectors.unread_case_notices(user=user),
        "now": now,
    }
    return render(request, "cases/tasks.html", context)


# --- one case --------------------------------------------------------------------------


def _grid_geometry(case: Case) -> dict | None:
    shape = case.area.shape
    if shape is None:
        return None
    import shapely.geometry

    return shapely.geometry.mapping(shape)


class _Actions:
    """The action forms of one case page, built on demand with what they need."""

    def __init__(self, request, case: Case):
        self.request = request
        self.case = case
        self._departments = None
        self._routed = None

    def departments(self):
        if self._departments is None:
            self._departments = selectors.dispatch_departments(self.case)
            self._routed = selectors.route_department(
                category=self.case.category, area=self.case.area
            )
        return self._departments

    def form(self, action: str, data=None, files=None) -> ActionForm:
        kwargs = {}
        if "department" in workflow.ACTION_INPUTS.get(action, ()):
            kwargs["departments"] = self.departments()
            kwargs["routed"] = self._routed
        if "merge_into" in workflow.ACTION_INPUTS.get(action, ()):
            kwargs["visible_cases"] = Case.objects.restrict(self.request.user, "view")
        if "assignee" in workflow.ACTION_INPUTS.get(action, ()):
            kwargs["assignees"] = services.grid_staff(self.case.area)
        return ActionForm(data, files, action=action, case=self.case, **kwargs)


def _action_entry(case: Case, action: str, form: ActionForm) -> dict:
    return {
        "name": action,
        "label": action_label(action),
        "form": form,
        "url": reverse("cases:act", args=[case.number, action]),
        "danger": action in DANGEROUS_ACTIONS,
        "multipart": "photos" in form.fields,
    }


def _timeline(case: Case, photos) -> list:
    events = selectors.case_timeline(case)
    by_event = defaultdict(list)
    for photo in photos:
        if photo.event_id is not None:
            by_event[photo.event_id].append(photo)
    roles = selectors.role_names(e.role for e in events)
    for event in events:
        event.label = action_label(event.action)
        event.photo_list = by_event.get(event.pk, [])
        role = roles.get(event.role)
        event.role_label = localized_name(role) if role else event.role
        event.from_label = STATE_LABELS.get(event.from_state, event.from_state)
        event.to_label = STATE_LABELS.get(event.to_state, event.to_state)
        data = event.data if isinstance(event.data, dict) else {}
        until = parse_datetime(data["until"]) if isinstance(data.get("until"), str) else None
        event.details = {
            "department": data.get("department") or "",
            "assignee": data.get("assignee") or "",
            "merged_into": data.get("merged_into") or "",
            "until": until,
        }
    return events


def _photo_groups(photos) -> list[dict]:
    groups: dict[str, list] = {}
    for photo in photos:
        groups.setdefault(photo.action, []).append(photo)
    return [{"action": a, "label": action_label(a), "photos": p} for a, p in groups.items()]


def _detail_context(request, case: Case, *, failed: ActionForm | None = None) -> dict:
    user = request.user
    now = timezone.now()
    builder = _Actions(request, case)
    allowed = selectors.case_actions_for(case=case, user=user)
    if failed is not None and failed.action not in allowed:
        # Refused although the page offered it: show the refusal with the form anyway.
        allowed.append(failed.action)
    actions = [
        _action_entry(
            case,
            action,
            failed if failed is not None and failed.action == action else builder.form(action),
        )
        for action in allowed
    ]
    photos = selectors.case_photos(case)
    duplicates = (
        selectors.visible_duplicates(case, user=user, now=now)
        if case.state in selectors.INTAKE_QUEUE_STATES
        else []
    )
    return {
        "case": case,
        "light": selectors.case_light(case, now=now),
        "actions": actions,
        "timeline": _timeline(case, photos),
        "photo_groups": _photo_groups(photos),
        "duplicates": duplicates,
        "may_see_contact": selectors.may_see_reporter_contact(case=case, user=user),
        "map_config": _map_config(
            mode="view", point=[case.lat, case.lng], grid=_grid_geometry(case)
        ),
        "category_major": case.category.parent if case.category.parent_id else None,
        "now": now,
    }


@login_required
@require_GET
def case_detail(request, number: str):
    """One case: where it stands, its timeline, and what the user may do to it now."""
    case = selectors.case_get(user=request.user, number=number)
    return render(request, "cases/detail.html", _detail_context(request, case))


def _action_roles(action: str) -> frozenset[str]:
    return frozenset().union(
        *(t.roles for (_state, a), t in workflow.TRANSITIONS.items() if a == action)
    )


def _action_failed(request, case: Case, form: ActionForm, *, status: int) -> HttpResponse:
    if request.htmx:
        entry = _action_entry(case, form.action, form)
        if request.htmx.target == f"action-{form.action}":
            # The case page's own form swaps itself for the form with its errors.
            template = "cases/_action_form.html"
        else:
            # Another page's form (the console's dispatch) shows the errors beside it.
            template = "cases/_action_errors.html"
        return render(request, template, {"a": entry, "case": case}, status=status)
    context = _detail_context(request, case, failed=form)
    return render(request, "cases/detail.html", context, status=status)


def _conflict(request, case: Case, conflict: services.CaseConflict) -> HttpResponse:
    context = {"case": case, "conflict": conflict}
    if request.htmx:
        return render(request, "cases/_conflict.html", context, status=409)
    fresh = selectors.case_get(user=request.user, number=case.number)
    context = {**_detail_context(request, fresh), "conflict": conflict}
    return render(request, "cases/detail.html", context, status=409)


def _next_url(request) -> str:
    """Where a form from another page (``next``) asks to go after the action, if it is ours."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return ""


@login_required
@require_POST
def case_act(request, number: str, action: str):
    """Take one action on the case as the user read it (the form carries its version)."""
    user = request.user
    case = selectors.case_get(user=user, number=number)
    if action not in workflow.all_actions():
        raise Http404("no such action")
    try:
        services.acting_role(actor=user, case=case, area=case.area, roles=_action_roles(action))
    except services.CaseActionDenied as exc:
        raise PermissionDenied(str(exc)) from None
    form = _Actions(request, case).form(action, request.POST, request.FILES)
    if not form.is_valid():
        return _action_failed(request, case, form, status=400)
    try:
        services.case_transition(
            case_id=case.pk, action=action, actor=user, **form.service_fields()
        )
    except services.CaseConflict as conflict:
        return _conflict(request, case, conflict)
    except services.CaseActionDenied as exc:
        raise PermissionDenied(str(exc)) from None
    except NotFound:
        raise Http404("no such case") from None
    except DomainError as exc:
        add_domain_errors(form, exc)
        return _action_failed(request, case, form, status=400)
    messages.success(
        request,
        _("%(action)s: done for case %(number)s.")
        % {"action": action_label(action), "number": case.number},
    )
    url = _next_url(request) or reverse("cases:detail", args=[case.number])
    if request.htmx:
        response = HttpResponse("")
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@login_required
@require_GET
def reporter_contact(request, number: str):
    """The reporter's name, phone and e-mail, to those handling the case; every read is
    written to the audit log."""
    user = request.user
    case = selectors.case_get(user=user, number=number)
    if not selectors.may_see_reporter_contact(case=case, user=user):
        raise PermissionDenied("no intake or handling role over this case")
    erased = case.reporter_purged_at is not None
    if not erased:
        audit_personal_data_access(
            actor=user,
            obj=case,
            purpose=f"handle case {case.number}: contact its reporter",
            fields=CONTACT_FIELDS,
        )
    context = {"case": case, "erased": erased}
    template = "cases/_contact.html" if request.htmx else "cases/contact.html"
    return render(request, template, context)
