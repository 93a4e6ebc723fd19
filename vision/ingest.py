"""The door every photo passes through: bytes in, a normalised, privacy-safe photo out.

:func:`ingest` is pure (no database, no disk): it identifies the format from the bytes, refuses
what it must with an :class:`IngestError` carrying an HTTP status and a clear message, decodes
straight to working resolution (reduced DCT decoding for JPEG), applies the EXIF orientation,
converts to sRGB, blurs faces, finds and straightens the sheet, flattens the light, and re-encodes
without any metadata. The original bytes are only hashed, never kept; bytes after the image
(motion-photo video, appended archives) are dropped and counted.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import struct
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pillow_heif
import simplejpeg
from PIL import Image, ImageCms, UnidentifiedImageError

from vision.faces import blur_faces, scan_faces
from vision.resize import fit_long_side
from vision.sheet import find_sheet, flatten_light, rectify_sheet
from vision.sniff import (
    ACCEPTED_FORMATS,
    FORMAT_NAMES,
    ContainerError,
    ContainerLayout,
    heif_layout,
    jpeg_layout,
    png_layout,
    sniff_format,
    webp_layout,
)

# iPads send HEIC; registering makes Image.open read it like any other format.
pillow_heif.register_heif_opener()

__all__ = [
    "IngestError",
    "IngestLimits",
    "ProcessedPhoto",
    "ingest",
    "sniff_format",
]

_FORMAT_LABEL = {"jpeg": "JPEG", "png": "PNG", "webp": "WebP", "heif": "HEIC/HEIF"}
_ACCEPTED_TEXT = "JPEG, PNG, WebP or HEIC/HEIF"


@dataclass(frozen=True)
class IngestLimits:
    """Configurable limits and sizes for :func:`ingest` (bytes and pixels)."""

    max_bytes: int = 40 * 1024 * 1024
    #: Declared width × height above which a file is refused before decoding (decompression bomb).
    max_pixels: int = 60_000_000
    #: Smallest accepted shorter side, in pixels.
    min_side: int = 64
    #: Long side, in pixels, of the processed image (smaller photos are not enlarged).
    working_long_side: int = 1600
    #: Long side, in pixels, of the thumbnail.
    thumb_long_side: int = 320
    #: Long side, in pixels, of the copy BlazeFace scans: the model's own input (256), so the
    #: copy is made straight at the model's size and seen whole. Faces from about 11 % of the
    #: long side are found (180 px in a 1600-px photo); a larger scan adds tiles.
    face_scan_long_side: int = 256
    #: Long side, in pixels, of the grey copy the Haar cascade scans for smaller faces: at 1600
    #: a face of 2 % of the long side is 32 px, above its 24-px window
    #: (vision.faces.find_small_faces); 0 turns it off.
    small_face_scan_long_side: int = 1600
    #: JPEG quality of the stored processed image and thumbnail.
    jpeg_quality: int = 90


class IngestError(Exception):
    """An upload Spira refuses; nothing was stored.

    ``status`` is the HTTP status (413 too large, 415 unsupported format, 422 broken or unusable),
    ``code`` a short machine-readable reason, ``message`` human text saying what was wrong and
    what to do.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"IngestError({self.status}, {self.code!r}, {self.message!r})"


@dataclass
class ProcessedPhoto:
    """The result of :func:`ingest`: what may be stored, plus facts about the upload."""

    #: RGB uint8 at working resolution: oriented, faces blurred, and sheet-corrected and
    #: light-flattened when a sheet was found.
    image: np.ndarray
    #: ``image`` re-encoded as JPEG with no metadata at all (no EXIF, GPS, XMP or ICC).
    jpeg: bytes
    #: A smaller JPEG (long side about ``thumb_long_side``), also without metadata.
    thumbnail_jpeg: bytes
    #: SHA-256 (hex) of the original upload bytes, for duplicate detection.
    sha256: str
    #: SHA-256 (hex) of ``jpeg``, the content-addressed storage key.
    content_sha256: str
    #: "jpeg", "png", "webp" or "heif".
    source_format: str
    #: (width, height) in pixels of the upload after orientation.
    original_size: tuple[int, int]
    faces_blurred: int
    sheet_found: bool
    #: Bytes after the image's end (e.g. a motion photo's MP4) that were dropped.
    trailer_dropped: int


