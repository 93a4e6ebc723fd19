"""Fine-tuning the backbone on labelled drawings (``spira train --fine-tune``).

The frozen ImageNet backbone describes photographs; children's drawings are line work on paper,
and the distinctions between stages (closed shapes, a ground line, limbs attached to a body) are
not what ImageNet features were trained to separate. Fine-tuning adapts the backbone itself:

* The timm backbone gets a temporary cumulative-link head (one score, four ordered thresholds,
  the same ordinal model as :class:`vision.stages.OrdinalStageHead`) and both are trained with the
  summed binary cross-entropy of the four "stage > k" questions, which respects the order of the
  stages (predicting 1 for a 4 costs more than predicting 3).
* Drawings are augmented as a tablet photo of a drawing varies: a crop of 75–100 % of the sheet,
  mirroring, a few degrees of rotation, paper brightness and contrast. No colour hue changes:
  the number of colours is itself a feature.
* Batch normalisation keeps its ImageNet statistics (the BN layers stay in eval mode): with a few
  hundred drawings and small batches, re-estimating them does more harm than good.
* CUDA when present (bf16 autocast, channels_last), else the CPU in float32.

Only the backbone is kept. The model that is registered is then built exactly as for a frozen
backbone (``training.train.fit_and_register``): embeddings from the fine-tuned weights, drawing
features, the ordinal head with grouped cross-validation and temperature scaling. The weights are
saved in timm naming next to the head, so the CPU runtime serves them too, exported to ONNX and
checked for parity like the bundled weights (:func:`check_cpu_parity`).

Honest figures: the backbone is fine-tuned on the training groups only and a grouped hold-out
(``holdout`` of the groups, never seen by the fine-tuning) is scored by a head fitted on the
training groups; those are the ``holdout`` metrics on the model card. The cross-validated metrics
of the registered head include images the backbone was tuned on and are optimistic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from core.domain import N_STAGES
from vision.embed import create_embedder, load_backbone, preprocess, resolve_device

Progress = Callable[[int, int], None]

#: Long side, in pixels, the processed images are shrunk to once before training (the backbone
#: sees 224 px; the margin leaves room for crops and rotation without upsampling).
TRAIN_LONG_SIDE = 320


@dataclass
class FineTuneResult:
    """What fine-tuning produced: the weights file and how training went."""

    weights: Path
    device: str
    epochs: int
    train_n: int
    holdout_groups: list = field(default_factory=list)
    history: list[dict] = field(default_factory=list)  # per epoch: loss


def holdout_split(
    groups: np.ndarray, stages: np.ndarray, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, holdout): about ``share`` of the groups held out, whole groups only.

    Groups are drawn per stage of their first image so every stage stays represented on both
    sides when it can. ``share`` 0 holds nothing out.
    """
    groups = np.asarray(groups)
    holdout = np.zeros(len(groups), dtype=bool)
    if share <= 0:
        return ~holdout, holdout
    rng = np.random.default_rng(seed)
    unique, first = np.unique(groups, return_index=True)
    for stage in np.unique(stages):
        candidates = unique[np.asarray(stages)[first] == stage]
        k = int(round(len(candidates) * share))
        if len(candidates) >= 2 and k >= 1:
            chosen = rng.choice(candidates, size=min(k, len(candidates) - 1), replace=False)
            holdout |= np.isin(groups, chosen)
    return ~holdout, holdout


