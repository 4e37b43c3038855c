import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation

from accounts.models import AuditEntry, Department, Membership, Role, User
from accounts.testing import verified_login
from core.models import Dictionary, DictionaryItem
from core.services import setting_get

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english(settings):
    # Messages are compared in English, the source language of the catalogue.
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


# Every page, with the permission that opens it (GET).
PAGES = [
    ("system:index", {}, "accounts.view_user"),
    ("system:user_list", {}, "accounts.view_user"),
    ("system:user_add", {}, "accounts.add_user"),
    ("system:user_import", {}, "accounts.import_user"),
    ("system:user_detail", {"pk": "member"}, "accounts.view_user"),
    ("system:user_edit", {"pk": "member"}, "accounts.change_user"),
    ("system:user_password", {"pk": "member"}, "accounts.change_user"),
    ("system:user_deactivate", {"pk": "member"}, "accounts.change_user"),
    ("system:membership_add", {"user_pk": "member"}, "accounts.add_membership"),
    ("system:membership_edit", {"pk": "membership"}, "accounts.change_membership"),
    ("system:membership_deactivate", {"pk": "membership"}, "accounts.change_membership"),
    ("system:membership_delete", {"pk": "membership"}, "accounts.delete_membership"),
    ("system:role_list", {}, "accounts.view_role"),
    ("system:role_add", {}, "accounts.add_role"),
    ("system:role_edit", {"pk": "role"}, "accounts.change_role"),
    ("system:department_list", {}, "accounts.view_department"),
    ("system:department_add", {}, "accounts.add_department"),
    ("system:department_edit", {"pk": "department"}, "accounts.change_department"),
    ("system:dictionary_list", {}, "core.view_dictionary"),
    ("system:dictionary_add", {}, "core.add_dictionary"),
    ("system:dictionary_detail", {"pk": "dictionary"}, "core.view_dictionary"),
    ("system:dictionary_edit", {"pk": "dictionary"}, "core.change_dictionary"),
    ("system:dictionary_delete", {"pk": "dictionary"}, "core.delete_dictionary"),
    ("system:dictionary_item_edit", {"item_pk": "item"}, "core.change_dictionaryitem"),
    ("system:settings", {}, "core.view_systemsetting"),
]


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def perms(*keys):
    found = []
    for key in keys:
        app_label, codename = key.split(".", 1)
        found.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return found


def staff(username, area, *keys, role_code=None):
    """A user whose role (not called admin, so no two-factor step) grants ``keys``."""
    role = Role.objects.create(code=role_code or f"t-{username}", name=username)
    role.permissions.set(perms(*keys))
    user = User.objects.create_user(username=username)
    Membership.objects.create(user=user, role=role, area=area)
    return user


@pytest.fixture
def world(small_city):
    worker = Role.objects.create(code="t-worker", name="网格员")
    member = User.objects.create_user(
        username="member", display_name="成员", email="member@example.org", phone="13912345678"
    )
    membership = Membership.objects.create(user=member, role=worker, area=small_city.grids[0])
    department = Department.objects.create(code="HW", name="环卫所", area=small_city.street)
    dictionary = Dictionary.objects.create(code="urgency", name="紧急程度")
    item = DictionaryItem.objects.create(dictionary=dictionary, code="normal", label="一般")
    return {
        "city": small_city,
        "member": member,
        "membership": membership,
        "role": worker,
        "department": department,
        "dictionary": dictionary,
        "item": item,
    }


def url_for(name, kwargs, world):
    return reverse(name, kwargs={k: world[v].pk for k, v in kwargs.items()})


@pytest.fixture
def superuser_client(client, db):
    root = User.objects.create_superuser(username="root", password=None)
    return verified_login(client, root)


def test_anonymous_is_sent_to_sign_in(client, world):
    response = client.get(reverse("system:user_list"))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


