"""API v1 routes of the cases app."""

from django.urls import path

from .export_views import CaseExportView
from .views import CaseActionView, CaseCollectionView, CaseDetailView

urlpatterns = [
    path("cases", CaseCollectionView.as_view(), name="cases-list"),
    # before the detail, which would take "export.csv" for a number
    path("cases/export.<str:fmt>", CaseExportView.as_view(), name="cases-export"),
    path("cases/<str:number>", CaseDetailView.as_view(), name="cases-detail"),
    path("cases/<str:number>/actions/<str:action>", CaseActionView.as_view(), name="cases-action"),
]
