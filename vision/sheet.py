"""Find the sheet of paper in a photo, undo the perspective, and flatten uneven light.

Educators photograph drawings on a table at an angle under classroom light. When the photo holds
one clear bright quadrilateral covering a good share of the frame, it is warped to an upright
rectangle with the sheet's true aspect ratio (estimated from the perspective with Zhang and He's
method for photographed rectangles, "Whiteboard scanning and image enhancement", 2007). The light
is then flattened by dividing by a smooth estimate of the paper's brightness, so the paper becomes
near-white while strokes keep their colour.
"""

from __future__ import annotations

import cv2
import numpy as np

from vision.resize import area, halve_to, shrink

#: Long side, in pixels, of the grey copy searched for the sheet.
FIND_LONG_SIDE = 512
#: The sheet must cover at least this share of the photo to count as "the" sheet (a tablet
#: photo of a drawing usually shows it over a third or more of the frame).
MIN_SHEET_AREA = 0.1
#: Focal length, in image diagonals, assumed when the photo does not reveal it: a tablet's or
#: phone's main camera (about 28 mm full-frame equivalent) is 0.6–0.7 diagonals.
ASSUMED_FOCAL = 0.67


def find_sheet(rgb: np.ndarray, *, min_area: float = MIN_SHEET_AREA) -> np.ndarray | None:
    """Find the sheet's corners in an RGB uint8 image.

    Returns a float32 array of shape (4, 2): corners (x, y) in pixels of ``rgb``, ordered
    top-left, top-right, bottom-right, bottom-left; ``None`` when no clear, convex, bright
    quadrilateral covering at least ``min_area`` of the image (and not the whole frame) is found.
    """
    height, width = rgb.shape[:2]
    scale = min(1.0, FIND_LONG_SIDE / max(height, width))
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Halved in colour first: grey is a weighted sum of the channels, so averaging before or after
    # gives the same, and converting a quarter of the pixels saves time at 2000×1500.
    grey = cv2.cvtColor(halve_to(rgb, small_size), cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        grey = shrink(grey, small_size)
    grey = cv2.GaussianBlur(grey, (5, 5), 0)
    frame_area = float(grey.shape[0] * grey.shape[1])
    # Two ways to separate paper from table: a global brightness threshold (Otsu) closed over the
    # drawn strokes, and edges (Canny) dilated into closed outlines. The first wins on dark tables,
    # the second on light ones.
    _, bright = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    edges = cv2.dilate(cv2.Canny(grey, 50, 150), np.ones((3, 3), np.uint8))
    best: np.ndarray | None = None
    best_area = 0.0
    for mask in (bright, edges):
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:3]:
            hull = cv2.convexHull(contour)
            area = cv2.contourArea(hull)
            if area < min_area * frame_area or area > 0.98 * frame_area or area <= best_area:
                continue
            quad = cv2.approxPolyDP(hull, 0.02 * cv2.arcLength(hull, True), True)
            if len(quad) != 4 or not cv2.isContourConvex(quad):
                continue
            # A quadrilateral that only loosely fits the outline is not a sheet.
            if cv2.contourArea(quad) < 0.9 * area:
                continue
            if not _is_paper(grey, quad.reshape(4, 2)):
                continue
            best, best_area = quad.reshape(4, 2).astype(np.float32), area
    if best is None:
        return None
    return _order_corners(best / scale)


def _is_paper(grey: np.ndarray, quad: np.ndarray) -> bool:
    """True when the quadrilateral lies inside the frame (at most one corner on its border: a
    region the frame cuts off is not a sheet) and is clearly brighter than its surroundings."""
    height, width = grey.shape
    margin = 0.015 * max(height, width)
    on_border = (
        (quad[:, 0] < margin)
        | (quad[:, 0] > width - 1 - margin)
        | (quad[:, 1] < margin)
        | (quad[:, 1] > height - 1 - margin)
    )
    if on_border.sum() > 1:
        return False
    inside = np.zeros_like(grey)
    cv2.fillConvexPoly(inside, quad.astype(np.int32), 255)
    paper = cv2.calcHist([grey], [0], inside, [256], [0, 256])[:, 0]
    table = cv2.calcHist([grey], [0], cv2.bitwise_not(inside), [256], [0, 256])[:, 0]
    return table.sum() == 0 or _histogram_median(paper) > _histogram_median(table) + 30


