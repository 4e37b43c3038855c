from django.urls import path

from . import views

urlpatterns = [
    path("tokens", views.TokenListCreateView.as_view(), name="api-token-list"),
    path("tokens/<int:pk>", views.TokenDetailView.as_view(), name="api-token-detail"),
    path("tokens/<int:pk>/revoke", views.TokenRevokeView.as_view(), name="api-token-revoke"),
    path("audit", views.AuditEntryListView.as_view(), name="api-audit-list"),
    path("audit/export.csv", views.AuditEntryExportView.as_view(), name="api-audit-export"),
    path("audit/<int:pk>", views.AuditEntryDetailView.as_view(), name="api-audit-detail"),
]
