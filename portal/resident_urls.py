"""Resident accounts, under /portal/me/ (see portal/urls.py)."""

from django.urls import path

from . import resident_views as views

urlpatterns = [
    path("", views.account, name="account"),
    path("signup/", views.signup, name="account_signup"),
    path("login/", views.login_view, name="account_login"),
    path("logout/", views.logout_view, name="account_logout"),
    path("reports/<str:number>/withdraw/", views.withdraw, name="account_withdraw"),
    path("data/", views.export, name="account_export"),
    path("erase/", views.erase, name="account_erase"),
]
