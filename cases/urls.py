"""Staff pages of the cases app, under /cases/."""

from django.urls import path

from . import console, photo_views, views

app_name = "cases"

urlpatterns = [
    # the intake and one case (cases/views.py)
    path("report/", views.report_page, name="report"),
    path("intake/", views.intake_queue, name="intake"),
    path("tasks/", views.my_tasks, name="tasks"),
    # the dispatch console and the search (cases/console.py)
    path("console/", console.console_page, name="console"),
    path("console/cases.geojson", console.console_geojson, name="console-geojson"),
    path("search/", console.search_page, name="search"),
    path("search/export.<str:fmt>", console.search_export, name="export"),
    # photos, only to those who may see the case (cases/photo_views.py)
    path("photos/<int:pk>/<str:size>/", photo_views.photo_file, name="photo"),
    # one case; numbers start with E or C, so they never meet the words above
    path("<str:number>/", views.case_detail, name="detail"),
    path("<str:number>/contact/", views.reporter_contact, name="contact"),
    path("<str:number>/act/<str:action>/", views.case_act, name="act"),
]
