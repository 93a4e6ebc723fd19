"""Face blurring: the astronaut's face is found and made unrecognisable; drawn faces are left."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

import vision.faces as faces
from tests.vision.hostile import encode
from vision.faces import blur_faces, detect_faces
from vision.ingest import ingest

# The astronaut's face in skimage's 512×512 test photo: x 174–272, y 66–164.
ASTRONAUT_FACE = (174, 66, 98, 98)


def children_drawing(seed: int, width: int = 1000, height: int = 1414) -> np.ndarray:
    """A synthetic child's drawing on white paper: tadpole figures with eyes and a smile (the
    shapes a face detector is most tempted by), a scribble and a sun."""
    rng = np.random.default_rng(seed)
    sheet = np.full((height, width, 3), 238, np.uint8)
    for _ in range(3):
        cx, cy = int(rng.integers(150, width - 150)), int(rng.integers(200, height - 300))
        r = int(rng.integers(50, 140))
        colour = tuple(int(c) for c in rng.integers(0, 120, 3))
        stroke = int(rng.integers(3, 8))
        cv2.circle(sheet, (cx, cy), r, colour, stroke)
        cv2.circle(sheet, (cx - r // 3, cy - r // 4), max(3, r // 8), colour, -1)
        cv2.circle(sheet, (cx + r // 3, cy - r // 4), max(3, r // 8), colour, -1)
        cv2.ellipse(sheet, (cx, cy + r // 4), (r // 2, r // 4), 0, 0, 180, colour, stroke)
        cv2.line(sheet, (cx - r // 2, cy + r), (cx - r, cy + 3 * r), colour, stroke)
        cv2.line(sheet, (cx + r // 2, cy + r), (cx + r, cy + 3 * r), colour, stroke)
    scribble = np.cumsum(rng.normal(0, 25, (60, 2)), axis=0) + [width / 2, height / 2]
    cv2.polylines(sheet, [scribble.astype(np.int32)], False, (200, 40, 40), 4)
    cv2.circle(sheet, (width - 150, 150), 80, (230, 200, 0), -1)
    return sheet


def high_frequency_energy(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: detail a recogniser would rely on."""
    return float(cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def _overlaps(box: tuple[int, int, int, int], other: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    ox, oy, ow, oh = other
    return x < ox + ow and ox < x + w and y < oy + oh and oy < y + h


def test_astronaut_face_is_detected():
    boxes = detect_faces(data.astronaut())
    assert boxes
    assert any(_overlaps(box, ASTRONAUT_FACE) for box in boxes)


def test_blurring_destroys_facial_detail():
    photo = data.astronaut()
    x, y, w, h = ASTRONAUT_FACE
    blurred = blur_faces(photo, [ASTRONAUT_FACE])
    before = high_frequency_energy(photo[y : y + h, x : x + w])
    after = high_frequency_energy(blurred[y : y + h, x : x + w])
    assert after < 0.05 * before
    # Far from the face nothing changes.
    assert np.array_equal(blurred[400:, 300:], photo[400:, 300:])


def test_ingest_blurs_the_astronauts_face():
    photo = data.astronaut()
    result = ingest(encode(photo, "JPEG", quality=95))
    assert result.faces_blurred >= 1
    assert not result.sheet_found
    x, y, w, h = ASTRONAUT_FACE
    before = high_frequency_energy(photo[y : y + h, x : x + w])
    after = high_frequency_energy(result.image[y : y + h, x : x + w])
    assert after < 0.1 * before
    # The blurred face is not found again: nothing recognisable is left of it.
    assert not any(_overlaps(box, ASTRONAUT_FACE) for box in detect_faces(result.image))


def test_drawn_faces_are_not_blurred():
    drawings = [children_drawing(seed) for seed in range(12)]
    assert all(detect_faces(drawing) == [] for drawing in drawings)


def test_drawn_faces_under_warm_light_are_not_blurred():
    warm = [(children_drawing(seed) * [1.0, 0.9, 0.72]).astype(np.uint8) for seed in range(6)]
    assert all(detect_faces(drawing) == [] for drawing in warm)


def test_paper_check_is_what_spares_the_drawings(monkeypatch):
    # Without the paper check the cascades do fire on drawn faces, so the test above has teeth.
    monkeypatch.setattr(faces, "_looks_like_paper", lambda rgb, box: False)
    assert sum(len(detect_faces(children_drawing(seed))) for seed in range(12)) > 0


def test_ingest_of_a_drawing_blurs_nothing():
    result = ingest(encode(children_drawing(5), "JPEG", quality=90))
    assert result.faces_blurred == 0


@pytest.mark.parametrize("size", [(64, 64), (2000, 300)])
def test_detection_handles_small_and_odd_shapes(size):
    width, height = size
    assert detect_faces(np.full((height, width, 3), 128, np.uint8)) == []
