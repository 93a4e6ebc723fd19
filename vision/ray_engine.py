"""Batch embedding on Ray: the local worker's pipeline as a Ray Data job, for queues one machine
cannot drain.

The same functions as :mod:`vision.worker` run in the same order, so a photo gets the same embedding
and stage probabilities whichever engine processed it:

1. the driver reads pending photo ids and content keys from the database, in windows;
2. CPU tasks (``map_batches``) read each stored processed JPEG, decode it reduced
   (:func:`vision.worker.decode_stored`), compute the drawing features
   (:func:`vision.model.drawing_features_batch`) and the backbone's input tensor
   (:func:`vision.embed.preprocess`);
3. actors holding an :class:`vision.embed.Embedder` embed the batches (one GPU per actor when the
   cluster has GPUs, else CPU actors) and score them with the stage head
   (:meth:`vision.model.StageModel.score_described`);
4. the driver writes each result batch back in one transaction, only for photos still pending, so an
   interrupted run resumes where it stopped and running beside the local worker does no harm.

Ray is imported inside the functions: the rest of Spira does not need it installed to import.
Every node must run the same Spira installation and see the same blob store (a shared file system
here; object storage in a larger deployment, see docs/scale.md).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.config import get_settings
from core.db import session_factory
from core.models import Embedding, Photo, StageEstimate
from core.storage import BlobStore
from vision.embed import create_embedder, load_backbone, preprocess
from vision.features import FEATURE_NAMES
from vision.model import StageModel, drawing_features_batch
from vision.stored import decode_stored
from vision.worker import MAX_ATTEMPTS, estimate_row

log = logging.getLogger(__name__)

#: Pending photos read from the database per Ray Data job (ids and keys only: ~100 bytes each).
WINDOW = 50_000


@dataclass(frozen=True)
class BackboneSetup:
    """What a Ray worker needs to rebuild the local worker's embedder, without the settings."""

    name: str
    weights: str | None
    version: str  # name@sha8 the stage model expects
    data_cfg: dict[str, Any]
    onnx_cache: str  # where the CPU runtime's exported graph is cached (shared by all actors)


def describe_batch(
    batch: dict[str, np.ndarray], *, storage_root: str, data_cfg: dict[str, Any]
) -> dict[str, np.ndarray]:
    """CPU stage: stored JPEG -> drawing features and the backbone's input tensor.

    ``batch`` holds ``photo_id`` and ``content_key`` (strings). Returns, row-aligned: ``photo_id``,
    ``error`` ("" when the image was read, else why not), ``features`` (n, f) float32 and ``pixels``
    (n, 3, H, W) float32, zeros for unreadable rows.
    """
    store = BlobStore(Path(storage_root))
    ids = [str(x) for x in batch["photo_id"]]
    images: list[np.ndarray] = []
    ok_rows: list[int] = []
    errors = [""] * len(ids)
    for i, key in enumerate(batch["content_key"]):
        try:
            images.append(decode_stored(store.get(str(key))))
            ok_rows.append(i)
        except (OSError, ValueError) as err:
            errors[i] = f"stored image unreadable: {err}"
    _, h, w = data_cfg["input_size"]
    features = np.zeros((len(ids), len(FEATURE_NAMES)), dtype=np.float32)
    pixels = np.zeros((len(ids), 3, h, w), dtype=np.float32)
    if images:
        # Ray already runs one task per CPU: no threads of our own inside a task.
        features[ok_rows] = drawing_features_batch(images, parallel=False)
        pixels[ok_rows] = preprocess(images, data_cfg)
    return {
        "photo_id": np.array(ids, dtype=object),
        "error": np.array(errors, dtype=object),
        "features": features,
        "pixels": pixels,
    }


