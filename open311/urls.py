"""Open311 GeoReport v2 routes, under /open311/v2/, and the pages that manage client keys.

Each resource takes its format as a suffix (``services.xml``, ``requests.json``);
see docs/open311.md.
"""

from django.urls import path, re_path

from . import key_views, views

app_name = "open311"

FORMAT = r"\.(?P<fmt>[A-Za-z0-9]{1,10})$"

urlpatterns = [
    re_path(r"^discovery" + FORMAT, views.DiscoveryView.as_view(), name="discovery"),
    re_path(r"^services" + FORMAT, views.ServiceListView.as_view(), name="services"),
    re_path(
        r"^services/(?P<service_code>[^/.]{1,50})" + FORMAT,
        views.ServiceDefinitionView.as_view(),
        name="service_definition",
    ),
    re_path(r"^requests" + FORMAT, views.RequestsView.as_view(), name="requests"),
    re_path(
        r"^requests/(?P<service_request_id>[^/.]{1,50})" + FORMAT,
        views.RequestDetailView.as_view(),
        name="request",
    ),
    re_path(r"^tokens/(?P<token>[^/.]{1,100})" + FORMAT, views.TokenView.as_view(), name="token"),
    # Client API keys, for administrators (HTML pages, not part of GeoReport v2).
    path("keys/", key_views.KeyListView.as_view(), name="key_list"),
    path("keys/<int:pk>/revoke/", key_views.KeyRevokeView.as_view(), name="key_revoke"),
    # Anything else asked for in a format: the spec's 404 body.
    re_path(
        r"^(?P<rest>.+)\.(?P<fmt>[Jj][Ss][Oo][Nn]|[Xx][Mm][Ll])$", views.not_found, name="not_found"
    ),
]
