from django.urls import path

from . import audit_views

app_name = "audit"

urlpatterns = [
    path("", audit_views.entry_list, name="list"),
    path("export.csv", audit_views.export_csv, name="export"),
    path("<int:pk>/", audit_views.entry_detail, name="detail"),
]
