"""Public routes of the portal (see portal/urls.py): no account needed."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("report/", views.report, name="report"),
    path("report/challenge/", views.report_challenge, name="challenge"),
    # A resident's case, reached only through the secret of its private link.
    path("track/<str:token>/", views.track, name="track"),
    path("track/<str:token>/rate/", views.track_rate, name="rate"),
    path("track/<str:token>/withdraw/", views.track_withdraw, name="withdraw"),
    path("photos/<int:pk>/<str:size>/", views.photo, name="photo"),
    path("map/", views.public_map, name="map"),
    path("map/cases.geojson", views.map_cases, name="map-cases"),
    path("map/areas.geojson", views.map_areas, name="map-areas"),
    path("stats/", views.stats, name="stats"),
]
