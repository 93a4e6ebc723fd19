"""The ``spira train`` job: gather labelled images, describe them, fit, register, optionally promote."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from core.config import get_settings
from training.finetune import check_cpu_parity, fine_tune_backbone, holdout_split
from training.fit import fit_stage_head
from training.labels import images_from_annotations
from training.metrics import stage_metrics
from training.model_files import models_dir
from training.registry import promote as promote_version
from training.train import (
    Described,
    describe_images,
    fit_and_register,
    labelled_from_csv,
    synthetic_labelled,
)
from vision.model import stage_inputs


class TrainingError(Exception):
    pass


def run_training(
    factory: sessionmaker[Session],
    *,
    synthetic: bool = False,
    csv: Path | None = None,
    from_label_studio: bool = False,
    n: int = 500,
    seed: int = 0,
    promote: bool = False,
    fine_tune: bool = False,
    epochs: int = 4,
    holdout: float = 0.2,
    device: str = "auto",
    progress: Any = None,
    log: Callable[[str], None] = print,
) -> str:
    """Run one training job; returns the new model version.

    ``fine_tune``: also fine-tune the backbone for ``epochs`` on all but a grouped ``holdout``
    share of the groups (see :mod:`training.finetune`), on ``device`` ("auto": CUDA when
    present)."""

    def step(description: str):
        if progress is None:
            return None
        task = progress.add_task(description, total=None)
        return lambda done, total: progress.update(task, completed=done, total=total)

    human = None
    ages = None
    if synthetic:
        labelled = synthetic_labelled(n, seed, progress=step("generating drawings"))
        images, stages, ages, groups = (
            labelled.images,
            labelled.stages,
            labelled.ages,
            labelled.groups,
        )
        data = {
            "description": f"synthetic drawings, mixed media (seed {seed})",
            "n": n,
            "seed": seed,
            "source": "synthetic",
        }
    elif csv is not None:
        try:
            labelled = labelled_from_csv(csv, progress=step("reading labelled files"))
        except ValueError as err:
            raise TrainingError(str(err)) from None
        images, stages, ages, groups = (
            labelled.images,
            labelled.stages,
            labelled.ages,
            labelled.groups,
        )
        data = {
            "description": f"labelled files from {csv.name}",
            "n": len(images),
            "source": str(csv),
            "labels": [k for k, v in (("stage", stages), ("age", ages)) if v is not None],
        }
    else:
        with factory() as session:
            try:
                images, stages, groups, human = images_from_annotations(session)
            except ValueError as err:
                raise TrainingError(str(err)) from None
        data = {
            "description": "researchers' labels from Label Studio",
            "n": len(stages),
            "source": "label_studio",
        }
    if stages is not None and len(np.unique(stages)) < 2:
        raise TrainingError("the labels cover fewer than two stages; label more photos first")
    if ages is not None and (len(ages) < 10 or np.ptp(ages) < 0.5):
        raise TrainingError(
            "an age model needs at least 10 drawings whose ages span half a year or more; "
            f"got {len(ages)} spanning {np.ptp(ages) if len(ages) else 0:.2f} years"
        )
    groups = np.asarray(groups)
    data["n_groups"] = int(len(np.unique(groups)))
    if len(np.unique(groups)) < 2:
        raise TrainingError(
            "all rows are in one group; grouped cross-validation needs two groups or more"
        )
    if fine_tune:
        if stages is None:
            raise TrainingError("--fine-tune needs stage labels (a stage column)")
        stages = np.asarray(stages)
        with tempfile.TemporaryDirectory(dir=_scratch_dir()) as scratch:
            tuned = _fine_tune(
                images, stages, groups, Path(scratch), epochs, holdout, seed, device, step, log
            )
            tuned.described.ages = ages
            with factory() as session:
                model, fit = fit_and_register(
                    tuned.described,
                    data=data,
                    seed=seed,
                    session=session,
                    human_agreement=human,
                    backbone_weights=tuned.weights,
                    extra_metrics=tuned.metrics,
                    extra_params=tuned.params,
                    log=log,
                )
                session.commit()
    else:
        emb, feats, backbone_version = describe_images(images, progress=step("embedding"))
        described = Described(emb, feats, stages, groups, backbone_version, ages)
        with factory() as session:
            model, fit = fit_and_register(
                described, data=data, seed=seed, session=session, human_agreement=human, log=log
            )
            session.commit()
    with factory() as session:
        if fit is not None:
            m = fit.metrics
            log(
                f"out-of-fold: qwk {m['qwk']:.3f}, MAE {m['mae']:.3f} stages, "
                f"accuracy {m['accuracy']:.3f}, ECE {m['ece']:.3f} (n={m['n']})"
            )
        if model.age_head is not None:
            a = fit_age_metrics(model)
            if a:
                log(
                    f"drawing age ({a['head']}), out-of-fold: Spearman {a['spearman']:.3f}, "
                    f"MAE {a['mae']:.2f} years; gap–age r {a['gap_age_r_raw']:.2f} raw, "
                    f"{a['gap_age_r_corrected']:.2f} corrected (n={a['n']})"
                )
        if promote:
            if model.head is None:
                log(
                    f"not promoted: {model.version} has no stage head (trained on ages alone); "
                    "use it with `spira stages --model`"
                )
            else:
                rescored = promote_version(model.version, session=session)
                session.commit()
                log(f"promoted {model.version}; re-scored {rescored} stored photo(s)")
    return model.version


def fit_age_metrics(model) -> dict | None:
    """The drawing-age figures stored with a registered model (None when it has none)."""
    meta = json.loads((models_dir() / model.version / "model.json").read_text())
    return meta.get("metrics", {}).get("age")


def _scratch_dir() -> Path:
    models_dir().mkdir(parents=True, exist_ok=True)
    return models_dir()


@dataclass
class _Tuned:
    described: Described
    weights: Path
    metrics: dict
    params: dict


def _fine_tune(images, stages, groups, scratch: Path, epochs, holdout, seed, device, step, log):
    """Fine-tune on the training groups, check the CPU runtime, describe every image with the
    tuned backbone, and score the held-out groups with a head fitted on the training groups (and,
    for comparison, the same with the frozen backbone)."""
    backbone = get_settings().backbone
    train, held = holdout_split(groups, stages, holdout, seed)
    if held.any() and len(np.unique(stages[train])) < 2:
        raise TrainingError("too few groups to hold some out; label more photos or use --holdout 0")
    log(
        f"fine-tuning {backbone} on {int(train.sum())} image(s); {int(held.sum())} held out "
        f"({len(np.unique(groups[held]))} group(s))"
    )
    try:
        result = fine_tune_backbone(
            [images[i] for i in np.flatnonzero(train)],
            stages[train],
            scratch / "backbone.safetensors",
            backbone=backbone,
            weights=get_settings().backbone_weights,
            epochs=epochs,
            seed=seed,
            device=device,
            progress=step("fine-tuning the backbone"),
            log=log,
        )
    except ValueError as err:
        raise TrainingError(str(err)) from None
    parity = check_cpu_parity(
        backbone, result.weights, [images[i] for i in range(min(16, len(images)))]
    )
    log(f"CPU runtime parity with PyTorch: lowest cosine {parity:.5f}")
    emb, feats, version = describe_images(
        images, backbone=backbone, weights=result.weights, progress=step("embedding (tuned)")
    )
    metrics: dict = {"cpu_runtime_parity": parity, "fine_tune_history": result.history}
    if held.any():
        frozen_emb, _, _ = describe_images(
            images, backbone=backbone, progress=step("embedding (frozen, for comparison)")
        )
        for name, vectors in (("holdout", emb), ("holdout_frozen_backbone", frozen_emb)):
            X = stage_inputs(vectors, feats)
            head = fit_stage_head(X[train], stages[train], groups[train], seed=seed).head
            metrics[name] = stage_metrics(head.predict_proba(X[held]), stages[held])
        h, f = metrics["holdout"], metrics["holdout_frozen_backbone"]
        log(
            f"held-out groups (n={h['n']}): qwk {h['qwk']:.3f} tuned vs {f['qwk']:.3f} frozen, "
            f"MAE {h['mae']:.3f} vs {f['mae']:.3f}"
        )
    params = {
        "fine_tune": {
            "epochs": epochs,
            "holdout": holdout,
            "device": result.device,
            "train_n": result.train_n,
        }
    }
    return _Tuned(Described(emb, feats, stages, groups, version), result.weights, metrics, params)
