"""Photos of cases: checked by their content, re-encoded without metadata, stored safely.

Two steps, so that every check runs before the database is touched:

1. :func:`prepare_photos` reads the uploads, judges each by its content (never
   by its name or the content type the client sent), refuses anything that is
   not a JPEG, PNG or WebP image, too large, too many pixels (a decompression
   bomb) or damaged, and re-encodes the rest: the EXIF orientation applied,
   every bit of metadata dropped (EXIF with GPS, XMP, comments), colours
   converted to sRGB when the image carries an ICC profile (the profile is
   then dropped too), plus a thumbnail. It writes nothing anywhere.
2. :func:`store_photos`, inside the transaction that writes the timeline
   entry, saves the files through Django's storage API under random names and
   creates the :class:`~cases.models.CasePhoto` rows.

Output format: an opaque image becomes a JPEG (quality 85); an image that
really uses transparency becomes a WebP (quality 85) keeping its alpha
channel. The thumbnail (longest side 320 px) has the format of its image.

Files and the transaction: storage is not transactional, so the files are
written when :func:`store_photos` runs and removed again if the transaction
rolls back. Django has no "on rollback" hook, so the transaction that calls
:func:`store_photos` must be opened with :func:`photos_atomic` (a drop-in for
``transaction.atomic()``): when it ends with an exception — the transaction
rolled back — every photo file stored inside it is deleted.
:func:`store_photos` refuses to run inside a plain ``transaction.atomic()``
block, where a later rollback would leave files behind.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.transaction import TransactionManagementError
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from core.errors import DomainError

from .models import CasePhoto
from .workflow import MAX_PHOTOS

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
THUMBNAIL_SIDE = 320
JPEG_QUALITY = 85
THUMBNAIL_QUALITY = 80
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")

# Signatures of formats people often send instead, only to word the refusal.
_OTHER_FORMATS = (
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"%PDF", "PDF"),
    (0, b"BM", "BMP"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (4, b"ftypheic", "HEIC"),
    (4, b"ftypheix", "HEIC"),
    (4, b"ftypmif1", "HEIF"),
    (4, b"ftypavif", "AVIF"),
)


@dataclass(frozen=True)
class PreparedPhoto:
    """One re-encoded photo and its thumbnail, ready to store (nothing written yet)."""

    image: bytes = field(repr=False)
    thumbnail: bytes = field(repr=False)
    content_type: str  # image/jpeg or image/webp, for the image and its thumbnail
    extension: str  # jpg or webp
    width: int
    height: int
    thumbnail_width: int
    thumbnail_height: int
    sha256: str  # of ``image``, the bytes stored

    @property
    def size(self) -> int:
        return len(self.image)


class _Refused(Exception):
    """One upload's problem, already worded for the user."""


def max_bytes() -> int:
    return int(settings.CIVICGRID.get("PHOTO_MAX_BYTES", DEFAULT_MAX_BYTES))


def max_pixels() -> int:
    return int(settings.CIVICGRID.get("PHOTO_MAX_PIXELS", DEFAULT_MAX_PIXELS))


# --- checking and re-encoding ---------------------------------------------------------


def prepare_photos(files: Iterable | None) -> list[PreparedPhoto]:
    """Check and re-encode uploaded photos; DomainError (400, field ``photos``) if any is refused.

    ``files`` are Django ``UploadedFile`` objects or anything with ``read()``
    and a ``name`` (``size`` is used when present). Every file is checked and
    every problem reported, each message naming its file.
    """
    uploads = [f for f in (files or []) if f is not None]
    if len(uploads) > MAX_PHOTOS:
        message = _("At most %(max)d photos may be attached; %(count)d were sent.") % {
            "max": MAX_PHOTOS,
            "count": len(uploads),
        }
        raise DomainError(message, errors={"photos": [message]})
    prepared: list[PreparedPhoto] = []
    problems: list[str] = []
    for number, upload in enumerate(uploads, start=1):
        try:
            prepared.append(_prepare_one(upload))
        except _Refused as refused:
            problems.append(
                _("Photo %(number)d (%(name)s): %(problem)s")
                % {"number": number, "name": _display_name(upload), "problem": refused}
            )
    if problems:
        message = problems[0] if len(problems) == 1 else _("Some photos were refused.")
        raise DomainError(message, errors={"photos": problems})
    return prepared


def _display_name(upload) -> str:
    """The uploaded file's own name, for messages only: no path, no control characters."""
    raw = str(getattr(upload, "name", "") or "")
    name = os.path.basename(raw.replace("\\", "/"))
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if len(name) > 80:
        name = name[:77] + "…"
    return name or _("without a name")


