"""API v1 routes of the geography app, collected from the modules that serve them."""

from . import areas, locate, partition, topology

urlpatterns = [
    *areas.urlpatterns,
    *locate.urlpatterns,
    *topology.urlpatterns,
    *partition.urlpatterns,
]
