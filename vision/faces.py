"""Find and blur faces in a photo before anything is stored (docs/architecture.md, principle 2).

Detection runs MediaPipe's BlazeFace (back-camera variant, 256×256 input; Apache-2.0, shipped in
``vision/models/`` with its licence) with ONNX Runtime on the CPU. The photo is shrunk to a scan
copy, seen whole, and, when the copy is larger than the model's input, also as four overlapping
tiles, so that smaller faces reach the model at a size it finds. Detections from all views are
merged by MediaPipe's weighted non-maximum suppression. A child's drawing of a face (a circle with
two dots) is not a face to BlazeFace, so drawings are left alone: they are the very thing being
assessed. Each kept box is enlarged and pixelated and then blurred, so the face cannot be
recognised or recovered.

BlazeFace needs a face of about 24 px in its 256-px input, so seeing a 2 % face that way would take
tiles at about 1200 px: some 35 model runs per photo. Small faces (2–13 % of the long side) are
instead found by OpenCV's stock frontal-face Haar cascade (shipped inside the opencv-python wheel)
on a grey copy at 1600 px (the working size), where a 2 % face is 32 px, above the cascade's 24-px window
(:func:`find_small_faces`, scale step 1.1: at 1.2 a face falling between two scales was missed);
its hits pass the same paper check. :func:`scan_faces` runs both, as ingest does. The cascade is
most of the scan's cost (bench/faces.py, BENCHMARKS.md "Faces by size").

Where the cascade's time goes, and what did not make it cheaper (issue 14, measured 2026-12-03
with one OpenCV thread on the working images of bench/faces.py's photos, LFW faces pasted at
28-80 px on paper and photographed drawings, and bench/vision.py's photos). OpenCV slides its
window in steps of 2 px of each scale's shrunk copy below scale 2 (windows of 24-47 px) and of
1 px from scale 2 on, so on a 1600×1200 copy the windows of 24-47 px cost about 110 ms and those
of 51-195 px about 130 (51-100 px alone about 100); a plain or noisy flat grey copy costs 63-85
ms, the working images of bench/vision.py's photos 120-530 ms (strokes pass more of the
cascade's stages).

- Fewer scales: dropping the 24-px window (about 24 ms) loses a 2 % face (``_HAAR_SMALLEST``).
- Large windows on a smaller copy (800 and 400 px) or a coarser step (1.15, 1.2) from 48 px:
  30-40 % less cascade time, but those windows then sit 2-4 px apart instead of 1-2 and faces of
  4.5-15 % were lost (also with 1 neighbour instead of 2; with none, 32 hits a photo to confirm
  cost more than they saved).
- A gate on flat areas: blocks of 16 px with a standard deviation of grey below 4 levels,
  dilated by the largest window, leave bounding rectangles covering 92-98 % of these photos
  (crayon strokes reach everywhere); dilated by 47 px (the small windows) the textured area is
  still 34-89 % (median 65 %), and flattening the flat blocks did not make the cascade faster:
  flat windows are already rejected at its first stage, and the time is in the strokes. Not built.
- OpenCV's LBP face cascade: only scikit-image (a test dependency) ships one,
  ``lbpcascade_frontalface_opencv.xml``, and OpenCV 4.12 does not load it. The other stock Haar
  cascades found fewer of the 154 faces (``frontalface_alt2`` 141, about 10 % faster;
  ``frontalface_alt`` 140, slower) than the default one (148).
- Threads: with 2 OpenCV threads the cascade takes half the wall time for the same CPU time
  (±5 %); ingest's processes run it on one (vision.threads).
- The paper check before the confirmation (same boxes, about 11 ms less per photo) is kept.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from vision.resize import area

#: (x, y, width, height) in pixels of the image passed in.
FaceBox = tuple[int, int, int, int]

#: The BlazeFace model file (MediaPipe's face_detection_back, converted to ONNX).
MODEL_PATH = Path(__file__).resolve().parent / "models" / "blazeface_back_256.onnx"
#: Side, in pixels, of the model's square input.
MODEL_INPUT = 256

#: Long side, in pixels, of the scan copy. At 432 px each 2×2 tile (0.6 of a side, 259 px) reaches
#: the model at about its own resolution, so nothing is thrown away and nothing invented.
DETECT_LONG_SIDE = 432
#: Long side, in pixels, of the scan copy from which it is also scanned in tiles: from 384 px on,
#: a tile holds at least 0.9 of the model's input in pixels, so the four extra passes
#: (each costing as much as the whole view) add resolution, not just upscaled pixels.
_TILE_FROM = 384
#: Share of the copy's width and height one tile spans; neighbouring tiles overlap by 0.2 of a
#: side, so a face up to that size cut by one tile's edge lies whole in another tile.
_TILE_SPAN = 0.6
#: Least sigmoid score kept. Faces in the tests score 0.75–0.95 and drawn tadpole faces at most
#: 0.2; MediaPipe ships 0.5 for this model. 0.5 keeps a wide margin on both sides.
SCORE_THRESHOLD = 0.5
# The paper check (see _looks_like_paper). BlazeFace does score drawn faces (a circle, two dots
# and a smile) up to 0.84, so a threshold alone cannot spare drawings. Measured on the BlazeFace
# boxes of 168 drawn-face detections in synthetic drawings (flat and photographed, stages 2-4)
# and 100 real faces (the astronaut at three scales; LFW faces pasted on white paper, a coffee
# photo and a photographed drawing): drawings have paper share 0.23-0.97 (median 0.79) and tone
# separation 0.74-1.0; faces paper share 0.07-0.60 (median 0.25), separation 0.57-0.76. The
# rule below drops 166 of the 168 drawn and 1 of the 100 real faces.
_PAPER_SHARE = 0.6
_PAPER_SHARE_WITH_STROKES = 0.3
_STROKE_SEPARATION = 0.77
# The cascade's hits (inner part of the box, see find_small_faces) are judged by the same rule,
# except that a box mostly of paper colour counts as drawn only when its tones also separate by
# at least this much. Measured 2026-12-03 on the confirmed hits: on 172 photos with no face
# (bench/faces.py's 32, 100 photographed crayon drawings, 10 of bench/vision.py's, 30 tadpole
# sheets) and off the faces in the face photos, the 261 with paper share above 0.6 had separation
# 0.71-1.0; on real faces (bench/faces.py's 56 photos; LFW faces of 28-80 px pasted on paper and
# photographed drawings) 10 hits had paper share 0.61-0.66, all with separation 0.63-0.69, and all
# 10 were thrown away as drawn: bright grey faces that the stock cascade finds were lost. At 0.70
# none of those photos, nor the 60 crayon drawings of test_crayon_drawings_rarely_fire, fires
# more often; at 0.77 (the stroke rule alone) 2 more of those 60 fired.
_PAPER_SEPARATION_FOR_HITS = 0.70
#: Boxes overlapping by at least this IoU are one face (MediaPipe's min_suppression_threshold).
_IOU_MERGE = 0.3
#: MediaPipe clips raw scores to ±100 before the sigmoid (and exp(100) stays finite).
_SCORE_CLIP = 100.0
#: Cells per side of the mosaic a face is reduced to before blurring.
_MOSAIC = 5
#: Margin, as a share of a face box's size on every side, blurred with it. At 0.4 a blurred
#: 6 % LFW face sitting on top of a drawn smiley left a dark blob that BlazeFace (paper check
#: off, in the 320-px thumbnail) took for hair over the drawn face and fired on the pair; at 0.5
#: it still fired, at 0.6 not (tests/vision/test_face_sizes.py, sheet 3000×4000 at 6 %, seed 2).
BLUR_GROW = 0.6
#: OpenCV's stock frontal-face Haar cascade (Intel's licence in the file's header).
HAAR_PATH = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
#: Long side, in pixels, of the grey copy the cascade scans: a face of 2 % of the long side is
#: 32 px there (the cascade's smallest window is 24 px; at 1200 px, where 2 % is 24 px, it missed
#: more of the 2-3 % faces in tests/vision/test_face_sizes.py).
SMALL_FACE_LONG_SIDE = 1600
#: Largest face, as a share of the long side, the cascade looks for; BlazeFace's whole view
#: finds faces from about 11 %, so the two overlap.
_SMALL_FACE_LARGEST = 0.13
#: The cascade's scale step and least neighbours. Measured on 48 LFW and astronaut faces of
#: 2-8 % pasted on photographed drawings and full-frame artwork (4000×3000, scanned from the
#: 1600-px working image): step 1.2 with 2 neighbours found 43, 1.3 with 3 found 37; on 20
#: photographed crayon drawings it fired on 7 and 0, none left after the paper check. Step 1.2
#: left a 2 % face (32-34 px) that falls between two of its scales findable by the stock
#: cascade at step 1.1 in 3 of 8 test photos at 2 %; step 1.1 left none, at about 1.6 times the
#: cost (tests/vision/test_face_sizes.py, BENCHMARKS.md "Faces by size").
_HAAR_STEP = 1.1
_HAAR_NEIGHBOURS = 2
#: Smallest cascade window, in pixels of the 1600-px copy: the cascade's own 24 px. It is the
#: costliest of the cascade's scales (about 24 of 240 ms on a 1600×1200 copy), but dropping it
#: loses faces of 2 %. Its boxes on a face are 0.82-1.06 of the face's width (the 154 faces of
#: bench/faces.py, seeds 1-2: 2 % faces, 32-36 px, give boxes of 27-35 px), and from 26 or 29 px
#: on the cascade still found all 154 faces of 2-15 % there; but on LFW faces pasted at 32 px
#: (2 %) on white paper and three photographed drawings (12 images, 48 faces) it found 41 from
#: 26 px and 40 from 29 px against 42 from 24 px: the 24-px window's hits are neighbours that
#: carry a 32-px face over the 2-neighbour threshold. At 28 and 30 px faces (1.75-1.9 %), 26 px
#: lost 2 and 1 of 43 and 42.
_HAAR_SMALLEST = 24
#: Each cascade hit is confirmed by the same cascade looking again at the hit's own scale, finely
#: (step 1.05) and asking for 4 neighbours (``_confirmed``). Measured on the working images of
#: the 56 face-size photos of bench/faces.py (seeds 1-2, 154 faces at 2-15 %), its 32 drawings
#: with no face and 60 photographed crayon drawings: no face lost at 3, 4 or 5 neighbours (6 lost
#: one); photos with anything found (BlazeFace included) 7/32 -> 3-4/32 and 5/60 -> 2/60 at 4.
#: The second stock cascade (frontalface_alt2) as judge lost a 2 % face; BlazeFace on the hit's
#: crop cut nothing. About 7 ms per hit.
_CONFIRM_STEP = 1.05
_CONFIRM_NEIGHBOURS = 4


def _ssd_anchors() -> np.ndarray:
    """Anchor centres (n, 2), as fractions of the model input, in the model's output order.

    MediaPipe's SsdAnchorsCalculator for this model uses strides 16, 32, 32, 32 on 256 px with
    fixed anchor size: the stride-16 layer gives 16×16 cells × 2 anchors (scale and its
    interpolated neighbour, aspect 1), and the three stride-32 layers share an 8×8 grid, 2
    anchors each, so 6 per cell. 512 + 384 = 896 anchors, row by row, anchors within a cell last;
    the two groups come out of the model as separate outputs in that order.
    """
    centres = []
    for cells, per_cell in ((16, 2), (8, 6)):
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = (np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.5) / cells
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


_ANCHORS = _ssd_anchors()
_session: ort.InferenceSession | None = None
_session_lock = threading.Lock()
# A cascade keeps scratch buffers between calls, so each thread has its own.
_cascades = threading.local()


def _cascade() -> cv2.CascadeClassifier:
    """This thread's Haar cascade, loaded on first use. Raises RuntimeError when OpenCV's data
    file is missing or unreadable."""
    cascade = getattr(_cascades, "cascade", None)
    if cascade is None:
        cascade = cv2.CascadeClassifier(str(HAAR_PATH))
        if cascade.empty():
            raise RuntimeError(f"OpenCV's face cascade is missing: {HAAR_PATH} (reinstall Spira)")
        _cascades.cascade = cascade
    return cascade


def _detector() -> ort.InferenceSession:
    """The process's one BlazeFace session, created on first use (thread-safe).

    One intra-op thread: ingest already runs one photo per worker, so more threads per photo only
    contend. ``InferenceSession.run`` may be called from several threads at once.
    Raises RuntimeError when the model file is missing or not the expected BlazeFace graph.
    """
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                _session = _load_session(MODEL_PATH)
    return _session


def _load_session(path: Path) -> ort.InferenceSession:
    """Open the model at ``path`` and check its input and outputs are BlazeFace's."""
    if not path.is_file():
        raise RuntimeError(f"The BlazeFace model is missing: {path} (reinstall Spira)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # The converted graph carries a few unused constants that ORT warns about on every load.
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    shapes = [tuple(output.shape) for output in session.get_outputs()]
    expected = [(1, 512, 1), (1, 384, 1), (1, 512, 16), (1, 384, 16)]
    if len(inputs) != 1 or tuple(inputs[0].shape) != (1, MODEL_INPUT, MODEL_INPUT, 3):
        raise RuntimeError(f"{path} does not take one 1×{MODEL_INPUT}×{MODEL_INPUT}×3 image")
    if shapes != expected:
        raise RuntimeError(f"{path} outputs {shapes}, not BlazeFace's {expected}")
    return session


def detect_faces(rgb: np.ndarray, *, detect_long_side: int = DETECT_LONG_SIDE) -> list[FaceBox]:
    """Find faces in an RGB uint8 image (H, W, 3).

    The image is shrunk to a copy whose long side is ``detect_long_side`` px (never enlarged),
    which the model sees whole (one pass) and, from 384 px on, also as 2×2 overlapping tiles
    (five passes). Seen whole, faces from about 11 % of the long side up to the whole photo are
    found (180 px in a 1600-px photo); with tiles from about 6 % (100 px in a 1600-px photo, half
    of those at 4 %). Faces whose box is mostly paper with strokes on it are taken for drawn faces
    and left out (see ``_looks_like_paper``).

    Returns boxes (x, y, width, height) in the pixel coordinates of ``rgb``, clipped to it, one per
    face, highest score first. Raises ValueError when ``rgb`` is not an RGB uint8 array.
    """
    _check_rgb(rgb)
    if detect_long_side < 16:
        raise ValueError(f"detect_long_side must be at least 16 px, got {detect_long_side}")
    height, width = rgb.shape[:2]
    boxes, scores = _face_candidates(rgb, detect_long_side)
    faces: list[FaceBox] = []
    for x0, y0, x1, y1 in boxes:
        x0, y0 = max(0, round(x0)), max(0, round(y0))
        x1, y1 = min(width, round(x1)), min(height, round(y1))
        box = (x0, y0, x1 - x0, y1 - y0)
        if x1 > x0 and y1 > y0 and not _looks_like_paper(rgb, box):
            faces.append(box)
    return faces


def find_small_faces(
    rgb: np.ndarray, *, scan_long_side: int = SMALL_FACE_LONG_SIDE
) -> list[FaceBox]:
    """Faces from about 24 px in a copy whose long side is ``scan_long_side`` px (2 % of the long
    side at 1600 px is 32 px) up to 13 % of the long side, found by OpenCV's frontal-face Haar cascade
    on a grey area-averaged copy (never enlarged). Boxes that look like lines on paper are left
    out, as in :func:`detect_faces`.

    Returns boxes (x, y, width, height) in ``rgb``'s pixels. Raises ValueError when ``rgb`` is
    not an RGB uint8 array.
    """
    _check_rgb(rgb)
    height, width = rgb.shape[:2]
    scale = min(1.0, scan_long_side / max(height, width))
    copy = rgb
    if scale < 1.0:
        copy = area(rgb, (max(1, round(width * scale)), max(1, round(height * scale))))
    grey = cv2.cvtColor(copy, cv2.COLOR_RGB2GRAY)
    largest = max(_HAAR_SMALLEST, round(_SMALL_FACE_LARGEST * max(grey.shape)))
    found = _cascade().detectMultiScale(
        grey,
        scaleFactor=_HAAR_STEP,
        minNeighbors=_HAAR_NEIGHBOURS,
        minSize=(_HAAR_SMALLEST, _HAAR_SMALLEST),
        maxSize=(largest, largest),
    )
    faces: list[FaceBox] = []
    for hit in np.asarray(found, dtype=np.int64).reshape(-1, 4):
        x, y, w, h = hit / scale
        x0, y0 = max(0, round(x)), max(0, round(y))
        x1, y1 = min(width, round(x + w)), min(height, round(y + h))
        box = (x0, y0, x1 - x0, y1 - y0)
        # The cascade's box reaches past the face (hair, background); its inner part is the
        # face, so the paper check looks there (on the whole box paper around a small face on
        # a sheet counted as drawn).
        inner = (x0 + box[2] // 6, y0 + box[3] // 6, box[2] - box[2] // 3, box[3] - box[3] // 3)
        # A hit is kept when it passes both checks; the paper check is the cheap one, so it
        # goes first (same boxes kept; the confirmations cost 15.5 instead of 26.8 ms a photo
        # on the 138 working images of bench/faces.py's photos, crayon drawings and bench/vision.py's).
        if x1 > x0 and y1 > y0 and not _hit_looks_like_paper(rgb, inner) and _confirmed(grey, hit):
            faces.append(box)
    return faces


def _confirmed(grey: np.ndarray, hit: np.ndarray) -> bool:
    """True when the cascade finds the face of ``hit`` (x, y, w, h in ``grey``'s pixels) again
    with ``_CONFIRM_NEIGHBOURS`` neighbours when it looks at the hit's own scale more finely
    (step ``_CONFIRM_STEP``, windows 0.6-1.6 of the hit, on the hit and half its size around it,
    enlarged when needed so the smallest of those windows is the cascade's 24 px).

    A real face is found at many nearby positions and scales; the blobs and strokes of a drawing
    that pass the sparse scan with its 2 neighbours mostly are not (see ``_CONFIRM_NEIGHBOURS``).
    """
    x, y, w, h = (int(v) for v in hit)
    x0, y0 = max(0, x - w // 2), max(0, y - h // 2)
    x1, y1 = min(grey.shape[1], x + w + w // 2), min(grey.shape[0], y + h + h // 2)
    crop = grey[y0:y1, x0:x1]
    enlarge = max(1.0, 24 / (0.6 * w))
    if enlarge > 1.0:
        crop = cv2.resize(crop, None, fx=enlarge, fy=enlarge, interpolation=cv2.INTER_LINEAR)
    least = max(24, int(0.6 * w * enlarge))
    most = int(1.6 * w * enlarge) + 1
    again = _cascade().detectMultiScale(
        crop,
        scaleFactor=_CONFIRM_STEP,
        minNeighbors=_CONFIRM_NEIGHBOURS,
        minSize=(least, least),
        maxSize=(most, most),
    )
    return len(np.asarray(again).reshape(-1, 4)) > 0


def scan_faces(
    rgb: np.ndarray,
    *,
    detect_long_side: int = 256,
    small_face_long_side: int = SMALL_FACE_LONG_SIDE,
) -> list[FaceBox]:
    """Every face ingest blurs: BlazeFace on a copy of ``detect_long_side`` px (at 256, one pass
    over the whole photo: faces from about 11 % of the long side) and the Haar cascade on a copy
    of ``small_face_long_side`` px (faces from 24 px there, 2 % of the long side is 32 px at 1600, up to 13 %); 0 turns the
    cascade off. Returns the boxes of both (they may overlap; blurring twice is harmless)."""
    faces = detect_faces(rgb, detect_long_side=detect_long_side)
    if small_face_long_side > 0:
        faces += find_small_faces(rgb, scan_long_side=small_face_long_side)
    return faces


def _check_rgb(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"face detection needs an RGB uint8 array of shape (H, W, 3), got {rgb.dtype} "
            f"{rgb.shape}"
        )


def _face_candidates(rgb: np.ndarray, detect_long_side: int) -> tuple[np.ndarray, np.ndarray]:
    """BlazeFace's merged detections before the paper check.

    Returns (boxes (n, 4) as x0, y0, x1, y1 in ``rgb``'s pixels, unclipped; scores (n,) in 0–1),
    best first.
    """
    height, width = rgb.shape[:2]
    scale = min(1.0, detect_long_side / max(height, width))
    copy = rgb
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # Area averaging all the way: vision.resize.shrink's bilinear last step measurably
        # raised false alarms on drawn faces (tests/vision/test_faces.py).
        copy = area(rgb, size)
    views = [_scan_window(copy, window) for window in _windows(copy.shape[1], copy.shape[0])]
    boxes, scores = _weighted_nms(
        np.concatenate([v[0] for v in views]), np.concatenate([v[1] for v in views])
    )
    return boxes / scale, scores


def _windows(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Views (x, y, width, height) of a copy the model looks at: the whole copy, and, when its
    long side is at least ``_TILE_FROM`` px, its four corner tiles of ``_TILE_SPAN`` of each
    side."""
    views = [(0, 0, width, height)]
    if max(width, height) >= _TILE_FROM:
        tw, th = max(1, round(width * _TILE_SPAN)), max(1, round(height * _TILE_SPAN))
        views += [(x, y, tw, th) for y in (0, height - th) for x in (0, width - tw)]
    return views


def _scan_window(copy: np.ndarray, window: tuple[int, int, int, int]) -> tuple[np.ndarray, ...]:
    """Run BlazeFace on one view of the copy, letterboxed (centred, black bars) to the input.

    Returns (boxes (n, 4) as x0, y0, x1, y1 in the copy's pixels, scores (n,)) of the anchors
    scoring at least ``SCORE_THRESHOLD``.
    """
    x, y, w, h = window
    view = copy[y : y + h, x : x + w]
    fit = MODEL_INPUT / max(w, h)
    fw, fh = max(1, round(w * fit)), max(1, round(h * fit))
    interpolation = cv2.INTER_AREA if fit < 1 else cv2.INTER_LINEAR
    # Black bars, as MediaPipe pads: they read as -1 after scaling to [-1, 1].
    square = np.zeros((MODEL_INPUT, MODEL_INPUT, 3), np.uint8)
    px, py = (MODEL_INPUT - fw) // 2, (MODEL_INPUT - fh) // 2
    square[py : py + fh, px : px + fw] = cv2.resize(view, (fw, fh), interpolation=interpolation)
    tensor = (square.astype(np.float32) * (2 / 255) - 1)[None]
    fine_scores, coarse_scores, fine_boxes, coarse_boxes = _detector().run(
        None, {_detector().get_inputs()[0].name: tensor}
    )
    logits = np.concatenate([fine_scores[0, :, 0], coarse_scores[0, :, 0]]).astype(np.float64)
    scores = 1 / (1 + np.exp(-np.clip(logits, -_SCORE_CLIP, _SCORE_CLIP)))
    keep = scores >= SCORE_THRESHOLD
    # Columns 0-3 are the box centre offset and size in input pixels (then six key points).
    raw = np.concatenate([fine_boxes[0], coarse_boxes[0]])[keep, :4]
    centre = _ANCHORS[keep] * MODEL_INPUT + raw[:, :2]
    half = np.abs(raw[:, 2:4]) / 2
    corners = np.concatenate([centre - half, centre + half], axis=1)
    # From input pixels back to the copy: undo the bars, the fit and the window's offset.
    corners = (corners - [px, py, px, py]) / fit + [x, y, x, y]
    return corners.astype(np.float64), scores[keep].astype(np.float64)


def _weighted_nms(boxes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted non-maximum suppression over boxes (n, 4) as x0, y0, x1, y1.

    The best remaining box and every box overlapping it by IoU ≥ ``_IOU_MERGE`` become one face
    whose corners are their score-weighted mean (steadier than the single best box) and whose
    score is the best one's. Returns (merged boxes (m, 4), their scores (m,)), best first.
    """
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    merged, best_scores = [], []
    remaining = np.arange(len(scores))
    while remaining.size:
        best = boxes[remaining[0]]
        others = boxes[remaining]
        ix0 = np.maximum(best[0], others[:, 0])
        iy0 = np.maximum(best[1], others[:, 1])
        ix1 = np.minimum(best[2], others[:, 2])
        iy1 = np.minimum(best[3], others[:, 3])
        inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
        areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
        best_area = (best[2] - best[0]) * (best[3] - best[1])
        iou = inter / np.maximum(best_area + areas - inter, 1e-9)
        group = remaining[iou >= _IOU_MERGE]
        weights = scores[group]
        merged.append((boxes[group] * weights[:, None]).sum(axis=0) / weights.sum())
        best_scores.append(scores[remaining[0]])
        remaining = remaining[iou < _IOU_MERGE]
    return np.array(merged, np.float64).reshape(-1, 4), np.array(best_scores, np.float64)


def _looks_like_paper(rgb: np.ndarray, box: FaceBox) -> bool:
    """True when the box looks like lines drawn on paper rather than a face.

    Either most of it is one flat colour, that of its brightest tenth (paper, whatever the
    light's colour), or a good part of it is, and the rest is of clearly separate tones (crayon
    strokes), where skin shades continuously between its light and dark parts. The second test
    needs the first in part, because dark hair against a lit face alone also splits a box into
    two tones (the astronaut's face: paper share 0.17, separation 0.73).
    """
    paper = _paper_share(rgb, box)
    return paper > _PAPER_SHARE or (
        paper >= _PAPER_SHARE_WITH_STROKES and _tone_separation(rgb, box) >= _STROKE_SEPARATION
    )


def _hit_looks_like_paper(rgb: np.ndarray, box: FaceBox) -> bool:
    """:func:`_looks_like_paper` for the inner part of a cascade hit: a box mostly of paper colour
    counts as drawn only when its tones also separate by ``_PAPER_SEPARATION_FOR_HITS`` (bright
    faces on a small scale can be mostly within 30 levels of their brightest tenth)."""
    paper = _paper_share(rgb, box)
    if paper < _PAPER_SHARE_WITH_STROKES:
        return False
    separation = _tone_separation(rgb, box)
    return separation >= _STROKE_SEPARATION or (
        paper > _PAPER_SHARE and separation >= _PAPER_SEPARATION_FOR_HITS
    )


def _paper_share(rgb: np.ndarray, box: FaceBox) -> float:
    """Share (0–1) of the box's pixels within 30 levels, in every channel, of the median colour
    of its brightest tenth; 1.0 for an empty box."""
    x, y, w, h = box
    patch = rgb[y : y + h, x : x + w].astype(np.int16)
    if patch.size == 0:
        return 1.0
    grey = patch.mean(axis=2)
    paper_colour = np.median(patch[grey >= np.percentile(grey, 90)], axis=0)
    near_paper = np.abs(patch - paper_colour).max(axis=2) < 30
    return float(near_paper.mean())


def _tone_separation(rgb: np.ndarray, box: FaceBox) -> float:
    """Otsu's separability of the box's grey levels: the share (0–1) of their variance that lies
    between the best split into a light and a dark class. Near 1 for ink on paper, about 0.6–0.75
    for faces; 1.0 for a flat or empty box."""
    x, y, w, h = box
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[y : y + h, x : x + w]), cv2.COLOR_RGB2GRAY)
    counts = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    total = counts.sum()
    levels = np.arange(256, dtype=np.float64)
    mean = (counts * levels).sum() / max(total, 1.0)
    variance = (counts * (levels - mean) ** 2).sum() / max(total, 1.0)
    if total == 0 or variance == 0:
        return 1.0
    dark = np.cumsum(counts)[:-1] / total
    dark_sum = np.cumsum(counts * levels)[:-1] / total
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean * dark - dark_sum) ** 2 / (dark * (1 - dark))
    return float(np.nanmax(between) / variance)


def blur_faces(rgb: np.ndarray, boxes: list[FaceBox], *, grow: float = BLUR_GROW) -> np.ndarray:
    """Return a copy of ``rgb`` with each box (enlarged by ``grow`` of its size on every side)
    pixelated to a 5×5 grid and then Gaussian-blurred, so no facial detail survives (not even
    the coarse light and dark pattern a detector keys on)."""
    out = rgb.copy()
    height, width = rgb.shape[:2]
    for x, y, w, h in boxes:
        dx, dy = int(w * grow), int(h * grow)
        x0, y0 = max(0, x - dx), max(0, y - dy)
        x1, y1 = min(width, x + w + dx), min(height, y + h + dy)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        region = out[y0:y1, x0:x1]
        coarse = cv2.resize(region, (_MOSAIC, _MOSAIC), interpolation=cv2.INTER_AREA)
        blocky = cv2.resize(coarse, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        # Blur over about one mosaic cell, so block edges do not redraw eyes and mouth.
        sigma = min(x1 - x0, y1 - y0) / _MOSAIC
        out[y0:y1, x0:x1] = cv2.GaussianBlur(blocky, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    return out
