"""The ``spira train`` job: gather labelled images, describe them, fit, register, optionally promote."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from training.train import (
    Described,
    describe_images,
    fit_and_register,
    images_from_csv,
    synthetic_images,
)


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
    progress: Any = None,
    log: Callable[[str], None] = print,
) -> str:
    """Run one training job; returns the new model version."""
    from training.registry import promote as promote_version

    def step(description: str):
        if progress is None:
            return None
        task = progress.add_task(description, total=None)
        return lambda done, total: progress.update(task, completed=done, total=total)

    human = None
    if synthetic:
        images, stages, groups = synthetic_images(n, seed, progress=step("generating drawings"))
        data = {
            "description": f"synthetic drawings (seed {seed})",
            "n": n,
            "seed": seed,
            "source": "synthetic",
        }
    elif csv is not None:
        try:
            images, stages, groups = images_from_csv(csv, progress=step("reading labelled files"))
        except ValueError as err:
            raise TrainingError(str(err)) from None
        data = {
            "description": f"labelled files from {csv.name}",
            "n": len(stages),
            "source": str(csv),
        }
    else:
        from training.labels import images_from_annotations

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
    if len(np.unique(stages)) < 2:
        raise TrainingError("the labels cover fewer than two stages; label more photos first")
    data["n_groups"] = int(len(np.unique(groups)))
    emb, feats, backbone_version = describe_images(images, progress=step("embedding"))
    described = Described(emb, feats, np.asarray(stages), np.asarray(groups), backbone_version)
    with factory() as session:
        model, fit = fit_and_register(
            described, data=data, seed=seed, session=session, human_agreement=human, log=log
        )
        session.commit()
        m = fit.metrics
        log(
            f"out-of-fold: qwk {m['qwk']:.3f}, MAE {m['mae']:.3f} stages, accuracy {m['accuracy']:.3f}, "
            f"ECE {m['ece']:.3f} (n={m['n']})"
        )
        if promote:
            rescored = promote_version(model.version, session=session)
            session.commit()
            log(f"promoted {model.version}; re-scored {rescored} stored photo(s)")
    return model.version