@pytest.mark.parametrize("name, kwargs, permission", PAGES)
def test_pages_refuse_users_without_the_permission(client, world, name, kwargs, permission):
    # Holds every other page's permission, but not this one.
    others = {p for _n, _k, p in PAGES if p != permission}
    user = staff("someone", world["city"].district, *sorted(others))
    client.force_login(user)
    if name == "system:index":
        # The index opens with any section; without all of them it is refused.
        Membership.objects.filter(user=user).delete()
    response = client.get(url_for(name, kwargs, world))
    assert response.status_code == 403
    assert AuditEntry.objects.filter(action="permission_denied", actor_id=user.pk).exists()


@pytest.mark.parametrize("name, kwargs, permission", PAGES)
def test_pages_open_with_the_permission(client, world, name, kwargs, permission):
    keys = {permission, "accounts.view_user", "accounts.view_department"}
    if name.startswith("system:membership"):
        # Managing a membership means holding the role's permissions too (none here).
        keys.add("accounts.view_user")
    client.force_login(staff("someone", world["city"].district, *sorted(keys)))
    response = client.get(url_for(name, kwargs, world))
    assert response.status_code == 200, response.content[:500]
    assert b'class="sys"' in response.content


@pytest.mark.parametrize("name, kwargs, permission", PAGES)
def test_superuser_opens_every_page(superuser_client, world, name, kwargs, permission):
    response = superuser_client.get(url_for(name, kwargs, world))
    assert response.status_code == 200


def test_objects_outside_the_scope_are_absent(client, world):
    city = world["city"]
    keys = ("accounts.view_user", "accounts.change_user", "accounts.change_membership")
    client.force_login(staff("local", city.communities[1], *keys))
    member = world["member"]  # holds a membership in community 1's first grid
    assert client.get(reverse("system:user_detail", args=[member.pk])).status_code == 404
    assert client.get(reverse("system:user_edit", args=[member.pk])).status_code == 404
    membership_url = reverse("system:membership_edit", args=[world["membership"].pk])
    assert client.get(membership_url).status_code == 404
    listing = client.get(reverse("system:user_list")).content.decode()
    assert "member" not in listing
    assert "local" in listing


def test_user_list_filters_in_place_with_htmx(client, world):
    client.force_login(staff("viewer", world["city"].district, "accounts.view_user"))
    url = reverse("system:user_list")
    full = client.get(url, {"q": "memb"})
    assert b"<nav" in full.content and b"member" in full.content
    partial = client.get(url, {"q": "nobody-matches"}, HTTP_HX_REQUEST="true")
    body = partial.content.decode()
    assert body.lstrip().startswith('<div id="object-table">')
    assert "member" not in body
    by_area = client.get(url, {"area": world["city"].communities[1].code}).content.decode()
    assert ">member<" not in by_area
    by_role = client.get(url, {"role": world["role"].pk}).content.decode()
    assert ">member<" in by_role


def test_create_user_then_give_a_membership(superuser_client, world):
    response = superuser_client.post(
        reverse("system:user_add"),
        {"username": "new.one", "display_name": "新人", "email": "", "phone": ""},
    )
    user = User.objects.get(username="new.one")
    assert response.status_code == 302
    assert response["Location"] == reverse("system:user_detail", args=[user.pk])
    assert not user.has_usable_password()
    response = superuser_client.post(
        reverse("system:membership_add", args=[user.pk]),
        {"role": world["role"].pk, "area": world["city"].street.code, "department": ""},
    )
    assert response.status_code == 302
    assert user.memberships.get().area == world["city"].street
    assert AuditEntry.objects.filter(
        action="membership.create", object_id=str(user.memberships.get().pk)
    ).exists()


def test_create_user_shows_service_errors_on_the_form(superuser_client, world):
    response = superuser_client.post(
        reverse("system:user_add"),
        {"username": "MEMBER", "password1": "short", "password2": "short"},
    )
    assert response.status_code == 400
    assert not User.objects.filter(username="MEMBER").exists()
    response = superuser_client.post(reverse("system:user_add"), {"username": "MEMBER"})
    assert response.status_code == 400
    assert "username" in response.context["form"].errors