def ingest(data: bytes, *, limits: IngestLimits | None = None) -> ProcessedPhoto:
    """Check, decode and normalise one uploaded photo.

    Returns a :class:`ProcessedPhoto`. Raises :class:`IngestError` (413, 415 or 422) naming the
    problem when the bytes are empty, too large, not a supported image, a decompression bomb,
    truncated or corrupt, or too small.
    """
    limits = limits or IngestLimits()
    if len(data) > limits.max_bytes:
        raise IngestError(
            413,
            "too_large",
            f"The file is {len(data):,} bytes ({_mib(len(data))}); the limit is "
            f"{limits.max_bytes:,} bytes ({_mib(limits.max_bytes)}). "
            "Upload a smaller photo (tablet camera photos are well under the limit).",
        )
    fmt = sniff_format(data)
    if fmt == "empty":
        raise IngestError(422, "empty", "The file is empty (0 bytes). Choose the photo again.")
    if fmt not in ACCEPTED_FORMATS:
        raise IngestError(
            415,
            "unsupported_format",
            f"The file is {FORMAT_NAMES.get(fmt, fmt)} (detected from its content, whatever its "
            f"name says), not a photo Spira accepts. Upload a {_ACCEPTED_TEXT} image.",
        )
    layout = _layout(fmt, data)
    label = _FORMAT_LABEL[fmt]
    if layout.end is None:
        raise IngestError(
            422,
            "truncated",
            f"The {label} data ends early (truncated upload?). Upload the photo again.",
        )
    if layout.width is not None and layout.height is not None:
        _check_dimensions(layout.width, layout.height, limits, label)
    image_bytes = data[: layout.end]
    rgb, original_size = _decode(image_bytes, fmt, limits)
    # A JPEG comes at up to twice the working size (reduced DCT decoding has steps of two): the
    # sheet is rectified straight from it, at the working scale (one resampling, not two).
    corners = find_sheet(rgb)
    if corners is not None:
        rgb = rectify_sheet(
            rgb,
            corners,
            max_long_side=limits.working_long_side,
            scale=min(1.0, limits.working_long_side / max(rgb.shape[:2])),
        )
    else:
        rgb = fit_long_side(rgb, limits.working_long_side)
    # Faces are searched in exactly what will be stored: after cropping to the sheet, faces
    # outside it are gone anyway, and the scan (the slowest step) covers fewer pixels.
    faces = scan_faces(
        rgb,
        detect_long_side=limits.face_scan_long_side,
        small_face_long_side=limits.small_face_scan_long_side,
    )
    if faces:
        rgb = blur_faces(rgb, faces)
    if corners is not None:
        rgb = flatten_light(rgb)
    jpeg = _encode_jpeg(rgb, limits.jpeg_quality)
    return ProcessedPhoto(
        image=rgb,
        jpeg=jpeg,
        thumbnail_jpeg=_encode_jpeg(fit_long_side(rgb, limits.thumb_long_side), 85),
        sha256=hashlib.sha256(data).hexdigest(),
        content_sha256=hashlib.sha256(jpeg).hexdigest(),
        source_format=fmt,
        original_size=original_size,
        faces_blurred=len(faces),
        sheet_found=corners is not None,
        trailer_dropped=len(data) - layout.end,
    )


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / (1024 * 1024):.1f} MiB"


def _layout(fmt: str, data: bytes) -> ContainerLayout:
    """Container layout of an accepted format; broken structure becomes a 422."""
    reader = {"jpeg": jpeg_layout, "png": png_layout, "webp": webp_layout, "heif": heif_layout}
    try:
        return reader[fmt](data)
    except ContainerError as err:
        raise IngestError(
            422, "corrupt", f"The file is damaged: {err}. Upload the original photo again."
        ) from None


def _check_dimensions(width: int, height: int, limits: IngestLimits, label: str) -> None:
    """Refuse zero-size, bomb-sized or too-small declared dimensions (before decoding)."""
    if width <= 0 or height <= 0:
        raise IngestError(
            422,
            "zero_size",
            f"The {label} declares a size of {width}×{height} pixels, which holds no image.",
        )
    if width * height > limits.max_pixels:
        raise IngestError(
            413,
            "too_many_pixels",
            f"The {label} declares {width}×{height} pixels ({width * height / 1e6:.0f} MP); the "
            f"limit is {limits.max_pixels / 1e6:.0f} MP. It was not decoded. Upload an ordinary "
            "camera photo.",
        )
    if min(width, height) < limits.min_side:
        raise IngestError(
            422,
            "too_small",
            f"The image is {width}×{height} pixels; the shorter side must be at least "
            f"{limits.min_side} pixels to see a drawing. Upload the full-size photo.",
        )


