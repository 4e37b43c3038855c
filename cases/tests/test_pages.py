"""The staff pages of the case loop: report, intake queue, my tasks, one case, its actions."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation
from PIL import Image

from accounts.models import AuditEntry, User
from accounts.testing import verified_login
from cases import views, workflow
from cases.models import Case, CaseNotice, CasePhoto, CaseState, Source
from cases.services import case_report, case_transition
from cases.testing import GRID_POINT, OTHER_GRID_POINT, make_case_world, refreshed
from cases.workflow import Action

S = CaseState


@pytest.fixture(autouse=True)
def english(settings):
    # Messages are compared in English, the source language of the catalogue.
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def world(small_city):
    return make_case_world(small_city)


def client_for(user: User) -> Client:
    client = Client()
    if user.memberships.filter(role__code="admin").exists() or user.is_superuser:
        return verified_login(client, user)
    client.force_login(user)
    return client


def report(world, *, actor=None, point=GRID_POINT, **extra) -> Case:
    fields = {
        "actor": actor or world["worker"],
        "category": world.garbage,
        "lat": point[0],
        "lng": point[1],
        "description": extra.pop("description", "垃圾堆在路边"),
        "source": extra.pop("source", Source.GRID_WORKER),
    }
    fields.update(extra)
    return case_report(**fields)


def act(action, case, actor, **extra) -> Case:
    return case_transition(
        case_id=case.pk, expected_version=case.version, action=action, actor=actor, **extra
    )


def jpeg(color=(200, 30, 30), name="photo.jpg") -> SimpleUploadedFile:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, "JPEG")
    return SimpleUploadedFile(name, out.getvalue(), content_type="image/jpeg")


def report_data(world, **extra) -> dict:
    data = {
        "category": str(world.garbage.pk),
        "urgency": "normal",
        "description": "路边有一堆垃圾",
        "address": "建国门外大街 1 号",
        "lat": str(GRID_POINT[0]),
        "lng": str(GRID_POINT[1]),
    }
    data.update(extra)
    return data


def detail_url(case: Case) -> str:
    return reverse("cases:detail", args=[case.number])


def act_url(case: Case, action: str) -> str:
    return reverse("cases:act", args=[case.number, action])


def denied_entries() -> int:
    return AuditEntry.objects.filter(action="permission_denied").count()


# --- who may open what ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["report", "intake", "tasks"])
def test_the_pages_ask_to_sign_in(world, name):
    response = Client().get(reverse(f"cases:{name}"))
    assert response.status_code == 302
    assert "/accounts/login" in response["Location"] or "login" in response["Location"]


@pytest.mark.parametrize(
    ("name", "allowed", "refused"),
    [
        ("report", ["worker", "clerk", "lead", "dispatcher"], ["handler", "head", "leader"]),
        ("intake", ["clerk", "lead", "dispatcher"], ["worker", "handler", "leader"]),
        ("tasks", ["worker", "handler", "lead", "leader", "clerk"], []),
    ],
)
def test_each_page_opens_for_its_roles_and_refuses_the_others(world, name, allowed, refused):
    url = reverse(f"cases:{name}")
    for username in allowed:
        assert client_for(world[username]).get(url).status_code == 200, username
    for username in refused:
        before = denied_entries()
        assert client_for(world[username]).get(url).status_code == 403, username
        assert denied_entries() == before + 1


def test_someone_without_a_case_role_is_refused_every_list(world):
    nobody = User.objects.create_user(username="nobody")
    client = client_for(nobody)
    for name in ("report", "intake", "tasks"):
        assert client.get(reverse(f"cases:{name}")).status_code == 403


def test_the_navigation_flags_follow_the_roles(world):
    assert views.nav_flags(world["worker"]) == {"report": True, "intake": False, "tasks": True}
    assert views.nav_flags(world["clerk"]) == {"report": True, "intake": True, "tasks": True}
    assert views.nav_flags(world["handler"]) == {"report": False, "intake": False, "tasks": True}
    assert views.nav_flags(User.objects.create_user(username="nobody")) == {
        "report": False,
        "intake": False,
        "tasks": False,
    }


def test_every_workflow_action_has_a_label():
    for action in workflow.all_actions() | {"report", "overdue"}:
        assert action in views.ACTION_LABELS, action
        assert views.action_label(action) != action
    with translation.override("zh-hans"):
        assert str(views.ACTION_LABELS[Action.FILE])  # translatable, never empty


# --- the report form -----------------------------------------------------------------------


def test_the_report_form_shows_its_fields_by_role(world):
    page = client_for(world["worker"]).get(reverse("cases:report")).content.decode()
    assert 'id="report-form"' in page and 'data-action="report"' in page
    assert 'name="photos"' in page and 'accept="image/*"' in page and "capture=" in page
    assert 'data-action="locate"' in page and 'id="report-map"' in page
    assert 'name="source"' not in page and 'name="reporter_phone"' not in page
    # The classes come in two levels, with their filing criteria for the script.
    assert 'id="id_major"' in page and 'id="category-data"' in page
    assert world.garbage.filing_criteria[:10] in page

    clerk_page = client_for(world["clerk"]).get(reverse("cases:report")).content.decode()
    assert 'name="source"' in clerk_page and 'name="reporter_phone"' in clerk_page
    assert 'value="hotline"' in clerk_page


def test_a_grid_worker_reports_and_lands_on_the_case(world):
    response = client_for(world["worker"]).post(reverse("cases:report"), report_data(world))
    assert response.status_code == 302
    case = Case.objects.get()
    assert response["Location"] == detail_url(case)
    assert case.state == S.REPORTED and case.source == Source.GRID_WORKER
    assert case.reporter == world["worker"] and case.area == world.grid
    assert case.address == "建国门外大街 1 号"
    page = client_for(world["worker"]).get(response["Location"]).content.decode()
    assert case.number in page and "路边有一堆垃圾" in page


def test_a_clerk_records_a_hotline_call_with_the_callers_contact(world):
    data = report_data(
        world,
        source="hotline",
        reporter_name="张三",
        reporter_phone="13912345678",
        reporter_email="zhang@example.com",
        urgency="urgent",
    )
    response = client_for(world["clerk"]).post(reverse("cases:report"), data)
    assert response.status_code == 302
    case = Case.objects.get()
    assert case.source == Source.HOTLINE and case.urgency == "urgent"
    assert case.reporter_phone == "13912345678" and case.reporter is None
    # The contact never shows on the case's page itself.
    page = client_for(world["clerk"]).get(detail_url(case)).content.decode()
    assert "13912345678" not in page and "张三" not in page


def test_a_grid_worker_cannot_choose_the_source_or_a_callers_contact(world):
    data = report_data(world, source="hotline", reporter_phone="13912345678")
    client_for(world["worker"]).post(reverse("cases:report"), data)
    case = Case.objects.get()
    assert case.source == Source.GRID_WORKER and case.reporter_phone == ""


def test_a_retried_report_creates_one_case(world):
    client = client_for(world["worker"])
    data = report_data(world, idempotency_key="form-key-1")
    first = client.post(reverse("cases:report"), data)
    again = client.post(reverse("cases:report"), data)
    assert first.status_code == again.status_code == 302
    assert first["Location"] == again["Location"]
    assert Case.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"description": "  "}, "description"),
        ({"category": "abc"}, "category"),
        ({"category": "999999"}, "category"),
        ({"lat": "north"}, "lat"),
        ({"lat": "", "lng": ""}, "lat"),
        ({"lat": "123"}, "lat"),
        ({"urgency": "whenever"}, "urgency"),
    ],
)
def test_bad_report_input_shows_field_errors(world, change, field):
    data = report_data(world, **change)
    response = client_for(world["worker"]).post(reverse("cases:report"), data)
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert f'id="id_{field}-error"' in response.content.decode()
    assert Case.objects.count() == 0


def test_a_major_class_is_not_enough(world):
    data = report_data(world, category=str(world.garbage.parent_id))
    response = client_for(world["worker"]).post(reverse("cases:report"), data)
    assert response.status_code == 400
    assert "category" in response.context["form"].errors


def test_a_point_outside_every_grid_is_a_field_error(world):
    data = report_data(world, lat="10.0", lng="10.0")
    response = client_for(world["worker"]).post(reverse("cases:report"), data)
    assert response.status_code == 400
    assert "outside every grid" in " ".join(response.context["form"].errors["lat"])
    assert Case.objects.count() == 0


def test_a_point_in_a_grid_one_does_not_serve_is_refused_on_the_form(world):
    data = report_data(world, lat=str(OTHER_GRID_POINT[0]), lng=str(OTHER_GRID_POINT[1]))
    before = denied_entries()
    response = client_for(world["worker"]).post(reverse("cases:report"), data)
    assert response.status_code == 403
    assert "lat" in response.context["form"].errors
    assert Case.objects.count() == 0
    assert denied_entries() == before + 1


def test_a_bad_e_mail_of_the_caller_is_a_field_error(world):
    data = report_data(world, source="hotline", reporter_email="not-an-address")
    response = client_for(world["clerk"]).post(reverse("cases:report"), data)
    assert response.status_code == 400
    assert "reporter_email" in response.context["form"].errors


def test_a_report_carries_its_photos(world):
    data = report_data(world, photos=[jpeg(), jpeg((10, 200, 10), "second.jpg")])
    response = client_for(world["worker"]).post(reverse("cases:report"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    case = Case.objects.get()
    photos = list(CasePhoto.objects.filter(case=case))
    assert len(photos) == 2 and {p.action for p in photos} == {"report"}
    assert all(p.event_id is not None for p in photos)
    page = client_for(world["worker"]).get(detail_url(case)).content.decode()
    for photo in photos:
        assert reverse("cases:photo", args=[photo.pk, "thumb"]) in page
        assert reverse("cases:photo", args=[photo.pk, "full"]) in page


def test_too_many_photos_or_a_file_that_is_no_image_is_a_field_error(world):
    client = client_for(world["worker"])
    many = [jpeg(name=f"p{i}.jpg") for i in range(workflow.MAX_PHOTOS + 1)]
    response = client.post(reverse("cases:report"), report_data(world, photos=many))
    assert response.status_code == 400
    assert "photos" in response.context["form"].errors

    text = SimpleUploadedFile("notes.jpg", b"just some text", content_type="image/jpeg")
    response = client.post(reverse("cases:report"), report_data(world, photos=[text]))
    assert response.status_code == 400
    assert "photos" in response.context["form"].errors
    assert Case.objects.count() == 0


# --- the intake queue --------------------------------------------------------------------


def test_the_intake_queue_lists_waiting_cases_supervised_urgent_and_oldest_first(world):
    old = report(world, description="旧的")
    urgent = report(world, description="紧急", urgency="urgent")
    filed = act(Action.FILE, report(world, description="已立案"), world["lead"])
    supervised = act(Action.SUPERVISE, report(world, description="督办的"), world["leader"])
    verifying = act(Action.VERIFY_REQUEST, report(world, description="核实中"), world["clerk"])

    response = client_for(world["clerk"]).get(reverse("cases:intake"))
    assert response.status_code == 200
    numbers = [c.number for c in response.context["cases"]]
    assert filed.number not in numbers
    assert numbers == [supervised.number, urgent.number, old.number, verifying.number]
    page = response.content.decode()
    assert f'data-case="{supervised.number}"' in page and "data-supervised" in page
    # Four more reports of the same class at the same point: each may duplicate the others.
    assert response.context["cases"][1].duplicate_count == 4


def test_the_intake_queue_stays_inside_the_users_areas(world):
    mine = report(world)
    other = report(world, actor=world["far_worker"], point=OTHER_GRID_POINT)
    # The street's clerk sees both communities; the other street's dispatcher neither.
    clerk = client_for(world["clerk"]).get(reverse("cases:intake")).context["cases"]
    assert {c.number for c in clerk} == {mine.number, other.number}
    far = client_for(world["far_dispatcher"]).get(reverse("cases:intake"))
    assert far.status_code == 200 and list(far.context["cases"]) == []
    assert mine.number not in far.content.decode()


def test_the_intake_queue_pages_are_bounded(world, monkeypatch):
    monkeypatch.setattr(views, "INTAKE_PAGE_SIZE", 2)
    for i in range(5):
        report(world, description=f"第{i}个")
    client = client_for(world["clerk"])
    first = client.get(reverse("cases:intake"))
    assert len(first.context["cases"]) == 2 and first.context["has_next"]
    last = client.get(reverse("cases:intake") + "?page=3")
    assert len(last.context["cases"]) == 1 and not last.context["has_next"]
    assert client.get(reverse("cases:intake") + "?page=oops").status_code == 200


def test_the_intake_queue_costs_the_same_queries_for_few_or_many_cases(
    world, django_assert_max_num_queries
):
    client = client_for(world["clerk"])
    report(world)
    with django_assert_max_num_queries(12) as few:
        client.get(reverse("cases:intake"))
    for i in range(12):
        report(world, description=f"第{i}个", urgency="urgent" if i % 2 else "normal")
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(reverse("cases:intake"))
    assert len(response.context["cases"]) == 13


# --- my tasks ----------------------------------------------------------------------------


def test_a_grid_worker_sees_the_cases_to_verify_and_check_and_her_notices(world):
    to_verify = act(Action.VERIFY_REQUEST, report(world), world["clerk"])
    handled = act(Action.FILE, report(world), world["lead"])
    handled = act(Action.DISPATCH, handled, world["dispatcher"], department=world.sanitation)
    handled = act(Action.ACCEPT, handled, world["handler"])
    handled = act(Action.HANDLE, handled, world["handler"])
    assert handled.assignee == world["worker"]

    response = client_for(world["worker"]).get(reverse("cases:tasks"))
    lists = {t.key: [c.number for c in t.cases] for t in response.context["lists"]}
    assert lists["verify"] == [to_verify.number] and lists["check"] == [handled.number]
    assert "department" not in lists and "close" not in lists
    notices = response.context["notices"]
    assert {n.case.number for n in notices} == {to_verify.number, handled.number}
    assert 'data-action="mark-read"' in response.content.decode()
    # Another grid's worker has nothing of it.
    far = client_for(world["far_worker"]).get(reverse("cases:tasks"))
    assert all(not t.cases for t in far.context["lists"]) and not far.context["notices"]


def test_marking_a_notice_read_takes_it_off_the_list(world):
    act(Action.VERIFY_REQUEST, report(world), world["clerk"])
    notice = CaseNotice.objects.get(recipient=world["worker"])
    client = client_for(world["worker"])
    response = client.post(reverse("cases:tasks"), {"notice": notice.pk}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response.content == b""
    assert CaseNotice.objects.get(pk=notice.pk).read_at is not None
    assert not client.get(reverse("cases:tasks")).context["notices"]
    # Without htmx the page comes back; someone else's notice is not there to mark.
    assert client.post(reverse("cases:tasks"), {"notice": notice.pk}).status_code == 302
    other = client_for(world["clerk"]).post(reverse("cases:tasks"), {"notice": notice.pk})
    assert other.status_code == 404
    assert client.post(reverse("cases:tasks"), {"notice": "x"}).status_code == 400


def test_the_department_sees_its_cases_to_sign_for_and_handle(world):
    case = act(Action.FILE, report(world), world["lead"])
    case = act(Action.DISPATCH, case, world["dispatcher"], department=world.sanitation)
    for username in ("handler", "head"):
        response = client_for(world[username]).get(reverse("cases:tasks"))
        lists = {t.key: [c.number for c in t.cases] for t in response.context["lists"]}
        assert lists["department"] == [case.number], username
    parks = client_for(world["parks_handler"]).get(reverse("cases:tasks"))
    lists = {t.key: t.cases for t in parks.context["lists"]}
    assert lists["department"] == []


def test_the_shift_lead_sees_cases_to_close_and_requests_for_more_time(world):
    closing = act(Action.FILE, report(world), world["lead"])
    closing = act(Action.DISPATCH, closing, world["dispatcher"], department=world.sanitation)
    closing = act(Action.ACCEPT, closing, world["handler"])
    closing = act(Action.HANDLE, closing, world["handler"])
    closing = act(Action.CHECK_PASS, closing, world["worker"])
    waiting = act(Action.FILE, report(world), world["lead"])
    waiting = act(Action.DISPATCH, waiting, world["dispatcher"], department=world.sanitation)
    until = (waiting.step_deadline or timezone.now()) + timezone.timedelta(days=3)
    waiting = act(Action.POSTPONE_REQUEST, waiting, world["handler"], note="缺材料", until=until)

    response = client_for(world["lead"]).get(reverse("cases:tasks"))
    lists = {t.key: [c.number for c in t.cases] for t in response.context["lists"]}
    assert lists["close"] == [closing.number]
    assert lists["postpone"] == [waiting.number]


def test_the_leader_sees_supervised_cases_first_and_marked(world):
    plain = act(Action.FILE, report(world), world["lead"])
    plain = Case.objects.filter(pk=plain.pk)
    plain.update(step_deadline=timezone.now() - timezone.timedelta(hours=1))
    supervised = act(Action.SUPERVISE, report(world), world["leader"])
    response = client_for(world["leader"]).get(reverse("cases:tasks"))
    lists = {t.key: [c.number for c in t.cases] for t in response.context["lists"]}
    assert lists["supervise"] == [supervised.number, plain.get().number]
    page = response.content.decode()
    assert page.index(supervised.number) < page.index(plain.get().number)
    assert "data-supervised" in page


def test_my_tasks_costs_a_bounded_number_of_queries(world, django_assert_max_num_queries):
    for _ in range(6):
        act(Action.SUPERVISE, report(world), world["leader"])
    client = client_for(world["lead"])
    with django_assert_max_num_queries(14):
        response = client.get(reverse("cases:tasks"))
    assert response.status_code == 200


# --- one case ------------------------------------------------------------------------------


def test_the_case_page_shows_the_case_and_its_timeline(world):
    case = act(Action.FILE, report(world, address="东门"), world["lead"], note="符合立案标准")
    response = client_for(world["lead"]).get(detail_url(case))
    assert response.status_code == 200
    page = response.content.decode()
    assert case.number in page and "东门" in page and world.grid.code in page
    assert world.garbage.filing_criteria[:10] in page
    assert 'id="case-map"' in page and 'id="case-map-config"' in page
    assert 'data-event="report"' in page and 'data-event="file"' in page
    assert "符合立案标准" in page and "lead" in page
    assert 'data-field="rework-count"' in page
    # Deadlines in local time (Asia/Shanghai).
    local = timezone.localtime(case.step_deadline).strftime("%Y-%m-%d %H:%M")
    assert local in page


def test_a_case_outside_ones_areas_is_not_found(world):
    other = report(world, actor=world["far_worker"], point=OTHER_GRID_POINT)
    mine = report(world)
    worker = client_for(world["worker"])
    assert worker.get(detail_url(other)).status_code == 404
    assert worker.get(reverse("cases:detail", args=["E0101209912310001"])).status_code == 404
    assert worker.get(reverse("cases:contact", args=[other.number])).status_code == 404
    far = client_for(world["far_worker"])
    assert far.get(detail_url(mine)).status_code == 404
    response = far.post(act_url(mine, Action.ESCALATE), {"version": mine.version})
    assert response.status_code == 404
    assert refreshed(mine).state == S.REPORTED


def test_only_the_actions_the_user_may_take_are_offered(world):
    case = report(world)
    lead = client_for(world["lead"]).get(detail_url(case)).content.decode()
    for action in (Action.FILE, Action.VOID, Action.MERGE, Action.VERIFY_REQUEST):
        assert f'id="action-{action}"' in lead and f'data-action="{action}"' in lead
    assert f'id="action-{Action.HANDLE_ON_SPOT}"' not in lead

    worker = client_for(world["worker"]).get(detail_url(case)).content.decode()
    assert f'id="action-{Action.HANDLE_ON_SPOT}"' in worker
    assert f'id="action-{Action.FILE}"' not in worker and 'id="action-void"' not in worker

    handler = client_for(world["handler"]).get(detail_url(case)).content.decode()
    assert 'id="no-actions"' in handler and '<form id="action-' not in handler


def test_a_reason_is_asked_for_where_the_workflow_needs_one(world):
    case = report(world)
    page = client_for(world["lead"]).get(detail_url(case)).content.decode()
    void_form = page[page.index('id="action-void"') :]
    void_form = void_form[: void_form.index("</form>")]
    assert "Reason" in void_form and 'name="version"' in void_form
    assert f'value="{case.version}"' in void_form


def test_the_dispatch_form_offers_the_departments_serving_the_area_routed_one_chosen(world):
    from cases.models import RoutingRule

    RoutingRule.objects.create(
        category=world.garbage, area=world.city.district, department=world.sanitation
    )
    case = act(Action.FILE, report(world), world["lead"])
    response = client_for(world["dispatcher"]).get(detail_url(case))
    form = next(a["form"] for a in response.context["actions"] if a["name"] == Action.DISPATCH)
    choices = [value for value, _label in form.fields["department"].choices if value]
    assert set(choices) == {str(world.sanitation.pk), str(world.parks.pk)}
    assert form.initial["department"] == str(world.sanitation.pk)


def test_an_action_moves_the_case_and_comes_back_to_it(world):
    case = report(world)
    client = client_for(world["lead"])
    response = client.post(act_url(case, Action.FILE), {"version": case.version, "note": "立案"})
    assert response.status_code == 302 and response["Location"] == detail_url(case)
    case = refreshed(case)
    assert case.state == S.FILED and case.version == 2
    page = client.get(detail_url(case)).content.decode()
    assert "立案" in page and 'data-state="filed"' in page

    # With htmx the page is told where to go.
    dispatcher = client_for(world["dispatcher"])
    response = dispatcher.post(
        act_url(case, Action.DISPATCH),
        {"version": case.version, "department": world.sanitation.pk},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET=f"action-{Action.DISPATCH}",
    )
    assert response.status_code == 200 and response["HX-Redirect"] == detail_url(case)
    assert refreshed(case).state == S.DISPATCHED and refreshed(case).department == world.sanitation


def test_a_form_from_another_page_may_name_where_to_go_next(world):
    case = act(Action.FILE, report(world), world["lead"])
    console = reverse("cases:console") + "?state=filed"
    response = client_for(world["dispatcher"]).post(
        act_url(case, Action.DISPATCH),
        {"version": case.version, "department": world.sanitation.pk, "next": console},
    )
    assert response.status_code == 302 and response["Location"] == console
    # Never off the site.
    case = refreshed(case)
    response = client_for(world["dispatcher"]).post(
        act_url(case, Action.DISPATCH),
        {"version": case.version, "department": world.parks.pk, "next": "https://evil.example/"},
    )
    assert response.status_code == 302 and response["Location"] == detail_url(case)


def test_a_stale_version_answers_409_with_a_reload_link(world):
    case = report(world)
    stale = case.version
    act(Action.FILE, case, world["lead"])
    client = client_for(world["lead"])
    response = client.post(act_url(case, Action.VOID), {"version": stale, "note": "重复"})
    assert response.status_code == 409
    page = response.content.decode()
    assert "changed meanwhile" in page and 'data-action="reload"' in page
    assert refreshed(case).state == S.FILED

    response = client.post(
        act_url(case, Action.VOID),
        {"version": stale, "note": "重复"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="action-void",
    )
    assert response.status_code == 409
    assert 'id="conflict"' in response.content.decode() and "<html" not in response.content.decode()


def test_bad_action_input_shows_the_form_again_with_its_errors(world):
    case = report(world)
    client = client_for(world["lead"])
    # No reason for a void.
    response = client.post(act_url(case, Action.VOID), {"version": case.version, "note": ""})
    assert response.status_code == 400
    assert (
        "note" in response.content.decode()
        and 'id="id_void_note-error"' in response.content.decode()
    )
    # The same through htmx: only the form comes back.
    response = client.post(
        act_url(case, Action.VOID),
        {"version": case.version},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="action-void",
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert body.lstrip().startswith('<form id="action-void"') and "id_void_note-error" in body
    # No version, a version that is no number, a merge into nothing.
    assert client.post(act_url(case, Action.FILE), {}).status_code == 400
    assert client.post(act_url(case, Action.FILE), {"version": "x"}).status_code == 400
    response = client.post(
        act_url(case, Action.MERGE), {"version": case.version, "merge_into": "E0000"}
    )
    assert response.status_code == 400
    assert refreshed(case).state == S.REPORTED and refreshed(case).version == case.version


def test_a_services_refusal_lands_on_the_form(world):
    case = act(Action.FILE, report(world), world["lead"])
    case = act(Action.DISPATCH, case, world["dispatcher"], department=world.sanitation)
    # A postponement must end after the current deadline.
    response = client_for(world["handler"]).post(
        act_url(case, Action.POSTPONE_REQUEST),
        {"version": case.version, "note": "缺材料", "until": "2000-01-01T09:00"},
    )
    assert response.status_code == 400
    assert "until" in response.context["actions"][-1]["form"].errors or any(
        "until" in a["form"].errors for a in response.context["actions"]
    )
    assert refreshed(case).postpone_until is None


def test_merging_into_a_duplicate_by_its_number(world):
    first = report(world)
    second = report(world)
    page = client_for(world["clerk"]).get(detail_url(second)).content.decode()
    assert 'id="case-duplicates"' in page and f'data-duplicate="{first.number}"' in page
    response = client_for(world["clerk"]).post(
        act_url(second, Action.MERGE), {"version": second.version, "merge_into": first.number}
    )
    assert response.status_code == 302
    assert refreshed(second).state == S.MERGED and refreshed(second).merged_into == first


def test_an_action_without_the_role_is_403_and_an_unknown_one_404(world):
    case = report(world)
    worker = client_for(world["worker"])
    before = denied_entries()
    response = worker.post(act_url(case, Action.FILE), {"version": case.version})
    assert response.status_code == 403 and denied_entries() == before + 1
    assert worker.post(act_url(case, "launch"), {"version": case.version}).status_code == 404
    assert worker.get(act_url(case, Action.ESCALATE)).status_code == 405
    assert refreshed(case).state == S.REPORTED


def test_photos_of_a_step_come_with_its_action(world):
    case = act(Action.FILE, report(world), world["lead"])
    case = act(Action.DISPATCH, case, world["dispatcher"], department=world.sanitation)
    case = act(Action.ACCEPT, case, world["handler"])
    response = client_for(world["handler"]).post(
        act_url(case, Action.HANDLE),
        {"version": case.version, "note": "已清理", "photos": [jpeg()]},
    )
    assert response.status_code == 302
    photo = CasePhoto.objects.get(case=case)
    assert photo.action == Action.HANDLE
    page = client_for(world["lead"]).get(detail_url(case)).content.decode()
    assert 'data-photos="handle"' in page
    assert reverse("cases:photo", args=[photo.pk, "thumb"]) in page


def test_the_case_page_costs_a_bounded_number_of_queries(world, django_assert_max_num_queries):
    case = act(Action.FILE, report(world), world["lead"])
    for i in range(5):
        report(world, description=f"重复{i}")
    dispatcher, clerk = client_for(world["dispatcher"]), client_for(world["clerk"])
    with django_assert_max_num_queries(25):
        response = dispatcher.get(detail_url(case))
    assert response.status_code == 200
    # A report awaiting intake, with its duplicates, its photos and a long timeline.
    waiting = report(world, photos=[jpeg(), jpeg()])
    for _ in range(5):
        waiting = act(Action.SUPERVISE, waiting, world["leader"])
    with django_assert_max_num_queries(30):
        response = clerk.get(detail_url(waiting))
    assert response.status_code == 200 and len(response.context["duplicates"]) == 6


# --- the reporter's contact ------------------------------------------------------------------


def test_the_reporters_contact_is_shown_on_request_and_audited(world):
    case = report(world, actor=world["clerk"], source="hotline", reporter_phone="13912345678")
    client = client_for(world["clerk"])
    page = client.get(detail_url(case)).content.decode()
    assert 'data-action="show-contact"' in page and "13912345678" not in page
    before = AuditEntry.objects.filter(action="personal_data_view").count()
    response = client.get(reverse("cases:contact", args=[case.number]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "13912345678" in response.content.decode()
    entry = AuditEntry.objects.filter(action="personal_data_view").latest("pk")
    assert AuditEntry.objects.filter(action="personal_data_view").count() == before + 1
    assert entry.actor_username == "clerk" and entry.object_repr == case.number
    assert "reporter_phone" in entry.detail["fields"] and entry.purpose
    # Without htmx: a page of its own, audited again.
    full = client.get(reverse("cases:contact", args=[case.number]))
    assert full.status_code == 200 and "<html" in full.content.decode()
    assert AuditEntry.objects.filter(action="personal_data_view").count() == before + 2


def test_the_department_handling_the_case_may_read_the_contact_others_may_not(world):
    case = report(world, actor=world["clerk"], source="hotline", reporter_phone="13912345678")
    case = act(Action.FILE, case, world["lead"])
    case = act(Action.DISPATCH, case, world["dispatcher"], department=world.sanitation)
    url = reverse("cases:contact", args=[case.number])
    assert client_for(world["handler"]).get(url).status_code == 200
    for username in ("parks_handler", "worker", "dispatcher", "leader"):
        before = denied_entries()
        response = client_for(world[username]).get(url)
        assert response.status_code == 403, username
        assert "13912345678" not in response.content.decode()
        assert denied_entries() == before + 1
    page = client_for(world["worker"]).get(detail_url(case)).content.decode()
    assert 'data-action="show-contact"' not in page


def test_an_erased_contact_says_so_and_reads_nothing(world):
    case = report(world, actor=world["clerk"], source="hotline", reporter_phone="13912345678")
    Case.objects.filter(pk=case.pk).update(
        reporter_phone="", reporter_name="", reporter_purged_at=timezone.now()
    )
    before = AuditEntry.objects.filter(action="personal_data_view").count()
    response = client_for(world["clerk"]).get(
        reverse("cases:contact", args=[case.number]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and 'data-contact="erased"' in response.content.decode()
    assert AuditEntry.objects.filter(action="personal_data_view").count() == before


def test_duplicates_and_their_counts_name_only_cases_one_may_see(world):
    # Two reports 17 m apart on either side of the border of grids 1 and 2.
    mine = report(world, point=(39.91, 116.4099))
    across = report(world, actor=world["clerk"], point=(39.91, 116.4101))
    assert across.area != mine.area
    worker = client_for(world["worker"]).get(detail_url(mine))
    assert worker.context["duplicates"] == []
    assert across.number not in worker.content.decode()
    clerk = client_for(world["clerk"]).get(detail_url(mine))
    assert [d.number for d in clerk.context["duplicates"]] == [across.number]
    queue = client_for(world["clerk"]).get(reverse("cases:intake")).context["cases"]
    assert {c.number: c.duplicate_count for c in queue} == {mine.number: 1, across.number: 1}


def test_the_pages_speak_chinese_with_the_chinese_names(world, settings):
    settings.LANGUAGE_CODE = "zh-hans"
    case = report(world)
    with translation.override("zh-hans"):
        client = client_for(world["lead"])
        page = client.get(detail_url(case), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
        assert world.grid.name in page and world.garbage.name in page
        for name in ("report", "intake", "tasks"):
            response = client.get(reverse(f"cases:{name}"), HTTP_ACCEPT_LANGUAGE="zh-hans")
            assert response.status_code == 200


def test_a_verification_names_one_of_the_grids_workers(world):
    case = report(world)
    client = client_for(world["clerk"])
    page = client.get(detail_url(case))
    form = next(a["form"] for a in page.context["actions"] if a["name"] == Action.VERIFY_REQUEST)
    assert [v for v, _label in form.fields["assignee"].choices] == ["", "worker"]
    bad = client.post(
        act_url(case, Action.VERIFY_REQUEST), {"version": case.version, "assignee": "far_worker"}
    )
    assert bad.status_code == 400 and refreshed(case).state == S.REPORTED
    good = client.post(
        act_url(case, Action.VERIFY_REQUEST), {"version": case.version, "assignee": "worker"}
    )
    assert good.status_code == 302
    case = refreshed(case)
    assert case.state == S.VERIFYING and case.assignee == world["worker"]
    timeline = client.get(detail_url(case)).content.decode()
    assert "Grid worker: worker" in timeline
