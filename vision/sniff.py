"""Recognise an upload's format from its bytes and read its container layout without decoding.

Everything here looks at magic bytes and container structure only (JPEG segments, PNG chunks, RIFF
and ISO-BMFF boxes). The file name and the declared content type are never consulted: they are
whatever the client says. The layout functions find where the primary image ends, so bytes a phone
appends (an Android motion photo's MP4, a depth map, or a ZIP someone glued on) can be dropped, and
they read the declared dimensions so a decompression bomb is refused before a pixel is decoded.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

#: Formats Spira decodes, as returned by :func:`sniff_format`.
ACCEPTED_FORMATS: tuple[str, ...] = ("jpeg", "png", "webp", "heif")

#: Human names for formats, used in error messages.
FORMAT_NAMES: dict[str, str] = {
    "jpeg": "a JPEG image",
    "png": "a PNG image",
    "webp": "a WebP image",
    "heif": "a HEIC/HEIF image",
    "avif": "an AVIF image",
    "gif": "a GIF image",
    "bmp": "a BMP image",
    "tiff": "a TIFF image",
    "ico": "an icon file",
    "jxl": "a JPEG XL image",
    "svg": "an SVG drawing (XML text)",
    "pdf": "a PDF document",
    "zip": "a ZIP archive (or an Office document)",
    "gzip": "a gzip archive",
    "rar": "a RAR archive",
    "7z": "a 7-Zip archive",
    "mp4": "a video (MP4/QuickTime)",
    "html": "an HTML page or script",
    "xml": "an XML document",
    "text": "a text file",
    "empty": "an empty file",
    "unknown": "not a recognised file type",
}

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"mif2"}
_AVIF_BRANDS = {b"avif", b"avis"}
_HTML_STARTS = (
    b"<!doctype html",
    b"<html",
    b"<head",
    b"<body",
    b"<script",
    b"<iframe",
    b"<meta",
    b"<style",
    b"<div",
    b"<a ",
    b"<img",
    b"<?php",
)


def sniff_format(data: bytes) -> str:
    """Name the format of ``data`` from its leading bytes.

    Returns one of :data:`ACCEPTED_FORMATS` ("jpeg", "png", "webp", "heif") for what Spira
    decodes, else a short name of what was found: "avif", "gif", "bmp", "tiff", "ico", "jxl",
    "svg", "pdf", "zip", "gzip", "rar", "7z", "mp4", "html", "xml", "text", "empty" or "unknown".
    """
    if not data:
        return "empty"
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(data)
    simple = (
        (b"GIF87a", "gif"),
        (b"GIF89a", "gif"),
        (b"%PDF-", "pdf"),
        (b"PK\x03\x04", "zip"),
        (b"PK\x05\x06", "zip"),
        (b"PK\x07\x08", "zip"),
        (b"\x1f\x8b", "gzip"),
        (b"Rar!\x1a\x07", "rar"),
        (b"7z\xbc\xaf\x27\x1c", "7z"),
        (b"BM", "bmp"),
        (b"II*\x00", "tiff"),
        (b"MM\x00*", "tiff"),
        (b"\x00\x00\x01\x00", "ico"),
        (b"\xff\x0a", "jxl"),
        (b"\x00\x00\x00\x0cJXL ", "jxl"),
    )
    for magic, name in simple:
        if head.startswith(magic):
            return name
    return _sniff_text(data[:4096])


def _sniff_ftyp(data: bytes) -> str:
    """Tell HEIF from AVIF from video by the ISO-BMFF ``ftyp`` box's brands."""
    size = struct.unpack(">I", data[:4])[0]
    box = data[8 : max(16, min(size, 256))]
    major = box[:4]
    compatible = {box[i : i + 4] for i in range(8, len(box) - 3, 4)}
    brands = {major} | compatible
    if major in _AVIF_BRANDS or (brands & _AVIF_BRANDS and not brands & {b"heic", b"heix"}):
        return "avif"
    if brands & _HEIF_BRANDS:
        return "heif"
    return "mp4"


def _sniff_text(head: bytes) -> str:
    """Classify non-binary leading bytes as html, svg, xml or text, else unknown."""
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith(_HTML_STARTS) or b"<script" in stripped[:1024]:
        return "html"
    if stripped.startswith(b"<svg") or (stripped.startswith(b"<?xml") and b"<svg" in stripped):
        return "svg"
    if stripped.startswith(b"<?xml"):
        return "xml"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character may be cut at the 4096-byte boundary; judge the rest.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return "unknown"
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return "text" if printable >= 0.95 * max(len(text), 1) else "unknown"


