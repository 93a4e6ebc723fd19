"""ingest(): formats, orientation, metadata removal, refusals, trailers and sizes."""

from __future__ import annotations

import hashlib
import io
import struct

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from tests.vision.hostile import (
    encode,
    hostile_files,
    odd_but_valid_files,
    sample_rgb,
    valid_jpeg,
)
from vision.ingest import IngestError, IngestLimits, ingest
from vision.sniff import jpeg_layout, sniff_format

SMALL_LIMIT = 2_000_000  # bytes; keeps the oversize entry of the hostile corpus small
LIMITS = IngestLimits(max_bytes=SMALL_LIMIT)


def decode(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def marked_photo(width: int = 400, height: int = 300) -> np.ndarray:
    """Grey picture with a red square in the top-left corner of the stored pixels."""
    rgb = np.full((height, width, 3), 128, np.uint8)
    rgb[10:60, 10:60] = (230, 20, 20)
    return rgb


def red_centre(rgb: np.ndarray) -> tuple[float, float]:
    """(x, y) of the red marker as shares of the image's width and height."""
    r, g, b = (rgb[:, :, i].astype(int) for i in range(3))
    ys, xs = np.nonzero((r - np.maximum(g, b)) > 80)
    return xs.mean() / rgb.shape[1], ys.mean() / rgb.shape[0]


# --- formats -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params", "expected"),
    [
        ("JPEG", {"quality": 92}, "jpeg"),
        ("PNG", {}, "png"),
        ("WEBP", {"quality": 92}, "webp"),
        ("HEIF", {"quality": 90}, "heif"),
    ],
)
def test_each_format_is_accepted(fmt, params, expected):
    source = sample_rgb(320, 240)
    result = ingest(encode(source, fmt, **params))
    assert result.source_format == expected
    assert result.original_size == (320, 240)
    assert result.image.shape == (240, 320, 3)
    assert result.image.dtype == np.uint8
    # The pixels are the photo's (lossy codecs aside), not something else.
    assert np.abs(result.image.astype(int) - source).mean() < 12
    assert np.abs(decode(result.jpeg).astype(int) - result.image).mean() < 10


def test_transparent_png_lands_on_white_paper():
    rgba = np.zeros((200, 200, 4), np.uint8)
    rgba[50:150, 50:150] = (0, 0, 255, 255)
    result = ingest(encode(rgba, "PNG"))
    assert result.image[10, 10].tolist() == [255, 255, 255]
    assert result.image[100, 100, 2] > 200 and result.image[100, 100, 0] < 50


def test_sixteen_bit_greyscale_png_keeps_its_tones():
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (128, 1))
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")
    result = ingest(buffer.getvalue())
    row = result.image[64, :, 0].astype(int)
    assert row[0] < 5 and row[-1] > 250 and np.all(np.diff(row) >= 0)


def test_cmyk_and_greyscale_jpegs_become_rgb():
    grey = Image.fromarray(np.full((120, 160), 90, np.uint8))
    cmyk = Image.fromarray(sample_rgb(160, 120)).convert("CMYK")
    for image in (grey, cmyk):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        result = ingest(buffer.getvalue())
        assert result.image.shape == (120, 160, 3)
    assert abs(int(ingest(encode(np.asarray(grey), "JPEG")).image.mean()) - 90) <= 2


def test_large_jpeg_is_decoded_reduced_to_working_size():
    photo = sample_rgb(4000, 3000)
    result = ingest(encode(photo, "JPEG", quality=90))
    assert result.original_size == (4000, 3000)
    assert result.image.shape == (1200, 1600, 3)
    thumb = Image.open(io.BytesIO(result.thumbnail_jpeg))
    assert max(thumb.size) == 320


def test_small_photos_are_not_enlarged():
    result = ingest(valid_jpeg(300, 200))
    assert result.image.shape == (200, 300, 3)
    assert Image.open(io.BytesIO(result.thumbnail_jpeg)).size == (300, 200)


