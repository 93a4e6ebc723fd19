"""The seeded synthetic drawing generator used by tests, benchmarks and the demo."""

from __future__ import annotations

import io
import time

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


@pytest.mark.parametrize("stage", range(5))
def test_every_stage_renders_a_deterministic_drawing_on_paper(stage):
    a = render_drawing(stage, np.random.default_rng(4))
    b = render_drawing(stage, np.random.default_rng(4))
    c = render_drawing(stage, np.random.default_rng(5))
    assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
    assert max(a.shape[:2]) == 768 and abs(min(a.shape[:2]) / 768 - 1 / np.sqrt(2)) < 0.01
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    grey = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    assert 220 < np.median(grey) < 255  # mostly off-white paper
    assert (grey < 180).mean() > 0.002  # and something is drawn on it


def test_sheets_come_in_both_orientations():
    shapes = {render_drawing(0, np.random.default_rng(s), size=128).shape[:2] for s in range(12)}
    assert shapes == {(128, 91), (91, 128)}


def test_the_same_generator_state_draws_the_same_drawing_at_any_size():
    big = render_drawing(4, np.random.default_rng(8), size=1024)
    small = render_drawing(4, np.random.default_rng(8), size=512)
    other = render_drawing(4, np.random.default_rng(9), size=512)
    shrunk = cv2.resize(big, small.shape[1::-1], interpolation=cv2.INTER_AREA)

    def ink(img):
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) < 200

    same = (ink(shrunk) & ink(small)).sum() / max(1, (ink(shrunk) | ink(small)).sum())
    assert same > 0.4
    if other.shape == small.shape:
        differ = (ink(other) & ink(small)).sum() / max(1, (ink(other) | ink(small)).sum())
        assert differ < same


@pytest.mark.parametrize("bad", [5, -1, 2.5, True])
def test_a_stage_outside_the_scale_is_refused(bad):
    with pytest.raises(ValueError, match="stage"):
        render_drawing(bad, np.random.default_rng(0))
    with pytest.raises(ValueError, match="stage"):
        make_photo(bad, 1)


def test_photographed_sheet_corners_form_a_convex_quad_inside_the_image():
    for seed in range(8):
        rng = np.random.default_rng(seed)
        drawing = render_drawing(seed % 5, rng, size=384)
        photo, corners = photograph(drawing, rng, (800, 600))
        assert photo.shape == (600, 800, 3) and photo.dtype == np.uint8
        assert corners.shape == (4, 2) and corners.dtype == np.float32
        assert (corners >= 0).all() and (corners[:, 0] < 800).all() and (corners[:, 1] < 600).all()
        assert cv2.isContourConvex(corners.reshape(-1, 1, 2))
        # order TL, TR, BR, BL: clockwise in image coordinates starting top-left
        s = corners.sum(1)
        assert np.argmin(s) == 0 and np.argmax(s) == 2
        assert corners[1, 0] > corners[0, 0] and corners[3, 1] > corners[0, 1]
        # the sheet is brighter than the table around it
        inside = np.zeros((600, 800), np.uint8)
        cv2.fillConvexPoly(inside, np.round(corners).astype(np.int32), 1)
        grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
        assert grey[inside == 1].mean() > grey[inside == 0].mean() + 40


def test_photograph_refuses_what_is_not_an_rgb_drawing():
    with pytest.raises(ValueError, match="RGB"):
        photograph(np.zeros((50, 50), np.uint8), np.random.default_rng(0), (200, 150))


@pytest.mark.parametrize(("fmt", "mp"), [("jpeg", 0.5), ("png", 0.3), ("jpeg", 2.0)])
def test_make_photo_is_decodable_at_the_requested_size(fmt, mp):
    data = make_photo(2, 7, megapixels=mp, fmt=fmt)
    img = Image.open(io.BytesIO(data))
    assert img.format == {"jpeg": "JPEG", "png": "PNG"}[fmt]
    assert abs(img.size[0] * img.size[1] / 1e6 - mp) / mp < 0.02
    assert max(img.size) / min(img.size) == pytest.approx(4 / 3, abs=0.01)
    assert make_photo(2, 7, megapixels=mp, fmt=fmt) == data
    assert make_photo(2, 8, megapixels=mp, fmt=fmt) != data


def test_a_12_megapixel_photo_is_4000_by_3000_and_quick():
    make_photo(1, 0, megapixels=0.2)  # warm up OpenCV's thread pool and codecs
    start = time.perf_counter()
    data = make_photo(3, 11, megapixels=12.0)
    elapsed = time.perf_counter() - start
    assert sorted(Image.open(io.BytesIO(data)).size) == [3000, 4000]
    assert elapsed < 3.0  # about 0.35 s on one core; generous for a loaded CI runner


