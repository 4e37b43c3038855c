from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect


@login_required
def home(request):
    """Staff start at the map; a resident signed in here goes to her portal account."""
    if getattr(request.user, "is_resident", False):
        return redirect("portal:account")
    return redirect("geo:map")
