"""Seeded synthetic children's drawings (stages 0–4), "photographed" like a tablet photo.

For tests, benchmarks and the demo only: a model trained on these says nothing about real drawings.
Each stage follows DESIGN.md's progression (after Lowenfeld and Kellogg): 0 random scribble, 1
controlled scribble, 2 first enclosed shapes, 3 pre-schematic (tadpole figures, floating objects),
4 schematic (figures with bodies, ground and sky line, ordered space). Strokes are crayon (thick,
textured) or pencil (thin, grey); amount and size vary within a stage so stages overlap a little.
"""

from __future__ import annotations

import cv2
import numpy as np

PALETTE = np.array(
    [
        (220, 40, 40),
        (240, 130, 30),
        (245, 205, 40),
        (60, 160, 60),
        (40, 110, 200),
        (120, 60, 170),
        (230, 100, 160),
        (120, 80, 40),
        (30, 30, 30),
        (90, 200, 220),
    ],
    dtype=np.uint8,
)
Rng = np.random.Generator


class _Canvas:
    """A sheet of paper with a drawing tool (crayon or pencil) chosen per drawing."""

    def __init__(self, rng: Rng, w: int, h: int) -> None:
        self.rng = rng
        self.w, self.h = w, h
        tone = rng.uniform(240, 252)
        paper = np.full((h, w, 3), tone, np.float32)
        paper += rng.normal(0, 2.0, (h, w, 1)).astype(np.float32)
        self.img = np.clip(paper, 0, 255).astype(np.uint8)
        self.crayon = bool(rng.random() < 0.75)
        self.scale = min(w, h) / 768.0

    def colour(self) -> tuple[int, int, int]:
        if not self.crayon:
            g = int(self.rng.integers(40, 110))
            return (g, g, g)
        c = PALETTE[self.rng.integers(len(PALETTE))]
        return (int(c[0]), int(c[1]), int(c[2]))

    def width(self) -> int:
        base = self.rng.uniform(5, 10) if self.crayon else self.rng.uniform(1.5, 3)
        return max(1, int(round(base * self.scale)))

    def wobble(self, pts: np.ndarray, amount: float = 2.0) -> np.ndarray:
        return pts + self.rng.normal(0, amount * self.scale, pts.shape)

    def stroke(
        self, pts: np.ndarray, colour=None, width: int | None = None, closed: bool = False
    ) -> None:
        colour = colour or self.colour()
        width = width or self.width()
        poly = np.round(pts).astype(np.int32).reshape(-1, 1, 2)
        if not self.crayon:
            cv2.polylines(self.img, [poly], closed, colour, width, cv2.LINE_AA)
            return
        layer = np.zeros((self.h, self.w), np.uint8)
        cv2.polylines(layer, [poly], closed, 255, width, cv2.LINE_AA)
        x0, y0 = max(0, int(pts[:, 0].min()) - width), max(0, int(pts[:, 1].min()) - width)
        x1, y1 = (
            min(self.w, int(pts[:, 0].max()) + width + 1),
            min(self.h, int(pts[:, 1].max()) + width + 1),
        )
        if x1 <= x0 or y1 <= y0:
            return
        sub = layer[y0:y1, x0:x1].astype(np.float32) / 255.0
        # crayon texture: wax skips over the paper grain
        sub *= self.rng.uniform(0.55, 1.0, sub.shape).astype(np.float32) > 0.25
        region = self.img[y0:y1, x0:x1].astype(np.float32)
        col = np.array(colour, np.float32)
        self.img[y0:y1, x0:x1] = (
            region * (1 - sub[..., None] * 0.9) + col * sub[..., None] * 0.9
        ).astype(np.uint8)

    def ellipse_pts(
        self, cx: float, cy: float, rx: float, ry: float, n: int = 40, start: float = 0.0
    ) -> np.ndarray:
        t = np.linspace(start, start + 2 * np.pi, n)
        return self.wobble(np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1), 1.5)

    def circle(self, cx: float, cy: float, r: float, colour=None) -> None:
        self.stroke(
            self.ellipse_pts(cx, cy, r, r * self.rng.uniform(0.85, 1.15)), colour, closed=True
        )

    def line(
        self, x0: float, y0: float, x1: float, y1: float, colour=None, width: int | None = None
    ) -> None:
        t = np.linspace(0, 1, 12)[:, None]
        pts = np.array([x0, y0]) * (1 - t) + np.array([x1, y1]) * t
        self.stroke(self.wobble(pts, 1.2), colour, width)


