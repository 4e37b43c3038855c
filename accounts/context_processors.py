from django.utils.functional import SimpleLazyObject

from .permissions import can_view_audit


def security(request):
    """``can_view_audit`` for the navigation; evaluated (one query) only where a template asks."""
    user = getattr(request, "user", None)
    return {"can_view_audit": SimpleLazyObject(lambda: can_view_audit(user))}