def test_hashes_identify_the_upload_and_the_stored_content():
    data = valid_jpeg()
    first, second = ingest(data), ingest(data)
    assert first.sha256 == hashlib.sha256(data).hexdigest()
    assert first.content_sha256 == hashlib.sha256(first.jpeg).hexdigest()
    # Content-addressed storage needs the same upload to give the same stored bytes.
    assert first.jpeg == second.jpeg and first.content_sha256 == second.content_sha256
    assert ingest(valid_jpeg(quality=70)).sha256 != first.sha256


# --- orientation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "size", "marker"),
    [
        (1, (400, 300), (0.09, 0.12)),
        (3, (400, 300), (0.91, 0.88)),
        (6, (300, 400), (0.88, 0.09)),  # rotated 90° clockwise for display: top-left → top-right
        (8, (300, 400), (0.12, 0.91)),  # rotated 90° anticlockwise: top-left → bottom-left
    ],
)
def test_exif_orientation_is_applied(orientation, size, marker):
    exif = Image.Exif()
    exif[0x0112] = orientation
    result = ingest(encode(marked_photo(), "JPEG", quality=95, exif=exif.tobytes()))
    assert result.original_size == size
    assert result.image.shape[1::-1] == size
    assert red_centre(result.image) == pytest.approx(marker, abs=0.02)
    assert Image.open(io.BytesIO(result.jpeg)).getexif().get(0x0112) is None


def test_orientation_applies_to_reduced_decoding_too():
    exif = Image.Exif()
    exif[0x0112] = 6
    big = np.full((3000, 4000, 3), 128, np.uint8)
    big[100:600, 100:600] = (230, 20, 20)
    result = ingest(encode(big, "JPEG", quality=90, exif=exif.tobytes()))
    assert result.image.shape == (1600, 1200, 3)
    assert red_centre(result.image) == pytest.approx((0.88, 0.09), abs=0.02)


# --- metadata ------------------------------------------------------------------------------


def _metadata_rich_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Tablet maker"  # Make
    exif[0x0110] = "Tablet 9000"  # Model
    exif[0x0112] = 1
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (55.0, 36.0, 19.0)
    gps[3], gps[4] = "E", (13.0, 0.0, 38.0)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        b'22-rdf-syntax-ns#"><rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        b'xmp:CreatorTool="camera"/></rdf:RDF></x:xmpmeta>'
    )
    return encode(
        sample_rgb(),
        "JPEG",
        quality=90,
        exif=exif.tobytes(),
        icc_profile=icc,
        xmp=xmp,
        comment=b"hi",
    )


def test_stored_files_carry_no_metadata():
    data = _metadata_rich_jpeg()
    source = Image.open(io.BytesIO(data))
    # The upload really carries EXIF with GPS, XMP and ICC, so the assertions below mean something.
    assert source.getexif().get_ifd(0x8825) and "icc_profile" in source.info and b"xap" in data
    result = ingest(data)
    for stored in (result.jpeg, result.thumbnail_jpeg):
        image = Image.open(io.BytesIO(stored))
        assert len(image.getexif()) == 0
        assert not {"exif", "icc_profile", "xmp", "comment", "photoshop"} & set(image.info)
        for marker in (b"Exif", b"GPS", b"http://ns.adobe.com/xap", b"ICC_PROFILE", b"Tablet"):
            assert marker not in stored


def test_huge_exif_is_accepted_and_stripped():
    name, data, _ = next(f for f in odd_but_valid_files() if f[0] == "huge_exif.jpg")
    assert len(data) > 60_000, name
    result = ingest(data)
    assert b"AAAAAAAAAA" not in result.jpeg and b"Exif" not in result.jpeg
    assert len(Image.open(io.BytesIO(result.jpeg)).getexif()) == 0


# --- refusals ------------------------------------------------------------------------------

HOSTILE = hostile_files(max_bytes=SMALL_LIMIT)


