from django.contrib.auth import views as auth_views
from django.urls import path

from . import security_views

# No namespace: "login" and "logout" are the names Django's settings and the
# base template use.
urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="accounts/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("security/", security_views.security, name="account_security"),
    path("security/two-factor/setup/", security_views.two_factor_setup, name="account_2fa_setup"),
    path(
        "security/two-factor/verify/",
        security_views.two_factor_verify_view,
        name="account_2fa_verify",
    ),
    path(
        "security/two-factor/disable/",
        security_views.two_factor_disable_view,
        name="account_2fa_disable",
    ),
    path("security/tokens/", security_views.tokens, name="account_tokens"),
    path(
        "security/tokens/<int:pk>/revoke/",
        security_views.token_revoke_view,
        name="account_token_revoke",
    ),
]
