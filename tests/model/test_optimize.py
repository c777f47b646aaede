"""Inference forms of the model (``optimize.py``): merged LoRA, bitsandbytes
quantization, random full-size weights, compile. Real tiny torch models;
quantization runs bitsandbytes' CPU backend where it is installed."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from anyref_ros.model import AnyRefPipeline, get_preset
from anyref_ros.model import optimize as O
from anyref_ros.model.loading import canonical
from anyref_ros.model.prompts import IMAGE, build_prompt, tokenize_answer, tokenize_prompt
from anyref_ros.model.tokenization import add_model_tokens, build_stand_in_tokenizer

try:
    import bitsandbytes  # noqa: F401
    HAVE_BNB = True
except ImportError:
    HAVE_BNB = False


def forced_logits(pipe, features, text="the red cat"):
    """Logits of the forced pass of a text query (prompt + answer)."""
    prompt = build_prompt(pipe.config, "text", text, force=True)
    segments = tokenize_prompt(pipe.tokenizer, prompt.text, pipe.config)
    embeds, _ = pipe.model.embed_prompt(segments, {IMAGE: features.clip})
    answer = torch.tensor(tokenize_answer(pipe.tokenizer, prompt.answer))
    lm = pipe.model.language_model
    full = torch.cat([embeds, lm.get_input_embeddings()(answer).unsqueeze(0)], 1)
    with torch.no_grad():
        return lm(inputs_embeds=full).logits[0].float()


def lora_names(model):
    return [n for n, _ in model.named_modules() if "lora_" in n]


@pytest.fixture(scope="module")
def merged():
    return AnyRefPipeline.from_pretrained("tiny", device="cpu", merge_lora=True)


def test_merged_lora_gives_the_same_logits_and_answers(tiny, merged, taught, image, exemplar, sound):
    assert lora_names(tiny.model) and not lora_names(merged.model)
    assert merged.model.lora_merged
    # the same tensors by canonical name, except the merged projections
    plain = {canonical(k): v for k, v in tiny.model.state_dict().items() if "lora_" not in k}
    assert set(plain) == {canonical(k) for k in merged.model.state_dict()}
    fa, fb = tiny.encode_image(image), merged.encode_image(image)
    torch.testing.assert_close(forced_logits(tiny, fa), forced_logits(merged, fb), atol=1e-4, rtol=1e-4)
    for kwargs in ({"text": "the red cat"}, {"exemplar": exemplar}):
        a, b = tiny.segment(fa, **kwargs), merged.segment(fb, **kwargs)
        assert a.text == b.text and a.answer == b.answer
        assert np.array_equal(a.mask, b.mask) and a.score == pytest.approx(b.score, abs=1e-5)
    a, b = tiny.describe(fa, (5, 5, 60, 50)), merged.describe(fb, (5, 5, 60, 50))
    assert a.text == b.text
    # a taught adapter (trained weights, answers "cat[SEG].") merges to the same answers
    tmerged = AnyRefPipeline.from_pretrained("tiny", device="cpu", merge_lora=True)
    tmerged.model.load_state_dict(_merged_state(taught), strict=True)
    ft, fm = taught.encode_image(image), tmerged.encode_image(image)
    for kwargs in ({"exemplar": exemplar}, {"audio": sound[0], "sample_rate": sound[1]}):
        a, b = taught.segment(ft, **kwargs), tmerged.segment(fm, **kwargs)
        assert a.text == b.text and a.text.startswith("cat") and len(a.masks) == len(b.masks) == 1
        assert np.array_equal(a.mask, b.mask)


def _merged_state(pipe):
    """``pipe``'s weights with its LoRA adapter merged (a copy; ``pipe`` unchanged)."""
    import copy

    lm = copy.deepcopy(pipe.model.language_model)
    assert O.merge_lora(lm) == 2 * pipe.config.language.num_hidden_layers
    return {**{k: v for k, v in pipe.model.state_dict().items() if not k.startswith("language_model.")},
            **{"language_model." + k: v for k, v in lm.state_dict().items()}}


