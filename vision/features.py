"""Drawing features computed with OpenCV, stored next to every embedding and fed to the stage head.

Designed for real children's drawings (line drawings on white or off-white paper, scanned or
photographed, any size, ages 2–8), not only for ``vision.synthetic``. Every image is first scaled
to ``WORK_SIDE`` (512) px on its long side, and every feature is normalised by the size of the
sheet, so a scan and a photo of the same drawing, or the same drawing at 512 and 4000 px, give
close values.

How ink is found (robust to a raw tablet photo, best on a perspective-corrected sheet):

1. **Sheet.** If the image shows a bright sheet on a clearly darker surround (Otsu split of a
   coarse copy with at least 40 grey levels between the classes), the sheet is the convex hull of
   the largest bright region, shrunk by 1.5 % of the long side to stay clear of its edge and
   shadow. Otherwise (a scan, a corrected sheet) the whole image is the sheet. Features are
   measured inside the sheet and normalised by its area, width, height and diagonal.
2. **Paper tone.** A quadratic surface is fitted (robustly, twice, dropping dark outliers) to the
   paper's brightness on a coarse copy with the strokes closed away, so uneven light, vignetting
   and grey scans are not ink; large coloured-in areas do not drag it down as a local filter would.
3. **Ink score** per pixel = max(darkness, chroma): darkness = 1 − grey / paper tone; chroma = the
   spread of the white-balanced, light-corrected R, G, B (so yellow crayon counts although it is
   bright). The score is smoothed slightly (Gaussian σ 0.8 px) and thresholded by Otsu, clamped to
   0.12–0.30 (a blank sheet has no split worth taking: the lower clamp keeps paper grain and sensor
   noise out). The ink mask is closed with a 5-px disc, so crayon that skipped over the paper
   grain stays one stroke, and specks under ``_MIN_SPECK`` (2·10⁻⁵) of the sheet are dropped.

| name | what, how | unit / range | why it matters for the stages |
|---|---|---|---|
| ink_coverage | ink pixels / sheet pixels | share, 0–1 | amount of marking |
| ink_contrast | mean ink score of ink pixels | 0–1 | faint pencil vs crayon, felt pen |
| stroke_length | skeleton length / sheet diagonal | diagonals, 0–~60 | drawing activity |
| stroke_width | ink area / skeleton length / diagonal × 100 | % of diagonal, 0–~5 | chunky crayon vs pencil |
| n_strokes | 8-connected ink components ≥ 10⁻⁴ of the sheet | count | one tangle vs separate things |
| largest_stroke_share | largest component's area / ink area | 0–1 | a scribble is one tangle |
| n_closed | holes in the ink (RETR_CCOMP children) ≥ 3·10⁻⁴ of the sheet and at least as large as the ring of ink around them (area ≥ perimeter × stroke width) | count | enclosure, the mark of stage 2 on; gaps where scribble lines cross do not count |
| n_enclosed | closed contours that are convex (area / hull area ≥ 0.85) and compact (4πA/P² ≥ 0.5) | count | circles, heads, windows, suns |
| enclosed_circularity | mean 4πA/P² of those enclosed shapes (0 if none) | 0–1 | controlled round shapes |
| enclosed_area_share | total area of enclosed shapes / sheet area | 0–1 | size of the shapes |
| n_colours | hue clusters (circular runs of 15° hue bins each ≥ 2 % of the chromatic ink, together ≥ 5 %) + 1 if ≥ 10 % of the ink is grey or black | count, 0–13 | colour used for meaning in schematic drawings |
| chromatic_share | ink pixels with chroma ≥ 0.18 / ink pixels | 0–1 | pencil vs colour |
| extent_x, extent_y | 1st–99th percentile range of ink position / sheet width, height | 0–1 | using the whole sheet (scenes) |
| spread_x, spread_y | standard deviation of ink position / sheet width, height | 0–0.5 (even ink ≈ 0.29) | ordered use of space |
| balance_lr, balance_tb | abs(left − right), abs(top − bottom) ink mass / total ink, split at the sheet's middle | 0–1 | composition |
| centroid_y | ink centre of mass from the top / sheet height | 0–1 | floating vs grounded |
| horizontal_line | widest x-coverage by near-horizontal (±10°) Hough segments (each ≥ ¼ sheet width) lying in one band 3 % of the height / sheet width; on line-like ink at half size, coloured-in blobs removed | 0–1 | ground and sky lines of stage 4 |

All features are finite; a blank sheet gives 0 for all of them. Counts are raw counts (the stage head
standardises its inputs). ``cv2.ximgproc.thinning`` is used for the skeleton when OpenCV's contrib
modules are installed, else a morphological (Lantuéjoul) skeleton.
"""