@pytest.mark.parametrize(("name", "data", "status"), HOSTILE, ids=[f[0] for f in HOSTILE])
def test_hostile_file_is_refused_with_a_clear_reason(name, data, status):
    with pytest.raises(IngestError) as caught:
        ingest(data, limits=LIMITS)
    error = caught.value
    assert error.status == status, error.message
    assert error.code and " " not in error.code
    assert len(error.message) > 30 and error.message[0].isupper()
    assert "0x7f" not in error.message and "BytesIO" not in error.message


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("empty.jpg", ["empty"]),
        ("notes.jpg", ["text file", "JPEG, PNG, WebP or HEIC"]),
        ("page.jpg", ["HTML"]),
        ("animation.gif", ["GIF", "JPEG, PNG, WebP or HEIC"]),
        ("document.pdf", ["PDF"]),
        ("archive.zip", ["ZIP"]),
        ("truncated.jpg", ["JPEG data ends early (truncated upload?)"]),
        ("truncated.png", ["PNG data ends early"]),
        ("bomb.png", ["30000×30000", "not decoded"]),
        ("bomb.jpg", ["65000×65000"]),
        ("oversize.jpg", ["limit is 2,000,000 bytes"]),
        ("one_pixel.png", ["1×1", "at least 64"]),
        ("broken.heic", ["HEIC", "damaged"]),
    ],
)
def test_refusal_messages_name_the_problem(name, words):
    data = next(f[1] for f in HOSTILE if f[0] == name)
    with pytest.raises(IngestError) as caught:
        ingest(data, limits=LIMITS)
    for word in words:
        assert word in caught.value.message


def test_bombs_are_refused_without_decoding(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("a bomb must not reach the decoder")

    monkeypatch.setattr(Image.Image, "load", never)
    monkeypatch.setattr(Image, "open", never)
    for name in ("bomb.png", "bomb.jpg"):
        data = next(f[1] for f in HOSTILE if f[0] == name)
        with pytest.raises(IngestError) as caught:
            ingest(data)
        assert caught.value.status == 413


def test_pixel_limit_is_configurable():
    with pytest.raises(IngestError) as caught:
        ingest(valid_jpeg(320, 240), limits=IngestLimits(max_pixels=50_000))
    assert caught.value.status == 413
    assert ingest(valid_jpeg(320, 240), limits=IngestLimits(max_pixels=80_000)).image.size


def test_min_side_is_configurable():
    with pytest.raises(IngestError) as caught:
        ingest(valid_jpeg(320, 240), limits=IngestLimits(min_side=300))
    assert caught.value.status == 422 and caught.value.code == "too_small"


# --- trailers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "trailer"), odd_but_valid_files(), ids=[f[0] for f in odd_but_valid_files()]
)
def test_odd_but_valid_uploads_are_accepted_without_their_trailer(name, data, trailer):
    result = ingest(data)
    assert result.trailer_dropped == trailer
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    for stored in (result.jpeg, result.thumbnail_jpeg):
        assert b"PK\x03\x04" not in stored
        assert b"ftypmp42" not in stored and b"mdat" not in stored
        assert b"never be stored" not in stored


def _app1_with_embedded_thumbnail(jpeg: bytes) -> bytes:
    """Insert an APP1 segment holding a complete small JPEG (its own SOI…EOI) after SOI."""
    thumbnail = encode(sample_rgb(64, 48), "JPEG", quality=50)
    payload = b"Exif\x00\x00" + thumbnail
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def test_jpeg_end_is_found_past_an_embedded_thumbnail():
    data = _app1_with_embedded_thumbnail(valid_jpeg())
    assert data.find(b"\xff\xd9") < len(data) - 2  # a naive search would stop in the thumbnail
    assert jpeg_layout(data).end == len(data)
    result = ingest(data + b"PK\x03\x04zipped")
    assert result.trailer_dropped == 10