def _read(upload, limit: int) -> bytes:
    size = getattr(upload, "size", None)
    if isinstance(size, int) and size > limit:
        raise _Refused(_too_large(limit))
    if hasattr(upload, "seek"):
        with suppress(OSError, ValueError):
            upload.seek(0)
    # One byte more than allowed tells a file over the limit without reading it all.
    data = upload.read(limit + 1)
    if isinstance(data, str):
        data = data.encode()
    if len(data) > limit:
        raise _Refused(_too_large(limit))
    if not data:
        raise _Refused(_("the file is empty."))
    return data


def _too_large(limit: int) -> str:
    return _("the file is larger than %(limit)s.") % {"limit": filesizeformat(limit)}


def _not_an_image(data: bytes) -> str:
    for offset, signature, name in _OTHER_FORMATS:
        if data[offset : offset + len(signature)] == signature:
            return _("this is a %(format)s file; only JPEG, PNG and WebP images are accepted.") % {
                "format": name
            }
    head = data[:1024]
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return _(
                "the file holds text (such as a script or a web page), not an image; "
                "only JPEG, PNG and WebP images are accepted, whatever the file is called."
            )
    return _(
        "the content is not a JPEG, PNG or WebP image; "
        "only these are accepted, whatever the file is called."
    )


def _too_many_pixels(width: int | None, height: int | None, limit: int) -> str:
    if width and height:
        return _(
            "the image has %(pixels)s megapixels (%(width)d × %(height)d); "
            "at most %(limit)s are accepted."
        ) % {
            "pixels": f"{width * height / 1e6:.1f}",
            "width": width,
            "height": height,
            "limit": f"{limit / 1e6:g}",
        }
    return _("the image has too many pixels; at most %(limit)s megapixels are accepted.") % {
        "limit": f"{limit / 1e6:g}"
    }


def _open(data: bytes) -> Image.Image:
    """Open (header only) as one of the accepted formats, refusing too many pixels."""
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError as exc:
        raise _Refused(_not_an_image(data)) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (far above ours) fired while reading the header.
        raise _Refused(_too_many_pixels(None, None, max_pixels())) from exc
    except Exception as exc:  # Pillow raises many kinds on a malformed header
        raise _Refused(_("the image is damaged or incomplete.")) from exc
    width, height = image.size
    limit = max_pixels()
    if width * height > limit:
        raise _Refused(_too_many_pixels(width, height, limit))
    if width < 1 or height < 1:
        raise _Refused(_("the image is damaged or incomplete."))
    return image


def _decode(data: bytes) -> Image.Image:
    """The whole image decoded, after Pillow's structural check of the file."""
    _open(data).verify()
    # verify() leaves the image unusable: open it again to decode the pixels.
    image = _open(data)
    image.load()  # a truncated file fails here (LOAD_TRUNCATED_IMAGES is off)
    return image


def _prepare_one(upload) -> PreparedPhoto:
    data = _read(upload, max_bytes())
    try:
        image = _decode(data)
    except _Refused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _Refused(_too_many_pixels(None, None, max_pixels())) from exc
    except MemoryError:
        raise
    except Exception as exc:  # truncated data, bad checksums, broken chunks …
        raise _Refused(_("the image is damaged or incomplete.")) from exc
    try:
        cleaned = _clean(image)
        fmt, content_type, extension = (
            ("WEBP", "image/webp", "webp")
            if cleaned.mode == "RGBA"
            else ("JPEG", "image/jpeg", "jpg")
        )
        encoded = _encode(cleaned, fmt, JPEG_QUALITY)
        thumb = cleaned.copy()
        thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS, 3.0)
        thumb_bytes = _encode(thumb, fmt, THUMBNAIL_QUALITY)
    except MemoryError:
        raise
    except Exception as exc:  # a decoded image that still cannot be converted
        raise _Refused(_("the image is damaged or incomplete.")) from exc
    return PreparedPhoto(
        image=encoded,
        thumbnail=thumb_bytes,
        content_type=content_type,
        extension=extension,
        width=cleaned.width,
        height=cleaned.height,
        thumbnail_width=thumb.width,
        thumbnail_height=thumb.height,
        sha256=hashlib.sha256(encoded).hexdigest(),
    )


def _clean(image: Image.Image) -> Image.Image:
    """Upright, in sRGB, RGB or (when transparency is used) RGBA, with no metadata left."""
    try:
        upright = ImageOps.exif_transpose(image)  # always a new image
    except Exception:  # an unreadable EXIF block: keep the pixels as they are
        upright = image.copy()
    icc = image.info.get("icc_profile")
    if icc and upright.mode in ("RGB", "RGBA", "CMYK"):
        upright = _to_srgb(upright, icc)
    pixels = _to_rgb_or_rgba(upright)
    # Nothing of the original's metadata may reach the encoder (the JPEG
    # encoder, for one, copies a comment from ``info``).
    pixels.info = {}
    return pixels


