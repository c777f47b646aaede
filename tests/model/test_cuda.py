"""The tiny model on a CUDA device (skipped where torch sees none)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anyref_ros.model import AnyRefPipeline

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_cuda_matches_cpu(tiny, image, sound):
    gpu = AnyRefPipeline.from_pretrained("tiny", device="cuda:0", dtype="float32")
    assert gpu.model.device == torch.device("cuda", 0)
    for kwargs in ({"text": "the red cat"}, {"text": "cat", "audio": sound[0], "sample_rate": sound[1]}):
        a, b = tiny.segment(image, **kwargs), gpu.segment(image, **kwargs)
        assert np.mean(a.mask == b.mask) > 0.99 and a.score == pytest.approx(b.score, abs=1e-3)
    d = gpu.describe(image, (5, 5, 60, 50))
    assert d.mask.shape == image.shape[:2]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_cuda_half_precision(image, exemplar, dtype):
    pipe = AnyRefPipeline.from_pretrained("tiny", device="cuda", dtype=dtype)
    feats = pipe.encode_image(image)
    assert feats.sam_embedding.dtype == getattr(torch, dtype)
    for ref in (pipe.segment(feats, text="cat"), pipe.segment(feats, exemplar=exemplar),
                pipe.describe(feats, (0, 0, 40, 30))):
        assert ref.mask.shape == image.shape[:2] and np.isfinite(ref.score)


def test_cuda_saved_checkpoint_loads_on_cuda(tiny, image, tmp_path):
    tiny.save_pretrained(tmp_path / "ckpt")
    pipe = AnyRefPipeline.from_pretrained(tmp_path / "ckpt", device="cuda:0")
    ref = pipe.segment(image, text="cat")
    assert ref.mask.shape == image.shape[:2]


@pytest.mark.parametrize("mode", ["8bit", "4bit"])
def test_cuda_quantized_merged_random_and_compiled(image, mode):
    pytest.importorskip("bitsandbytes")
    pipe = AnyRefPipeline.from_pretrained("tiny", device="cuda", dtype="bfloat16", quantization=mode,
                                          merge_lora=True, random_weights=True, compile=True)
    q_proj = pipe.model.language_model.model.layers[0].self_attn.q_proj
    assert type(q_proj).__module__.startswith("bitsandbytes") and q_proj.weight.device.type == "cuda"
    feats = pipe.encode_image(image)
    first = pipe.segment(feats, text="cat")
    assert first.mask.shape == image.shape[:2]
    assert np.array_equal(pipe.segment(feats, text="cat").mask, first.mask)  # compiled: same again
