from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def map_page(request):
    return render(request, "geo/map.html")
