"""OpenCV drawing features: ranges, scale invariance and what they say about stages."""

from __future__ import annotations

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from vision.features import FEATURE_NAMES, drawing_features, drawing_features_dict
from vision.synthetic import generate_dataset, render_drawing


def test_blank_sheet_has_no_ink():
    d = drawing_features_dict(np.full((600, 800, 3), 248, np.uint8))
    assert d["ink_coverage"] == 0 and d["n_strokes"] == 0 and d["n_closed"] == 0


def test_a_drawn_circle_is_one_round_enclosed_shape():
    img = np.full((600, 800, 3), 250, np.uint8)
    cv2.circle(img, (400, 300), 120, (200, 40, 40), 8)
    d = drawing_features_dict(img)
    assert d["n_strokes"] == 1 and d["n_closed"] == 1 and d["n_enclosed_round"] == 1
    assert d["mean_circularity"] > 0.85 and d["n_colours"] == 1 and d["chromatic_share"] > 0.8


def test_ground_line_shows_in_horizontal_line_feature():
    img = np.full((600, 800, 3), 250, np.uint8)
    cv2.line(img, (40, 520), (760, 525), (60, 160, 60), 8)
    assert drawing_features_dict(img)["horizontal_line"] > 0.8
    rng = np.random.default_rng(0)
    scribbles = [
        drawing_features_dict(render_drawing(0, rng))["horizontal_line"] for _ in range(10)
    ]
    scenes = [drawing_features_dict(render_drawing(4, rng))["horizontal_line"] for _ in range(10)]
    assert np.mean(scenes) > 0.8 and np.mean(scenes) > np.mean(scribbles) + 0.4


def test_features_are_finite_and_scale_invariant():
    drawing = render_drawing(4, np.random.default_rng(5), size=1024)
    small = cv2.resize(
        drawing, (drawing.shape[1] // 2, drawing.shape[0] // 2), interpolation=cv2.INTER_AREA
    )
    a, b = drawing_features(drawing), drawing_features(small)
    assert a.shape == (len(FEATURE_NAMES),) and np.isfinite(a).all()
    for name, x, y in zip(FEATURE_NAMES, a, b, strict=True):
        assert abs(x - y) <= 0.25 * max(abs(x), abs(y)) + 0.05, name


def test_features_alone_separate_early_from_late_stages():
    images, stages = generate_dataset(100, seed=11, photographed=False)
    X = np.stack([drawing_features(i) for i in images])
    keep = (stages == 0) | (stages == 4)
    acc = cross_val_score(
        LogisticRegression(max_iter=2000), X[keep], stages[keep] == 4, cv=4
    ).mean()
    assert acc >= 0.9
