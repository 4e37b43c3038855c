"""The staff's moderation queue, under /portal/moderation/ (see portal/urls.py)."""

from django.urls import path

from . import moderation_views as views

urlpatterns = [
    path("", views.index, name="moderation"),
    path("photos/<int:pk>/review/", views.photo_review, name="moderation_photo_review"),
    path("suggestions/", views.suggestions, name="moderation_suggestions"),
    path("suggestions/<int:pk>/", views.suggestion, name="moderation_suggestion"),
    path(
        "suggestions/<int:pk>/publish/",
        views.suggestion_publish,
        name="moderation_suggestion_publish",
    ),
    path(
        "suggestions/<int:pk>/reject/", views.suggestion_reject, name="moderation_suggestion_reject"
    ),
    path(
        "suggestions/<int:pk>/contact/",
        views.suggestion_contact,
        name="moderation_suggestion_contact",
    ),
    path("blocklist/", views.blocklist, name="moderation_blocklist"),
    path("blocklist/<int:pk>/remove/", views.blocked_remove, name="moderation_blocked_remove"),
]
