"""A case's photo files, served only to those who may see the case.

Photos are never linked from MEDIA_URL: a photo's file is answered by
:func:`photo_file`, which starts from the cases the user may view, so a photo
of a case out of scope answers 404 like one that does not exist.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.views.decorators.http import require_safe

from .models import Case, CasePhoto

SIZES = {"full": "image", "thumb": "thumbnail"}


@login_required
@require_safe
def photo_file(request, pk: int, size: str):
    """The photo's image (``full``) or thumbnail (``thumb``), inline, cached privately."""
    field_name = SIZES.get(size)
    if field_name is None:
        raise Http404
    photo = (
        CasePhoto.objects.filter(pk=pk, case__in=Case.objects.restrict(request.user, "view"))
        .only("id", "content_type", field_name)
        .first()
    )
    if photo is None:
        raise Http404
    stored = getattr(photo, field_name)
    if not stored.name:
        raise Http404
    try:
        handle = stored.storage.open(stored.name, "rb")
    except (FileNotFoundError, OSError) as exc:
        raise Http404 from exc
    extension = stored.name.rsplit(".", 1)[-1] if "." in stored.name else "bin"
    suffix = "" if size == "full" else "-thumb"
    response = FileResponse(
        handle,
        content_type=photo.content_type,
        as_attachment=False,
        filename=f"photo-{photo.pk}{suffix}.{extension}",
    )
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response
