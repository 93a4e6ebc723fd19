"""Seeded synthetic children's drawings (stages 0–4), "photographed" like a tablet photo.

For tests, benchmarks and the demo only: a model trained on these says nothing about real drawings,
and they are never the only evidence that the real path works.

Each stage follows the progression in docs/architecture.md (after Lowenfeld and Kellogg):

- 0 random scribble: chaotic, overlapping strokes that wander and double back;
- 1 controlled scribble: repeated lines, zig-zags, loops and spirals;
- 2 first enclosed shapes: circles, crosses, mandalas (a circle with a cross) and suns;
- 3 pre-schematic: tadpole figures (a head circle with lines for limbs) and objects floating on
  the page at random sizes;
- 4 schematic: figures with bodies standing on a ground line, a sky line, house, tree and sun in
  ordered space.

A drawing is made with crayons (thick, waxy strokes that skip over the paper grain) or a pencil
(thin, grey), in colours from a child's palette. Amount, size and placement vary within a stage
so neighbouring stages overlap a little, as real drawings do.

Public API: :func:`render_drawing`, :func:`photograph`, :func:`make_photo`,
:func:`generate_dataset`, :func:`unit_stage_mix`. Geometry is drawn in sheet-relative units, so the
same generator state gives the same drawing at any ``size``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

from core.domain import N_STAGES

Rng = np.random.Generator

#: A child's crayon box, RGB.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (214, 40, 40),
    "orange": (242, 133, 34),
    "yellow": (247, 208, 45),
    "green": (62, 160, 64),
    "dark_green": (30, 110, 52),
    "light_blue": (86, 172, 228),
    "blue": (40, 72, 190),
    "purple": (120, 62, 165),
    "pink": (236, 120, 172),
    "brown": (128, 80, 42),
    "black": (36, 36, 40),
}
_PENCIL_GREY = (92, 92, 98)
#: Ballpoint inks: blue, black.
_INKS = ((34, 52, 140), (30, 30, 36))
#: What children draw with (``medium`` of :func:`render_drawing`).
MEDIA = ("crayon", "pencil", "ballpoint", "felt")
#: How a drawing reaches the system: a flatbed scan or a tablet photo.
CAPTURES = ("scan", "photo")
#: Typical age (years) at each stage and the spread around it (docs/architecture.md: ages overlap widely).
STAGE_AGES = ((1.9, 0.55), (2.8, 0.6), (3.6, 0.7), (5.0, 0.9), (6.8, 0.9))
#: Paper: white copier paper, cream drawing paper, grey recycled paper, yellowish newsprint.
_PAPER_TONES = ((249, 249, 247), (246, 240, 226), (228, 227, 222), (240, 234, 210))
#: A4 paper: short side / long side.
_SHEET_RATIO = 1 / np.sqrt(2)
_TAU = 2 * np.pi
_TOOTH_SIDE = 768  # px on the long side at which one paper grain is one pixel


@dataclass
class _Pen:
    """One crayon or pencil: colour, line thickness (px) and how much it covers the paper."""

    kind: str  # "crayon", "pencil", "ballpoint" or "felt"
    rgb: tuple[int, int, int]
    thickness: int
    pressure: float  # 0–1: a light hand leaves more paper showing through the wax
    strokes: list[np.ndarray] = field(default_factory=list)


class _Sheet:
    """A sheet of paper and the pens a child uses on it; strokes are collected, then rendered."""

    def __init__(
        self,
        rng: Rng,
        w: int,
        h: int,
        n_colours: int,
        crayon_width: float,
        medium: str | None = None,
        monochrome: bool = False,
        age: float | None = None,
    ) -> None:
        self.rng = rng
        self.w, self.h = w, h
        self.s = float(min(w, h))  # the length unit of all shapes: the sheet's short side
        # medium None: the original generator (crayons, a pencil in about one drawing in five)
        self.medium = medium
        self.pencil = bool(rng.random() < 0.22) if medium is None else medium == "pencil"
        self.monochrome = monochrome
        self.age = age  # the child's age (years): figure details grow with it
        names = list(PALETTE)
        self.colours = [names[i] for i in rng.permutation(len(names))[:n_colours]]
        if monochrome:
            self.colours = self.colours[:1]
        self.crayon_width = crayon_width  # relative to the long side
        self.pens: dict[str, _Pen] = {}

    def pen(self, prefer: tuple[str, ...] = ()) -> _Pen:
        """A pen of a preferred colour (usually) or one of the drawing's colours."""
        if self.medium is not None and self.medium != "crayon":
            return self._medium_pen(prefer)
        if self.monochrome:
            name = self.colours[0]
        elif self.pencil:
            name = "pencil"
        elif prefer and self.rng.random() < 0.8:
            name = prefer[int(self.rng.integers(len(prefer)))]
        else:
            name = self.colours[int(self.rng.integers(len(self.colours)))]
        if name not in self.pens:
            long_side = max(self.w, self.h)
            if name == "pencil":
                width = self.rng.uniform(0.0022, 0.0040) * long_side
                self.pens[name] = _Pen("pencil", _PENCIL_GREY, max(1, round(width)), 1.0)
            else:
                width = self.crayon_width * self.rng.uniform(0.85, 1.15) * long_side
                pressure = float(self.rng.uniform(0.5, 1.0))
                self.pens[name] = _Pen("crayon", PALETTE[name], max(2, round(width)), pressure)
        return self.pens[name]

    def _medium_pen(self, prefer: tuple[str, ...]) -> _Pen:
        """A pencil, ballpoint or felt pen: one for a monochrome drawing, else per colour."""
        medium = self.medium
        assert medium is not None
        if self.monochrome:
            name = "mono"
        elif prefer and self.rng.random() < 0.8:
            name = prefer[int(self.rng.integers(len(prefer)))]
        else:
            name = self.colours[int(self.rng.integers(len(self.colours)))]
        if name in self.pens:
            return self.pens[name]
        long_side = max(self.w, self.h)
        if medium == "pencil":
            rgb = _PENCIL_GREY if name == "mono" else PALETTE[name]
            width = self.rng.uniform(0.0016, 0.0042) * long_side
            pressure = float(self.rng.uniform(0.35, 1.0))
        elif medium == "ballpoint":
            inks = {"mono": _INKS[int(self.rng.integers(len(_INKS)))]}
            rgb = inks.get(name) or PALETTE[name]
            width = self.rng.uniform(0.0012, 0.0026) * long_side
            pressure = float(self.rng.uniform(0.6, 1.0))
        else:  # felt pen
            rgb = PALETTE[self.colours[0] if name == "mono" else name]
            width = self.rng.uniform(0.003, 0.008) * long_side
            pressure = float(self.rng.uniform(0.8, 1.0))
        self.pens[name] = _Pen(medium, rgb, max(1, round(width)), pressure)
        return self.pens[name]

    # --- shapes, in pixels; sizes are given as fractions of the short side -------------------

    def wobble(self, pts: np.ndarray, amount: float) -> np.ndarray:
        """A hand's tremor: smooth noise of about ``amount`` × short side added to a polyline."""
        n = len(pts)
        noise = self.rng.normal(0.0, 1.0, (n + 6, 2))
        kernel = np.ones(7) / np.sqrt(7)
        smooth = np.stack([np.convolve(noise[:, k], kernel, "valid") for k in (0, 1)], 1)
        return pts + smooth[:n] * amount * self.s

    def stroke(self, pts: np.ndarray, pen: _Pen | None = None, wobble: float = 0.004) -> None:
        """Add one stroke (a polyline, pixels) drawn with ``pen``."""
        (pen or self.pen()).strokes.append(self.wobble(np.asarray(pts, float), wobble))

    def line(self, p0, p1, pen: _Pen | None = None, n: int = 14, wobble: float = 0.003) -> None:
        t = np.linspace(0.0, 1.0, n)[:, None]
        self.stroke(np.asarray(p0, float) * (1 - t) + np.asarray(p1, float) * t, pen, wobble)

    def ellipse(
        self,
        c,
        rx: float,
        ry: float,
        pen: _Pen | None = None,
        *,
        tilt: float = 0.0,
        overshoot: float | None = None,
        arc: tuple[float, float] | None = None,
    ) -> None:
        """A hand-drawn closed ellipse (starts anywhere, overshoots so it closes) or an arc."""
        if arc is None:
            a0 = self.rng.uniform(0, _TAU)
            over = self.rng.uniform(0.15, 0.6) if overshoot is None else overshoot
            t = np.linspace(a0, a0 + _TAU + over, 56)
        else:
            t = np.linspace(arc[0], arc[1], 16)
        x, y = rx * np.cos(t), ry * np.sin(t)
        ct, st = np.cos(tilt), np.sin(tilt)
        pts = np.stack([c[0] + ct * x - st * y, c[1] + st * x + ct * y], 1)
        self.stroke(pts, pen, wobble=0.0025 + 0.02 * min(rx, ry) / self.s)

    def dot(self, c, r: float, pen: _Pen) -> None:
        self.ellipse(c, r, r, pen, overshoot=0.3)