def test_make_photo_refuses_bad_arguments():
    with pytest.raises(ValueError, match="fmt"):
        make_photo(1, 1, fmt="gif")
    with pytest.raises(ValueError, match="quality"):
        make_photo(1, 1, quality=0)
    with pytest.raises(ValueError, match="megapixels"):
        make_photo(1, 1, megapixels=0)


def test_dataset_is_balanced_deterministic_and_extends_a_shorter_one():
    images, stages = generate_dataset(10, seed=2)
    assert len(images) == 10 and stages.dtype == np.int64
    assert np.bincount(stages).tolist() == [2, 2, 2, 2, 2]
    for img in images:
        assert img.dtype == np.uint8 and max(img.shape[:2]) == 512 and min(img.shape[:2]) == 384
    again, _ = generate_dataset(10, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(images, again, strict=True))
    shorter, _ = generate_dataset(3, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(shorter, images[:3], strict=True))
    flat, _ = generate_dataset(5, seed=2, photographed=False, size=256)
    assert all(max(img.shape[:2]) == 256 for img in flat)


@pytest.mark.parametrize("mean", [0.3, 1.0, 2.0, 3.2, 3.8])
def test_unit_stage_mix_hits_its_mean_even_near_the_ends_of_the_scale(mean):
    mix = unit_stage_mix(mean, np.random.default_rng(0), 5000)
    assert mix.dtype == np.int64 and mix.min() >= 0 and mix.max() <= 4
    assert abs(mix.mean() - mean) < 0.05
    assert len(np.unique(mix)) >= 2  # a unit is a mix, not one stage


def test_unit_stage_mix_refuses_a_mean_outside_the_scale():
    with pytest.raises(ValueError, match="mean_stage"):
        unit_stage_mix(4.5, np.random.default_rng(0), 10)
    assert unit_stage_mix(0.0, np.random.default_rng(0), 4).tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("medium", ["crayon", "pencil", "ballpoint", "felt"])
def test_every_medium_renders_deterministically_by_seed(medium):
    from vision.synthetic import make_labelled_photo

    a = render_drawing(3, np.random.default_rng(4), size=256, medium=medium, age=5.0)
    b = render_drawing(3, np.random.default_rng(4), size=256, medium=medium, age=5.0)
    c = render_drawing(3, np.random.default_rng(5), size=256, medium=medium, age=5.0)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    grey = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    assert 200 < np.median(grey) < 255 and (grey < 190).mean() > 0.001
    for capture in ("scan", "photo"):
        p = make_labelled_photo(2, 9, megapixels=0.05, medium=medium, capture=capture)
        assert p == make_labelled_photo(2, 9, megapixels=0.05, medium=medium, capture=capture)
        assert p.medium == medium and p.capture == capture and 1.5 <= p.age <= 9
        assert make_labelled_photo(2, 10, megapixels=0.05, medium=medium).data != p.data


def test_monochrome_drawings_use_one_pen_colour():
    img = render_drawing(4, np.random.default_rng(1), size=384, medium="felt", monochrome=True)
    ink = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) < 170
    hues = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[..., 0][ink & (img.std(axis=2) > 25)]
    if len(hues) > 50:  # a grey/black pen has no hue to compare
        spread = np.percentile(hues, 90) - np.percentile(hues, 10)
        assert spread < 25


def test_a_scan_is_flat_and_fills_the_frame():
    from vision.synthetic import scan

    drawing = render_drawing(2, np.random.default_rng(3), size=400, medium="pencil")
    img = scan(drawing, np.random.default_rng(3), (283, 400))
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    assert img.shape == (400, 283, 3) and grey.mean() > 200  # paper edge to edge, no table
    assert grey.std() < 30  # even light: no vignette or table around


def test_ages_follow_stages_with_overlap_and_details_grow_with_age():
    from vision.synthetic import sample_age

    ages = [[sample_age(s, np.random.default_rng(i)) for i in range(200)] for s in range(5)]
    means = [np.mean(a) for a in ages]
    assert all(a < b for a, b in zip(means, means[1:], strict=False))
    assert np.max(ages[2]) > np.min(ages[3])  # neighbouring stages overlap widely

    # an older child's schematic drawing carries more ink (necks, fingers, clothes) on average
    def ink(age):
        return np.mean(
            [
                (
                    cv2.cvtColor(
                        render_drawing(
                            4, np.random.default_rng(s), 256, medium="ballpoint", age=age
                        ),
                        cv2.COLOR_RGB2GRAY,
                    )
                    < 150
                ).mean()
                for s in range(12)
            ]
        )

    assert ink(8.5) > ink(4.5)


def test_an_unknown_medium_is_refused():
    with pytest.raises(ValueError, match="medium"):
        render_drawing(1, np.random.default_rng(0), medium="charcoal")
    with pytest.raises(ValueError, match="medium"):
        make_photo(1, 1, medium="charcoal")
