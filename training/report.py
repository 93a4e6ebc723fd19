"""Model card (Markdown) and HTML report (inline SVG plots, no external assets) of a trained model."""

from __future__ import annotations

import html

import numpy as np

from core.domain import STAGE_DESCRIPTIONS


def model_card(version: str, *, data: dict, params: dict, metrics: dict, backbone: str) -> str:
    m = metrics
    has_stage = "qwk" in m
    age = m.get("age")
    what = []
    if has_stage:
        what.append(
            "an ordinal (cumulative-link) stage head, temperature-scaled, estimating the "
            "drawing-progression stage (0–4)"
        )
    if age:
        what.append(
            f"a drawing-age head ({age['head']}) estimating the age typical of the drawing, in years"
        )
    lines = [
        f"# {'Stage' if has_stage else 'Drawing-age'} model {version}",
        "",
        f"Over a backbone embedding plus OpenCV drawing features: {'; '.join(what)}. "
        "Used only in unit-level aggregates; never to assess an individual child.",
        "",
        f"- Backbone: `{backbone}`",
        f"- Data: {data.get('description', '')} (n = {data.get('n', '?')}, "
        f"groups = {data.get('n_groups', '?')}, seed = {data.get('seed', '—')})",
        f"- Parameters: {', '.join(f'{k} = {v}' for k, v in params.items())}",
    ]
    if not has_stage:
        lines += [
            "- Stage head: **absent** (the labels had ages but no stages). `spira stages` gives "
            "drawing ages only, and the model cannot be promoted to score unit profiles' stages.",
        ]
    if not age:
        lines += ["- Drawing-age head: absent (the labels had no ages)."]
    if has_stage:
        lines += [
            "",
            "## Stage head: out-of-fold metrics (grouped cross-validation)",
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
    if age:
        lines += [
            "",
            "## Drawing-age head: heads compared by grouped cross-validation",
            "",
            "Out-of-fold predictions (groups never straddle folds); the head with the lowest MAE "
            "is kept. Hyper-parameters are chosen on the same folds.",
            "",
            "| head | Spearman with age | Pearson | MAE (years) | settings |",
            "|---|---|---|---|---|",
        ]
        for name, c in age["comparison"].items():
            settings = ", ".join(
                f"{k} = {v}" for k, v in c.items() if k not in ("spearman", "pearson", "mae", "n")
            )
            mark = " (chosen)" if name == age["head"] else ""
            lines.append(
                f"| {name}{mark} | {c['spearman']:.3f} | {c['pearson']:.3f} | {c['mae']:.2f} | "
                f"{settings} |"
            )
        lines += [
            "",
            f"Regression to the mean: out of fold, predicted = {age['bias_intercept']:.2f} + "
            f"{age['bias_slope']:.3f} × age. The raw gap (drawing age − age) correlates with age "
            f"at r = {age['gap_age_r_raw']:.3f}; after the correction (fitted on the other folds, "
            f"applied only where the actual age is known) r = {age['gap_age_r_corrected']:.3f}, "
            f"mean absolute corrected gap {age['corrected_mae']:.2f} years (n = {age['n']}). "
            "`spira stages` prints the raw drawing age; unit figures use the corrected gap.",
        ]
    if m.get("stage_with_age", {}).get("skipped"):
        lines += [
            "",
            "## Stage head given the drawing age",
            "",
            m["stage_with_age"]["skipped"] + ".",
        ]
    elif m.get("stage_with_age"):
        s = m["stage_with_age"]
        n = s.get("n", m.get("n", "?"))
        where = (
            f"n = {n} drawings in {s['groups']} groups, {s['folds']} grouped folds"
            if "groups" in s
            else f"n = {n}"
        )
        lines += [
            "",
            "## Stage head given the drawing age",
            "",
            "Trained with both stages and ages, the stage head was compared with the same head "
            "given the drawing age as one more input, on the same grouped folds; the age it reads "
            "is cross-fitted within each training fold (nested), so no row's age comes from an "
            "age head that saw its group.",
            "",
            "| stage head | out-of-fold QWK | MAE (stages) | accuracy |",
            "|---|---|---|---|",
            f"| alone | {s['qwk_without']:.3f} | {s['mae_without']:.3f} | "
            f"{s.get('accuracy_without', float('nan')):.3f} |",
            f"| with the drawing age ({s.get('age_head', 'age head')}) | {s['qwk_with']:.3f} | "
            f"{s['mae_with']:.3f} | {s.get('accuracy_with', float('nan')):.3f} |",
            "",
            f"{where}. "
            + (
                "Kept: it raises QWK and lowers MAE, so this model's stage head reads the age "
                "head's drawing age when it scores a photo."
                if s["kept"]
                else "Not kept (it must raise QWK and lower MAE): the stage head reads only "
                "the embedding and the drawing features."
            ),
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


def _age_svg(pred: np.ndarray, age: np.ndarray) -> str:
    size, pad = 260, 30
    lo = float(min(age.min(), pred.min()))
    hi = float(max(age.max(), pred.max()))
    span = hi - lo or 1.0

    def x(v: float) -> float:
        return pad + size * (v - lo) / span

    def y(v: float) -> float:
        return pad + size * (1 - (v - lo) / span)

    parts = [
        f'<svg width="{size + 2 * pad}" height="{size + 2 * pad}" role="img" '
        'aria-label="out-of-fold drawing age (vertical) against actual age (horizontal)">',
        f'<line x1="{x(lo)}" y1="{y(lo)}" x2="{x(hi)}" y2="{y(hi)}" stroke="#999" '
        'stroke-dasharray="4"/>',
    ]
    parts += [
        f'<circle cx="{x(a):.1f}" cy="{y(p):.1f}" r="2" fill="#47a" fill-opacity="0.5"/>'
        for a, p in zip(age, pred, strict=True)
    ]
    parts.append("</svg>")
    return "".join(parts)


def html_report(
    version: str,
    *,
    card_md: str,
    metrics: dict,
    oof_probs: np.ndarray | None,
    y: np.ndarray | None,
    age_oof: np.ndarray | None = None,
    ages: np.ndarray | None = None,
) -> str:
    """A self-contained HTML report: the card, the confusion matrix and a reliability diagram
    (with a stage head), out-of-fold drawing age against age (with an age head)."""
    legend = "".join(f"<li>{html.escape(d)}</li>" for d in STAGE_DESCRIPTIONS)
    parts = []
    if oof_probs is not None and y is not None:
        parts.append(
            f"<h2>Confusion matrix (out of fold)</h2>{_confusion_svg(metrics['confusion'])}"
            f"<h2>Reliability (after temperature scaling)</h2>{_reliability_svg(oof_probs, y)}"
        )
    if age_oof is not None and ages is not None:
        parts.append(
            "<h2>Drawing age against age (out of fold, raw)</h2>"
            f"{_age_svg(np.asarray(age_oof, float), np.asarray(ages, float))}"
        )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Stage model {html.escape(version)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;padding:0 1em}}
pre{{white-space:pre-wrap;background:#f6f6f6;padding:1em}}</style></head><body>
<h1>Stage model {html.escape(version)}</h1>
<pre>{html.escape(card_md)}</pre>
{"".join(parts)}
<h2>Stages</h2><ol start="0">{legend}</ol>
</body></html>"""