def test_membership_needing_a_department_is_refused_on_the_form(superuser_client, world):
    Role.objects.create(code="t-handler", name="处置", needs_department=True)
    response = superuser_client.post(
        reverse("system:membership_add", args=[world["member"].pk]),
        {
            "role": Role.objects.get(code="t-handler").pk,
            "area": world["city"].street.code,
            "department": "",
        },
    )
    assert response.status_code == 400
    assert "needs a department" in response.content.decode()
    response = superuser_client.post(
        reverse("system:membership_add", args=[world["member"].pk]),
        {"role": world["role"].pk, "area": "000", "department": ""},
    )
    assert response.status_code == 400
    assert "No area has this code" in response.content.decode()


def test_scoped_admin_cannot_create_a_department_outside_her_area(client, world):
    city = world["city"]
    keys = ("accounts.view_department", "accounts.add_department")
    client.force_login(staff("local", city.communities[0], *keys))
    response = client.post(
        reverse("system:department_add"),
        {"code": "FAR", "name": "far", "kind": "bureau", "area": city.communities[1].code},
    )
    assert response.status_code == 400
    assert not Department.objects.filter(code="FAR").exists()
    response = client.post(
        reverse("system:department_add"),
        {"code": "NEAR", "name": "near", "kind": "workstation", "area": city.communities[0].code},
    )
    assert response.status_code == 302
    assert Department.objects.filter(code="NEAR").exists()


def test_role_page_groups_translated_permissions_and_saves_them(superuser_client, world):
    url = reverse("system:role_edit", args=[world["role"].pk])
    with_en = superuser_client.get(url, HTTP_ACCEPT_LANGUAGE="en")
    page = with_en.content.decode()
    assert 'value="accounts.import_user"' in page
    assert "<fieldset>" in page
    response = superuser_client.post(
        url,
        {
            "code": "t-worker",
            "name": "网格员",
            "permissions": ["geo.view_area", "accounts.view_user"],
        },
    )
    assert response.status_code == 302
    assert sorted(p.codename for p in world["role"].permissions.all()) == ["view_area", "view_user"]
    entry = AuditEntry.objects.get(action="role.update")
    assert entry.after["permissions"] == ["accounts.view_user", "geo.view_area"]


def test_builtin_role_code_field_is_locked(superuser_client, world):
    role = Role.objects.create(code="t-fixed", name="fixed", is_builtin=True)
    response = superuser_client.post(
        reverse("system:role_edit", args=[role.pk]),
        {"code": "renamed", "name": "Fixed"},
    )
    assert response.status_code == 302
    role.refresh_from_db()
    assert (role.code, role.name) == ("t-fixed", "Fixed")


