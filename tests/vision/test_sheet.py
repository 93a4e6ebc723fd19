"""Sheet finding, perspective correction and light flattening on synthetic photographed sheets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.vision.hostile import encode
from vision.ingest import ingest
from vision.sheet import (
    _histogram_median,
    find_sheet,
    flatten_light,
    rectify_sheet,
    sheet_aspect,
)

A4_ASPECT = 210 / 297  # width / height of a portrait A4 sheet
RED_DOT = (0.10, 0.10)  # (x, y) as shares of the sheet's width and height
BLUE_DOT = (0.85, 0.90)


def _rotation(tilt_deg: float, yaw_deg: float, roll_deg: float) -> np.ndarray:
    t, y, r = np.radians([tilt_deg, yaw_deg, roll_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def photographed_sheet(
    tilt_deg: float = 35.0,
    yaw_deg: float = 12.0,
    roll_deg: float = 8.0,
    *,
    size: tuple[int, int] = (1600, 1200),
    focal_px: float = 1300.0,
    distance_m: float = 0.45,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """An A4 drawing photographed by a pinhole camera on a dark streaky table under uneven light.

    Returns (RGB image, true corners tl/tr/br/bl in pixels). The sheet holds a red dot at
    RED_DOT and a blue dot at BLUE_DOT (shares of its width and height) and a few strokes.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    sheet = np.full((1414, 1000, 3), 240, np.uint8)
    sheet_h, sheet_w = sheet.shape[:2]
    for (fx, fy), colour in ((RED_DOT, (220, 20, 20)), (BLUE_DOT, (20, 20, 220))):
        cv2.circle(sheet, (int(fx * sheet_w), int(fy * sheet_h)), 25, colour, -1)
    cv2.line(sheet, (200, 600), (800, 700), (30, 30, 30), 6)
    cv2.circle(sheet, (500, 900), 150, (20, 140, 20), 5)
    half_w, half_h = 0.105, 0.1485  # metres
    world = np.array(
        [[-half_w, -half_h, 0], [half_w, -half_h, 0], [half_w, half_h, 0], [-half_w, half_h, 0]]
    )
    camera = world @ _rotation(tilt_deg, yaw_deg, roll_deg).T + [0, 0, distance_m]
    corners = np.stack(
        [
            focal_px * camera[:, 0] / camera[:, 2] + width / 2,
            focal_px * camera[:, 1] / camera[:, 2] + height / 2,
        ],
        axis=1,
    ).astype(np.float32)
    source = np.array(
        [[0, 0], [sheet_w - 1, 0], [sheet_w - 1, sheet_h - 1], [0, sheet_h - 1]], np.float32
    )
    homography = cv2.getPerspectiveTransform(source, corners)
    table = cv2.GaussianBlur(
        rng.normal(60, 18, (height, width, 3)).clip(0, 255).astype(np.uint8), (0, 0), 1.5
    )
    for _ in range(30):
        y0 = int(rng.integers(0, height))
        shade = int(rng.integers(40, 90))
        cv2.line(
            table,
            (0, y0),
            (width, y0 + int(rng.integers(-80, 80))),
            (shade,) * 3,
            int(rng.integers(2, 8)),
        )
    warped = cv2.warpPerspective(sheet, homography, (width, height))
    inside = cv2.warpPerspective(
        np.full((sheet_h, sheet_w), 255, np.uint8), homography, (width, height)
    )
    photo = np.where(inside[:, :, None] > 127, warped, table)
    light = (
        np.linspace(1.0, 0.6, width)[None, :, None] * np.linspace(1.0, 0.85, height)[:, None, None]
    )
    return (photo * light).clip(0, 255).astype(np.uint8), corners


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    assert xs.size > 50, "marker not found"
    return xs.mean() / mask.shape[1], ys.mean() / mask.shape[0]


def _assert_dots_in_place(sheet: np.ndarray) -> None:
    r, g, b = (sheet[:, :, i].astype(int) for i in range(3))
    red = _centroid((r - np.maximum(g, b)) > 60)
    blue = _centroid((b - np.maximum(r, g)) > 60)
    assert red == pytest.approx(RED_DOT, abs=0.02)
    assert blue == pytest.approx(BLUE_DOT, abs=0.02)


@pytest.mark.parametrize(
    ("tilt", "yaw", "roll"), [(35, 12, 8), (45, -20, -15), (10, 0, 3), (0, 0, 0), (30, 0, 3)]
)
def test_sheet_is_found_and_rectified_with_true_aspect(tilt, yaw, roll):
    photo, true_corners = photographed_sheet(tilt, yaw, roll)
    corners = find_sheet(photo)
    assert corners is not None
    assert np.abs(corners - true_corners).max() < 10  # pixels, in a 1600×1200 photo
    sheet = rectify_sheet(photo, corners, max_long_side=1600)
    height, width = sheet.shape[:2]
    assert width / height == pytest.approx(A4_ASPECT, rel=0.05)
    _assert_dots_in_place(sheet)


def test_aspect_from_exact_corners_recovers_the_true_ratio():
    _, corners = photographed_sheet(40, 15, 5)
    assert sheet_aspect(corners, (1600, 1200)) == pytest.approx(A4_ASPECT, rel=0.005)


def test_flatten_light_makes_paper_even_and_keeps_stroke_colour():
    photo, corners = photographed_sheet()
    sheet = rectify_sheet(photo, corners, max_long_side=1600)
    flat = flatten_light(sheet)
    paper = (sheet.min(axis=2) > 60) & (np.abs(sheet.astype(int)[:, :, 0] - sheet[:, :, 2]) < 20)
    left, right = flat[:, : flat.shape[1] // 5], flat[:, -flat.shape[1] // 5 :]
    raw_left, raw_right = sheet[:, : sheet.shape[1] // 5], sheet[:, -sheet.shape[1] // 5 :]
    # Before: the right side of the sheet is clearly darker (the light falls off across it).
    assert np.median(raw_left) - np.median(raw_right) > 25
    assert abs(float(np.median(left)) - float(np.median(right))) < 6
    assert np.median(flat[paper]) > 235
    _assert_dots_in_place(flat)


def test_no_sheet_in_a_photo_without_paper():
    rng = np.random.default_rng(3)
    clutter = cv2.GaussianBlur(rng.integers(0, 255, (600, 800, 3), dtype=np.uint8), (0, 0), 3)
    assert find_sheet(clutter) is None


def test_ingest_straightens_a_photographed_sheet():
    photo, _ = photographed_sheet(seed=4)
    result = ingest(encode(photo, "JPEG", quality=92))
    assert result.sheet_found
    height, width = result.image.shape[:2]
    assert width / height == pytest.approx(A4_ASPECT, rel=0.05)
    _assert_dots_in_place(result.image)
    assert result.original_size == (1600, 1200)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 11, 1000, 1001])
def test_histogram_median_is_numpys_median(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        levels = rng.integers(0, 256, n).astype(np.uint8)
        counts = cv2.calcHist([levels.reshape(1, -1)], [0], None, [256], [0, 256])[:, 0]
        assert _histogram_median(counts) == float(np.median(levels))
