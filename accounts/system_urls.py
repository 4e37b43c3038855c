from django.urls import path

from . import system_views as views

app_name = "system"

urlpatterns = [
    path("", views.IndexView.as_view(), name="index"),
    # users and their memberships
    path("users/", views.UserListView.as_view(), name="user_list"),
    path("users/add/", views.UserCreateView.as_view(), name="user_add"),
    path("users/import/", views.UserImportView.as_view(), name="user_import"),
    path("users/<int:pk>/", views.UserDetailView.as_view(), name="user_detail"),
    path("users/<int:pk>/edit/", views.UserEditView.as_view(), name="user_edit"),
    path("users/<int:pk>/password/", views.UserPasswordView.as_view(), name="user_password"),
    path("users/<int:pk>/deactivate/", views.UserDeactivateView.as_view(), name="user_deactivate"),
    path("users/<int:pk>/reactivate/", views.UserReactivateView.as_view(), name="user_reactivate"),
    path(
        "users/<int:user_pk>/memberships/add/",
        views.MembershipCreateView.as_view(),
        name="membership_add",
    ),
    path("memberships/<int:pk>/edit/", views.MembershipEditView.as_view(), name="membership_edit"),
    path(
        "memberships/<int:pk>/deactivate/",
        views.MembershipDeactivateView.as_view(),
        name="membership_deactivate",
    ),
    path(
        "memberships/<int:pk>/delete/",
        views.MembershipDeleteView.as_view(),
        name="membership_delete",
    ),
    # roles
    path("roles/", views.RoleListView.as_view(), name="role_list"),
    path("roles/add/", views.RoleFormView.as_view(), name="role_add"),
    path("roles/<int:pk>/edit/", views.RoleFormView.as_view(), name="role_edit"),
    # departments
    path("departments/", views.DepartmentListView.as_view(), name="department_list"),
    path("departments/add/", views.DepartmentFormView.as_view(), name="department_add"),
    path("departments/<int:pk>/edit/", views.DepartmentFormView.as_view(), name="department_edit"),
    # dictionaries and their items
    path("dictionaries/", views.DictionaryListView.as_view(), name="dictionary_list"),
    path("dictionaries/add/", views.DictionaryFormView.as_view(), name="dictionary_add"),
    path("dictionaries/<int:pk>/", views.DictionaryDetailView.as_view(), name="dictionary_detail"),
    path("dictionaries/<int:pk>/edit/", views.DictionaryFormView.as_view(), name="dictionary_edit"),
    path(
        "dictionaries/<int:pk>/delete/",
        views.DictionaryDeleteView.as_view(),
        name="dictionary_delete",
    ),
    path(
        "dictionaries/<int:pk>/items/add/",
        views.DictionaryItemView.as_view(),
        {"action": "add"},
        name="dictionary_item_add",
    ),
    path(
        "dictionary-items/<int:item_pk>/edit/",
        views.DictionaryItemView.as_view(),
        {"action": "edit"},
        name="dictionary_item_edit",
    ),
    path(
        "dictionary-items/<int:item_pk>/row/",
        views.DictionaryItemView.as_view(),
        {"action": "row"},
        name="dictionary_item_row",
    ),
    path(
        "dictionary-items/<int:item_pk>/delete/",
        views.DictionaryItemView.as_view(),
        {"action": "delete"},
        name="dictionary_item_delete",
    ),
    # settings (warning thresholds and the rest)
    path("settings/", views.SettingsView.as_view(), name="settings"),
]