def _random_scribble(c: _Canvas) -> None:
    for _ in range(c.rng.integers(2, 7)):
        n = int(c.rng.integers(30, 90))
        steps = c.rng.normal(0, 40 * c.scale, (n, 2))
        start = c.rng.uniform([0.15 * c.w, 0.15 * c.h], [0.85 * c.w, 0.85 * c.h])
        pts = np.clip(start + np.cumsum(steps, 0), 5, [c.w - 5, c.h - 5])
        c.stroke(pts)


def _controlled_scribble(c: _Canvas) -> None:
    for _ in range(c.rng.integers(2, 5)):
        kind = c.rng.integers(3)
        cx, cy = c.rng.uniform(0.25, 0.75) * c.w, c.rng.uniform(0.25, 0.75) * c.h
        size = c.rng.uniform(0.1, 0.25) * min(c.w, c.h)
        if kind == 0:  # loops along a line
            t = np.linspace(0, c.rng.uniform(6, 14) * np.pi, 220)
            pts = np.stack(
                [cx - size + t * size / 10 + size * 0.5 * np.cos(t), cy + size * 0.6 * np.sin(t)], 1
            )
        elif kind == 1:  # zig-zag
            k = int(c.rng.integers(6, 14))
            xs = np.linspace(cx - size, cx + size, k)
            ys = cy + np.where(np.arange(k) % 2 == 0, -size * 0.5, size * 0.5)
            pts = np.stack([xs, ys], 1)
        else:  # repeated parallel strokes
            for j in range(int(c.rng.integers(4, 9))):
                off = (j - 4) * size * 0.12
                c.line(cx - size, cy + off, cx + size, cy + off + c.rng.normal(0, 5))
            continue
        c.stroke(c.wobble(pts, 2.0))


def _enclosed_shapes(c: _Canvas) -> None:
    for _ in range(c.rng.integers(2, 6)):
        cx, cy = c.rng.uniform(0.2, 0.8) * c.w, c.rng.uniform(0.2, 0.8) * c.h
        r = c.rng.uniform(0.05, 0.14) * min(c.w, c.h)
        kind = c.rng.integers(4)
        c.circle(cx, cy, r)
        if kind == 1:  # sun: rays
            for a in np.linspace(0, 2 * np.pi, int(c.rng.integers(6, 11)), endpoint=False):
                c.line(
                    cx + r * 1.1 * np.cos(a),
                    cy + r * 1.1 * np.sin(a),
                    cx + r * 1.7 * np.cos(a),
                    cy + r * 1.7 * np.sin(a),
                )
        elif kind == 2:  # cross inside (mandala)
            c.line(cx - r, cy, cx + r, cy)
            c.line(cx, cy - r, cx, cy + r)
        elif kind == 3:  # a separate cross
            x, y = c.rng.uniform(0.15, 0.85) * c.w, c.rng.uniform(0.15, 0.85) * c.h
            c.line(x - r, y - r, x + r, y + r)
            c.line(x - r, y + r, x + r, y - r)


def _tadpole(c: _Canvas, cx: float, cy: float, r: float) -> None:
    col = c.colour()
    c.circle(cx, cy, r, col)
    for dx in (-0.35, 0.35):
        cv2.circle(
            c.img, (int(cx + dx * r), int(cy - 0.2 * r)), max(2, int(r * 0.08)), (30, 30, 30), -1
        )
    c.stroke(c.ellipse_pts(cx, cy + 0.3 * r, 0.35 * r, 0.15 * r, 12, 0.2)[:7], col)
    for a in (-0.6, 0.6):  # legs
        c.line(cx + 0.4 * a * r, cy + r, cx + a * 1.1 * r, cy + 2.4 * r, col)
    if c.rng.random() < 0.7:  # arms from the head
        c.line(cx - r, cy, cx - 2 * r, cy - 0.3 * r, col)
        c.line(cx + r, cy, cx + 2 * r, cy - 0.3 * r, col)


def _pre_schematic(c: _Canvas) -> None:
    for _ in range(c.rng.integers(1, 4)):
        r = c.rng.uniform(0.06, 0.11) * min(c.w, c.h)
        _tadpole(c, c.rng.uniform(0.2, 0.8) * c.w, c.rng.uniform(0.2, 0.6) * c.h, r)
    for _ in range(c.rng.integers(1, 4)):  # floating objects
        x, y = c.rng.uniform(0.1, 0.9) * c.w, c.rng.uniform(0.1, 0.9) * c.h
        r = c.rng.uniform(0.03, 0.07) * min(c.w, c.h)
        if c.rng.random() < 0.5:
            c.circle(x, y, r)
        else:
            pts = np.array([[x - r, y - r], [x + r, y - r], [x + r, y + r], [x - r, y + r]])
            c.stroke(c.wobble(pts), closed=True)


