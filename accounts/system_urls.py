from django.urls import path

from . import system_views as views

app_name = "system"


def object_routes(prefix, kind, *, list_view=None, add=None, detail=None, actions=None):
    """The routes of one kind of object, named ``<kind>_<what>``.

    ``<prefix>/`` is the list, ``<prefix>/add/`` the new-object form, ``<prefix>/<pk>/`` the
    detail page and ``<prefix>/<pk>/<action>/`` each of ``actions`` (edit, delete …).
    """
    routes = []
    if list_view is not None:
        routes.append(path(f"{prefix}/", list_view.as_view(), name=f"{kind}_list"))
    if add is not None:
        routes.append(path(f"{prefix}/add/", add.as_view(), name=f"{kind}_add"))
    if detail is not None:
        routes.append(path(f"{prefix}/<int:pk>/", detail.as_view(), name=f"{kind}_detail"))
    for action, view in (actions or {}).items():
        routes.append(path(f"{prefix}/<int:pk>/{action}/", view.as_view(), name=f"{kind}_{action}"))
    return routes


urlpatterns = [
    path("", views.IndexView.as_view(), name="index"),
    # users and their memberships
    path("users/import/", views.UserImportView.as_view(), name="user_import"),
    *object_routes(
        "users",
        "user",
        list_view=views.UserListView,
        add=views.UserCreateView,
        detail=views.UserDetailView,
        actions={
            "edit": views.UserEditView,
            "password": views.UserPasswordView,
            "deactivate": views.UserDeactivateView,
            "reactivate": views.UserReactivateView,
        },
    ),
    path(
        "users/<int:user_pk>/memberships/add/",
        views.MembershipCreateView.as_view(),
        name="membership_add",
    ),
    *object_routes(
        "memberships",
        "membership",
        actions={
            "edit": views.MembershipEditView,
            "deactivate": views.MembershipDeactivateView,
            "delete": views.MembershipDeleteView,
        },
    ),
    # roles
    *object_routes(
        "roles",
        "role",
        list_view=views.RoleListView,
        add=views.RoleFormView,
        actions={"edit": views.RoleFormView},
    ),
    # departments
    *object_routes(
        "departments",
        "department",
        list_view=views.DepartmentListView,
        add=views.DepartmentFormView,
        actions={"edit": views.DepartmentFormView},
    ),
    # dictionaries and their items; an item is edited in place, a row at a time
    *object_routes(
        "dictionaries",
        "dictionary",
        list_view=views.DictionaryListView,
        add=views.DictionaryFormView,
        detail=views.DictionaryDetailView,
        actions={"edit": views.DictionaryFormView, "delete": views.DictionaryDeleteView},
    ),
    path(
        "dictionaries/<int:pk>/items/add/",
        views.DictionaryItemView.as_view(),
        {"action": "add"},
        name="dictionary_item_add",
    ),
    *[
        path(
            f"dictionary-items/<int:item_pk>/{action}/",
            views.DictionaryItemView.as_view(),
            {"action": action},
            name=f"dictionary_item_{action}",
        )
        for action in ("edit", "row", "delete")
    ],
    # settings (warning thresholds and the rest)
    path("settings/", views.SettingsView.as_view(), name="settings"),
]