# --- stages --------------------------------------------------------------------------------------


def _fold(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect coordinates back into [lo, hi]: a scribble turns at the edge of the sheet."""
    span = hi - lo
    m = np.mod(v - lo, 2 * span)
    return lo + np.where(m > span, 2 * span - m, m)


def _wander(sheet: _Sheet, n: int, step: float, turn: float, region) -> np.ndarray:
    """A random walk with momentum inside ``region`` (x0, y0, x1, y1) in pixels."""
    rng = sheet.rng
    x0, y0, x1, y1 = region
    headings = rng.uniform(0, _TAU) + np.cumsum(rng.normal(0, turn, n))
    reverse = rng.random(n) < 0.06  # toddlers swing back and forth
    headings += np.pi * np.cumsum(reverse)
    steps = step * sheet.s * rng.uniform(0.4, 1.6, n)
    start = rng.uniform([x0, y0], [x1, y1])
    pts = start + np.cumsum(np.stack([steps * np.cos(headings), steps * np.sin(headings)], 1), 0)
    return np.stack([_fold(pts[:, 0], x0, x1), _fold(pts[:, 1], y0, y1)], 1)


def _region(sheet: _Sheet, frac: float) -> tuple[float, float, float, float]:
    """A random box covering about ``frac`` of each side of the sheet."""
    w, h = sheet.w * frac, sheet.h * frac
    x0 = sheet.rng.uniform(0.03 * sheet.w, sheet.w * 0.97 - w)
    y0 = sheet.rng.uniform(0.03 * sheet.h, sheet.h * 0.97 - h)
    return (x0, y0, x0 + w, y0 + h)


def _random_scribble(sheet: _Sheet) -> None:
    rng = sheet.rng
    for _ in range(int(rng.integers(1, 7))):
        region = _region(sheet, rng.uniform(0.4, 0.94))
        n = int(rng.integers(40, 220))
        pts = _wander(sheet, n, rng.uniform(0.02, 0.06), rng.uniform(0.5, 1.3), region)
        sheet.stroke(pts, wobble=0.002)


def _zigzag(sheet: _Sheet, c, length: float, height: float, teeth: int, angle: float) -> np.ndarray:
    t = np.linspace(-0.5, 0.5, 2 * teeth + 1)
    along = t * length * sheet.s
    across = np.where(np.arange(len(t)) % 2 == 0, -0.5, 0.5) * height * sheet.s
    across = across * sheet.rng.uniform(0.75, 1.25, len(t))
    ca, sa = np.cos(angle), np.sin(angle)
    return np.stack([c[0] + ca * along - sa * across, c[1] + sa * along + ca * across], 1)


def _loops(sheet: _Sheet, c, length: float, radius: float, turns: int, angle: float) -> np.ndarray:
    t = np.linspace(0, 1, 22 * turns)
    r = radius * sheet.s * sheet.rng.uniform(0.8, 1.2)
    phase = _TAU * turns * t
    along = (t - 0.5) * length * sheet.s + r * np.cos(phase)
    across = r * np.sin(phase) * sheet.rng.uniform(0.6, 1.1)
    ca, sa = np.cos(angle), np.sin(angle)
    return np.stack([c[0] + ca * along - sa * across, c[1] + sa * along + ca * across], 1)


def _spiral(sheet: _Sheet, c, radius: float, turns: float) -> np.ndarray:
    t = np.linspace(0, 1, int(40 * turns))
    r = (0.1 + 0.9 * t) * radius * sheet.s
    a = sheet.rng.uniform(0, _TAU) + _TAU * turns * t * sheet.rng.choice([-1, 1])
    return np.stack([c[0] + r * np.cos(a), c[1] + r * np.sin(a)], 1)


def _anywhere(sheet: _Sheet, margin: float = 0.15) -> np.ndarray:
    return sheet.rng.uniform(
        [margin * sheet.w, margin * sheet.h], [(1 - margin) * sheet.w, (1 - margin) * sheet.h]
    )


def _controlled_scribble(sheet: _Sheet) -> None:
    rng = sheet.rng
    for _ in range(int(rng.integers(2, 8))):
        c, kind = _anywhere(sheet), rng.integers(4)
        angle = rng.normal(0, 0.3) + (np.pi / 2 if rng.random() < 0.3 else 0.0)
        if kind == 0:  # zig-zag
            pts = _zigzag(
                sheet,
                c,
                rng.uniform(0.2, 0.6),
                rng.uniform(0.06, 0.25),
                int(rng.integers(4, 14)),
                angle,
            )
        elif kind == 1:  # pendulum strokes: back and forth over the same place
            pts = _zigzag(
                sheet,
                c,
                rng.uniform(0.02, 0.1),
                rng.uniform(0.15, 0.45),
                int(rng.integers(4, 12)),
                angle,
            )
        elif kind == 2:  # loops along a line
            pts = _loops(
                sheet,
                c,
                rng.uniform(0.2, 0.6),
                rng.uniform(0.03, 0.09),
                int(rng.integers(4, 11)),
                angle,
            )
        else:
            pts = _spiral(sheet, c, rng.uniform(0.06, 0.2), rng.uniform(2.0, 5.0))
        sheet.stroke(pts, wobble=0.003)
    if rng.random() < 0.25:  # an unruly scribble left over from the stage before
        _random_scribble_once(sheet)


def _random_scribble_once(sheet: _Sheet) -> None:
    rng = sheet.rng
    region = _region(sheet, rng.uniform(0.25, 0.6))
    sheet.stroke(_wander(sheet, int(rng.integers(15, 60)), 0.04, 1.0, region), wobble=0.002)


def _sun(sheet: _Sheet, c, r: float, pen: _Pen | None = None, ray_pen: _Pen | None = None) -> None:
    rng = sheet.rng
    pen = pen or sheet.pen(("yellow", "orange", "red"))
    sheet.ellipse(c, r, r * rng.uniform(0.88, 1.12), pen)
    a0 = rng.uniform(0, _TAU)
    k = int(rng.integers(6, 14))
    long = rng.uniform(1.5, 2.1)
    for a in a0 + np.linspace(0, _TAU, k, endpoint=False) + rng.normal(0, 0.08, k):
        d = np.array([np.cos(a), np.sin(a)])
        sheet.line(c + 1.15 * r * d, c + long * r * d, ray_pen or pen, n=6)


def _enclosed_shapes(sheet: _Sheet) -> None:
    rng = sheet.rng
    for _ in range(int(rng.integers(2, 8))):
        c = _anywhere(sheet, 0.18)
        r = rng.uniform(0.04, 0.16) * sheet.s
        kind = rng.choice(4, p=[0.45, 0.2, 0.2, 0.15])
        if kind == 0:
            sheet.ellipse(c, r, r * rng.uniform(0.7, 1.2), tilt=rng.uniform(0, np.pi))
        elif kind == 1:  # sun
            _sun(sheet, c, r * 0.8, sheet.pen(), None)
        elif kind == 2:  # mandala: a circle crossed through
            pen = sheet.pen()
            sheet.ellipse(c, r, r * rng.uniform(0.85, 1.15), pen)
            a = rng.uniform(0, np.pi / 2)
            for ang in (a, a + np.pi / 2):
                d = np.array([np.cos(ang), np.sin(ang)]) * r * rng.uniform(0.95, 1.3)
                sheet.line(c - d, c + d, pen, n=8)
        else:  # a cross
            pen = sheet.pen()
            a = rng.uniform(0, np.pi / 2)
            for ang in (a, a + np.pi / 2):
                d = np.array([np.cos(ang), np.sin(ang)]) * r
                sheet.line(c - d, c + d, pen, n=8)
    if rng.random() < 0.5:  # the scribbling goes on next to the new shapes
        _controlled_scribble_once(sheet)


def _controlled_scribble_once(sheet: _Sheet) -> None:
    rng = sheet.rng
    pts = _loops(
        sheet, _anywhere(sheet), rng.uniform(0.15, 0.4), 0.04, int(rng.integers(3, 7)), 0.0
    )
    sheet.stroke(pts, wobble=0.003)


def _face(sheet: _Sheet, c, r: float, pen: _Pen) -> None:
    """Eyes and a smile inside a head circle."""
    rng = sheet.rng
    eye_pen = pen if rng.random() < 0.6 else sheet.pen(("black", "blue", "brown"))
    for dx in (-0.35, 0.35):
        sheet.dot(c + np.array([dx * r, -0.15 * r]), 0.07 * r, eye_pen)
    if rng.random() < 0.8:
        sheet.ellipse(
            c + np.array([0, 0.05 * r]), 0.45 * r, 0.4 * r, eye_pen, arc=(0.35, np.pi - 0.35)
        )


def _tadpole(sheet: _Sheet, c, r: float) -> None:
    """A head circle with a face, legs straight from the head and often arms from its sides."""
    rng = sheet.rng
    pen = sheet.pen()
    sheet.ellipse(c, r, r * rng.uniform(0.9, 1.2), pen)
    _face(sheet, c, r, pen)
    leg = rng.uniform(1.2, 2.6) * r
    for sx in (-1, 1):
        top = c + np.array([sx * 0.35 * r, 0.95 * r])
        sheet.line(top, top + np.array([sx * rng.uniform(0.1, 0.7) * r, leg]), pen, n=10)
    if rng.random() < 0.75:
        for sx in (-1, 1):
            side = c + np.array([sx * r, rng.uniform(-0.1, 0.3) * r])
            arm = np.array([sx * rng.uniform(0.9, 1.8), rng.uniform(-0.8, 0.5)]) * r
            sheet.line(side, side + arm, pen, n=8)
    if rng.random() < 0.35:  # hair
        for a in np.linspace(-2.4, -0.7, int(rng.integers(3, 7))):
            d = np.array([np.cos(a), np.sin(a)])
            sheet.line(c + r * d, c + 1.4 * r * d, pen, n=4)


def _flower(sheet: _Sheet, c, r: float, stem: float) -> None:
    rng = sheet.rng
    sheet.line(c + np.array([0, r]), c + np.array([0, r + stem]), sheet.pen(("green",)), n=10)
    petal_pen = sheet.pen(("red", "pink", "purple", "yellow", "orange"))
    sheet.ellipse(c, 0.4 * r, 0.4 * r, sheet.pen(("yellow", "orange")))
    k = int(rng.integers(5, 8))
    for a in np.linspace(0, _TAU, k, endpoint=False) + rng.uniform(0, 1):
        d = np.array([np.cos(a), np.sin(a)])
        sheet.ellipse(c + 0.75 * r * d, 0.35 * r, 0.22 * r, petal_pen, tilt=a)


def _house(sheet: _Sheet, x: float, ground: float, size: float) -> None:
    """Walls, a roof, a door and a window, standing at ``ground``; ``x`` is the left wall."""
    rng = sheet.rng
    wall_h = size * rng.uniform(0.8, 1.1)
    pen = sheet.pen(("red", "brown", "orange", "black"))
    walls = np.array(
        [
            [x, ground],
            [x, ground - wall_h],
            [x + size, ground - wall_h],
            [x + size, ground],
            [x, ground],
        ]
    )
    sheet.stroke(_densify(walls, 8), pen, wobble=0.002)
    apex = np.array(
        [x + size / 2 + rng.normal(0, 0.05 * size), ground - wall_h - size * rng.uniform(0.4, 0.7)]
    )
    roof_pen = sheet.pen(("red", "brown", "black"))
    roof = np.array([[x - 0.08 * size, ground - wall_h], apex, [x + 1.08 * size, ground - wall_h]])
    sheet.stroke(_densify(roof, 10), roof_pen, wobble=0.002)
    door_x = x + size * rng.uniform(0.15, 0.55)
    door = np.array(
        [
            [door_x, ground],
            [door_x, ground - 0.5 * wall_h],
            [door_x + 0.25 * size, ground - 0.5 * wall_h],
            [door_x + 0.25 * size, ground],
        ]
    )
    sheet.stroke(_densify(door, 6), sheet.pen(("brown", "black")), wobble=0.0015)
    if rng.random() < 0.85:
        wx = x + size * (0.62 if door_x < x + 0.4 * size else 0.1)
        wy = ground - 0.85 * wall_h
        side = 0.26 * size
        window = np.array(
            [[wx, wy], [wx + side, wy], [wx + side, wy + side], [wx, wy + side], [wx, wy]]
        )
        wpen = sheet.pen(("blue", "light_blue", "black"))
        sheet.stroke(_densify(window, 5), wpen, wobble=0.0015)
        sheet.line((wx + side / 2, wy), (wx + side / 2, wy + side), wpen, n=5)
        sheet.line((wx, wy + side / 2), (wx + side, wy + side / 2), wpen, n=5)


def _tree(sheet: _Sheet, x: float, ground: float, height: float) -> None:
    rng = sheet.rng
    trunk_w = height * rng.uniform(0.07, 0.12)
    crown_r = height * rng.uniform(0.22, 0.32)
    top = ground - height + crown_r * 1.6
    trunk_pen = sheet.pen(("brown", "black"))
    for sx in (-1, 1):
        sheet.line((x + sx * trunk_w, ground), (x + sx * trunk_w * 0.8, top), trunk_pen, n=10)
    crown_c = np.array([x, top - crown_r * 0.8])
    sheet.ellipse(
        crown_c, crown_r, crown_r * rng.uniform(0.9, 1.3), sheet.pen(("green", "dark_green"))
    )


def _figure(sheet: _Sheet, x: float, ground: float, height: float) -> None:
    """A figure with a body (dress or trunk), arms from the shoulders and legs to the ground."""
    rng = sheet.rng
    pen = sheet.pen()
    r = height * rng.uniform(0.12, 0.16)
    head = np.array([x, ground - height + r])
    sheet.ellipse(head, r, r * rng.uniform(0.95, 1.15), pen)
    _face(sheet, head, r, pen)
    neck, hip = head[1] + r * 1.05, ground - height * rng.uniform(0.3, 0.4)
    if rng.random() < 0.5:  # a dress: a triangle
        body = np.array([[x, neck], [x + 1.3 * r, hip], [x - 1.3 * r, hip], [x, neck]])
    else:
        body = np.array(
            [
                [x - 0.8 * r, neck],
                [x + 0.8 * r, neck],
                [x + 0.8 * r, hip],
                [x - 0.8 * r, hip],
                [x - 0.8 * r, neck],
            ]
        )
    body_pen = sheet.pen() if rng.random() < 0.5 else pen
    if _has_detail(sheet, 5.6):  # a neck: the head no longer sits on the body
        for sx in (-1, 1):
            sheet.line((x + sx * 0.25 * r, head[1] + 0.95 * r), (x + sx * 0.25 * r, neck), pen, n=4)
        neck += 0.35 * r
        body[:, 1] = np.where(body[:, 1] < hip - 1e-6, np.maximum(body[:, 1], neck), body[:, 1])
    sheet.stroke(_densify(body, 8), body_pen, wobble=0.002)
    if _has_detail(sheet, 6.2):  # clothing: buttons down the front, a belt
        for k in range(int(rng.integers(2, 5))):
            yb = neck + (k + 1) * (hip - neck) / 5
            sheet.dot(np.array([x, yb]), 0.07 * r, body_pen)
        if rng.random() < 0.4:
            yb = neck + 0.6 * (hip - neck)
            sheet.line((x - 0.8 * r, yb), (x + 0.8 * r, yb), body_pen, n=5)
    shoulder = neck + 0.4 * r
    fingers = _has_detail(sheet, 6.4)
    two_d_limbs = _has_detail(sheet, 7.0)
    for sx in (-1, 1):
        start = np.array([x + sx * 0.7 * r, shoulder])
        hand = start + np.array([sx * rng.uniform(1.2, 2.2) * r, rng.uniform(-0.6, 1.6) * r])
        sheet.line(start, hand, pen, n=8)
        if two_d_limbs:  # arms with thickness: a second line beside the first
            off = np.array([0, 0.25 * r])
            sheet.line(start + off, hand + off, pen, n=8)
        if fingers:  # five short strokes fanning out from the hand
            d = (hand - start) / max(np.linalg.norm(hand - start), 1e-6)
            base = np.arctan2(d[1], d[0])
            for a in base + np.linspace(-0.8, 0.8, 5):
                tip = hand + 0.35 * r * np.array([np.cos(a), np.sin(a)])
                sheet.line(hand, tip, pen, n=3)
        foot = np.array([x + sx * rng.uniform(0.3, 0.9) * r, ground])
        sheet.line((x + sx * 0.5 * r, hip), foot, pen, n=8)
        sheet.line(foot, foot + np.array([sx * 0.5 * r, 0]), pen, n=4)
        if two_d_limbs:
            sheet.line((x + sx * 0.15 * r, hip), foot + np.array([-sx * 0.3 * r, 0]), pen, n=8)
    if _has_detail(sheet, 5.2):  # hair
        for a in np.linspace(-2.6, -0.5, int(rng.integers(4, 9))):
            d = np.array([np.cos(a), np.sin(a)])
            sheet.line(head + r * d, head + 1.3 * r * d, pen, n=4)


def _has_detail(sheet: _Sheet, typical_age: float) -> bool:
    """Whether a child of the sheet's age draws a detail that children draw from about
    ``typical_age`` on (a logistic spread of about half a year); never without an age."""
    if sheet.age is None:
        return False
    p = 1.0 / (1.0 + np.exp(-(sheet.age - typical_age) / 0.5))
    return bool(sheet.rng.random() < p)


def _stick_figure(sheet: _Sheet, c, r: float) -> None:
    """A stick person: head, a line for the body, lines for arms and legs."""
    rng = sheet.rng
    pen = sheet.pen()
    sheet.ellipse(c, r, r * rng.uniform(0.9, 1.15), pen)
    _face(sheet, c, r, pen)
    top, hip = c + np.array([0, r]), c + np.array([0, r * rng.uniform(2.2, 3.2)])
    sheet.line(top, hip, pen, n=8)
    shoulder = top + np.array([0, 0.5 * r])
    for sx in (-1, 1):
        sheet.line(
            shoulder,
            shoulder + np.array([sx * rng.uniform(1.0, 1.8), rng.uniform(-0.5, 0.8)]) * r,
            pen,
            n=6,
        )
        sheet.line(
            hip, hip + np.array([sx * rng.uniform(0.4, 1.0), rng.uniform(1.6, 2.4)]) * r, pen, n=6
        )


def _densify(corners: np.ndarray, n: int) -> np.ndarray:
    """Resample a corner polyline with ``n`` points per edge, so the hand's wobble bends edges."""
    t = np.linspace(0, 1, n, endpoint=False)[:, None]
    parts = [a * (1 - t) + b * t for a, b in zip(corners[:-1], corners[1:], strict=True)]
    return np.concatenate([*parts, corners[-1:]])


def _pre_schematic(sheet: _Sheet) -> None:
    rng = sheet.rng
    for _ in range(int(rng.integers(1, 4))):
        r = rng.uniform(0.05, 0.12) * sheet.s
        c = rng.uniform([0.15 * sheet.w, 0.12 * sheet.h + r], [0.85 * sheet.w, 0.6 * sheet.h])
        if _has_detail(sheet, 5.0):  # older pre-schematic children: stick people, not tadpoles
            _stick_figure(sheet, c, r * 0.8)
        else:
            _tadpole(sheet, c, r)
    for _ in range(int(rng.integers(1, 5))):  # things float on the page, at any size
        c = _anywhere(sheet, 0.1)
        r = rng.uniform(0.03, 0.09) * sheet.s
        kind = rng.integers(4)
        if kind == 0:
            _sun(sheet, c, r)
        elif kind == 1:
            _flower(sheet, c, r, rng.uniform(1, 3) * r)
        elif kind == 2:
            _house(sheet, c[0], c[1], 2 * r)
        else:
            sheet.ellipse(c, r, r * rng.uniform(0.6, 1.2), tilt=rng.uniform(0, np.pi))
    if rng.random() < 0.12:  # a first ground line, not yet what the figures stand on
        y = rng.uniform(0.8, 0.95) * sheet.h
        sheet.line((0.1 * sheet.w, y), (rng.uniform(0.4, 0.8) * sheet.w, y), sheet.pen(("green",)))


def _schematic(sheet: _Sheet) -> None:
    rng = sheet.rng
    w, h = sheet.w, sheet.h
    ground = rng.uniform(0.74, 0.92) * h
    if rng.random() < 0.95:
        pen = sheet.pen(("green", "dark_green", "brown"))
        sheet.line(
            (rng.uniform(0, 0.05) * w, ground),
            (rng.uniform(0.95, 1.0) * w, ground + rng.normal(0, 0.01 * h)),
            pen,
            n=30,
            wobble=0.002,
        )
        if rng.random() < 0.4:  # grass
            for gx in rng.uniform(0.05, 0.95, int(rng.integers(6, 20))) * w:
                sheet.line(
                    (gx, ground),
                    (gx + rng.normal(0, 0.005 * w), ground - rng.uniform(0.02, 0.05) * h),
                    pen,
                    n=3,
                )
    if rng.random() < 0.7:  # a sky line, sometimes filled above
        sky = rng.uniform(0.05, 0.14) * h
        pen = sheet.pen(("blue", "light_blue"))
        sheet.line((0, sky), (w, sky + rng.normal(0, 0.01 * h)), pen, n=30, wobble=0.002)
        if rng.random() < 0.35:
            sheet.stroke(
                _zigzag(
                    sheet,
                    (w / 2, sky / 2),
                    w / sheet.s * 0.98,
                    sky / sheet.s,
                    int(rng.integers(15, 35)),
                    0.0,
                ),
                pen,
                wobble=0.001,
            )
    if rng.random() < 0.75:
        r = rng.uniform(0.05, 0.09) * sheet.s
        cx = rng.choice([0.12, 0.88]) * w + rng.normal(0, 0.02 * w)
        _sun(sheet, np.array([cx, rng.uniform(0.15, 0.22) * h + r * 0.5]), r)
    # things stand side by side on the ground, in left-to-right slots
    things = ["house"] * int(rng.random() < 0.7) + ["tree"] * int(rng.integers(0, 3))
    things += ["figure"] * int(rng.integers(1, 4))
    if rng.random() < 0.3:
        things.append("flower")
    order = rng.permutation(len(things))
    slot_w = 0.9 * w / len(things)
    room = ground - 0.2 * h
    for k, i in enumerate(order):
        x0 = 0.05 * w + k * slot_w
        cx = x0 + slot_w / 2 + rng.normal(0, 0.05 * slot_w)
        if things[i] == "house":
            size = min(0.8 * slot_w, rng.uniform(0.2, 0.35) * sheet.s * 1.4, room / 1.8)
            _house(sheet, cx - size / 2, ground, size)
        elif things[i] == "tree":
            _tree(sheet, cx, ground, min(rng.uniform(0.4, 0.6) * h, room))
        elif things[i] == "figure":
            _figure(sheet, cx, ground, min(rng.uniform(0.28, 0.45) * h, room, 1.6 * slot_w))
        else:
            r = 0.05 * sheet.s
            _flower(sheet, np.array([cx, ground - 0.18 * h]), r, 0.18 * h - r)


_STAGE_DRAWERS: tuple[Callable[[_Sheet], None], ...] = (
    _random_scribble,
    _controlled_scribble,
    _enclosed_shapes,
    _pre_schematic,
    _schematic,
)
#: (fewest, most) colours a child picks at each stage.
_COLOURS_BY_STAGE = ((1, 3), (1, 3), (1, 4), (2, 5), (3, 7))


# --- rendering -------------------------------------------------------------------------------------


def _paper(
    rng: Rng, w: int, h: int, tone: tuple[float, float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Off-white paper (RGB uint8) and its grain ("tooth", float32 around 0.5); ``tone``: the
    paper's colour (default a random off-white)."""
    if tone is None:
        tone = (rng.uniform(238, 252), rng.uniform(236, 250), rng.uniform(226, 246))
    # the paper's tooth has a physical size (about 0.4 mm, a pixel at 768 px per A4 sheet): draw
    # it at that resolution and resample, so a drawing looks the same at any size
    scale = _TOOTH_SIDE / max(w, h)
    grain = rng.random((round(h * scale), round(w * scale)), dtype=np.float32)
    tooth = cv2.blur(grain, (3, 3))  # fibres span a few grains
    if (tooth.shape[1], tooth.shape[0]) != (w, h):
        interp = cv2.INTER_AREA if scale > 1 else cv2.INTER_LINEAR
        tooth = cv2.resize(tooth, (w, h), interpolation=interp)
    cloud = cv2.resize(rng.random((5, 5), dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    # shade = 1 + 0.02 (cloud - 0.5) + 0.05 (tooth - 0.5), in OpenCV's vectorised arithmetic
    shade = cv2.addWeighted(cloud, 0.02, tooth, 0.05, 1.0 - 0.035)
    paper = cv2.merge([cv2.convertScaleAbs(shade, alpha=t) for t in tone])
    return paper, tooth


def _render(
    sheet: _Sheet, tex_rng: Rng, tone: tuple[float, float, float] | None = None
) -> np.ndarray:
    """Draw every pen's strokes on paper; returns RGB uint8."""
    w, h = sheet.w, sheet.h
    img, tooth = _paper(tex_rng, w, h, tone)
    for pen in sheet.pens.values():
        if not pen.strokes:
            continue
        allpts = np.concatenate(pen.strokes)
        pad = pen.thickness + 2
        x0 = int(max(0, np.floor(allpts[:, 0].min()) - pad))
        y0 = int(max(0, np.floor(allpts[:, 1].min()) - pad))
        x1 = int(min(w, np.ceil(allpts[:, 0].max()) + pad))
        y1 = int(min(h, np.ceil(allpts[:, 1].max()) + pad))
        if x1 <= x0 or y1 <= y0:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        # sub-pixel coordinates (shift=3) keep thin pencil lines smooth
        polys = [
            np.round((p - (x0, y0)) * 8).astype(np.int32).reshape(-1, 1, 2) for p in pen.strokes
        ]
        if pen.kind in ("pencil", "ballpoint") and sheet.medium is not None:
            # a hand presses harder on some strokes than on others
            for poly in polys:
                press = int(255 * np.clip(pen.pressure * tex_rng.uniform(0.6, 1.15), 0.25, 1.0))
                cv2.polylines(mask, [poly], False, press, pen.thickness, cv2.LINE_AA, shift=3)
        else:
            cv2.polylines(mask, polys, False, 255, pen.thickness, cv2.LINE_AA, shift=3)
        # only the touched pixels are blended: strokes cover a small part of their bounding box
        ys, xs = np.nonzero(mask)
        alpha = mask[ys, xs].astype(np.float32) * (1 / 255)
        ys += y0
        xs += x0
        grain = tooth[ys, xs]
        if pen.kind == "crayon":
            # wax catches the raised grain and skips the hollows; a light hand skips more
            level = 0.56 - 0.16 * pen.pressure
            alpha *= np.clip((grain - level) * 8.0, 0.0, 1.0) * 0.92
        elif pen.kind == "ballpoint":
            # ink flows evenly; a dry ball skips now and then
            alpha *= np.clip(0.95 + (grain - 0.5) * 1.5, 0.55, 0.95)
        elif pen.kind == "felt":
            alpha *= 0.9  # ink soaks the paper: even, no grain
        else:
            alpha *= np.clip(0.55 + (grain - 0.5) * 3.0, 0.2, 0.85)
        absorb = 1.0 - np.asarray(pen.rgb, np.float32) / 255.0
        # subtractive mixing: overlapping crayons darken, as wax layers do
        img[ys, xs] = img[ys, xs] * (1.0 - alpha[:, None] * absorb) + 0.5
    return img


def _check_stage(stage: int) -> int:
    if isinstance(stage, bool) or not isinstance(stage, int | np.integer):
        raise ValueError(f"stage must be an integer 0–{N_STAGES - 1}, got {stage!r}")
    if not 0 <= int(stage) < N_STAGES:
        raise ValueError(f"stage must be 0–{N_STAGES - 1}, got {stage}")
    return int(stage)


def sample_age(stage: int, rng: Rng) -> float:
    """A child's age (years) for a drawing of ``stage``: around the stage's typical age with the
    wide overlap of docs/architecture.md (:data:`STAGE_AGES`), within 1.5–9 years."""
    mu, sd = STAGE_AGES[_check_stage(stage)]
    return float(np.clip(rng.normal(mu, sd), 1.5, 9.0))


def _check_medium(medium: str | None) -> str | None:
    if medium is not None and medium not in MEDIA:
        raise ValueError(f"medium must be one of {', '.join(MEDIA)}, got {medium!r}")
    return medium


def render_drawing(
    stage: int,
    rng: Rng,
    size: int = 768,
    *,
    medium: str | None = None,
    monochrome: bool = False,
    age: float | None = None,
) -> np.ndarray:
    """A child's drawing of progression ``stage`` (0–4) on an A4-shaped sheet of paper.

    Portrait or landscape at random; the long side is ``size`` px. Returns RGB uint8 (H, W, 3).
    ``medium``: one of :data:`MEDIA` (pencil, ballpoint and felt pen with pressure varying from
    stroke to stroke, on white, cream, grey or yellowish paper); None keeps the original generator
    (crayons, now and then a pencil). ``monochrome``: one pen colour for the whole drawing, as most
    real figure drawings are. ``age``: the child's age in years; figures gain details with it
    (Goodenough–Harris: necks, fingers, clothing, feet), and toddlers' scribbles fill the page.
    Deterministic for the generator's state and the arguments; the same state gives the same
    drawing at any size. Raises ValueError for a stage outside 0–4, an unknown medium or a size
    under 64 px.
    """
    stage = _check_stage(stage)
    medium = _check_medium(medium)
    if size < 64:
        raise ValueError(f"size must be at least 64 px, got {size}")
    shape_seed, texture_seed = rng.integers(0, 2**63 - 1, size=2)
    geo = np.random.default_rng(int(shape_seed))
    portrait = geo.random() < 0.5
    short = round(size * _SHEET_RATIO)
    w, h = (short, size) if portrait else (size, short)
    lo, hi = _COLOURS_BY_STAGE[stage]
    # toddlers hold chunky crayons; older children draw finer lines
    width = geo.uniform(0.009, 0.02) if stage <= 1 else geo.uniform(0.006, 0.015)
    sheet = _Sheet(geo, w, h, int(geo.integers(lo, hi + 1)), width, medium, bool(monochrome), age)
    tone = None
    if medium is not None:
        base = np.asarray(_PAPER_TONES[int(geo.integers(len(_PAPER_TONES)))], float)
        t = np.clip(base + geo.normal(0, 2.0, 3), 200, 253)
        tone = (float(t[0]), float(t[1]), float(t[2]))
    if stage == 0 and age is not None and geo.random() < 0.45:
        _dense_scribble(sheet)  # Kellogg: scribbles that fill the page with loops
    else:
        _STAGE_DRAWERS[stage](sheet)
    return _render(sheet, np.random.default_rng(int(texture_seed)), tone)


def _dense_scribble(sheet: _Sheet) -> None:
    """Dense, overlapping loops over much of the page (Kellogg's multiple-line and roving
    scribbles), placed over the whole sheet or a half of it."""
    rng = sheet.rng
    placement = rng.choice(["all", "left", "right", "top", "bottom", "centre"])
    x0, y0, x1, y1 = 0.05 * sheet.w, 0.05 * sheet.h, 0.95 * sheet.w, 0.95 * sheet.h
    if placement == "left":
        x1 = 0.55 * sheet.w
    elif placement == "right":
        x0 = 0.45 * sheet.w
    elif placement == "top":
        y1 = 0.55 * sheet.h
    elif placement == "bottom":
        y0 = 0.45 * sheet.h
    elif placement == "centre":
        x0, y0, x1, y1 = 0.2 * sheet.w, 0.2 * sheet.h, 0.8 * sheet.w, 0.8 * sheet.h
    for _ in range(int(rng.integers(2, 6))):
        n = int(rng.integers(150, 420))
        t = np.cumsum(rng.uniform(0.25, 0.55, n))
        r = rng.uniform(0.03, 0.12) * sheet.s
        centre = _wander(sheet, n, rng.uniform(0.004, 0.012), 0.15, (x0, y0, x1, y1))
        loops = centre + r * np.stack([np.cos(t), np.sin(t) * rng.uniform(0.5, 1.0)], 1)
        pts = np.stack([_fold(loops[:, 0], x0, x1), _fold(loops[:, 1], y0, y1)], 1)
        sheet.stroke(pts, wobble=0.002)


# --- photographing -----------------------------------------------------------------------------------

_TABLES = np.array(
    [(120, 86, 58), (150, 112, 76), (92, 92, 98), (64, 72, 92), (170, 140, 104), (70, 60, 52)],
    np.float32,
)


def _place_sheet(rng: Rng, dw: int, dh: int, W: int, H: int) -> np.ndarray:
    """Corners (TL, TR, BR, BL) of the sheet in the photo: scaled, shifted, turned, tilted."""
    for _ in range(50):
        fill = rng.uniform(0.55, 0.88)
        scale = fill * min(W / dw, H / dh)
        sw, sh = dw * scale, dh * scale
        c = np.array([W / 2, H / 2]) + rng.uniform(-0.5, 0.5, 2) * ([W - sw, H - sh])
        turn = np.radians(rng.normal(0, 4))
        rot = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
        rect = np.array([[-sw, -sh], [sw, -sh], [sw, sh], [-sw, sh]]) / 2
        corners = c + rect @ rot.T
        # perspective: the far edge looks shorter; plus small independent corner shifts
        tilt = rng.uniform(-0.08, 0.08)
        corners[:2, 0] += np.array([1, -1]) * tilt * sw / 2
        corners += rng.normal(0, 0.015 * min(sw, sh), (4, 2))
        inside = (
            (corners >= 2).all()
            and (corners[:, 0] <= W - 3).all()
            and (corners[:, 1] <= H - 3).all()
        )
        if inside and cv2.isContourConvex(corners.astype(np.float32).reshape(-1, 1, 2)):
            return corners.astype(np.float32)
    raise RuntimeError("could not place the sheet inside the photo")  # pragma: no cover


def photograph(
    drawing: np.ndarray, rng: Rng, out_size: tuple[int, int] = (1024, 768)
) -> tuple[np.ndarray, np.ndarray]:
    """Photograph a drawing lying on a table, as an educator's tablet would.

    The sheet is placed with a random perspective on a darker, textured table with a soft shadow;
    light falls unevenly (a gradient and a vignette, a slight colour cast), then sensor noise and a
    slight blur are added. ``out_size`` is (W, H) in px.

    Returns (photo RGB uint8 (H, W, 3), sheet corners in photo pixels as float32 (4, 2) in the
    order TL, TR, BR, BL of the drawing).
    """
    W, H = int(out_size[0]), int(out_size[1])
    if W < 32 or H < 32:
        raise ValueError(f"out_size must be at least 32×32 px, got {out_size}")
    if drawing.ndim != 3 or drawing.shape[2] != 3 or drawing.dtype != np.uint8:
        raise ValueError("drawing must be an RGB uint8 array of shape (H, W, 3)")
    dh, dw = drawing.shape[:2]
    corners = _place_sheet(rng, dw, dh, W, H)

    # the table, its wood grain and the sheet's shadow are smooth: compose them at 1/8 size
    sw_, sh_ = max(8, W // 8), max(8, H // 8)
    table = _TABLES[rng.integers(len(_TABLES))] * rng.uniform(0.8, 1.1)
    streaks = cv2.resize(rng.normal(0, 1, (max(2, sh_ // 6), 4)).astype(np.float32), (sw_, sh_))
    mottle = cv2.resize(rng.normal(0, 1, (6, 8)).astype(np.float32), (sw_, sh_))
    small = table * (1 + 0.06 * streaks + 0.05 * mottle)[..., None]
    shadow = np.zeros((sh_, sw_), np.float32)
    offset = rng.uniform(0.005, 0.02, 2) * (W, H) * rng.choice([-1, 1], 2)
    cv2.fillConvexPoly(shadow, np.round((corners + offset) / 8).astype(np.int32), 1.0)
    small *= (1 - 0.35 * cv2.GaussianBlur(shadow, (0, 0), 2.0))[..., None]
    photo = cv2.resize(
        np.clip(small, 0, 255).astype(np.uint8), (W, H), interpolation=cv2.INTER_LINEAR
    )

    src = np.array([[0, 0], [dw, 0], [dw, dh], [0, dh]], np.float32)
    M = cv2.getPerspectiveTransform(src, corners)
    # BORDER_TRANSPARENT writes only the sheet's pixels into the table image
    cv2.warpPerspective(
        drawing, M, (W, H), dst=photo, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT
    )

    # light: a gradient in a random direction times a vignette, with a warm or cool cast
    gy, gx = np.mgrid[0:1:24j, 0:1:32j].astype(np.float32)
    a = rng.uniform(0, _TAU)
    light = 1 + rng.uniform(0.05, 0.3) * ((gx - 0.5) * np.cos(a) + (gy - 0.5) * np.sin(a))
    light *= 1 - rng.uniform(0.05, 0.35) * ((gx - 0.5) ** 2 + (gy - 0.5) ** 2) * 2
    light = light / light.max() * rng.uniform(0.85, 1.0)
    cast = np.array([1.0, 1.0, 1.0]) + rng.normal(0, 0.025, 3)
    gain = np.clip(light[..., None] * (cast / cast.max()) * 255, 0, 255).astype(np.uint8)
    gain = cv2.resize(gain, (W, H), interpolation=cv2.INTER_LINEAR)
    photo = cv2.multiply(photo, gain, scale=1 / 255)

    # sensor noise: a tile of Gaussian noise repeated over the frame (invisible at this size and
    # much faster than drawing 36 million normals for a 12-MP photo)
    sigma = rng.uniform(1.5, 4.5)
    tile = np.clip(128 + rng.normal(0, sigma, (128, 128, 3)), 0, 255).astype(np.uint8)
    noise = np.tile(tile, ((H + 127) // 128, (W + 127) // 128, 1))[:H, :W]
    photo = cv2.addWeighted(photo, 1.0, noise, 1.0, -128.0)
    photo = cv2.GaussianBlur(photo, (0, 0), rng.uniform(0.4, 0.9))
    return photo, corners


def scan(drawing: np.ndarray, rng: Rng, out_size: tuple[int, int]) -> np.ndarray:
    """A flatbed scan of a drawing: the sheet fills the frame, flat (no perspective), turned a
    degree at most, under even light, with a thin white margin, little noise and a slight blur.
    ``out_size`` is (W, H) in px; returns RGB uint8 (H, W, 3)."""
    W, H = int(out_size[0]), int(out_size[1])
    if W < 32 or H < 32:
        raise ValueError(f"out_size must be at least 32×32 px, got {out_size}")
    dh, dw = drawing.shape[:2]
    fill = rng.uniform(0.95, 1.0)
    scale = fill * min(W / dw, H / dh)
    angle = rng.normal(0, 0.4)
    M = cv2.getRotationMatrix2D((dw / 2, dh / 2), angle, scale)
    M[:, 2] = M[:, 2] + np.array([W / 2 - dw / 2, H / 2 - dh / 2])
    lid = float(rng.uniform(235, 252))  # the scanner lid behind the sheet
    img = cv2.warpAffine(
        drawing, M, (W, H), flags=cv2.INTER_AREA, borderValue=(lid, lid, lid)
    ).astype(np.float32)
    img = img * rng.uniform(1.0, 1.06) + rng.uniform(-4, 4)  # the scanner's exposure
    img += rng.normal(0, rng.uniform(0.3, 1.2), (1, 1, 1)).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 0.6))


@dataclass
class SyntheticPhoto:
    """An encoded synthetic drawing with what generated it."""

    data: bytes
    stage: int
    age: float  # the child's age (years), sampled for the stage (:func:`sample_age`)
    medium: str
    monochrome: bool
    capture: str  # "scan" or "photo"


#: Media a "mixed" training set draws with, and how often; pencil and pen first, as real
#: figure drawings are.
_MIX = {"pencil": 0.35, "ballpoint": 0.2, "felt": 0.2, "crayon": 0.25}


def make_labelled_photo(
    stage: int,
    seed: int,
    *,
    megapixels: float = 2.0,
    medium: str | None = "mixed",
    monochrome: bool | None = None,
    capture: str | None = None,
    fmt: str = "jpeg",
    quality: int = 90,
) -> SyntheticPhoto:
    """A synthetic drawing of ``stage`` by a child of a sampled age, scanned or photographed.

    ``medium``: one of :data:`MEDIA`, "mixed" (drawn at random, pencil and pen most often) or None
    (the original crayon generator). ``monochrome`` (default: at random, usually for pencil and
    ballpoint) and ``capture`` ("scan" or "photo"; default at random). Deterministic for the
    arguments. Raises ValueError for bad arguments."""
    stage = _check_stage(stage)
    if medium != "mixed":
        _check_medium(medium)
    if capture is not None and capture not in CAPTURES:
        raise ValueError(f"capture must be one of {', '.join(CAPTURES)}, got {capture!r}")
    _check_encoding(fmt, megapixels, quality)
    rng = np.random.default_rng([int(seed) & (2**63 - 1), stage, 7])
    age = sample_age(stage, rng)
    if medium == "mixed":
        medium = str(rng.choice(list(_MIX), p=list(_MIX.values())))
    if monochrome is None:
        monochrome = bool(rng.random() < (0.85 if medium in ("pencil", "ballpoint") else 0.35))
    if capture is None:
        capture = "scan" if rng.random() < 0.5 else "photo"
    long_side = int(round(np.sqrt(megapixels * 1e6 * 4 / 3)))
    short_side = int(round(long_side * 3 / 4))
    drawing = render_drawing(
        stage,
        rng,
        size=int(np.clip(0.8 * long_side, 256, 1280)),
        medium=medium,
        monochrome=monochrome,
        age=age,
    )
    sheet_portrait = drawing.shape[0] > drawing.shape[1]
    if capture == "scan":
        # scanned at the sheet's A4 shape
        ratio = _SHEET_RATIO
        long_px = int(round(np.sqrt(megapixels * 1e6 / ratio)))
        out = (
            (round(long_px * ratio), long_px)
            if sheet_portrait
            else (long_px, round(long_px * ratio))
        )
        img = scan(drawing, rng, out)
    else:
        portrait = sheet_portrait if rng.random() < 0.8 else not sheet_portrait
        out = (short_side, long_side) if portrait else (long_side, short_side)
        img, _ = photograph(drawing, rng, out)
    data = _encode(img, fmt, quality)
    return SyntheticPhoto(data, stage, age, str(medium or "crayon"), monochrome, capture)


def _check_encoding(fmt: str, megapixels: float, quality: int) -> None:
    if fmt.lower() not in _FORMATS:
        raise ValueError(f"fmt must be 'jpeg' or 'png', got {fmt!r}")
    if not 0.01 <= megapixels <= 50:
        raise ValueError(f"megapixels must be within 0.01–50, got {megapixels}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be within 1–100, got {quality}")


def _encode(img: np.ndarray, fmt: str, quality: int) -> bytes:
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ext = _FORMATS[fmt.lower()]
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
        if ext == ".jpg"
        else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    )
    ok, buf = cv2.imencode(ext, bgr, params)
    if not ok:  # pragma: no cover - OpenCV encoders do not fail on valid uint8 images
        raise RuntimeError("encoding the synthetic photo failed")
    return buf.tobytes()


_FORMATS = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}


def make_photo(
    stage: int,
    seed: int,
    *,
    megapixels: float = 2.0,
    fmt: str = "jpeg",
    quality: int = 90,
    medium: str | None = None,
) -> bytes:
    """Encoded photo of a photographed synthetic drawing of ``stage``, about ``megapixels`` MP.

    4:3 (landscape or portrait, usually matching the sheet); 12 MP gives 4000×3000. ``fmt`` is
    "jpeg" or "png"; ``quality`` is the JPEG quality (1–100). ``medium``: None for the original
    crayon generator, else one of :data:`MEDIA` or "mixed" (then the drawing may be scanned too;
    see :func:`make_labelled_photo`, which also gives the child's age). Deterministic for the
    arguments. Returns the encoded bytes; raises ValueError for a bad stage, format, quality,
    size or medium.
    """
    stage = _check_stage(stage)
    if medium is not None:
        return make_labelled_photo(
            stage, seed, megapixels=megapixels, medium=medium, fmt=fmt, quality=quality
        ).data
    _check_encoding(fmt, megapixels, quality)
    rng = np.random.default_rng([int(seed) & (2**63 - 1), stage])
    long_side = int(round(np.sqrt(megapixels * 1e6 * 4 / 3)))
    short_side = int(round(long_side * 3 / 4))
    # the drawing need not be finer than the sheet in the photo; beyond 1280 px it is only slower
    drawing = render_drawing(stage, rng, size=int(np.clip(0.8 * long_side, 256, 1280)))
    sheet_portrait = drawing.shape[0] > drawing.shape[1]
    portrait = sheet_portrait if rng.random() < 0.8 else not sheet_portrait
    out = (short_side, long_side) if portrait else (long_side, short_side)
    photo, _ = photograph(drawing, rng, out)
    return _encode(photo, fmt, quality)


def generate_dataset(
    n: int,
    seed: int,
    *,
    photographed: bool = True,
    size: int = 512,
    medium: str | None = None,
    monochrome: bool = False,
) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` synthetic drawings with stages balanced over 0–4, deterministic for ``seed``.

    With ``photographed`` each is photographed at long side ``size`` (4:3), else the flat drawing
    with long side ``size``. ``medium``/``monochrome`` as for :func:`render_drawing` (with a
    medium, each drawing's child has an age, :func:`sample_age`, and details grow with it).
    Returns (list of RGB uint8 images, stages as int64 (n,)); image ``i`` depends only on
    (seed, i), so a longer dataset begins with a shorter one.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    _check_medium(medium)
    stages = np.arange(n, dtype=np.int64) % N_STAGES
    images = []
    for i, stage in enumerate(stages):
        rng = np.random.default_rng([int(seed) & (2**63 - 1), i])
        age = None if medium is None else sample_age(int(stage), rng)
        img = render_drawing(
            int(stage), rng, size=size, medium=medium, monochrome=monochrome, age=age
        )
        if photographed:
            short = round(size * 3 / 4)
            out = (short, size) if img.shape[0] > img.shape[1] else (size, short)
            img, _ = photograph(img, rng, out)
        images.append(img)
    return images, stages


def _rounded_clipped_mean(mu: float, sd: float) -> float:
    """Mean of round(N(mu, sd)) clipped to the stage scale."""
    edges = np.arange(N_STAGES - 1) + 0.5  # 0.5, 1.5, 2.5, 3.5
    # E[X] = Σ_k P(X > k - 0.5) for k = 1..4 on the clipped, rounded scale
    return float(norm.sf(edges, loc=mu, scale=sd).sum())


def unit_stage_mix(mean_stage: float, rng: Rng, n: int, *, sd: float = 0.9) -> np.ndarray:
    """Stages (int64, 0–4) for ``n`` photos of a unit whose expected mean is ``mean_stage``.

    A normal with standard deviation ``sd`` stages is rounded and clipped to 0–4; its centre is
    solved for so that the mean after clipping is ``mean_stage`` (plain clipping would pull units
    near the ends of the scale towards the middle). Raises ValueError outside 0–4.
    """
    top = N_STAGES - 1
    if not 0 <= mean_stage <= top:
        raise ValueError(f"mean_stage must be within 0–{top}, got {mean_stage}")
    if n < 0 or sd <= 0:
        raise ValueError(f"need n ≥ 0 and sd > 0, got n={n}, sd={sd}")
    if mean_stage <= 1e-6 or mean_stage >= top - 1e-6:
        return np.full(n, round(mean_stage), dtype=np.int64)
    mu = brentq(
        lambda m: _rounded_clipped_mean(m, sd) - mean_stage, -10 * sd - 1, top + 10 * sd + 1
    )
    return np.clip(np.round(rng.normal(mu, sd, n)), 0, top).astype(np.int64)