class StageEmbedder:
    """Actor stage: holds one embedder (loaded once per actor) and the stage model.

    Called with :func:`describe_batch`'s output; returns ``photo_id``, ``error``, ``features``,
    ``vector`` (n, dim) float32 embeddings, ``probs`` (n, 5) stage probabilities and ``expected``
    (n,) expected stage, zeros for unreadable rows.
    """

    def __init__(self, model: StageModel, backbone: BackboneSetup, device: str) -> None:
        check_features(model)  # this node's code, which may differ from the driver's
        self.model = model
        self.embedder = create_embedder(
            backbone.name,
            weights=Path(backbone.weights) if backbone.weights else None,
            device="cuda" if device == "cuda" else "cpu",
            cache_dir=Path(backbone.onnx_cache),
        )
        if self.embedder.version != backbone.version:
            raise RuntimeError(
                f"this node's backbone is {self.embedder.version}, the stage model needs "
                f"{backbone.version}: install the same weights on every node"
            )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["photo_id"])
        ok = np.array([not e for e in batch["error"]], dtype=bool)
        vector = np.zeros((n, self.embedder.dim), dtype=np.float32)
        probs = np.zeros((n, 5), dtype=np.float64)
        expected = np.zeros(n, dtype=np.float64)
        if ok.any():
            vector[ok] = self.embedder.embed_pixels(np.ascontiguousarray(batch["pixels"][ok]))
            scores = self.model.score_described(vector[ok], batch["features"][ok])
            probs[ok] = scores.probs
            expected[ok] = scores.expected
        return {
            "photo_id": batch["photo_id"],
            "error": batch["error"],
            "features": batch["features"],
            "vector": vector,
            "probs": probs,
            "expected": expected,
        }


def pending_window(session: Session, after: str, limit: int) -> list[dict[str, str]]:
    """Up to ``limit`` pending photos with an id above ``after`` (ids ascending): id and content key."""
    rows = session.execute(
        select(Photo.id, Photo.content_key)
        .where(Photo.status == "pending", Photo.id > after)
        .order_by(Photo.id)
        .limit(limit)
    ).all()
    return [{"photo_id": r.id, "content_key": r.content_key} for r in rows]


def write_results(
    session: Session, batch: dict[str, np.ndarray], model: StageModel, backbone_version: str
) -> int:
    """Write one result batch in one transaction; returns the photos marked done.

    Only photos still ``pending`` are written (on PostgreSQL their rows are locked, skipping any a
    local worker holds), so a batch that another engine or an earlier run finished is skipped rather
    than duplicated. Unreadable images count an attempt and fail after ``MAX_ATTEMPTS``, as in the
    local worker.
    """
    ids = [str(x) for x in batch["photo_id"]]
    query = select(Photo).where(Photo.id.in_(ids), Photo.status == "pending")
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    photos = {p.id: p for p in session.scalars(query)}
    have_embedding = set(
        session.scalars(
            select(Embedding.photo_id).where(
                Embedding.photo_id.in_(ids), Embedding.model_version == backbone_version
            )
        )
    )
    have_estimate = set(
        session.scalars(
            select(StageEstimate.photo_id).where(
                StageEstimate.photo_id.in_(ids), StageEstimate.model_version == model.version
            )
        )
    )
    now = datetime.now(UTC)
    done = 0
    for i, pid in enumerate(ids):
        photo = photos.get(pid)
        if photo is None:
            continue
        error = str(batch["error"][i])
        if error:
            photo.attempts += 1
            photo.error = error
            photo.status = "failed" if photo.attempts >= MAX_ATTEMPTS else "pending"
            continue
        vector = np.asarray(batch["vector"][i], dtype="<f4")
        if pid not in have_embedding:
            session.add(
                Embedding(
                    photo_id=pid,
                    model_version=backbone_version,
                    dim=int(vector.shape[0]),
                    vector=vector.tobytes(),
                    features={
                        n: float(v)
                        for n, v in zip(model.feature_names, batch["features"][i], strict=True)
                    },
                )
            )
        if pid not in have_estimate:
            session.add(
                estimate_row(pid, model.version, batch["probs"][i], float(batch["expected"][i]))
            )
        photo.status = "done"
        photo.error = None
        photo.processed_at = now
        done += 1
    session.commit()
    return done


