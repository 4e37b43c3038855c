from django.urls import path

from . import views

app_name = "geo"

urlpatterns = [
    path("map/", views.map_page, name="map"),
    path("areas/panel/", views.area_panel, name="root-panel"),
    path("areas/<str:code>/panel/", views.area_panel, name="area-panel"),
    path("areas/<str:code>/card/", views.area_card, name="area-card"),
]
