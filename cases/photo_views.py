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


def photo_response(photos, *, pk: int, size: str, cache_control: str) -> FileResponse:
    """The file of photo ``pk`` among ``photos`` (a CasePhoto queryset that already
    says who may see what): its image (``full``) or thumbnail (``thumb``), inline.
    404 for an unknown size, a photo outside ``photos`` or a file that is gone."""
    field_name = SIZES.get(size)
    if field_name is None:
        raise Http404
    photo = photos.filter(pk=pk).only("id", "content_type", field_name).first()
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
    response["Cache-Control"] = cache_control
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_safe
def photo_file(request, pk: int, size: str):
    """The photo of a case the user may view, cached privately."""
    visible = CasePhoto.objects.filter(case__in=Case.objects.restrict(request.user, "view"))
    return photo_response(visible, pk=pk, size=size, cache_control="private, max-age=3600")