from __future__ import annotations

import cv2
import numpy as np

WORK_SIDE = 512
FEATURE_NAMES: tuple[str, ...] = (
    "ink_coverage",
    "ink_contrast",
    "stroke_length",
    "stroke_width",
    "n_strokes",
    "largest_stroke_share",
    "n_closed",
    "n_enclosed",
    "enclosed_circularity",
    "enclosed_area_share",
    "n_colours",
    "chromatic_share",
    "extent_x",
    "extent_y",
    "spread_x",
    "spread_y",
    "balance_lr",
    "balance_tb",
    "centroid_y",
    "horizontal_line",
)

# Sizes are shares of the sheet's area so they mean the same at any resolution.
_MIN_SPECK = 2e-5  # smaller ink is paper grain, dust or sensor noise (≈ 4 px at 512×362)
_MIN_STROKE = 1e-4  # a stroke counts from here on (≈ 18 px: an eye dot is a stroke)
_MIN_HOLE = 3e-4  # a hole smaller than this is a gap in crayon wax, not an enclosed shape
_MIN_CONTRAST, _MAX_THRESHOLD = 0.12, 0.30
_CHROMA = 0.18
_SHEET_SEPARATION = 40  # grey levels between sheet and surround before a surround is believed
_SHEET_MARGIN = 0.015  # of the long side, trimmed off a found sheet's edge
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
_BOX3 = np.ones((3, 3), np.uint8)
_DISC5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


