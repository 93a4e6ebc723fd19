"""A generated corpus of hostile, broken and odd-but-valid uploads, for ingest and API tests.

Every file is built in memory from code, so the corpus needs no fixtures on disk and can follow a
deployment's configured size limit. :func:`hostile_files` lists what must be refused (with the HTTP
status Spira answers), :func:`odd_but_valid_files` what must be accepted although it looks
suspicious (appended video or archive, huge EXIF, hostile file names).
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import cv2
import numpy as np
import pillow_heif
from PIL import Image

pillow_heif.register_heif_opener()

DEFAULT_MAX_BYTES = 40 * 1024 * 1024


def sample_rgb(width: int = 320, height: int = 240, *, seed: int = 0) -> np.ndarray:
    """A small colourful RGB uint8 test picture (gradient, noise and a few shapes)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2)
    rgb += rng.normal(0, 12, rgb.shape)
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    cv2.circle(rgb, (width // 3, height // 2), min(width, height) // 5, (200, 30, 30), -1)
    zigzag = np.array(
        [(width // 2 + i * width // 20, height // 4 + (i % 2) * height // 2) for i in range(7)],
        np.int32,
    )
    cv2.polylines(rgb, [zigzag], False, (20, 20, 160), max(2, width // 100))
    return rgb


def encode(rgb: np.ndarray, fmt: str, **params: object) -> bytes:
    """Encode an RGB array with Pillow as "JPEG", "PNG", "WEBP", "HEIF", "GIF", "BMP", "TIFF"…"""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, fmt, **params)  # type: ignore[arg-type]
    return buffer.getvalue()


def valid_jpeg(width: int = 320, height: int = 240, **params: object) -> bytes:
    """A valid baseline JPEG of the sample picture (``params`` go to Pillow's save, e.g. exif)."""
    return encode(sample_rgb(width, height), "JPEG", **{"quality": 90, **params})


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk with its length and CRC."""
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def png_declaring(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A PNG whose IHDR declares ``width``×``height`` RGB pixels but carries only ``idat``
    (by default a few compressed zero rows): a decompression bomb when the size is huge."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = idat if idat is not None else zlib.compress(b"\x00" * 4096, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def jpeg_declaring(width: int, height: int) -> bytes:
    """A valid small JPEG with its SOF header patched to declare ``width``×``height``."""
    data = bytearray(valid_jpeg(64, 64))
    pos = 2
    while pos < len(data):
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            struct.pack_into(">HH", data, pos + 5, height, width)
            return bytes(data)
        pos += 2 + length
    raise AssertionError("no SOF segment in the generated JPEG")


def fake_mp4(n_bytes: int = 5000) -> bytes:
    """Bytes shaped like an MP4 (an ``ftyp`` box then an ``mdat`` box) of ``n_bytes`` in total."""
    ftyp = struct.pack(">I4s4sI", 24, b"ftyp", b"mp42", 0) + b"isommp42"
    body = bytes(np.random.default_rng(1).integers(0, 256, n_bytes - len(ftyp) - 8, np.uint8))
    return ftyp + struct.pack(">I4s", 8 + len(body), b"mdat") + body


def small_zip() -> bytes:
    """A ZIP archive holding one text file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("secret.txt", "this must never be stored\n" * 20)
    return buffer.getvalue()


def heic(width: int = 256, height: int = 192) -> bytes:
    """A valid HEIC of the sample picture, written by pillow-heif."""
    return encode(sample_rgb(width, height), "HEIF", quality=80)


def huge_exif_jpeg() -> bytes:
    """A valid JPEG whose EXIF fills its APP1 segment: a 60 kB description, GPS, a camera model."""
    exif = Image.Exif()
    exif[0x010E] = "A" * 60_000  # ImageDescription
    exif[0x0110] = "Tablet 9000"  # Model
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (55.0, 36.0, 19.0)
    gps[3], gps[4] = "E", (13.0, 0.0, 38.0)
    return valid_jpeg(exif=exif.tobytes())


def hostile_files(max_bytes: int = DEFAULT_MAX_BYTES) -> list[tuple[str, bytes, int]]:
    """Uploads Spira must refuse, as (file name, bytes, expected HTTP status).

    ``max_bytes`` is the deployment's per-file byte limit; one entry is a byte longer. Statuses:
    413 too large (bytes or declared pixels), 415 not a supported image, 422 broken or unusable.
    """
    jpeg = valid_jpeg()
    png = encode(sample_rgb(), "PNG")
    good_heic = heic()
    broken_heic = good_heic[:32] + bytes(range(256)) * 8  # ftyp kept, every later box destroyed
    corrupt_png = png_declaring(320, 240, idat=b"this is not a zlib stream" * 10)
    oversize = jpeg + b"\x00" * (max_bytes + 1 - len(jpeg))
    return [
        ("empty.jpg", b"", 422),
        ("notes.jpg", "Lista över barnen i gruppen\nrad två\n".encode(), 415),
        ("page.jpg", b"<!DOCTYPE html><html><body><h1>hi</h1></body></html>", 415),
        ("script.jpg", b"<script>fetch('/api/photos').then(r=>r.text())</script>", 415),
        ("drawing.svg.png", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', 415),
        ("truncated.jpg", jpeg[: len(jpeg) // 2], 422),
        ("truncated.png", png[: len(png) // 2], 422),
        ("truncated.heic", good_heic[: len(good_heic) // 2], 422),
        ("broken.heic", broken_heic, 422),
        ("corrupt.png", corrupt_png, 422),
        ("garbage.jpg", b"\xff\xd8\xff" + bytes(range(256)) * 40, 422),
        ("bomb.png", png_declaring(30_000, 30_000), 413),
        ("bomb.jpg", jpeg_declaring(65_000, 65_000), 413),
        ("oversize.jpg", oversize, 413),
        ("one_pixel.png", encode(np.zeros((1, 1, 3), np.uint8), "PNG"), 422),
        ("one_pixel.jpg", encode(np.zeros((1, 1, 3), np.uint8), "JPEG"), 422),
        ("thin.png", encode(np.zeros((10, 900, 3), np.uint8), "PNG"), 422),
        ("zero_size.png", png_declaring(0, 0, idat=zlib.compress(b"")), 422),
        ("zero_height.jpg", jpeg_declaring(64, 0), 422),
        ("animation.gif", encode(sample_rgb(), "GIF"), 415),
        ("scan.bmp", encode(sample_rgb(), "BMP"), 415),
        ("scan.tiff", encode(sample_rgb(), "TIFF"), 415),
        ("document.pdf", b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", 415),
        ("archive.zip", small_zip(), 415),
        ("movie.mp4", fake_mp4(), 415),
        (
            "image.avif",
            struct.pack(">I4s4sI", 24, b"ftyp", b"avif", 0) + b"mif1miaf" + b"\0" * 64,
            415,
        ),
        ("binary.jpg", bytes(range(256)) * 4, 415),
    ]


def odd_but_valid_files() -> list[tuple[str, bytes, int]]:
    """Uploads Spira must accept, as (file name, bytes, trailer length dropped in bytes).

    Phones append data after the image (an Android motion photo carries an MP4); someone may glue
    a ZIP on; EXIF may be huge; names may be hostile (the name must simply be ignored).
    """
    jpeg = valid_jpeg()
    mp4 = fake_mp4(20_000)
    archive = small_zip()
    png = encode(sample_rgb(), "PNG")
    return [
        ("MVIMG_20260312_101500.jpg", jpeg + mp4, len(mp4)),
        ("drawing_with_zip.jpg", jpeg + archive, len(archive)),
        ("drawing_with_zip.png", png + archive, len(archive)),
        ("huge_exif.jpg", huge_exif_jpeg(), 0),
        ("../../etc/passwd.jpg", jpeg, 0),
        ("ritning_åäö_😀 (1).jpg", jpeg, 0),
        ("C:\\Windows\\system32\\x.jpg", jpeg, 0),
    ]