def test_progressive_jpeg_with_trailer():
    data = encode(sample_rgb(), "JPEG", quality=90, progressive=True)
    layout = jpeg_layout(data + b"\x00\x00\x00\x18ftypmp42")
    assert layout.end == len(data)
    assert (layout.width, layout.height) == (320, 240)


# --- sniffing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"", "empty"),
        (b"\xff\xd8\xff\xe0rest", "jpeg"),
        (b"\x89PNG\r\n\x1a\nrest", "png"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "webp"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "heif"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "heif"),
        (b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00avifmif1", "avif"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00isommp41", "mp4"),
        (b"GIF89a....", "gif"),
        (b"%PDF-1.4", "pdf"),
        (b"PK\x03\x04....", "zip"),
        (b"  <!DOCTYPE html><html>", "html"),
        (b"\xef\xbb\xbf<svg xmlns='http://www.w3.org/2000/svg'>", "svg"),
        ("hej på dig\n".encode(), "text"),
        (bytes(range(256)), "unknown"),
    ],
)
def test_sniff_format_reads_magic_bytes(head, expected):
    assert sniff_format(head) == expected


def test_a_photographed_sheet_is_rectified_from_the_reduced_decode_at_working_scale():
    # A 12-MP photo is decoded at 2000×1500; the sheet is warped straight from that, its size
    # as it would be in the 1600-px working image (not larger), and is the same picture.
    from tests.vision.test_sheet import photographed_sheet

    photo, _ = photographed_sheet(seed=4)  # 1600×1200
    big = cv2.resize(photo, (4000, 3000), interpolation=cv2.INTER_CUBIC)
    small_result = ingest(encode(photo, "JPEG", quality=92))
    big_result = ingest(encode(big, "JPEG", quality=92))
    assert big_result.sheet_found and small_result.sheet_found
    assert big_result.original_size == (4000, 3000)
    big_h, big_w = big_result.image.shape[:2]
    small_h, small_w = small_result.image.shape[:2]
    assert max(big_w, big_h) <= 1600
    assert abs(big_w - small_w) <= 0.02 * small_w and abs(big_h - small_h) <= 0.02 * small_h
    same = cv2.resize(big_result.image, (small_w, small_h), interpolation=cv2.INTER_AREA)
    assert np.abs(same.astype(int) - small_result.image.astype(int)).mean() < 12


def _damaged_scan(seed: int) -> bytes:
    """A JPEG with 40 bytes of its compressed data overwritten (what a flaky upload does)."""
    data = bytearray(encode(sample_rgb(1600, 1200), "JPEG", quality=90))
    scan = data.index(b"\xff\xda")
    rng = np.random.default_rng(seed)
    for pos in rng.integers(scan + 200, len(data) - 200, 40):
        data[pos] = rng.integers(0, 256)
    return bytes(data)


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_damaged_compressed_data_is_refused_as_pillow_refuses_it(seed):
    from vision.ingest import _decode_clean_jpeg

    data = _damaged_scan(seed)
    with pytest.raises(OSError):  # the precondition: Pillow's decoder refuses this file
        Image.open(io.BytesIO(data)).load()
    # libjpeg-turbo in lenient mode would return a half-grey picture; the fast path declines
    assert _decode_clean_jpeg(data, (1600, 1200)) is None
    with pytest.raises(IngestError) as refused:
        ingest(data)
    # as before: 422, "corrupt" or (where libjpeg runs out of data) "truncated"
    assert refused.value.status == 422 and refused.value.code in ("corrupt", "truncated")


def test_clean_jpegs_take_the_fast_decoder_with_pillows_pixels():
    from vision.ingest import _decode_clean_jpeg

    data = encode(sample_rgb(4000, 3000), "JPEG", quality=90)
    fast = _decode_clean_jpeg(data, (2000, 1500))
    assert fast is not None and fast.shape == (1500, 2000, 3)
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (2000, 1500))
        assert np.array_equal(fast, np.asarray(image.convert("RGB")))