def _figure(c: _Canvas, x: float, ground: float, hgt: float) -> None:
    col = c.colour()
    head = hgt * 0.14
    c.circle(x, ground - hgt + head, head, col)
    top, hip = ground - hgt + 2 * head, ground - hgt * 0.4
    body = np.array(
        [[x - head * 0.9, top], [x + head * 0.9, top], [x + head * 1.2, hip], [x - head * 1.2, hip]]
    )
    c.stroke(c.wobble(body), col, closed=True)
    c.line(x - head * 0.6, hip, x - head * 0.9, ground, col)
    c.line(x + head * 0.6, hip, x + head * 0.9, ground, col)
    c.line(x - head * 0.9, top + head * 0.3, x - head * 2.2, top + head * 1.6, col)
    c.line(x + head * 0.9, top + head * 0.3, x + head * 2.2, top + head * 1.6, col)


def _schematic(c: _Canvas) -> None:
    ground = c.rng.uniform(0.78, 0.9) * c.h
    c.line(
        0.03 * c.w, ground, 0.97 * c.w, ground + c.rng.normal(0, 4), (60, 160, 60), c.width() + 2
    )
    sky = c.rng.uniform(0.06, 0.12) * c.h
    c.line(0.03 * c.w, sky, 0.97 * c.w, sky + c.rng.normal(0, 4), (40, 110, 200), c.width() + 2)
    c.circle(0.85 * c.w, 0.2 * c.h, 0.06 * min(c.w, c.h), (245, 205, 40))
    slots = c.rng.permutation(np.linspace(0.15, 0.75, 4))
    hx = slots[0] * c.w  # house
    hs = c.rng.uniform(0.15, 0.22) * c.w
    walls = np.array([[hx, ground], [hx, ground - hs], [hx + hs, ground - hs], [hx + hs, ground]])
    c.stroke(c.wobble(walls), (200, 40, 40), closed=True)
    c.stroke(
        c.wobble(
            np.array(
                [
                    [hx - 0.1 * hs, ground - hs],
                    [hx + hs / 2, ground - 1.6 * hs],
                    [hx + 1.1 * hs, ground - hs],
                ]
            )
        ),
        (120, 80, 40),
    )
    door = np.array(
        [
            [hx + 0.4 * hs, ground],
            [hx + 0.4 * hs, ground - 0.45 * hs],
            [hx + 0.6 * hs, ground - 0.45 * hs],
            [hx + 0.6 * hs, ground],
        ]
    )
    c.stroke(c.wobble(door), (120, 80, 40))
    tx = slots[1] * c.w  # tree
    c.line(tx, ground, tx, ground - 0.2 * c.h, (120, 80, 40), c.width() + 3)
    c.circle(tx, ground - 0.28 * c.h, 0.08 * min(c.w, c.h), (60, 160, 60))
    for s in slots[2:]:
        _figure(c, s * c.w + 0.05 * c.w, ground, c.rng.uniform(0.3, 0.42) * c.h)


_STAGES = (_random_scribble, _controlled_scribble, _enclosed_shapes, _pre_schematic, _schematic)


def render_drawing(stage: int, rng: Rng, size: int = 768) -> np.ndarray:
    """A child's drawing of ``stage`` (0–4) on paper, RGB uint8, long side ``size`` px."""
    if not 0 <= stage < len(_STAGES):
        raise ValueError(f"stage must be 0–4, got {stage}")
    portrait = rng.random() < 0.3
    w, h = (int(size * 0.71), size) if portrait else (size, int(size * 0.71))
    canvas = _Canvas(rng, w, h)
    _STAGES[stage](canvas)
    return canvas.img


