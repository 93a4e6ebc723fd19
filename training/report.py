"""Model card (Markdown) and HTML report (inline SVG plots, no external assets) of a trained model."""

from __future__ import annotations

import html

import numpy as np

from core.domain import STAGE_DESCRIPTIONS


def model_card(version: str, *, data: dict, params: dict, metrics: dict, backbone: str) -> str:
    m = metrics
    lines = [
        f"# Stage model {version}",
        "",
        "Ordinal (cumulative-link) head over a backbone embedding plus OpenCV drawing features, "
        "temperature-scaled. Estimates the drawing-progression stage (0–4) of a photo of a "
        "child's drawing. Used only in unit-level aggregates; never to assess an individual child.",
        "",
        f"- Backbone: `{backbone}`",
        f"- Data: {data.get('description', '')} (n = {data.get('n', '?')}, "
        f"groups = {data.get('n_groups', '?')}, seed = {data.get('seed', '—')})",
        f"- Parameters: {', '.join(f'{k} = {v}' for k, v in params.items())}",
        "",
        "## Out-of-fold metrics (grouped cross-validation)",
        "",
        "| metric | value |",
        "|---|---|",
        f"| quadratic weighted kappa | {m['qwk']:.3f} |",
        f"| MAE (expected stage, in stages) | {m['mae']:.3f} |",
        f"| accuracy | {m['accuracy']:.3f} |",
        f"| expected calibration error | {m['ece']:.3f} |",
        f"| temperature | {m.get('temperature', 1.0):.3f} |",
        f"| n | {m['n']} |",
    ]
    if m.get("human_agreement"):
        h = m["human_agreement"]
        lines += [
            "",
            f"Human–human agreement on the same images: Krippendorff's alpha "
            f"{h.get('alpha', float('nan')):.3f}, mean pairwise QWK {h.get('mean_qwk', float('nan')):.3f} "
            f"(n items = {h.get('n_items', '?')}).",
        ]
    if m.get("holdout"):
        h, f = m["holdout"], m.get("holdout_frozen_backbone", {})
        nan = float("nan")
        lines += [
            "",
            "## Fine-tuned backbone: held-out groups",
            "",
            "The backbone was fine-tuned on the training groups only. The held-out groups, which "
            "it never saw, are scored by a head fitted on the training groups, next to the same "
            "with the frozen backbone. The cross-validated figures above include images the "
            "backbone was tuned on and are optimistic; these are not.",
            "",
            "| metric | fine-tuned | frozen |",
            "|---|---|---|",
            f"| quadratic weighted kappa | {h['qwk']:.3f} | {f.get('qwk', nan):.3f} |",
            f"| MAE (in stages) | {h['mae']:.3f} | {f.get('mae', nan):.3f} |",
            f"| accuracy | {h['accuracy']:.3f} | {f.get('accuracy', nan):.3f} |",
            f"| expected calibration error | {h['ece']:.3f} | {f.get('ece', nan):.3f} |",
            f"| n | {h['n']} | {f.get('n', '?')} |",
        ]
    if "cpu_runtime_parity" in m:
        lines += [
            "",
            f"CPU runtime (ONNX → OpenVINO) against PyTorch: lowest cosine similarity "
            f"{m['cpu_runtime_parity']:.5f} (needs ≥ 0.999 to be served).",
        ]
    lines += [
        "",
        "## Limits",
        "",
        "Synthetic drawings are for tests and demos; a model trained only on them says nothing about real "
        "drawings. Train on researchers' labels (`spira train --csv` or `--from-label-studio`) before "
        "reading unit profiles as evidence.",
    ]
    return "\n".join(lines) + "\n"


def _confusion_svg(conf: list[list[int]]) -> str:
    c = np.asarray(conf, dtype=float)
    n = len(c)
    cell = 48
    top = c.max() or 1.0
    parts = [
        f'<svg width="{cell * n + 80}" height="{cell * n + 60}" role="img" '
        'aria-label="confusion matrix: rows true stage, columns predicted stage">'
    ]
    for i in range(n):
        parts.append(f'<text x="40" y="{40 + i * cell + cell / 2}" text-anchor="end">{i}</text>')
        parts.append(f'<text x="{60 + i * cell + cell / 2}" y="25" text-anchor="middle">{i}</text>')
        for j in range(n):
            shade = int(255 - 200 * c[i, j] / top)
            parts.append(
                f'<rect x="{60 + j * cell}" y="{35 + i * cell}" width="{cell - 2}" height="{cell - 2}" '
                f'fill="rgb({shade},{shade},255)"/>'
                f'<text x="{60 + j * cell + cell / 2}" y="{35 + i * cell + cell / 2 + 5}" '
                f'text-anchor="middle">{int(c[i, j])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _reliability_svg(probs: np.ndarray, y: np.ndarray, n_bins: int = 10) -> str:
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    size = 240
    parts = [
        f'<svg width="{size + 40}" height="{size + 40}" role="img" '
        'aria-label="reliability diagram: confidence against accuracy per bin">',
        f'<line x1="20" y1="{size + 20}" x2="{size + 20}" y2="20" stroke="#999" stroke-dasharray="4"/>',
    ]
    for b in range(n_bins):
        mask = (conf >= b / n_bins) & (conf < (b + 1) / n_bins + (b == n_bins - 1))
        if mask.any():
            acc = correct[mask].mean()
            x = 20 + size * b / n_bins
            h = size * acc
            parts.append(
                f'<rect x="{x + 1}" y="{20 + size - h}" width="{size / n_bins - 2}" height="{h}" '
                f'fill="#4a7"><title>confidence {b / n_bins:.1f}–{(b + 1) / n_bins:.1f}: '
                f"accuracy {acc:.2f}, n={int(mask.sum())}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def html_report(
    version: str, *, card_md: str, metrics: dict, oof_probs: np.ndarray, y: np.ndarray
) -> str:
    """A self-contained HTML report: the card, the confusion matrix and a reliability diagram."""
    legend = "".join(f"<li>{html.escape(d)}</li>" for d in STAGE_DESCRIPTIONS)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Stage model {html.escape(version)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;padding:0 1em}}
pre{{white-space:pre-wrap;background:#f6f6f6;padding:1em}}</style></head><body>
<h1>Stage model {html.escape(version)}</h1>
<pre>{html.escape(card_md)}</pre>
<h2>Confusion matrix (out of fold)</h2>{_confusion_svg(metrics["confusion"])}
<h2>Reliability (after temperature scaling)</h2>{_reliability_svg(oof_probs, y)}
<h2>Stages</h2><ol start="0">{legend}</ol>
</body></html>"""