def test_department_tree_page(superuser_client, world):
    Department.objects.create(
        code="HW-1", name="一组", area=world["city"].communities[0], parent=world["department"]
    )
    page = superuser_client.get(reverse("system:department_list")).content.decode()
    assert page.index("环卫所") < page.index("一组")
    partial = superuser_client.get(
        reverse("system:department_list"), {"q": "一组"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "一组" in partial and "环卫所" not in partial


def test_dictionary_items_are_edited_in_place(superuser_client, world):
    item = world["item"]
    dictionary = world["dictionary"]
    row = superuser_client.get(
        reverse("system:dictionary_item_edit", args=[item.pk]), HTTP_HX_REQUEST="true"
    )
    assert row.content.decode().startswith(f'<tr id="item-{item.pk}">')
    response = superuser_client.post(
        reverse("system:dictionary_item_edit", args=[item.pk]),
        {
            f"item{item.pk}-code": "normal",
            f"item{item.pk}-label": "普通",
            f"item{item.pk}-label_en": "Normal",
            f"item{item.pk}-sort_order": "0",
            f"item{item.pk}-is_active": "on",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert "普通" in response.content.decode()
    item.refresh_from_db()
    assert item.label == "普通"
    response = superuser_client.post(
        reverse("system:dictionary_item_add", args=[dictionary.pk]),
        {"new-code": "urgent", "new-label": "紧急", "new-sort_order": "1", "new-is_active": "on"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert 'id="items"' in response.content.decode()
    assert dictionary.items.filter(code="urgent").exists()
    duplicate = superuser_client.post(
        reverse("system:dictionary_item_add", args=[dictionary.pk]),
        {"new-code": "urgent", "new-label": "again", "new-sort_order": "2"},
        HTTP_HX_REQUEST="true",
    )
    assert dictionary.items.filter(code="urgent").count() == 1
    assert "errorlist" in duplicate.content.decode()
    response = superuser_client.post(
        reverse("system:dictionary_item_delete", args=[item.pk]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and response.content == b""
    assert not DictionaryItem.objects.filter(pk=item.pk).exists()


def test_dictionary_item_add_without_htmx(superuser_client, world):
    dictionary = world["dictionary"]
    response = superuser_client.post(
        reverse("system:dictionary_item_add", args=[dictionary.pk]),
        {"new-code": "low", "new-label": "低", "new-sort_order": "3"},
    )
    assert response.status_code == 302
    item = dictionary.items.get(code="low")
    assert not item.is_active  # an unticked box


def test_settings_page_changes_the_yellow_line(superuser_client, world):
    url = reverse("system:settings")
    page = superuser_client.get(url).content.decode()
    assert "sla.yellow_ratio" in page and "0.8" in page
    data = {
        "sla__yellow_ratio": "0.75",
        "site__name": "CivicGrid",
        "accounts__import_max_rows": "5000",
    }
    response = superuser_client.post(url, data)
    assert response.status_code == 302
    assert setting_get("sla.yellow_ratio") == 0.75
    assert AuditEntry.objects.filter(action="setting.set").count() == 1
    for bad in ("1", "0", "1.2", "-0.1"):
        response = superuser_client.post(url, {**data, "sla__yellow_ratio": bad})
        assert response.status_code == 400
        assert "greater than 0 and less than 1" in response.content.decode()
    assert setting_get("sla.yellow_ratio") == 0.75


def test_settings_can_be_read_but_not_changed_without_the_change_permission(client, world):
    client.force_login(staff("reader", world["city"].district, "core.view_systemsetting"))
    url = reverse("system:settings")
    assert client.get(url).status_code == 200
    response = client.post(url, {"sla__yellow_ratio": "0.5"})
    assert response.status_code == 403
    assert setting_get("sla.yellow_ratio") == 0.8


def upload(content: bytes, name="staff.csv"):
    return SimpleUploadedFile(name, content, content_type="text/csv")


def test_import_page_dry_run_then_confirm(superuser_client, world):
    url = reverse("system:user_import")
    csv = "username,display_name,role,area_code\nnew.one,新人,t-worker,110105001\n".encode()
    response = superuser_client.post(url, {"file": upload(csv)})
    page = response.content.decode()
    assert response.status_code == 200
    assert "new.one" in page and 'name="confirm"' in page
    assert not User.objects.filter(username="new.one").exists()
    token = response.context["token"]
    response = superuser_client.post(url, {"confirm": "1", "token": token})
    assert response.status_code == 200
    assert User.objects.get(username="new.one").memberships.count() == 1
    # The same confirmation cannot be replayed.
    superuser_client.post(url, {"confirm": "1", "token": token})
    assert AuditEntry.objects.filter(action="user.import").count() == 1


def test_import_page_lists_bad_lines_and_offers_no_confirm(superuser_client, world):
    url = reverse("system:user_import")
    csv = b"username,role,area_code\nok,t-worker,110105001\nbad,ghost,110105001\n"
    response = superuser_client.post(url, {"file": upload(csv)})
    page = response.content.decode()
    assert response.status_code == 400
    assert "ghost" in page and 'name="confirm"' not in page
    assert not User.objects.filter(username="ok").exists()


def test_import_page_needs_the_import_permission(client, world):
    client.force_login(staff("adder", world["city"].district, "accounts.add_user"))
    response = client.post(reverse("system:user_import"), {"file": upload(b"username\nx\n")})
    assert response.status_code == 403
    assert not User.objects.filter(username="x").exists()


def test_contact_details_are_masked_until_revealed_with_a_purpose(client, world):
    member = world["member"]
    url = reverse("system:user_detail", args=[member.pk])
    keys = ("accounts.view_user", "accounts.view_personal_data")
    viewer = staff("viewer", world["city"].district, *keys)
    client.force_login(viewer)
    page = client.get(url).content.decode()
    assert "member@example.org" not in page and "13912345678" not in page
    assert "m***@example.org" in page and "139****5678" in page
    listing = client.get(reverse("system:user_list")).content.decode()
    assert "13912345678" not in listing and "139****5678" in listing
    refused = client.post(url, {"purpose": "  "})
    assert refused.status_code == 400
    assert "13912345678" not in refused.content.decode()
    shown = client.post(url, {"purpose": "calling about an overdue case"})
    assert shown.status_code == 200
    assert "13912345678" in shown.content.decode()
    entry = AuditEntry.objects.get(action="personal_data_view")
    assert entry.actor_id == viewer.pk
    assert entry.object_id == str(member.pk)
    assert entry.purpose == "calling about an overdue case"


def test_revealing_contact_details_needs_the_personal_data_permission(client, world):
    client.force_login(staff("viewer", world["city"].district, "accounts.view_user"))
    url = reverse("system:user_detail", args=[world["member"].pk])
    assert 'name="purpose"' not in client.get(url).content.decode()
    response = client.post(url, {"purpose": "curiosity"})
    assert response.status_code == 403
    assert not AuditEntry.objects.filter(action="personal_data_view").exists()


def test_the_edit_form_logs_that_it_shows_contact_details(superuser_client, world):
    member = world["member"]
    response = superuser_client.get(reverse("system:user_edit", args=[member.pk]))
    assert "13912345678" in response.content.decode()
    entry = AuditEntry.objects.get(action="personal_data_view")
    assert entry.object_id == str(member.pk) and entry.purpose


def test_dictionary_item_rights_are_separate(client, world):
    keys = ("core.view_dictionary", "core.change_dictionaryitem")
    client.force_login(staff("editor", world["city"].district, *keys))
    item = world["item"]
    page = client.get(reverse("system:dictionary_detail", args=[world["dictionary"].pk]))
    body = page.content.decode()
    assert reverse("system:dictionary_item_edit", args=[item.pk]) in body
    assert reverse("system:dictionary_item_delete", args=[item.pk]) not in body
    assert 'name="new-code"' not in body
    response = client.post(reverse("system:dictionary_item_delete", args=[item.pk]))
    assert response.status_code == 403
    assert DictionaryItem.objects.filter(pk=item.pk).exists()


def test_street_manager_may_name_the_district_bureau_for_her_street(client, world):
    city = world["city"]
    handler = Role.objects.create(code="t-handler", name="处置", needs_department=True)
    bureau = Department.objects.create(code="CGJ", name="城管局", area=city.district)
    elsewhere = Department.objects.create(code="WS2", name="社区2工作站", area=city.communities[1])
    keys = ("accounts.view_user", "accounts.add_membership")
    client.force_login(staff("street.admin", city.communities[0], *keys))
    url = reverse("system:membership_add", args=[world["member"].pk])
    choices = client.get(url).context["form"].fields["department"].queryset
    assert bureau in choices and elsewhere not in choices
    response = client.post(
        url, {"role": handler.pk, "area": city.grids[1].code, "department": bureau.pk}
    )
    assert response.status_code == 302
    assert Membership.objects.filter(user=world["member"], department=bureau).exists()
    response = client.post(
        url, {"role": handler.pk, "area": city.grids[5].code, "department": bureau.pk}
    )
    assert response.status_code == 400
    assert not Membership.objects.filter(area=city.grids[5]).exists()


def test_settings_page_reports_every_bad_value_and_saves_none(superuser_client, world):
    response = superuser_client.post(
        reverse("system:settings"),
        {"sla__yellow_ratio": "0.6", "site__name": " ", "accounts__import_max_rows": "0"},
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert set(errors) == {"site__name", "accounts__import_max_rows"}
    assert setting_get("sla.yellow_ratio") == 0.8
    assert not AuditEntry.objects.filter(action="setting.set").exists()
