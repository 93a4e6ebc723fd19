"""The synthetic drawing generator used by tests, benchmarks and the demo."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from vision.synthetic import (
    generate_dataset,
    make_photo,
    photograph,
    render_drawing,
    unit_stage_mix,
)


def test_deterministic_for_a_seed_and_every_stage_renders():
    for stage in range(5):
        a = render_drawing(stage, np.random.default_rng(4))
        b = render_drawing(stage, np.random.default_rng(4))
        assert a.dtype == np.uint8 and a.ndim == 3 and np.array_equal(a, b)
        assert (a < 200).any()  # something is drawn
    with pytest.raises(ValueError, match="stage"):
        render_drawing(5, np.random.default_rng(0))


def test_photographed_sheet_corners_form_a_convex_quad_inside_the_image():
    rng = np.random.default_rng(1)
    photo, corners = photograph(render_drawing(3, rng), rng, (800, 600))
    assert photo.shape == (600, 800, 3)
    assert (corners[:, 0] >= 0).all() and (corners[:, 0] < 800).all()
    assert (corners[:, 1] >= 0).all() and (corners[:, 1] < 600).all()
    assert cv2.isContourConvex(corners.reshape(-1, 1, 2))


@pytest.mark.parametrize(("fmt", "mp"), [("jpeg", 0.5), ("png", 0.3), ("jpeg", 12.0)])
def test_make_photo_is_decodable_at_the_requested_size(fmt, mp):
    data = make_photo(2, 7, megapixels=mp, fmt=fmt)
    img = Image.open(io.BytesIO(data))
    assert img.format == {"jpeg": "JPEG", "png": "PNG"}[fmt]
    assert abs(img.size[0] * img.size[1] / 1e6 - mp) / mp < 0.05
    assert make_photo(2, 7, megapixels=mp, fmt=fmt) == data


def test_dataset_is_balanced_and_unit_mix_follows_its_mean():
    images, stages = generate_dataset(10, seed=2)
    assert len(images) == 10 and np.bincount(stages).tolist() == [2, 2, 2, 2, 2]
    mix = unit_stage_mix(3.0, np.random.default_rng(0), 2000)
    assert abs(mix.mean() - 3.0) < 0.15 and mix.min() >= 0 and mix.max() <= 4
