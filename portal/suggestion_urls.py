"""Suggestions and questions, under /portal/suggestions/ (see portal/urls.py)."""

from django.urls import path

from . import suggestion_views as views

urlpatterns = [
    path("", views.suggestion_list, name="suggestions"),
    path("new/", views.suggestion_new, name="suggestion_new"),
    path("<int:pk>/", views.suggestion_detail, name="suggestion_detail"),
    path("track/<str:token>/", views.suggestion_track, name="suggestion_track"),
]
