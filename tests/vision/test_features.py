"""OpenCV drawing features: ranges, scale invariance, robustness to photos, and stage signal."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import vision.features as features
from vision.features import FEATURE_NAMES, drawing_features, drawing_features_dict
from vision.synthetic import photograph, render_drawing

#: Documented ranges (docs/features.md); counts are bounded loosely.
RANGES = {
    "ink_coverage": (0, 1),
    "ink_contrast": (0, 1),
    "stroke_length": (0, 60),
    "stroke_width": (0, 5),
    "n_strokes": (0, 1000),
    "largest_stroke_share": (0, 1),
    "n_closed": (0, 1000),
    "n_enclosed": (0, 1000),
    "enclosed_circularity": (0, 1),
    "enclosed_area_share": (0, 1),
    "n_colours": (0, 13),
    "chromatic_share": (0, 1),
    "extent_x": (0, 1),
    "extent_y": (0, 1),
    "spread_x": (0, 0.5),
    "spread_y": (0, 0.5),
    "balance_lr": (0, 1),
    "balance_tb": (0, 1),
    "centroid_y": (0, 1),
    "horizontal_line": (0, 1),
}


def _paper(h=600, w=800, tone=248):
    return np.full((h, w, 3), tone, np.uint8)


def _features(stage, n, seed, photographed=False):
    out = []
    for k in range(n):
        rng = np.random.default_rng([seed, stage, k])
        img = render_drawing(stage, rng, size=512)
        if photographed:
            img, _ = photograph(img, rng, (683, 512))
        out.append(drawing_features_dict(img))
    return {name: np.array([d[name] for d in out]) for name in FEATURE_NAMES}


def test_every_feature_is_documented_with_a_range():
    assert set(RANGES) == set(FEATURE_NAMES) and len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    doc = (Path(__file__).parents[2] / "docs" / "features.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in doc for name in FEATURE_NAMES)


def test_a_blank_sheet_has_no_ink_even_when_photographed_in_uneven_light():
    d = drawing_features_dict(_paper())
    assert all(v == 0 for v in d.values())
    rng = np.random.default_rng(3)
    photo, _ = photograph(_paper(543, 768, 245), rng, (1024, 768))
    d = drawing_features_dict(photo)
    assert d["ink_coverage"] < 0.002 and d["n_strokes"] == 0 and d["n_closed"] == 0


def test_a_drawn_circle_is_one_round_enclosed_shape_in_one_colour():
    img = _paper()
    cv2.circle(img, (400, 300), 120, (200, 40, 40), 8)
    d = drawing_features_dict(img)
    assert d["n_strokes"] == 1 and d["n_closed"] == 1 and d["n_enclosed"] == 1
    assert d["enclosed_circularity"] > 0.8 and d["n_colours"] == 1 and d["chromatic_share"] > 0.8
    assert d["largest_stroke_share"] == 1.0
    expected_area = np.pi * 116**2 / (600 * 800)  # the hole inside the 8-px ring
    assert d["enclosed_area_share"] == pytest.approx(expected_area, rel=0.1)
    assert d["balance_lr"] < 0.05 and d["centroid_y"] == pytest.approx(0.5, abs=0.02)


def test_pencil_is_grey_ink_and_crossing_scribble_gaps_are_not_enclosures():
    img = _paper()
    cv2.circle(img, (200, 300), 90, (90, 90, 95), 2, cv2.LINE_AA)
    d = drawing_features_dict(img)
    assert d["chromatic_share"] < 0.05 and d["n_colours"] == 1 and d["n_closed"] == 1
    # a dense hatch of thick crossing lines leaves only small gaps between the strokes
    hatch = _paper()
    for k in range(0, 300, 14):
        cv2.line(hatch, (200 + k, 150), (200 + k, 450), (40, 70, 190), 9)
        cv2.line(hatch, (200, 150 + k), (500, 150 + k), (40, 70, 190), 9)
    assert drawing_features_dict(hatch)["n_closed"] == 0


def test_colours_are_counted_as_hue_clusters_plus_grey():
    img = _paper()
    for k, colour in enumerate([(214, 40, 40), (62, 160, 64), (40, 72, 190), (36, 36, 40)]):
        cv2.line(img, (100, 100 + 120 * k), (700, 100 + 120 * k), colour, 10)
    assert drawing_features_dict(img)["n_colours"] == 4


def test_a_ground_line_shows_in_the_horizontal_line_feature_and_a_scribble_does_not():
    img = _paper()
    cv2.line(img, (40, 520), (760, 525), (60, 160, 60), 8)
    assert drawing_features_dict(img)["horizontal_line"] > 0.85
    scribbles = _features(0, 8, seed=1)["horizontal_line"]
    scenes = _features(4, 8, seed=1)["horizontal_line"]
    assert scenes.mean() > 0.7 and scenes.mean() > scribbles.mean() + 0.5


@pytest.mark.parametrize("photographed", [False, True])
def test_features_are_finite_and_within_their_documented_ranges(photographed):
    for stage in range(5):
        feats = _features(stage, 3, seed=2, photographed=photographed)
        for name, (lo, hi) in RANGES.items():
            v = feats[name]
            assert np.isfinite(v).all() and (v >= lo).all() and (v <= hi).all(), (stage, name, v)
    vec = drawing_features(render_drawing(3, np.random.default_rng(0), size=300))
    assert vec.dtype == np.float32 and vec.shape == (len(FEATURE_NAMES),)


def test_features_are_scale_invariant():
    for seed in range(3):
        big = render_drawing(2 + seed, np.random.default_rng(seed), size=1024)
        half = cv2.resize(big, (big.shape[1] // 2, big.shape[0] // 2), interpolation=cv2.INTER_AREA)
        a, b = drawing_features(big), drawing_features(half)
        for name, x, y in zip(FEATURE_NAMES, a, b, strict=True):
            assert abs(x - y) <= 0.1 * max(abs(x), abs(y)) + 0.02, name
        # rendered afresh at each size (a 4000-px scan against a 512-px one): sizes and positions
        # agree closely; counts of small things may differ by a few
        fresh = drawing_features_dict(render_drawing(2 + seed, np.random.default_rng(seed), 512))
        ref = drawing_features_dict(big)
        for name in ("extent_x", "extent_y", "spread_x", "spread_y", "centroid_y", "n_colours"):
            assert abs(fresh[name] - ref[name]) <= 0.05 * max(1.0, abs(ref[name])), name
        assert fresh["ink_coverage"] == pytest.approx(ref["ink_coverage"], rel=0.3)


def test_a_photo_of_a_drawing_measures_the_sheet_not_the_table():
    flat_cov, photo_cov = [], []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        drawing = render_drawing(4, rng, size=768)
        photo, _ = photograph(drawing, rng, (1024, 768))
        flat, shot = drawing_features_dict(drawing), drawing_features_dict(photo)
        flat_cov.append(flat["ink_coverage"])
        photo_cov.append(shot["ink_coverage"])
        assert shot["extent_x"] == pytest.approx(flat["extent_x"], abs=0.15)
    # blur and perspective thicken strokes somewhat, but the dark table is not ink
    assert 0.7 < np.mean(photo_cov) / np.mean(flat_cov) < 1.8


def test_schematic_drawings_have_more_enclosed_shapes_and_use_more_of_the_sheet():
    early, late = _features(0, 12, seed=5), _features(4, 12, seed=5)
    assert late["n_enclosed"].mean() > early["n_enclosed"].mean()
    assert late["enclosed_area_share"].mean() > early["enclosed_area_share"].mean()
    assert late["extent_x"].mean() > early["extent_x"].mean() + 0.15
    assert late["n_strokes"].mean() > early["n_strokes"].mean()
    circles = _features(2, 12, seed=5)["n_enclosed"]
    assert (circles >= 1).mean() >= 0.7  # some stage-2 sheets hold only crosses


def test_features_alone_separate_random_scribbles_from_schematic_drawings():
    X, y = [], []
    for k in range(100):
        stage = 4 * (k % 2)
        rng = np.random.default_rng([77, k])
        photo, _ = photograph(render_drawing(stage, rng, size=512), rng, (683, 512))
        X.append(drawing_features(photo))
        y.append(stage == 4)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    accuracy = cross_val_score(model, np.stack(X), np.array(y), cv=5).mean()
    assert accuracy >= 0.9, accuracy


def test_what_is_not_an_image_is_refused():
    with pytest.raises(ValueError, match="RGB"):
        drawing_features(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        drawing_features(np.zeros((64, 64, 3), np.float32))
    grey = cv2.cvtColor(render_drawing(2, np.random.default_rng(1), 256), cv2.COLOR_RGB2GRAY)
    assert drawing_features(grey).shape == (len(FEATURE_NAMES),)  # grey scans are fine


def _plain_skeleton(ink: np.ndarray) -> np.ndarray:
    """Lantuéjoul's morphological skeleton over the whole image, round by round (at most 64)."""
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    skel, current = np.zeros_like(ink), ink.copy()
    for _ in range(64):
        if not cv2.countNonZero(current):
            break
        eroded = cv2.erode(current, cross)
        skel |= current - cv2.dilate(eroded, cross)
        current = eroded
    return skel


def test_the_skeleton_worked_on_the_inks_bounding_box_is_the_plain_skeleton(monkeypatch):
    monkeypatch.delattr(cv2, "ximgproc", raising=False)  # opencv-contrib would thin instead
    rng = np.random.default_rng(7)
    for k in range(30):
        ink = np.zeros((359, 512), np.uint8)
        for _ in range(int(rng.integers(1, 12))):
            centre = (int(rng.integers(0, 512)), int(rng.integers(0, 359)))
            if rng.random() < 0.5:
                cv2.circle(ink, centre, int(rng.integers(2, 80)), 1, int(rng.integers(-1, 8)))
            else:
                end = (int(rng.integers(-20, 530)), int(rng.integers(-20, 380)))
                cv2.line(ink, centre, end, 1, int(rng.integers(1, 12)))
        if k == 0:
            ink[:] = 1  # ink up to every edge of the image
        if k == 1:
            ink[:] = 0
        assert np.array_equal(features._skeleton(ink), _plain_skeleton(ink))
