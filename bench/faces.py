"""Faces by size: what ingest's face scan blurs, what it blurs by mistake, and what it costs.

Sweep: real face crops (the astronaut's head, LFW faces) pasted at 2–15 % of the long side into
12-MP photos, on a photographed drawing (sheet found and cropped to) and on full-frame artwork,
4000×3000 and 3000×4000 (``tests.vision.test_face_sizes.face_scene``, three faces a photo). Each
photo goes through ``vision.ingest.ingest``; a face counts as blurred when neither OpenCV's stock
Haar cascade (step 1.1, 3 neighbours) nor BlazeFace (at 432 and 1200 px, paper check off) finds
anything on it in the processed image or the thumbnail (``on_a_face``: near it and overlapping
it, so a drawn face beside it does not count). The same photos ingested with no face scan
show what the checks find when nothing is blurred (their own recall).

False alarms: the same scenes with no face pasted (drawings with drawn faces, on a sheet and
full-frame), counted as photos in which ingest blurred anything.

Time: process CPU per photo of ``ingest`` on the same JPEG bytes, one at a time, with ingest's scan
(BlazeFace's whole view plus the Haar cascade for small faces, each cascade hit confirmed at its
own scale) and with the baseline scan
(BlazeFace's whole view alone, ``small_face_scan_long_side=0``, as before issue 14), in one run.

Usage: python bench/faces.py [--seeds 2] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _cpu_ms(function, *args, **kwargs):
    start = time.process_time()
    result = function(*args, **kwargs)
    return result, (time.process_time() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="photos per case (3 faces each)")
    parser.add_argument("--write", action="store_true", help="write the results to BENCHMARKS.md")
    args = parser.parse_args()

    import cv2
    import simplejpeg

    from bench.common import write_section
    from tests.vision.test_face_sizes import (
        BACKGROUNDS,
        FACE_SIZES,
        PHOTO_SIZES,
        _encode,
        blazeface_faces,
        face_scene,
        faces_where_stored,
        haar_faces,
        on_a_face,
    )
    from vision.ingest import IngestLimits, ingest

    cv2.setNumThreads(1)
    scan = IngestLimits()
    baseline = IngestLimits(small_face_scan_long_side=0)
    off = IngestLimits(face_scan_long_side=16, small_face_scan_long_side=0)

    def left_on(photo, pasted, result) -> list[bool]:
        """Per pasted face: True when a check detector still finds it in anything stored."""
        seen = [False] * len(pasted)
        for blob in (result.jpeg, result.thumbnail_jpeg):
            image = simplejpeg.decode_jpeg(blob, "RGB")
            where = faces_where_stored(photo, pasted, image)
            found = haar_faces(image) + blazeface_faces(image)
            for k, box in enumerate(where):
                seen[k] = seen[k] or bool(on_a_face(found, [box]))
        return seen

    rows = []
    times: dict[str, list[float]] = {"scan": [], "baseline": []}
    for background in BACKGROUNDS:
        for size in PHOTO_SIZES:
            for share in FACE_SIZES:
                faces = blurred = seen_unblurred = 0
                for seed in range(1, args.seeds + 1):
                    photo, pasted = face_scene(background, size, share, seed)
                    data = _encode(photo)
                    result, ms = _cpu_ms(ingest, data, limits=scan)
                    times["scan"].append(ms)
                    _, ms = _cpu_ms(ingest, data, limits=baseline)
                    times["baseline"].append(ms)
                    faces += len(pasted)
                    blurred += sum(not left for left in left_on(photo, pasted, result))
                    seen_unblurred += sum(left_on(photo, pasted, ingest(data, limits=off)))
                rows.append((background, size, share, faces, blurred, seen_unblurred))
                print(rows[-1], flush=True)
    alarms = []
    for background in BACKGROUNDS:
        for size in PHOTO_SIZES:
            n = fired = fired_base = 0
            for seed in range(1, 4 * args.seeds + 1):
                photo, _ = face_scene(background, size, 0.05, 100 + seed, n=0)
                data = _encode(photo)
                n += 1
                fired += ingest(data, limits=scan).faces_blurred > 0
                fired_base += ingest(data, limits=baseline).faces_blurred > 0
            alarms.append((background, size, n, fired, fired_base))
            print(alarms[-1], flush=True)

    scan_ms, base_ms = float(np.median(times["scan"])), float(np.median(times["baseline"]))
    by_share: dict[float, list[int]] = {}
    for _, _, share, faces, blurred, _ in rows:
        total = by_share.setdefault(share, [0, 0])
        total[0] += faces
        total[1] += blurred
    lines = [
        f"Sweep: {args.seeds} photo(s) per case, 3 faces each (astronaut's head and LFW crops), "
        "12 MP JPEG through `vision.ingest.ingest`. Blurred: neither the stock Haar cascade "
        "(step 1.1, 3 neighbours) nor BlazeFace (432 and 1200 px, paper check off) finds the "
        "face in the processed image or the thumbnail (a detection counts when its centre is "
        "near the face and it covers a quarter of the face box or of itself: drawn faces next "
        "to a pasted face, found as well with no face pasted, are not the face). In brackets: "
        "faces those checks find when ingest blurs nothing (they see the faces). Blur margin "
        "0.6 of the face box on every side.",
        "",
        "| face (share of long side) | "
        + " | ".join(f"{b} {w}×{h}" for b in BACKGROUNDS for w, h in PHOTO_SIZES)
        + " | all |",
        "|---|" + "---|" * (len(BACKGROUNDS) * len(PHOTO_SIZES) + 1),
    ]
    for share in FACE_SIZES:
        cells = [
            f"{blurred}/{faces} ({seen})"
            for background in BACKGROUNDS
            for size in PHOTO_SIZES
            for b, s, sh, faces, blurred, seen in rows
            if (b, s, sh) == (background, size, share)
        ]
        faces, blurred = by_share[share]
        lines.append(f"| {share * 100:g} % | " + " | ".join(cells) + f" | {blurred}/{faces} |")
    lines += [
        "",
        "False alarms (drawings with drawn faces, no real face; photos in which anything was "
        "blurred), ingest's scan / baseline scan: "
        + "; ".join(
            f"{b} {w}×{h} {fired}/{n} / {fired_base}/{n}"
            for b, (w, h), n, fired, fired_base in alarms
        )
        + ".",
        "",
        f"CPU per photo of `ingest` (median of {len(times['scan'])} photos, one at a time): "
        f"**{scan_ms:.0f} ms** with ingest's scan (BlazeFace's whole view at 256 px plus the Haar "
        f"cascade at 1600 px), {base_ms:.0f} ms with BlazeFace's whole view alone (the scan before "
        f"issue 14): **{scan_ms / base_ms:.2f}×** the baseline ingest, "
        f"+{scan_ms - base_ms:.0f} ms per photo.",
        "",
        f"Issue 14's target, end to end within +15 % of the baseline ingest: "
        f"**{'met' if scan_ms <= 1.15 * base_ms else 'not met'}**. The Haar cascade at 1600 px "
        "is the cost, and its density is what finds the faces: OpenCV moves a window by 1/12 of "
        "its size below 48 px and by 1/24 from 48 px on (step 1.1 between sizes: at 1.2, 2 % "
        "faces were lost). Measured and not kept (vision/faces.py, module docstring): dropping the 24-px "
        "window (about 10 % of the cascade) lost a 2 % face (LFW at 32 px on paper); windows from "
        "48 px on a half-size copy or at a coarser step (30-40 % less) lost faces of 4.5-15 %; a "
        "gate on flat areas skips little (the strokes, dilated by the largest window, span 92-98 % "
        "of these photos, and the cascade rejects flat windows at its first stage anyway); no "
        "installed package has an LBP face cascade OpenCV 4.12 loads, and the other stock Haar "
        "cascades find fewer faces. Kept: each hit's paper check before its confirmation (about "
        "11 ms less a photo), and that check no longer takes a bright face (mostly near its "
        "brightest tone, with a face's tone separation) for paper. Privacy first: every face "
        "from 2 % is blurred at this price.",
    ]
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_section("Faces by size", body)


if __name__ == "__main__":
    main()