def _shrink(image: np.ndarray, long_side: int = TRAIN_LONG_SIDE) -> np.ndarray:
    scale = long_side / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A tablet photo's variations of a processed drawing (RGB uint8 in, RGB uint8 out)."""
    h, w = image.shape[:2]
    scale = math.sqrt(rng.uniform(0.75, 1.0))
    ch, cw = max(8, int(h * scale)), max(8, int(w * scale))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    out = image[y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    angle = float(rng.uniform(-8, 8))
    matrix = cv2.getRotationMatrix2D((cw / 2, ch / 2), angle, 1.0)
    paper = tuple(int(v) for v in np.median(out.reshape(-1, 3), axis=0))
    out = cv2.warpAffine(
        np.ascontiguousarray(out),
        matrix,
        (cw, ch),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=paper,
    )
    gain, bias = rng.uniform(0.85, 1.15), rng.uniform(-20, 20)
    return np.clip(out.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)


def _ordinal_loss(torch, score, thresholds, target):
    """Summed binary cross-entropy of P(stage > k) = sigmoid(score - threshold_k), k = 0..3."""
    logits = score[:, None] - thresholds[None, :]
    above = (target[:, None] > torch.arange(N_STAGES - 1, device=target.device)[None, :]).float()
    return torch.nn.functional.binary_cross_entropy_with_logits(
        logits.float(), above, reduction="sum"
    ) / len(target)


def fine_tune_backbone(
    images: Sequence[np.ndarray],
    stages: np.ndarray,
    out: Path,
    *,
    backbone: str,
    weights: Path | None = None,
    epochs: int = 4,
    batch_size: int = 16,
    lr: float = 1e-4,
    seed: int = 0,
    device: str = "auto",
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> FineTuneResult:
    """Fine-tune ``backbone`` (from ``weights``, default its bundled ones) on processed images
    with their stages; write the tuned weights (timm naming, no classifier) to ``out``.

    ``progress(done, total)`` is called after every batch. Raises ValueError for fewer than two
    stages or fewer images than one batch needs.
    """
    import torch  # lazy: torch takes seconds to import and only fine-tuning needs autograd
    from safetensors.torch import save_file  # lazy: imports torch

    stages = np.asarray(stages, dtype=np.int64)
    if len(np.unique(stages)) < 2:
        raise ValueError("fine-tuning needs labels of at least two stages")
    if len(images) < 2:
        raise ValueError("fine-tuning needs at least two labelled images")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = resolve_device(device)  # type: ignore[arg-type]
    model, cfg, _ = load_backbone(backbone, weights)
    model = model.to(device, memory_format=torch.channels_last)
    score_layer = torch.nn.Linear(int(model.num_features), 1).to(device)
    thresholds = torch.nn.Parameter(torch.linspace(-1.5, 1.5, N_STAGES - 1, device=device))
    optimiser = torch.optim.AdamW(
        [
            {"params": model.parameters(), "lr": lr},
            {"params": [*score_layer.parameters(), thresholds], "lr": lr * 10},
        ],
        weight_decay=1e-4,
    )
    small = [_shrink(img) for img in images]
    steps_per_epoch = math.ceil(len(small) / batch_size)
    total = steps_per_epoch * epochs
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=[lr, lr * 10], total_steps=total, pct_start=0.2
    )
    history: list[dict] = []
    done = 0
    for epoch in range(epochs):
        model.train()
        for module in model.modules():  # keep ImageNet's batch-norm statistics
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
        order = rng.permutation(len(small))
        losses = []
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = preprocess([augment(small[i], rng) for i in idx], cfg)
            x = torch.from_numpy(batch).to(device).contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(stages[idx]).to(device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
                score = score_layer(model(x))[:, 0]
            loss = _ordinal_loss(torch, score.float(), thresholds, y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
            done += 1
            if progress:
                progress(done, total)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses))})
        if log:
            log(f"fine-tuning epoch {epoch + 1}/{epochs}: ordinal loss {np.mean(losses):.3f}")
    model.eval()
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    save_file(state, str(tmp))
    tmp.replace(out)
    return FineTuneResult(
        weights=out, device=device, epochs=epochs, train_n=len(small), history=history
    )


def check_cpu_parity(
    backbone: str, weights: Path, images: Sequence[np.ndarray], *, least: float = 0.999
) -> float:
    """Embed ``images`` with PyTorch and with the CPU serving runtime (the weights exported to
    ONNX and compiled by OpenVINO); returns the lowest cosine similarity.

    Raises RuntimeError when it is below ``least``: such weights must not be served.
    """
    reference = create_embedder(backbone, weights=weights, device="cpu", runtime="torch")
    serving = create_embedder(backbone, weights=weights, device="cpu", runtime="auto")
    a, b = reference.embed(list(images)), serving.embed(list(images))
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    worst = float(cosine.min())
    if worst < least:
        raise RuntimeError(
            f"the CPU runtime's embeddings of {weights.name} differ from PyTorch's "
            f"(cosine {worst:.5f} < {least}); the export is broken, do not serve this model"
        )
    return worst


def parity_probes(n: int = 10, seed: int = 7) -> list[np.ndarray]:
    """Fixed images for the parity check: synthetic drawings of every stage, flat and
    photographed, plus skimage's astronaut (a natural photo)."""
    from skimage import data  # lazy: scikit-image is needed only for the parity probes

    from vision.synthetic import photograph, render_drawing  # lazy: scipy.stats, probes only

    rng = np.random.default_rng(seed)
    probes: list[np.ndarray] = [data.astronaut()]
    for i in range(n):
        drawing = render_drawing(i % N_STAGES, rng, size=448)
        probes.append(drawing if i % 2 == 0 else photograph(drawing, rng, (600, 450))[0])
    return probes
