"""Drawing features computed with OpenCV, stored next to every embedding and fed to the stage head.

Designed for real children's drawings (line drawings on white paper, scanned or photographed, any size):
every feature is computed on a copy scaled to ``WORK_SIDE`` px on the long side and normalised by the
image size, so a scan and a tablet photo of the same drawing give close values. Ink is what differs
from the local paper tone (dark strokes) or is clearly coloured (crayon, felt pen). See
docs/features.md for what each feature is and why it matters for the stages.

| name | what | range |
|---|---|---|
| ink_coverage | share of the sheet covered by marks | 0–1 |
| stroke_length | total stroke length (ink area / mean stroke width) / image diagonal | 0–~30 |
| n_strokes | connected marks larger than a speck | count |
| n_closed | closed contours (holes enclosed by ink) | count |
| n_enclosed_round | closed contours that are roughly round (circularity > 0.6) | count |
| mean_circularity | mean circularity 4πA/P² of closed contours (0 if none) | 0–1 |
| n_colours | hue bins holding ≥ 5 % of the coloured ink | 0–12 |
| chromatic_share | share of ink that is coloured rather than grey | 0–1 |
| spread_area | area of the ink's bounding box / image area | 0–1 |
| spread_x, spread_y | standard deviation of ink coordinates / image side | 0–~0.5 |
| balance_lr, balance_tb | left/right and top/bottom ink-mass asymmetry | 0–1 |
| horizontal_line | longest near-horizontal straight line / image width (ground or sky line) | 0–1 |
| stroke_width | mean stroke width / image diagonal × 100 (crayon vs pencil) | 0–~3 |
"""

from __future__ import annotations

import cv2
import numpy as np

WORK_SIDE = 512
FEATURE_NAMES: tuple[str, ...] = (
    "ink_coverage",
    "stroke_length",
    "n_strokes",
    "n_closed",
    "n_enclosed_round",
    "mean_circularity",
    "n_colours",
    "chromatic_share",
    "spread_area",
    "spread_x",
    "spread_y",
    "balance_lr",
    "balance_tb",
    "horizontal_line",
    "stroke_width",
)
_MIN_COMPONENT = 12  # px at WORK_SIDE: smaller marks are paper grain or noise
_MIN_HOLE = 40


def _work_copy(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = WORK_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(
        rgb[..., :3], size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    )


def ink_mask(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ink mask uint8 0/1, chromatic mask) of an RGB drawing at its own size."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    # paper tone around each pixel: strokes are thin, so a wide closing removes them
    paper = cv2.morphologyEx(
        grey, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (25, 25))
    )
    paper = cv2.blur(paper, (15, 15))
    dark = cv2.subtract(paper, grey) > 28
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    chroma = (hsv[..., 1] > 70) & (hsv[..., 2] > 40)
    ink = np.asarray(
        cv2.morphologyEx((dark | chroma).astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)),
        dtype=np.uint8,
    )
    return ink, chroma & ink.astype(bool)


def drawing_features_dict(rgb: np.ndarray) -> dict[str, float]:
    """The features of one drawing by name (see the module docstring)."""
    img = _work_copy(np.asarray(rgb))
    h, w = img.shape[:2]
    diag = float(np.hypot(h, w))
    ink, chroma = ink_mask(img)
    total = float(ink.sum())
    out = dict.fromkeys(FEATURE_NAMES, 0.0)
    if total < _MIN_COMPONENT:
        return out
    out["ink_coverage"] = total / (h * w)

    dist = cv2.distanceTransform(ink, cv2.DIST_L2, 3)
    ridge = dist[(dist > 0) & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)))]
    width = max(1.0, 2.0 * float(ridge.mean()) if ridge.size else 1.0)
    out["stroke_length"] = total / width / diag
    out["stroke_width"] = width / diag * 100

    n, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    out["n_strokes"] = float((stats[1:, cv2.CC_STAT_AREA] >= _MIN_COMPONENT).sum())

    contours, hierarchy = cv2.findContours(ink, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    circ = []
    if hierarchy is not None:
        for contour, (_, _, _, parent) in zip(contours, hierarchy[0], strict=True):
            if parent < 0:
                continue  # outer boundary of a mark; holes have a parent
            area = cv2.contourArea(contour)
            if area < _MIN_HOLE:
                continue
            perim = cv2.arcLength(contour, True)
            circ.append(4 * np.pi * area / max(perim * perim, 1e-6))
    out["n_closed"] = float(len(circ))
    out["n_enclosed_round"] = float(sum(c > 0.6 for c in circ))
    out["mean_circularity"] = float(np.mean(circ)) if circ else 0.0

    n_chroma = float(chroma.sum())
    out["chromatic_share"] = n_chroma / total
    if n_chroma >= 20:
        hue = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[..., 0][chroma]
        hist = np.bincount((hue.astype(np.int32) * 12) // 180, minlength=12)
        out["n_colours"] = float((hist >= 0.05 * n_chroma).sum())

    ys, xs = np.nonzero(ink)
    out["spread_area"] = float((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)) / (h * w)
    out["spread_x"] = float(xs.std()) / w
    out["spread_y"] = float(ys.std()) / h
    out["balance_lr"] = abs(float((xs < w / 2).sum()) - float((xs >= w / 2).sum())) / total
    out["balance_tb"] = abs(float((ys < h / 2).sum()) - float((ys >= h / 2).sum())) / total

    # on the ink itself, not its edges: a crayon line's two edges step apart where it slopes
    lines = cv2.HoughLinesP(
        ink * 255, 1, np.pi / 180, threshold=60, minLineLength=int(0.25 * w), maxLineGap=12
    )
    if lines is not None:
        seg = lines[:, 0, :].astype(np.float32)
        dx, dy = seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1]
        flat = np.abs(dy) <= np.tan(np.radians(8)) * np.abs(dx)
        if flat.any():
            out["horizontal_line"] = float(np.abs(dx[flat]).max()) / w
    return out


def drawing_features(rgb: np.ndarray) -> np.ndarray:
    """The features of one drawing as a float32 vector in FEATURE_NAMES order."""
    d = drawing_features_dict(rgb)
    return np.array([d[name] for name in FEATURE_NAMES], dtype=np.float32)
