"""API v1 routes of the cases app."""

from django.urls import path

from .views import CaseActionView, CaseCollectionView, CaseDetailView

urlpatterns = [
    path("cases", CaseCollectionView.as_view(), name="cases-list"),
    path("cases/<str:number>", CaseDetailView.as_view(), name="cases-detail"),
    path("cases/<str:number>/actions/<str:action>", CaseActionView.as_view(), name="cases-action"),
]
