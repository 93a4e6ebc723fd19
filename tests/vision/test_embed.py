"""The backbone: real pretrained weights, preprocessing from their config, ONNX parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from vision.embed import create_embedder, list_backbones, load_backbone, preprocess


def test_bundled_weights_classify_chelsea_as_a_cat():
    # A broken key mapping or wrong preprocessing cannot pass: chance would be p ~ 0.001.
    model, cfg, _ = load_backbone("efficientnet_lite0", with_classifier=True)
    x = torch.from_numpy(preprocess([data.chelsea()], cfg))
    with torch.no_grad():
        p = model(x).softmax(-1)[0]
    assert 281 <= int(p.argmax()) <= 285
    assert float(p.max()) > 0.5


def test_preprocessing_comes_from_the_weights_config():
    _, cfg, _ = load_backbone("efficientnet_lite0")
    assert cfg["input_size"] == (3, 224, 224)
    assert tuple(cfg["mean"]) == (0.5, 0.5, 0.5)
    batch = preprocess([np.full((300, 500, 3), 255, np.uint8)], cfg)
    assert batch.shape == (1, 3, 224, 224)
    assert np.allclose(batch, 1.0)  # white maps to (1 - 0.5) / 0.5


def test_unknown_backbone_lists_known_ones():
    with pytest.raises(KeyError, match="efficientnet_lite0"):
        load_backbone("no_such_backbone_xyz")


def test_other_timm_model_needs_local_weights(tmp_path):
    import timm

    net = timm.create_model("resnet10t", pretrained=False)
    path = tmp_path / "w.pth"
    torch.save(net.state_dict(), path)
    model, cfg, sha = load_backbone("resnet10t", weights=path)
    assert model.num_features == 512 and len(sha) == 64
    with pytest.raises(FileNotFoundError, match="SPIRA_BACKBONE_WEIGHTS"):
        load_backbone("resnet10t")
    assert "efficientnet_lite0" in list_backbones()


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_cpu_runtime_matches_pytorch(onnx_cache, runtime):
    from vision.synthetic import generate_dataset

    drawings, _ = generate_dataset(6, seed=3, photographed=True)
    images = [data.chelsea(), data.astronaut(), data.coffee(), *drawings]
    onnx = create_embedder(
        "efficientnet_lite0", device="cpu", runtime=runtime, cache_dir=onnx_cache
    )
    eager = create_embedder(
        "efficientnet_lite0", device="cpu", runtime="torch", cache_dir=onnx_cache
    )
    a, b = onnx.embed(images), eager.embed(images)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert a.shape == (len(images), 1280)
    assert cos.min() >= 0.999
    assert onnx.version == eager.version and onnx.version.startswith("efficientnet_lite0@")


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_one_thread_inference_gives_the_same_embeddings(onnx_cache, runtime):
    """`threads=1` (what `spira stages` asks for while its cores decode) is its own cached
    embedder, configured for one thread, and embeds as the default one does."""
    images = [data.chelsea(), data.coffee()]
    default = create_embedder(
        "efficientnet_lite0", device="cpu", runtime=runtime, cache_dir=onnx_cache
    )
    single = create_embedder(
        "efficientnet_lite0", device="cpu", runtime=runtime, cache_dir=onnx_cache, threads=1
    )
    assert single is not default and single.threads == 1 and default.threads is None
    if runtime == "openvino":
        assert single._ov.get_property("INFERENCE_NUM_THREADS") == 1
    else:
        assert single._ort.get_session_options().intra_op_num_threads == 1
    np.testing.assert_allclose(single.embed(images), default.embed(images), rtol=1e-4, atol=1e-5)