def test_unmerged_pipeline_keeps_the_trainable_adapter(tiny, merged, tmp_path):
    assert not getattr(tiny.model, "lora_merged", False)
    assert any("lora_A" in n for n, _ in tiny.model.named_parameters())
    with pytest.raises(ValueError, match="merge_lora=False"):
        merged.save_pretrained(tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()


def test_random_weights_build_the_preset_on_the_target_device_and_dtype(image):
    pipe = AnyRefPipeline.from_pretrained("tiny", device="cpu", dtype="bfloat16", random_weights=True)
    params = dict(pipe.model.named_parameters())
    assert all(p.device.type == "cpu" for p in params.values())
    assert {p.dtype for p in params.values()} == {torch.bfloat16}
    pe = pipe.model.sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
    assert pe.dtype == torch.float32 and pe.abs().sum() > 0  # a real buffer, kept float32
    inv_freq = pipe.model.language_model.model.rotary_emb.inv_freq
    assert torch.isfinite(inv_freq.float()).all() and inv_freq.float().max() == pytest.approx(1.0)
    norm = pipe.model.language_model.model.norm.weight
    assert torch.all(norm == 1)
    weight = pipe.model.language_model.model.layers[0].mlp.up_proj.weight.float()
    assert weight.std().item() == pytest.approx(O.INIT_STD, rel=0.1)
    assert all(v is None for v in pipe.sources.values())
    ref = pipe.segment(image, text="the red cup")
    assert ref.mask.shape == image.shape[:2] and ref.decoding == "forced"
    # deterministic: the same seed gives the same weights
    again = AnyRefPipeline.from_pretrained("tiny", device="cpu", dtype="bfloat16", random_weights=True)
    assert torch.equal(again.model.language_model.lm_head.weight, pipe.model.language_model.lm_head.weight)


def test_random_weights_of_a_full_size_preset_need_no_files(image):
    """anyref-7b's code path (pretrained tokenizer kind, no weight files) at
    reduced sizes: a stand-in tokenizer of the preset's vocabulary size."""
    config = get_preset("anyref-7b")
    config.vision.num_hidden_layers = 1
    config.vision.hidden_size, config.vision.intermediate_size, config.vision.num_attention_heads = 64, 128, 2
    lang = config.language
    lang.hidden_size, lang.intermediate_size, lang.num_hidden_layers = 64, 128, 1
    lang.num_attention_heads = lang.num_key_value_heads = 2
    config.sam.encoder_embed_dim, config.sam.encoder_depth, config.sam.encoder_num_heads = 32, 1, 1
    config.sam.encoder_global_attn_indexes, config.sam.image_size = (0,), 256
    config.audio.embed_dim, config.audio.num_blocks, config.audio.num_heads = 32, 1, 1
    config.prompt.max_new_tokens = 3
    with pytest.raises(FileNotFoundError, match="weights.llava"):
        AnyRefPipeline.from_config(config, device="cpu")
    pipe = AnyRefPipeline.from_config(config, device="cpu", dtype="float32", random_weights=True,
                                      merge_lora=True)
    assert len(pipe.tokenizer) == 32008 == pipe.model.language_model.lm_head.weight.shape[0]
    assert not lora_names(pipe.model)
    assert pipe.segment(image, text="the red cup").mask.shape == image.shape[:2]
    assert isinstance(pipe.describe(image, (5, 5, 60, 50)).text, str)


def test_stand_in_tokenizer_has_the_vocabulary_size_of_the_preset():
    for name, size in (("anyref-7b", 32008), ("lisa-7b", 32004)):
        config = get_preset(name)
        tok = build_stand_in_tokenizer(config)
        add_model_tokens(tok, config.tokens)
        assert len(tok) == size
        assert tok.tokenize("Can you segment the red cup?")[-1] == "?"


def test_quantization_option_values():
    assert O.resolve_quantization(None, "4bit") == "4bit"
    assert O.resolve_quantization("none", "4bit") is None
    assert O.resolve_quantization(None, None) is None
    assert O.resolve_quantization("8BIT") == "8bit"
    with pytest.raises(ValueError, match="none, 8bit or 4bit"):
        O.resolve_quantization("3bit")


def test_quantization_without_bitsandbytes_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install .*bitsandbytes.* or set quantization: none"):
        AnyRefPipeline.from_pretrained("tiny", device="cpu", quantization="4bit")
    old = types.ModuleType("bitsandbytes")
    old.__version__ = "0.43.1"  # before its CPU backend
    monkeypatch.setitem(sys.modules, "bitsandbytes", old)
    with pytest.raises(ValueError, match="needs bitsandbytes and a CUDA GPU.*got device cpu"):
        AnyRefPipeline.from_pretrained("tiny", device="cpu", quantization="8bit")


@pytest.mark.skipif(not HAVE_BNB, reason="needs bitsandbytes")
@pytest.mark.parametrize("mode", ["8bit", "4bit"])
def test_quantized_language_model_answers(tiny, image, mode, tmp_path):
    pipe = AnyRefPipeline.from_pretrained("tiny", device="cpu", quantization=mode, merge_lora=True)
    assert pipe.config.quantization == mode and O.is_quantized(pipe.model)
    layer = pipe.model.language_model.model.layers[0]
    kinds = {type(m).__name__ for m in (layer.self_attn.q_proj, layer.mlp.down_proj)}
    assert kinds == {"Linear8bitLt" if mode == "8bit" else "Linear4bit"}
    # only the decoder layers' projections: embeddings, head, vision, SAM untouched
    assert pipe.model.language_model.lm_head.weight.dtype == torch.float32
    assert pipe.model.sam.mask_decoder.iou_prediction_head.layers[0].weight.dtype == torch.float32
    ref = pipe.segment(image, text="the red cat")
    want = tiny.segment(image, text="the red cat")
    assert ref.text == want.text and np.mean(ref.mask == want.mask) > 0.9
    with pytest.raises(ValueError, match="cannot be saved"):
        pipe.save_pretrained(tmp_path / "q")
    # the unmerged adapter stays in full precision around a quantized base layer
    unmerged = AnyRefPipeline.from_pretrained("tiny", device="cpu", quantization=mode)
    q = unmerged.model.language_model.model.layers[0].self_attn.q_proj
    assert O._is_lora(q) and type(q.base_layer).__module__.startswith("bitsandbytes")
    assert unmerged.segment(image, text="the red cat").text == want.text


@pytest.mark.skipif(not HAVE_BNB, reason="needs bitsandbytes")
def test_quantization_shrinks_the_language_model_weights():
    sizes = {}
    for mode in ("none", "8bit", "4bit"):
        pipe = AnyRefPipeline.from_pretrained("tiny", device="cpu", dtype="bfloat16", quantization=mode,
                                              merge_lora=True, random_weights=True)
        layers = pipe.model.language_model.model.layers
        sizes[mode] = sum(t.numel() * t.element_size() for t in layers.parameters())
    assert sizes["8bit"] < 0.6 * sizes["none"] and sizes["4bit"] < 0.35 * sizes["none"]


def test_compile_is_skipped_off_cuda(image):
    pipe = AnyRefPipeline.from_pretrained("tiny", device="cpu", compile=True)
    assert not hasattr(pipe.model.language_model, "_compiled_call_impl") or \
        pipe.model.language_model._compiled_call_impl is None
    assert pipe.segment(image, text="cat").mask.shape == image.shape[:2]