def backbone_setup(model: StageModel, onnx_cache: Path) -> BackboneSetup:
    """The backbone the stage model needs, checked against the configured weights before any Ray
    work starts (a mismatch raises RuntimeError naming both versions)."""
    weights = model.backbone_weights()
    _, data_cfg, sha = load_backbone(model.backbone, weights)
    version = f"{model.backbone}@{sha[:8]}"
    if version != model.backbone_version:
        raise RuntimeError(
            f"stage model {model.version} was trained on {model.backbone_version} embeddings but the "
            f"configured backbone gives {version}; set SPIRA_BACKBONE/SPIRA_BACKBONE_WEIGHTS"
        )
    return BackboneSetup(
        name=model.backbone,
        weights=str(Path(weights).resolve()) if weights else None,
        version=version,
        data_cfg=data_cfg,
        onnx_cache=str(onnx_cache.resolve()),
    )


def check_features(model: StageModel) -> None:
    """Raise RuntimeError when the model was trained on other drawing features than this code
    computes (their values would be fed to the head under the wrong names)."""
    if tuple(FEATURE_NAMES) != tuple(model.feature_names):
        raise RuntimeError(
            f"stage model {model.version} was trained on features {list(model.feature_names)}, this "
            f"code computes {list(FEATURE_NAMES)}; retrain the model (`spira train`) with this code"
        )


def run_ray(
    factory_url: str | None = None,
    *,
    address: str | None = None,
    batch_size: int = 32,
    num_cpus: int | None = None,
    num_actors: int | None = None,
    model: StageModel,
    window: int = WINDOW,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Embed and score every pending photo on Ray; returns the number of photos marked done.

    ``factory_url``: the database (default: ``SPIRA_DATABASE_URL`` / the SQLite file).
    ``address``: a running Ray cluster (``ray://host:10001`` or ``host:6379``); without it a local
    Ray instance is started with ``num_cpus`` CPUs (default: all) and no dashboard, and shut down
    afterwards. An already initialised Ray (``ray.is_initialized()``) is used as it is and left
    running. ``batch_size``: photos per CPU task, actor call and write transaction.
    ``num_actors``: embedding actors (default: one per GPU, else one per 4 CPUs, at least one).
    ``model``: the stage model (the caller loads it, e.g. the promoted one from
    :func:`training.model_files.load_model`). ``progress`` is called with the number
    of photos written after each transaction.
    """
    import ray  # lazy: Ray is optional and heavy (only `--engine ray`)

    settings = get_settings()
    check_features(model)
    backbone = backbone_setup(model, settings.models_path / "onnx")
    storage_root = str(settings.storage_path.resolve())
    factory: sessionmaker[Session] = session_factory(factory_url)

    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING)
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        gpus = int(ray.cluster_resources().get("GPU", 0))
        cpus = int(ray.cluster_resources().get("CPU", 1))
        if gpus:
            actors = num_actors or gpus
            actor_resources: dict[str, Any] = {"num_gpus": 1}
        else:
            actors = num_actors or max(1, cpus // 4)
            actor_resources = {"num_cpus": 1}
        device = "cuda" if gpus else "cpu"
        log.info("ray engine: %d %s actor(s), %d CPUs", actors, device, cpus)

        written, cursor = 0, ""
        while True:
            with factory() as session:
                items = pending_window(session, cursor, window)
            if not items:
                return written
            cursor = items[-1]["photo_id"]
            blocks = math.ceil(len(items) / batch_size)
            ds: Any = ray.data.from_items(items, override_num_blocks=blocks)
            ds = ds.map_batches(
                describe_batch,
                batch_size=batch_size,
                batch_format="numpy",
                fn_kwargs={"storage_root": storage_root, "data_cfg": backbone.data_cfg},
                num_cpus=1,
                # A task pool sized unlike the actor pool keeps Ray Data from fusing decoding into
                # the embedding actors: decoding spreads over every CPU, the few actors only embed.
                compute=ray.data.TaskPoolStrategy(size=max(cpus, actors + 1)),
            )
            ds = ds.map_batches(
                StageEmbedder,
                batch_size=batch_size,
                batch_format="numpy",
                fn_constructor_kwargs={"model": model, "backbone": backbone, "device": device},
                compute=ray.data.ActorPoolStrategy(size=actors),
                **actor_resources,
            )
            for result in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
                with factory() as session:
                    n = write_results(session, result, model, backbone.version)
                written += n
                if progress and n:
                    progress(n)
    finally:
        if started:
            ray.shutdown()
