from django.conf import settings


def civicgrid(request):
    return {
        "CIVICGRID_MAP_TILE_URL": settings.CIVICGRID["MAP_TILE_URL"],
        "CIVICGRID_MAP_TILE_ATTRIBUTION": settings.CIVICGRID["MAP_TILE_ATTRIBUTION"],
    }