def photograph(
    drawing: np.ndarray, rng: Rng, out_size: tuple[int, int] = (1024, 768)
) -> tuple[np.ndarray, np.ndarray]:
    """Place the sheet on a table under a random perspective and uneven light.

    Returns (RGB photo of ``out_size`` = (W, H), sheet corners TL, TR, BR, BL as float32 (4, 2)).
    """
    W, H = out_size
    dh, dw = drawing.shape[:2]
    table = np.array(rng.uniform([90, 70, 50], [160, 130, 110]), np.float32)
    small = cv2.resize(rng.normal(0, 12, (H // 8 + 1, W // 8 + 1, 1)).astype(np.float32), (W, H))
    background = np.clip(table + small[..., None], 0, 255)
    fill = rng.uniform(0.6, 0.85)
    sw = min(W * fill, H * fill * dw / dh)
    sh = sw * dh / dw
    cx, cy = W / 2 + rng.normal(0, 0.03 * W), H / 2 + rng.normal(0, 0.03 * H)
    corners = np.array(
        [
            [cx - sw / 2, cy - sh / 2],
            [cx + sw / 2, cy - sh / 2],
            [cx + sw / 2, cy + sh / 2],
            [cx - sw / 2, cy + sh / 2],
        ]
    )
    corners += rng.normal(0, 0.025 * min(W, H), (4, 2))
    corners = corners.astype(np.float32)
    src = np.array([[0, 0], [dw - 1, 0], [dw - 1, dh - 1], [0, dh - 1]], np.float32)
    M = cv2.getPerspectiveTransform(src, corners)
    warped = cv2.warpPerspective(
        drawing, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    mask = (
        cv2.warpPerspective(np.full((dh, dw), 255, np.uint8), M, (W, H))[..., None].astype(
            np.float32
        )
        / 255.0
    )
    photo = warped.astype(np.float32) * mask + background * (1 - mask)
    # uneven light: a tilted plane times a soft vignette
    yy, xx = np.mgrid[0:H:8, 0:W:8].astype(np.float32)
    gx, gy = rng.uniform(-0.25, 0.25, 2)
    light = 1 + gx * (xx / W - 0.5) + gy * (yy / H - 0.5)
    light *= 1 - 0.25 * (((xx / W - 0.5) ** 2 + (yy / H - 0.5) ** 2) * 2)
    light = cv2.resize(light, (W, H))
    photo = photo * light[..., None] * rng.uniform(0.85, 1.0)
    photo += (
        rng.normal(0, 3, ((H + 1) // 2, (W + 1) // 2, 1))
        .repeat(2, 0)
        .repeat(2, 1)[:H, :W]
        .astype(np.float32)
    )
    photo = cv2.GaussianBlur(np.clip(photo, 0, 255).astype(np.uint8), (3, 3), 0.6)
    return photo, corners


def make_photo(
    stage: int, seed: int, *, megapixels: float = 2.0, fmt: str = "jpeg", quality: int = 90
) -> bytes:
    """Encoded photo (JPEG or PNG) of a photographed drawing of ``stage``, about ``megapixels`` MP, 4:3."""
    rng = np.random.default_rng(seed)
    drawing = render_drawing(stage, rng, size=768 if megapixels < 4 else 1400)
    H = int(round(np.sqrt(megapixels * 1e6 * 3 / 4)))
    W = int(round(H * 4 / 3))
    if W > 2000:
        # Large photos: compose at half size, upscale, then add full-resolution sensor noise; the
        # result is as soft as a real tablet photo and takes a fraction of the time.
        photo, _ = photograph(drawing, rng, (W // 2, H // 2))
        photo = cv2.resize(photo, (W, H), interpolation=cv2.INTER_LINEAR)
        noise = np.empty((H, W, 3), np.int16)
        # OpenCV's generator, seeded from ours, keeps the photo deterministic for a seed
        cv2.setRNGSeed(int(rng.integers(2**31)))
        cv2.randn(noise, np.zeros(3), np.full(3, 3.0))
        photo = cv2.add(photo.astype(np.int16), noise, dtype=cv2.CV_8U)
    else:
        photo, _ = photograph(drawing, rng, (W, H))
    bgr = cv2.cvtColor(photo, cv2.COLOR_RGB2BGR)
    if fmt == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    elif fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        raise ValueError(f"fmt must be 'jpeg' or 'png', got {fmt!r}")
    if not ok:
        raise RuntimeError("encoding the synthetic photo failed")
    return buf.tobytes()


def generate_dataset(
    n: int, seed: int, *, photographed: bool = True, size: int = 512
) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` drawings with balanced stages 0–4 (deterministic for a seed): (images, stages)."""
    rng = np.random.default_rng(seed)
    stages = np.arange(n) % 5
    images = []
    for stage in stages:
        img = render_drawing(int(stage), rng, size=size)
        if photographed:
            img, _ = photograph(img, rng, (size, int(size * 0.75)))
        images.append(img)
    return images, stages


def unit_stage_mix(mean_stage: float, rng: Rng, n: int) -> np.ndarray:
    """Stages for ``n`` photos whose mean is about ``mean_stage`` (discretised normal, sd 0.9, 0–4)."""
    return np.clip(np.round(rng.normal(mean_stage, 0.9, n)), 0, 4).astype(int)