def _histogram_median(counts: np.ndarray) -> float:
    """The median of the grey levels counted in ``counts`` (256 bins), as ``np.median`` gives it
    (the mean of the two middle values for an even count), without sorting the pixels."""
    total = int(counts.sum())
    cumulative = np.cumsum(counts)
    lower = int(np.searchsorted(cumulative, (total - 1) // 2, side="right"))
    upper = int(np.searchsorted(cumulative, total // 2, side="right"))
    return (lower + upper) / 2


def _order_corners(points: np.ndarray) -> np.ndarray:
    """Order four points top-left, top-right, bottom-right, bottom-left."""
    centre = points.mean(axis=0)
    angles = np.arctan2(points[:, 1] - centre[1], points[:, 0] - centre[0])
    ordered = points[np.argsort(angles)]  # clockwise in image coordinates, from the left
    start = int(np.argmin(ordered.sum(axis=1)))  # top-left has the smallest x + y
    return np.roll(ordered, -start, axis=0).astype(np.float32)


def sheet_aspect(corners: np.ndarray, image_size: tuple[int, int]) -> float:
    """Estimate the true width/height ratio of the rectangle photographed as ``corners``.

    ``corners`` are ordered tl, tr, br, bl in pixels; ``image_size`` is (width, height), whose
    centre is taken as the principal point. The camera's focal length is estimated from the two
    vanishing points (Zhang and He); when one of them is near infinity (an edge pair almost
    parallel in the photo) that estimate is unstable, and a typical tablet camera's focal length
    is assumed instead. Returns width / height (> 0).
    """
    u0, v0 = image_size[0] / 2.0, image_size[1] / 2.0
    tl, tr, br, bl = (np.array([x - u0, y - v0, 1.0]) for x, y in corners)
    m1, m2, m3, m4 = tl, tr, bl, br
    k2 = np.dot(np.cross(m1, m4), m3) / np.dot(np.cross(m2, m4), m3)
    k3 = np.dot(np.cross(m1, m4), m2) / np.dot(np.cross(m3, m4), m2)
    n2 = k2 * m2 - m1
    n3 = k3 * m3 - m1
    diagonal = float(np.hypot(*image_size))
    f2 = (ASSUMED_FOCAL * diagonal) ** 2
    if min(abs(k2 - 1.0), abs(k3 - 1.0)) > 0.05:
        estimate = -(n2[0] * n3[0] + n2[1] * n3[1]) / (n2[2] * n3[2])
        # Plausible cameras only: focal length between 0.3 and 3 image diagonals.
        if (0.3 * diagonal) ** 2 < estimate < (3.0 * diagonal) ** 2:
            f2 = estimate
    ratio2 = (n2[0] ** 2 + n2[1] ** 2 + f2 * n2[2] ** 2) / (
        n3[0] ** 2 + n3[1] ** 2 + f2 * n3[2] ** 2
    )
    return float(np.sqrt(ratio2))


def rectify_sheet(
    rgb: np.ndarray, corners: np.ndarray, *, max_long_side: int, scale: float = 1.0
) -> np.ndarray:
    """Warp the sheet bounded by ``corners`` (tl, tr, br, bl) to an upright rectangle.

    The output has the estimated true aspect ratio; its long side equals the sheet's longest
    edge in the photo times ``scale`` (no upsampling beyond what was photographed; ``scale`` < 1
    when ``rgb`` is larger than the working size), capped at ``max_long_side``. Returns an RGB
    uint8 array.
    """
    height, width = rgb.shape[:2]
    aspect = sheet_aspect(corners, (width, height))
    edges = [float(np.linalg.norm(corners[i] - corners[(i + 1) % 4])) for i in range(4)]
    long_side = int(min(max_long_side, max(edges) * scale))
    if aspect >= 1.0:
        out_w, out_h = long_side, max(1, round(long_side / aspect))
    else:
        out_w, out_h = max(1, round(long_side * aspect)), long_side
    target = np.array(
        [[0, 0], [out_w - 1, 0], [out_w - 1, out_h - 1], [0, out_h - 1]], dtype=np.float32
    )
    homography = cv2.getPerspectiveTransform(corners.astype(np.float32), target)
    return cv2.warpPerspective(
        rgb, homography, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def flatten_light(rgb: np.ndarray) -> np.ndarray:
    """Divide out uneven lighting so paper becomes near-white and strokes keep their colour.

    The paper's brightness is estimated on a quarter-size grey copy by a morphological closing
    (which removes dark strokes thinner than the kernel) and a blur, then scaled back up; each
    channel is divided by it. The blur is wide and the field it smooths is already free of strokes,
    so it runs at an eighth of the size (half the cost of the whole step at a quarter; the result
    differs by under half a grey level on average). Returns an RGB uint8 array of the same shape.
    """
    height, width = rgb.shape[:2]
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small_w, small_h = max(1, width // 4), max(1, height // 4)
    small = area(grey, (small_w, small_h))
    kernel_px = max(3, (max(small_w, small_h) // 25) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_px, kernel_px))
    background = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    eighth = area(background, (max(1, small_w // 2), max(1, small_h // 2)))
    eighth = cv2.GaussianBlur(eighth, (0, 0), kernel_px / 4)
    background = cv2.resize(np.maximum(eighth, 16), (width, height), interpolation=cv2.INTER_LINEAR)
    # Paper a bit below pure white reads more naturally and keeps faint pencil visible. OpenCV
    # divides in one saturating, vectorised pass (2.5× faster than float arrays in NumPy).
    return cv2.divide(rgb, cv2.merge([background] * 3), scale=245.0)
