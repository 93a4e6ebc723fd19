"""Faces at every size a camera produces are blurred in everything ingest stores.

Real face crops (skimage's LFW subset and the astronaut's head) are pasted into 12-MP photos at
2–15 % of the long side, on a photographed drawing (the sheet is found and cropped to) and on
full-frame artwork (no sheet edge), landscape and portrait. The photos go through
``vision.ingest.ingest``; afterwards neither OpenCV's stock Haar cascade nor BlazeFace, looking
generously, finds a face in the processed image or the thumbnail. The same checks on the same
photos ingested with the face scan turned off find the faces, so the checks can see them.
``bench/faces.py`` builds its sweep from :func:`face_scene`.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import simplejpeg
from skimage import data

import vision.faces as faces
import vision.ingest as ingest_module
from vision.ingest import ingest
from vision.resize import fit_long_side
from vision.sheet import find_sheet
from vision.synthetic import photograph, render_drawing

#: Face widths pasted, as shares of the photo's long side.
FACE_SIZES = (0.02, 0.03, 0.045, 0.06, 0.08, 0.11, 0.15)
#: (width, height) of the photos: 12 MP, landscape and portrait.
PHOTO_SIZES = ((4000, 3000), (3000, 4000))
#: Where the faces are pasted: on a photographed sheet, or on artwork filling the frame.
BACKGROUNDS = ("sheet", "artwork")

_HAAR = cv2.CascadeClassifier(str(faces.HAAR_PATH))
# The astronaut's head and shoulders in skimage's 512×512 photo, and his face inside that crop.
_HEAD = (130, 20, 190, 200)
_FACE_IN_HEAD = (44, 46, 98, 98)


def face_scene(
    background: str, size: tuple[int, int], face_share: float, seed: int, n: int = 3
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A photo of ``size`` (width, height) with up to ``n`` real faces of ``face_share`` of its
    long side pasted on ``background`` ("sheet": a photographed crayon drawing on a table, pasted
    inside the sheet; "artwork": a painted-over drawing filling the frame). Faces alternate
    between the astronaut's head (colour, with hair and shoulders) and LFW crops (grey, the face
    only), each in its own cell so none overlap.

    Returns (RGB uint8 photo, face boxes (x, y, width, height) in its pixels).
    """
    rng = np.random.default_rng([seed, int(face_share * 1000), size[0]])
    width, height = size
    drawing = render_drawing(3 + seed % 2, rng, size=1280)
    if background == "sheet":
        photo, corners = photograph(drawing, rng, size)
        (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
        inset = 0.08 * min(x1 - x0, y1 - y0)
        region = (int(x0 + inset), int(y0 + inset), int(x1 - inset), int(y1 - inset))
    elif background == "artwork":
        h, w = drawing.shape[:2]
        margin = int(0.08 * min(h, w))
        inner = drawing[margin : h - margin, margin : w - margin]
        photo = cv2.resize(inner, size, interpolation=cv2.INTER_CUBIC)
        wash = rng.integers(60, 256, (4, 4, 3)).astype(np.uint8)
        wash = cv2.resize(wash, size, interpolation=cv2.INTER_CUBIC).astype(np.float32)
        photo = (photo.astype(np.float32) * wash / 255).astype(np.uint8)
        region = (0, 0, width, height)
    else:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")
    side = round(face_share * max(width, height))
    cell = int(2.2 * side)
    rx0, ry0, rx1, ry1 = region
    columns, rows = max(1, (rx1 - rx0) // cell), max(1, (ry1 - ry0) // cell)
    lfw = data.lfw_subset()[:100]  # the first 100 are faces
    head = data.astronaut()[_HEAD[1] : _HEAD[1] + _HEAD[3], _HEAD[0] : _HEAD[0] + _HEAD[2]]
    pasted: list[tuple[int, int, int, int]] = []
    for number, index in enumerate(rng.permutation(columns * rows)[:n]):
        row, column = divmod(int(index), columns)
        if number % 2 == 0:
            crop, (fx, fy, fw, _) = head, _FACE_IN_HEAD
        else:
            grey = (lfw[int(rng.integers(0, 100))] * 255).astype(np.uint8)
            crop, (fx, fy, fw) = np.repeat(grey[..., None], 3, axis=2), (0, 0, 25)
        scale = side / fw
        cw, ch = round(crop.shape[1] * scale), round(crop.shape[0] * scale)
        cw, ch = min(cw, cell, rx1 - rx0), min(ch, cell, ry1 - ry0)
        x = rx0 + column * cell + (min(cell, rx1 - rx0) - cw) // 2
        y = ry0 + row * cell + (min(cell, ry1 - ry0) - ch) // 2
        interpolation = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
        resized = cv2.resize(
            crop,
            (round(crop.shape[1] * scale), round(crop.shape[0] * scale)),
            interpolation=interpolation,
        )
        photo[y : y + ch, x : x + cw] = resized[:ch, :cw]
        pasted.append((x + round(fx * scale), y + round(fy * scale), side, side))
    return photo, pasted


def haar_faces(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """OpenCV's stock frontal-face cascade at its usual settings (step 1.1, 3 neighbours, from
    its 24-px window up), on the whole image."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    found = _HAAR.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=3)
    return [(int(x), int(y), int(w), int(h)) for x, y, w, h in np.asarray(found).reshape(-1, 4)]


def blazeface_faces(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """BlazeFace, generously: the whole image tiled at 1200 px (2×2 tiles of 720 px) and at 432,
    the paper check off, so drawn-looking boxes count too."""
    found: list[tuple[int, int, int, int]] = []
    for long_side in (432, 1200):
        boxes, _ = faces._face_candidates(rgb, min(long_side, max(rgb.shape[:2])))
        found += [(int(x0), int(y0), int(x1 - x0), int(y1 - y0)) for x0, y0, x1, y1 in boxes]
    return found


def faces_where_stored(
    photo: np.ndarray, pasted: list[tuple[int, int, int, int]], stored: np.ndarray
) -> list[tuple[int, int, int, int]]:
    """The pasted face boxes carried into ``stored``'s pixels: through the sheet's rectification
    when ingest finds a sheet in ``photo`` (found the same way, on a copy of the size ingest
    decodes), else through the plain shrink."""
    height, width = stored.shape[:2]
    copy = fit_long_side(photo, 2000)
    corners = find_sheet(copy)
    if corners is None:
        scale = width / photo.shape[1]
        return [tuple(round(v * scale) for v in box) for box in pasted]  # type: ignore[misc]
    corners = corners * (photo.shape[1] / copy.shape[1])
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    warp = cv2.getPerspectiveTransform(corners.astype(np.float32), target)
    mapped = []
    for x, y, w, h in pasted:
        points = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)[None]
        (x0, y0), (x1, y1) = (
            f(cv2.perspectiveTransform(points, warp)[0], axis=0) for f in (np.min, np.max)
        )
        mapped.append((round(x0), round(y0), round(x1 - x0), round(y1 - y0)))
    return mapped


def on_a_face(
    found: list[tuple[int, int, int, int]], face_boxes: list[tuple[int, int, int, int]]
) -> list[tuple[int, int, int, int]]:
    """The detections on a pasted face: centre in the face box enlarged by half its size on each
    side, and covering at least a quarter of the face box or of the detection itself.

    Detections elsewhere are the drawing's own faces or the artwork, not a pasted face. The
    overlap is needed because a drawn face next to a pasted one has its centre in the enlarged
    box without touching the face: in seed 2 of sheet 3000×4000 at 4.5, 8 and 11 % and artwork
    4000×3000 at 15 %, every detection the centre rule alone counted is found at the same place
    in the same photo with no face pasted, and none of them overlaps the face box.
    """
    hits = []
    for bx, by, bw, bh in found:
        cx, cy = bx + bw / 2, by + bh / 2
        for x, y, w, h in face_boxes:
            near = x - w / 2 <= cx <= x + 1.5 * w and y - h / 2 <= cy <= y + 1.5 * h
            overlap = max(0, min(bx + bw, x + w) - max(bx, x)) * max(
                0, min(by + bh, y + h) - max(by, y)
            )
            if near and overlap >= 0.25 * min(bw * bh, w * h):
                hits.append((bx, by, bw, bh))
                break
    return hits


def stored_images(result: ingest_module.ProcessedPhoto) -> dict[str, np.ndarray]:
    """What ingest stores, decoded: the processed image and the thumbnail."""
    return {
        "processed": simplejpeg.decode_jpeg(result.jpeg, "RGB"),
        "thumbnail": simplejpeg.decode_jpeg(result.thumbnail_jpeg, "RGB"),
    }


def _encode(photo: np.ndarray) -> bytes:
    return simplejpeg.encode_jpeg(np.ascontiguousarray(photo), 92, "RGB", "420")


_CASES = [
    (background, size, share, 1)
    for background in BACKGROUNDS
    for size in PHOTO_SIZES
    for share in FACE_SIZES
]
# Second photos of the cases bench/faces.py once counted as misses in its seed 2 (issue 14): a
# drawn face next to a pasted one (4.5, 8, 11 % on a portrait sheet, 15 % on landscape artwork)
# and a blurred face on top of a drawn smiley (6 %, the blur margin).
_CASES += [
    ("sheet", (3000, 4000), 0.045, 2),
    ("sheet", (3000, 4000), 0.06, 2),
    ("sheet", (3000, 4000), 0.08, 2),
    ("sheet", (3000, 4000), 0.11, 2),
    ("artwork", (4000, 3000), 0.15, 2),
]


@pytest.fixture(scope="module")
def scenes() -> dict[tuple[str, tuple[int, int], float, int], tuple]:
    """Every case's photo, its pasted face boxes and its JPEG bytes, built once for the module."""
    built = {}
    for background, size, share, seed in _CASES:
        photo, pasted = face_scene(background, size, share, seed=seed)
        built[background, size, share, seed] = (photo, pasted, _encode(photo))
    return built


def _faces_left(scene, result) -> dict[str, list]:
    photo, pasted, _ = scene
    left = {}
    for name, image in stored_images(result).items():
        where = faces_where_stored(photo, pasted, image)
        found = on_a_face(haar_faces(image), where) + on_a_face(blazeface_faces(image), where)
        if found:
            left[name] = found
    return left


@pytest.mark.parametrize(("background", "size", "share", "seed"), _CASES)
def test_no_detector_finds_a_face_in_anything_stored(scenes, background, size, share, seed):
    scene = scenes[background, size, share, seed]
    result = ingest(scene[2])
    if background == "artwork" or seed == 1:
        # Seed 2's portrait sheet at 6 % reaches the bottom edge of the frame, so no sheet is
        # found there and the photo is stored whole (its faces are still what is checked).
        assert result.sheet_found == (background == "sheet")
    assert result.faces_blurred >= 1
    assert _faces_left(scene, result) == {}


def test_the_checks_see_the_faces_when_the_scan_is_off(scenes, monkeypatch):
    # The same photos with no face scan: the checks find faces in every one, so their silence
    # after ingest means the faces are gone, not that the checks are blind.
    monkeypatch.setattr(ingest_module, "scan_faces", lambda rgb, **kwargs: [])
    for case, scene in scenes.items():
        assert _faces_left(scene, ingest(scene[2])), case