def _work_copy(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 scaled to WORK_SIDE px on the long side."""
    img = np.asarray(rgb)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or min(img.shape[:2]) < 8:
        raise ValueError(f"expected an RGB image of at least 8×8 px, got shape {img.shape}")
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {img.dtype}")
    img = np.ascontiguousarray(img[..., :3])
    h, w = img.shape[:2]
    scale = WORK_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return img
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _find_sheet(grey: np.ndarray) -> np.ndarray:
    """Mask (uint8 0/1) of the paper: a bright sheet on a darker surround, else everything."""
    h, w = grey.shape
    small = cv2.resize(grey, (max(8, w // 4), max(8, h // 4)), interpolation=cv2.INTER_AREA)
    # close away strokes so a drawing does not cut its own sheet into pieces
    small = cv2.morphologyEx(
        small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    )
    thr, bright = cv2.threshold(small, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    whole = np.ones_like(grey)
    dark = bright == 0
    if not dark.any() or dark.all():
        return whole
    if float(small[~dark].mean()) - float(small[dark].mean()) < _SHEET_SEPARATION:
        return whole
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=4)
    if n < 2:
        return whole
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[biggest, cv2.CC_STAT_AREA] < 0.15 * bright.size:
        return whole  # no convincing sheet: measure the whole image
    pts = np.column_stack(np.nonzero(labels == biggest)[::-1]).astype(np.int32)
    hull = cv2.convexHull(pts)
    mask_small = np.zeros_like(bright)
    cv2.fillConvexPoly(mask_small, hull, 1)
    if mask_small.mean() > 0.9:
        return whole  # a scan or a corrected sheet with dark marks near its edge
    mask = cv2.resize(mask_small, (w, h), interpolation=cv2.INTER_NEAREST)
    margin = max(1, round(_SHEET_MARGIN * max(h, w)))
    return cv2.erode(mask, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))


def _paper_tone(grey: np.ndarray, sheet: np.ndarray) -> np.ndarray:
    """Paper brightness (float32, 0–1 scale of grey/255) at every pixel: a robust quadratic fit."""
    h, w = grey.shape
    sw, sh = max(8, w // 8), max(8, h // 8)
    # at 1/8 size a 3×3 closing spans 24 work pixels: wider than any stroke
    small = cv2.resize(
        cv2.dilate(grey, _BOX3, iterations=2), (sw, sh), interpolation=cv2.INTER_AREA
    )
    small = cv2.morphologyEx(small, cv2.MORPH_CLOSE, _BOX3).astype(np.float64) / 255.0
    inside = cv2.resize(sheet, (sw, sh), interpolation=cv2.INTER_NEAREST).astype(bool)
    if inside.sum() < 12:
        inside = np.ones_like(inside)
    yy, xx = np.mgrid[0 : 1 : sh * 1j, 0 : 1 : sw * 1j]
    design = np.stack([np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy], -1).reshape(-1, 6)
    values = small.reshape(-1)
    keep = inside.reshape(-1)
    coef = np.zeros(6)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
        resid = values - design @ coef
        # coloured-in areas are darker than the paper: drop them and fit again
        keep = inside.reshape(-1) & (resid > -0.04)
        if keep.sum() < 12:
            break
    tone_small = (design @ coef).reshape(sh, sw).astype(np.float32)
    tone = cv2.resize(tone_small, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(tone, 0.15, 1.2)


def _skeleton(ink: np.ndarray) -> np.ndarray:
    """One-pixel-wide centre lines of the ink (uint8 0/1)."""
    thinning = getattr(getattr(cv2, "ximgproc", None), "thinning", None)
    if thinning is not None:
        return (thinning(ink * 255) > 0).astype(np.uint8)
    skel = np.zeros_like(ink)
    current = ink.copy()
    height, width = ink.shape
    x, y, w, h = cv2.boundingRect(current)
    for _ in range(64):  # enough for blobs 128 px across at WORK_SIDE
        if w == 0:
            break
        # Only the remaining ink's bounding box, with a pixel of paper around it, is worked on:
        # after the first rounds only the thick parts remain, and the result is the same.
        x0, y0, x1, y1 = max(0, x - 1), max(0, y - 1), min(width, x + w + 1), min(height, y + h + 1)
        box = current[y0:y1, x0:x1]
        eroded = cv2.erode(box, _CROSS)
        skel[y0:y1, x0:x1] |= box - cv2.dilate(eroded, _CROSS)
        box[:] = eroded
        x, y, w, h = cv2.boundingRect(eroded)
        x, y = x + x0, y + y0
    return skel


def _hue_clusters(hue: np.ndarray | None) -> int:
    """Number of distinct hues among chromatic ink: circular runs of occupied 15° bins."""
    if hue is None or hue.size == 0:
        return 0
    share = np.bincount((hue.astype(np.int32) * 24) // 256, minlength=24) / hue.size  # 0–255 hue
    occupied = share >= 0.02
    if occupied.all():
        return 1 if share.sum() >= 0.05 else 0
    start = int(np.argmin(occupied))  # begin at an empty bin so no run wraps around
    order = np.roll(np.arange(24), -start)
    runs, mass = 0, 0.0
    for b in order:
        if occupied[b]:
            mass += share[b]
        else:
            runs += mass >= 0.05
            mass = 0.0
    return int(runs + (mass >= 0.05))


def _horizontal_line(ink: np.ndarray, sheet_w: float, sheet_h: float) -> float:
    """Widest x-coverage of near-horizontal straight ink within one band / sheet width (0–1).

    Runs at half the working size, where a crayon line is a few pixels wide and a hand's wobble
    mostly disappears. Solid blobs (ink that survives an opening 12 working px wide: coloured-in
    areas and dense tangles of scribble) are removed first, since any line through a blob would
    find votes; high votes and small gaps then keep lines that merely cross a tangle from counting.
    """
    h, w = ink.shape
    half = cv2.resize(ink * 255, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    lines_only = (half > 64).astype(np.uint8)
    blobs = np.asarray(cv2.morphologyEx(lines_only, cv2.MORPH_OPEN, np.ones((6, 6), np.uint8)))
    lines_only[blobs > 0] = 0
    sheet_w, sheet_h = sheet_w / 2, sheet_h / 2
    min_len = max(6, round(0.25 * sheet_w))
    found = cv2.HoughLinesP(
        lines_only,
        1,
        np.pi / 180,
        round(0.7 * min_len),
        minLineLength=min_len,
        maxLineGap=max(1, round(0.02 * sheet_w)),
    )
    if found is None:
        return 0.0
    seg = found[:, 0, :].astype(np.float64)
    dx, dy = seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1]
    seg = seg[np.abs(dy) <= np.tan(np.radians(10)) * np.abs(dx)]
    if not len(seg):
        return 0.0
    # collinear pieces of one wobbly ground line share a band: cover the band's x-range
    mid_y = (seg[:, 1] + seg[:, 3]) / 2
    x0 = np.minimum(seg[:, 0], seg[:, 2]).astype(int)
    x1 = np.ceil(np.maximum(seg[:, 0], seg[:, 2])).astype(int)
    widest = 0.0
    for y in mid_y:
        near = np.abs(mid_y - y) <= 0.03 * sheet_h
        covered = np.zeros(int(x1.max()) + 2, bool)
        for a, c in zip(x0[near], x1[near], strict=True):
            covered[a : c + 1] = True
        widest = max(widest, covered.sum() / sheet_w)
    return min(1.0, float(widest))


def drawing_features_dict(rgb: np.ndarray) -> dict[str, float]:
    """The drawing features of one RGB uint8 image, by name (see the module docstring for units).

    Raises ValueError for an image that is not H×W×3 (or 4) uint8 of at least 8×8 px.
    """
    img = _work_copy(rgb)
    h, w = img.shape[:2]
    out = dict.fromkeys(FEATURE_NAMES, 0.0)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    sheet = _find_sheet(grey)
    sheet_area = float(cv2.countNonZero(sheet))
    if sheet_area < 64:
        return out
    sx, sy, sheet_w, sheet_h = cv2.boundingRect(sheet)
    diag = float(np.hypot(sheet_w, sheet_h))

    tone = _paper_tone(grey, sheet)
    denom = 1.0 / (255.0 * tone)
    darkness = 1.0 - grey.astype(np.float32) * denom
    inside = sheet.astype(bool)
    # white balance by the paper's own colour, so a warm light or cream paper is not "colour"
    paperish = (inside & (darkness < 0.06)).astype(np.uint8)
    paper_rgb: np.ndarray = np.ones(3)
    if paperish.sum() > 50:
        paper_rgb = np.array(cv2.mean(img, mask=paperish), dtype=np.float64)[:3]
    gains = paper_rgb.mean() / np.maximum(paper_rgb, 1.0)
    r, g, b = (
        c.astype(np.float32) * np.float32(k) for c, k in zip(cv2.split(img), gains, strict=True)
    )
    chroma = (np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)) * denom
    score = np.maximum(darkness, chroma) * sheet
    # crayon wax skips over the paper grain: a slight blur keeps a stroke one stroke
    score = cv2.GaussianBlur(score, (3, 3), 0.8)

    score_u8 = np.clip(score * 255.0, 0, 255).astype(np.uint8)
    otsu, _ = cv2.threshold(
        score_u8[inside].reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU
    )
    thr = float(np.clip(otsu / 255.0, _MIN_CONTRAST, _MAX_THRESHOLD))
    ink = (score > thr).astype(np.uint8) & sheet
    ink = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, _DISC5) & sheet
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    areas = stats[:, cv2.CC_STAT_AREA].copy()
    areas[0] = 0  # the background
    keep = areas >= _MIN_SPECK * sheet_area
    if not keep[1:].all():
        ink = keep.astype(np.uint8)[labels]
    areas = areas[keep]
    total = float(areas.sum())
    if total == 0:
        return out
    is_ink = ink.astype(bool)

    out["ink_coverage"] = total / sheet_area
    out["ink_contrast"] = float(np.clip(score[is_ink], 0, 1).mean())
    skel = _skeleton(ink)
    skel_len = max(1.0, float(cv2.countNonZero(skel)))
    width = total / skel_len  # px: ink area per length of centre line
    out["stroke_length"] = skel_len / diag
    out["stroke_width"] = width / diag * 100.0
    out["n_strokes"] = float((areas >= _MIN_STROKE * sheet_area).sum())
    out["largest_stroke_share"] = float(areas.max()) / total

    contours, hierarchy = cv2.findContours(ink, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    n_closed, circularity, enclosed_area = 0, [], 0.0
    if hierarchy is not None:
        for contour, (_, _, _, parent) in zip(contours, hierarchy[0], strict=True):
            if parent < 0:
                continue  # an outer boundary; holes are the children in RETR_CCOMP
            area = cv2.contourArea(contour)
            if area < _MIN_HOLE * sheet_area:
                continue
            perimeter = cv2.arcLength(contour, True)
            # a hole smaller than the ring of ink around it is a gap where strokes cross, not
            # a drawn enclosure: a circle of radius R in a line of width t passes when R ≥ 2t
            if area < perimeter * width:
                continue
            n_closed += 1
            hull_area = cv2.contourArea(cv2.convexHull(contour))
            circ = 4 * np.pi * area / max(perimeter * perimeter, 1e-9)
            if hull_area > 0 and area / hull_area >= 0.85 and circ >= 0.5:
                circularity.append(min(1.0, circ))
                enclosed_area += area
    out["n_closed"] = float(n_closed)
    out["n_enclosed"] = float(len(circularity))
    out["enclosed_circularity"] = float(np.mean(circularity)) if circularity else 0.0
    out["enclosed_area_share"] = enclosed_area / sheet_area

    chromatic = is_ink & (chroma >= _CHROMA)
    n_chromatic = float(cv2.countNonZero(chromatic.astype(np.uint8)))
    out["chromatic_share"] = n_chromatic / total
    hue = None
    if n_chromatic:  # hue of the chromatic ink pixels only, converted as one row of pixels
        hue = cv2.cvtColor(img[chromatic][None], cv2.COLOR_RGB2HSV_FULL)[0, :, 0]
    grey_ink = 1.0 if 1.0 - n_chromatic / total >= 0.10 else 0.0
    out["n_colours"] = float(_hue_clusters(hue)) + grey_ink

    # ink mass per column and per row of the sheet: every position feature follows from these
    on_sheet = ink[sy : sy + sheet_h, sx : sx + sheet_w]
    col = on_sheet.sum(axis=0, dtype=np.float64)
    row = on_sheet.sum(axis=1, dtype=np.float64)
    sheet_col = sheet[sy : sy + sheet_h, sx : sx + sheet_w].sum(axis=0, dtype=np.float64)
    sheet_row = sheet[sy : sy + sheet_h, sx : sx + sheet_w].sum(axis=1, dtype=np.float64)
    for axis, mass, sheet_mass, side in (
        ("x", col, sheet_col, sheet_w),
        ("y", row, sheet_row, sheet_h),
    ):
        pos = (np.arange(side) + 0.5) / side
        p = mass / mass.sum()
        cum = np.cumsum(p)
        lo, hi = int(np.searchsorted(cum, 0.01)), int(np.searchsorted(cum, 0.99))
        mean = float((p * pos).sum())
        out[f"extent_{axis}"] = float(pos[min(hi, side - 1)] - pos[min(lo, side - 1)])
        out[f"spread_{axis}"] = float(np.sqrt(max(0.0, (p * (pos - mean) ** 2).sum())))
        # the sheet's own middle, not the image's: a photo may show the sheet off-centre
        middle = float((sheet_mass * pos).sum() / max(sheet_mass.sum(), 1.0))
        before = float(p[pos < middle].sum())
        out["balance_lr" if axis == "x" else "balance_tb"] = abs(2 * before - 1)
        if axis == "y":
            out["centroid_y"] = mean
    out["horizontal_line"] = _horizontal_line(ink, float(sheet_w), float(sheet_h))
    return out


def drawing_features(rgb: np.ndarray) -> np.ndarray:
    """The drawing features of one RGB uint8 image: float32 vector in FEATURE_NAMES order."""
    d = drawing_features_dict(rgb)
    return np.array([d[name] for name in FEATURE_NAMES], dtype=np.float32)