def _to_rgb_or_rgba(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        # 16-bit grey: scale to 8 bits rather than clip everything to white.
        image = image.convert("I").point(lambda v: v / 256).convert("L")
        mode = "L"
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        low, _high = rgba.getchannel("A").getextrema()
        if low < 255:  # transparency really used
            return rgba
        return rgba.convert("RGB")
    # Already a copy of the upload's pixels (see _clean): no need for another one.
    return image if mode == "RGB" else image.convert("RGB")


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    """The colours converted from the embedded ICC profile to sRGB (the profile is not kept)."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(
            image,
            source,
            ImageCms.createProfile("sRGB"),
            outputMode="RGBA" if image.mode == "RGBA" else "RGB",
        )
    except Exception:  # a broken or unusual profile: keep the colours as they are
        logger.info("photo ICC profile not usable; colours kept unconverted")
        return image
    return converted if converted is not None else image


def _encode(image: Image.Image, fmt: str, quality: int) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, "JPEG", quality=quality, optimize=True)
    else:
        image.save(out, "WEBP", quality=quality, method=4)
    return out.getvalue()


# --- storing, and removing again on rollback ------------------------------------------

_PENDING_ATTR = "_civicgrid_photo_files"


def _guards(using: str) -> list[list]:
    connection = transaction.get_connection(using)
    stack = getattr(connection, _PENDING_ATTR, None)
    if stack is None:
        stack = []
        setattr(connection, _PENDING_ATTR, stack)
    return stack


@contextmanager
def photos_atomic(using: str | None = None, savepoint: bool = True) -> Iterator[None]:
    """``transaction.atomic()`` that also deletes the photo files stored inside it on rollback.

    Files stored inside a block that completes are handed to the enclosing
    ``photos_atomic`` block, if any, which deletes them should it roll back.
    """
    alias = using or DEFAULT_DB_ALIAS
    stack = _guards(alias)
    written: list = []
    stack.append(written)
    try:
        with transaction.atomic(using=alias, savepoint=savepoint):
            yield
    except BaseException:
        _remove(written)
        raise
    else:
        if len(stack) > 1:
            stack[-2].extend(written)
    finally:
        # Remove this block's own list (by identity: equal lists are not the same block).
        for index in range(len(stack) - 1, -1, -1):
            if stack[index] is written:
                del stack[index]
                break


def _remove(written: list) -> None:
    for storage, name in written:
        try:
            storage.delete(name)
        except Exception:  # never hide the error that rolled the transaction back
            logger.exception("could not remove photo file %s after a rollback", name)


def store_photos(
    *, case, event, action: str, prepared: Iterable[PreparedPhoto], actor
) -> list[CasePhoto]:
    """Save prepared photos through the storage API and create their rows.

    Call it inside :func:`photos_atomic` (the transaction that writes the
    timeline entry ``event``); the files are deleted again if that transaction
    rolls back. Files get random names (never the uploaded ones).
    """
    photos_in = list(prepared)
    if not photos_in:
        return []
    alias = DEFAULT_DB_ALIAS
    connection = transaction.get_connection(alias)
    if connection.in_atomic_block and not _guards(alias):
        raise TransactionManagementError(
            "store_photos() runs inside cases.photos.photos_atomic(), not a plain "
            "transaction.atomic(): a rollback would leave the stored files behind."
        )
    actor_id = actor.pk if actor is not None and getattr(actor, "pk", None) else None
    rows: list[CasePhoto] = []
    with photos_atomic(using=alias):
        written = _guards(alias)[-1]
        for item in photos_in:
            base = uuid.uuid4().hex
            photo = CasePhoto(
                case=case,
                event=event,
                action=action,
                content_type=item.content_type,
                width=item.width,
                height=item.height,
                size=item.size,
                sha256=item.sha256,
                uploaded_by_id=actor_id,
            )
            photo.image.save(f"{base}.{item.extension}", ContentFile(item.image), save=False)
            written.append((photo.image.storage, photo.image.name))
            photo.thumbnail.save(
                f"{base}-thumb.{item.extension}", ContentFile(item.thumbnail), save=False
            )
            written.append((photo.thumbnail.storage, photo.thumbnail.name))
            rows.append(photo)
        CasePhoto.objects.bulk_create(rows)
    return rows