@dataclass(frozen=True)
class ContainerLayout:
    """What the container says before any pixel is decoded.

    ``end`` is the offset just after the primary image (``None`` when the data stops before the
    image is complete: a truncated upload); ``width``/``height`` are the declared pixel dimensions
    (``None`` when the header does not state them where this parser looks).
    """

    end: int | None
    width: int | None = None
    height: int | None = None


class ContainerError(ValueError):
    """The container structure is broken (not merely truncated); ``str()`` names the problem."""


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Inside entropy-coded data 0xFF is followed by 0x00 (stuffing) or 0xD0-0xD7 (restart markers);
# anything else (bar fill 0xFF bytes) starts a real marker.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def jpeg_layout(data: bytes) -> ContainerLayout:
    """Walk a JPEG's segments from SOI to the primary image's EOI.

    Length-prefixed segments are skipped whole, so a thumbnail embedded in APP1 (EXIF) or an MPF
    preview with its own SOI/EOI is never mistaken for the end of the image; entropy-coded scan
    data is searched for the next real marker. Returns the layout; ``end is None`` when the data
    ends before EOI. Raises :class:`ContainerError` for a broken segment structure.
    """
    n = len(data)
    pos = 2
    width = height = None
    while pos < n:
        if data[pos] != 0xFF:
            raise ContainerError(f"the JPEG segment structure is broken at byte {pos}")
        while pos < n and data[pos] == 0xFF:
            pos += 1
        if pos >= n:
            break
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            return ContainerLayout(end=pos, width=width, height=height)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue
        if marker in (0xD8, 0x00):
            raise ContainerError(f"the JPEG has an unexpected marker 0xFF{marker:02X} at {pos - 2}")
        if pos + 2 > n:
            break
        length = (data[pos] << 8) | data[pos + 1]
        if length < 2:
            raise ContainerError(f"the JPEG has a segment of impossible length at byte {pos}")
        if pos + length > n:
            break
        if marker in _SOF_MARKERS and length >= 7 and width is None:
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
        pos += length
        if marker == 0xDA:
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                break
            pos = found.start()
    return ContainerLayout(end=None, width=width, height=height)


def png_layout(data: bytes) -> ContainerLayout:
    """Walk a PNG's chunks to IEND; dimensions from IHDR. ``end is None`` when truncated."""
    n = len(data)
    pos = 8
    width = height = None
    while pos + 8 <= n:
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if length > 0x7FFFFFFF:
            raise ContainerError(f"the PNG has a chunk of impossible length at byte {pos}")
        if kind == b"IHDR" and pos + 16 <= n:
            width, height = struct.unpack(">II", data[pos + 8 : pos + 16])
        pos += 12 + length
        if pos > n:
            break
        if kind == b"IEND":
            return ContainerLayout(end=pos, width=width, height=height)
    return ContainerLayout(end=None, width=width, height=height)


def webp_layout(data: bytes) -> ContainerLayout:
    """Read the RIFF size of a WebP; ``end is None`` when fewer bytes arrived than it declares."""
    size = struct.unpack("<I", data[4:8])[0] if len(data) >= 8 else 0
    end = 8 + size + (size & 1)
    if len(data) < 8 + size:
        return ContainerLayout(end=None)
    return ContainerLayout(end=min(end, len(data)))


def heif_layout(data: bytes) -> ContainerLayout:
    """Walk top-level ISO-BMFF boxes; stop at the first that is not a plausible box.

    HEIF has no end marker, so the image ends after the last well-formed top-level box; a box
    that claims more bytes than arrived means a truncated upload (``end is None``).
    """
    n = len(data)
    pos = 0
    while pos + 8 <= n:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > n:
                break
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
            header = 16
        elif size == 0:
            size = n - pos
        if not all(32 <= c < 127 for c in kind) or size < header:
            # Not a box: whatever follows the last good box is a trailer.
            return ContainerLayout(end=pos)
        if pos + size > n:
            return ContainerLayout(end=None)
        pos += size
    return ContainerLayout(end=pos)