def _decode(data: bytes, fmt: str, limits: IngestLimits) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode to RGB uint8 at working resolution, oriented and in sRGB.

    Returns (image, original (width, height) after orientation). Raises IngestError.
    """
    label = _FORMAT_LABEL[fmt]
    rgb = None
    try:
        # Our own max_pixels check (below, on the header size) is the bomb guard; Pillow's global
        # guard would otherwise warn or refuse at a threshold the deployment did not choose.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # the header, EXIF and ICC: no pixels yet
            width, height = image.size
            _check_dimensions(width, height, limits, label)
            orientation = image.getexif().get(0x0112, 1)
            if fmt == "jpeg":
                reduced = reduced_size(width, height, limits.working_long_side)
                if image.mode in ("RGB", "L"):
                    rgb = _decode_clean_jpeg(data, reduced)
                if rgb is None:
                    # CMYK, or a file libjpeg warns about: Pillow decides, as it always has
                    # (recoverable warnings pass, damage is refused), reduced the same way.
                    image.draft("RGB", reduced)
                    image.load()
            else:
                image.load()
    except IngestError:
        raise
    except Image.DecompressionBombError as err:
        raise IngestError(
            413, "too_many_pixels", f"The {label} declares too many pixels ({err})."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, RuntimeError, struct.error) as err:
        raise IngestError(422, _corrupt_code(err), _corrupt_message(label, err)) from None
    icc = image.info.get("icc_profile")
    if rgb is None:
        decoded = _to_rgb(image)
        if icc:
            decoded = _to_srgb(decoded, icc)
        rgb = np.asarray(decoded, dtype=np.uint8)
    elif icc:
        rgb = np.asarray(_to_srgb(Image.fromarray(rgb), icc), dtype=np.uint8)
    if fmt != "jpeg" or max(rgb.shape[:2]) > 2 * limits.working_long_side:
        rgb = fit_long_side(rgb, limits.working_long_side)
    rgb = _orient(rgb, orientation)
    original_size = (width, height) if orientation not in (5, 6, 7, 8) else (height, width)
    return np.ascontiguousarray(rgb), original_size


def _decode_clean_jpeg(data: bytes, size: tuple[int, int]) -> np.ndarray | None:
    """RGB pixels of a colour or grey JPEG decoded by libjpeg-turbo at ``size`` (see
    :func:`reduced_size`: a 12-MP photo at 2000×1500) straight into a numpy array; None when
    libjpeg reports anything, even a recoverable warning, so that Pillow's path judges the file
    (simplejpeg's lenient mode would accept damaged data that Pillow refuses)."""
    try:
        return simplejpeg.decode_jpeg(
            data, "RGB", min_width=size[0], min_height=size[1], strict=True
        )
    except ValueError:
        return None


def reduced_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """Size to decode a JPEG at: libjpeg scales by 1/2, 1/4 or 1/8 in the DCT domain, the
    largest step that keeps the long side at or above ``long_side`` (what Pillow's ``draft``
    chooses; a smaller decode costs a fraction of a full one)."""
    factor = 1
    while factor < 8 and max(width, height) / (factor * 2) >= long_side:
        factor *= 2
    return math.ceil(width / factor), math.ceil(height / factor)


def _corrupt_code(err: BaseException) -> str:
    return "truncated" if "truncated" in str(err).lower() else "corrupt"


def _corrupt_message(label: str, err: BaseException) -> str:
    text = str(err).lower()
    if "truncated" in text or isinstance(err, EOFError):
        return f"The {label} data ends early (truncated upload?). Upload the photo again."
    if isinstance(err, UnidentifiedImageError):
        detail = "its structure is not readable"
    else:
        # Decoder messages can carry object reprs; keep the first clause, without addresses.
        detail = re.sub(r"<[^>]*>", "the file", str(err)).split("\n")[0][:200] or type(err).__name__
    return (
        f"The {label} could not be decoded ({detail}); the file is damaged. Upload the original "
        "photo again."
    )


def _orient(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation value (1–8) to an H×W×3 array so it displays upright."""
    if orientation == 4:
        return rgb[::-1, :]
    if orientation in (2, 5, 7):  # mirrored variants: mirror, then rotate as 1, 8 or 6
        rgb = rgb[:, ::-1]
        orientation = {2: 1, 5: 8, 7: 6}[orientation]
    if orientation == 3:
        return rgb[::-1, ::-1]
    if orientation == 6:  # camera turned clockwise: rotate the pixels 90° clockwise
        return np.rot90(rgb, k=-1)
    if orientation == 8:
        return np.rot90(rgb, k=1)
    return rgb


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any decoded mode to RGB; transparency is composited onto white paper."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: Pillow's convert would clip, so scale down explicitly.
        values = np.asarray(image, dtype=np.uint32)
        shift = 8 if values.max() > 255 else 0
        grey = (values >> shift).clip(0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2))
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert("RGB")
    return image.convert("RGB")


@lru_cache(maxsize=16)
def _srgb_transform(icc: bytes) -> ImageCms.ImageCmsTransform | None:
    """A transform from the embedded profile to sRGB, or None when it is (or claims) sRGB."""
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    description = (ImageCms.getProfileDescription(source) or "").lower()
    if "srgb" in description or source.profile.xcolor_space.strip() != "RGB":
        return None
    return ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), "RGB", "RGB")


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    """Convert RGB pixels from the embedded ICC profile to sRGB; a broken profile is ignored
    (the pixels are then taken as sRGB, which is what browsers do)."""
    try:
        transform = _srgb_transform(bytes(icc))
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image
    if transform is None:
        return image
    return ImageCms.applyTransform(image, transform) or image


def _encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """Encode RGB uint8 as a baseline JPEG (4:2:0, a JFIF header and nothing else: no EXIF, XMP,
    ICC or comment segments). libjpeg-turbo straight from the array, a third faster than going
    through a Pillow image."""
    return simplejpeg.encode_jpeg(np.ascontiguousarray(rgb), quality, "RGB", "420")
