"""Find and blur faces in a photo before anything is stored (DESIGN.md, principle 2).

Detection uses OpenCV's bundled Haar cascades (frontal, and profile in both directions) on a
downscaled, histogram-equalised grey copy. A detection that is mostly flat paper is discarded,
because a child's drawing of a face (a circle with two dots) must not be smeared: it is the very
thing being assessed. Each kept box is enlarged and pixelated and then blurred, so the face cannot
be recognised or recovered.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

#: (x, y, width, height) in pixels of the image passed in.
FaceBox = tuple[int, int, int, int]

#: Long side, in pixels, of the grey copy the cascades scan. Faces smaller than about 24/320 of
#: the photo's long side (7.5 %, about 120 px at 1600 px) are not found; a child's face in a
#: tablet photo of a drawing is rarely smaller. Scanning cost grows with the square of this.
DETECT_LONG_SIDE = 320
_MIN_FACE_PX = 24
# scaleFactor 1.2 and minNeighbors 5 find the astronaut's face in skimage's test photo and fire
# on none of the synthetic line drawings (including tadpole figures with eyes) in the tests.
_SCALE_FACTOR = 1.2
_MIN_NEIGHBOURS = 5
# Share of a box's pixels within 30 levels (every channel) of its brightest tone above which the
# box is taken for paper. Drawn faces on paper score about 0.9, the astronaut's face 0.2.
_PAPER_SHARE = 0.6
#: Cells per side of the mosaic a face is reduced to before blurring.
_MOSAIC = 5


@lru_cache(maxsize=1)
def _cascades() -> tuple[cv2.CascadeClassifier, cv2.CascadeClassifier]:
    """Load the frontal and profile face cascades shipped inside opencv-python."""
    base = cv2.data.haarcascades  # type: ignore[attr-defined]
    frontal = cv2.CascadeClassifier(base + "haarcascade_frontalface_default.xml")
    profile = cv2.CascadeClassifier(base + "haarcascade_profileface.xml")
    if frontal.empty() or profile.empty():
        raise RuntimeError(f"OpenCV's Haar face cascades are missing from {base}")
    return frontal, profile


def detect_faces(rgb: np.ndarray, *, detect_long_side: int = DETECT_LONG_SIDE) -> list[FaceBox]:
    """Find faces in an RGB uint8 image.

    Returns boxes (x, y, width, height) in the pixel coordinates of ``rgb``; overlapping
    detections from different cascades are all returned (blurring twice is harmless).
    """
    height, width = rgb.shape[:2]
    scale = min(1.0, detect_long_side / max(height, width))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)
    frontal, profile = _cascades()
    found = _scan(frontal, grey) + _scan(profile, grey)
    mirrored_width = grey.shape[1]
    for x, y, w, h in _scan(profile, cv2.flip(grey, 1)):
        found.append((mirrored_width - x - w, y, w, h))
    boxes: list[FaceBox] = []
    for x, y, w, h in found:
        box = (
            int(round(x / scale)),
            int(round(y / scale)),
            int(round(w / scale)),
            int(round(h / scale)),
        )
        if not _looks_like_paper(rgb, box):
            boxes.append(box)
    return boxes


def _scan(cascade: cv2.CascadeClassifier, grey: np.ndarray) -> list[FaceBox]:
    """Run one cascade over a grey image; boxes in that image's pixels."""
    found = cascade.detectMultiScale(
        grey,
        scaleFactor=_SCALE_FACTOR,
        minNeighbors=_MIN_NEIGHBOURS,
        minSize=(_MIN_FACE_PX, _MIN_FACE_PX),
    )
    return [(int(x), int(y), int(w), int(h)) for x, y, w, h in found]


def _looks_like_paper(rgb: np.ndarray, box: FaceBox) -> bool:
    """True when most of the box has one flat colour, that of its brightest tenth: paper with
    lines on it (whatever the light's colour), not a face, whose skin shades continuously."""
    x, y, w, h = box
    patch = rgb[y : y + h, x : x + w].astype(np.int16)
    if patch.size == 0:
        return True
    grey = patch.mean(axis=2)
    paper_colour = np.median(patch[grey >= np.percentile(grey, 90)], axis=0)
    near_paper = np.abs(patch - paper_colour).max(axis=2) < 30
    return bool(near_paper.mean() > _PAPER_SHARE)


def blur_faces(rgb: np.ndarray, boxes: list[FaceBox], *, grow: float = 0.25) -> np.ndarray:
    """Return a copy of ``rgb`` with each box (enlarged by ``grow`` of its size on every side)
    pixelated to a 5×5 grid and then Gaussian-blurred, so no facial detail survives (not even
    the coarse light and dark pattern the detector itself keys on)."""
    out = rgb.copy()
    height, width = rgb.shape[:2]
    for x, y, w, h in boxes:
        dx, dy = int(w * grow), int(h * grow)
        x0, y0 = max(0, x - dx), max(0, y - dy)
        x1, y1 = min(width, x + w + dx), min(height, y + h + dy)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        region = out[y0:y1, x0:x1]
        coarse = cv2.resize(region, (_MOSAIC, _MOSAIC), interpolation=cv2.INTER_AREA)
        blocky = cv2.resize(coarse, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        # Blur over about one mosaic cell, so block edges do not redraw eyes and mouth.
        sigma = min(x1 - x0, y1 - y0) / _MOSAIC
        out[y0:y1, x0:x1] = cv2.GaussianBlur(blocky, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    return out
