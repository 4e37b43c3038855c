"""The residents' portal, under /portal/: public pages, resident accounts, and the
staff's moderation queue."""

from django.urls import include, path

app_name = "portal"

urlpatterns = [
    path("", include("portal.public_urls")),
    path("me/", include("portal.resident_urls")),
    path("suggestions/", include("portal.suggestion_urls")),
    path("moderation/", include("portal.moderation_urls")),
]
