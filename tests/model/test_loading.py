"""Loading from files with the official key names (written here at tiny
shapes), the project's own format, save/load round trips and the errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from anyref_ros.model import AnyRefConfig, AnyRefPipeline, get_preset
from anyref_ros.model.config import PromptConfig, RefocusConfig, TokenizerConfig, WeightsConfig
from anyref_ros.model.loading import ROW_OFFSETS, WeightsError, canonical
from anyref_ros.model.presets import TINY_WORDS
from anyref_ros.model.tokenization import build_word_level_tokenizer


def _state(pipe):
    return {canonical(k): v.detach().clone() for k, v in pipe.model.state_dict().items()}


def _same_outputs(a: AnyRefPipeline, b: AnyRefPipeline, image, describe=True):
    for name, tensor in _state(a).items():
        assert torch.equal(tensor, _state(b)[name]), name
    ra, rb = a.segment(image, text="the red cat"), b.segment(image, text="the red cat")
    assert np.array_equal(ra.mask, rb.mask) and ra.score == rb.score and ra.text == rb.text
    if describe:
        da, db = a.describe(image, (5, 5, 60, 50)), b.describe(image, (5, 5, 60, 50))
        assert da.answer == db.answer and np.array_equal(da.mask, db.mask)


def _base_tokenizer(folder: Path, extra=("<im_patch>", "<im_start>", "<im_end>")) -> int:
    """A LLaMA-like base vocabulary plus LLaVA's image tokens (its 32003);
    LISA's also has "[SEG]" (a normal token)."""
    tok = build_word_level_tokenizer(TINY_WORDS)
    for token in extra:
        tok.add_tokens([token], special_tokens=token != "[SEG]")
    tok.save_pretrained(str(folder))
    return len(tok)


def _reference(tmp: Path, config: AnyRefConfig, extra=("<im_patch>", "<im_start>", "<im_end>")):
    tokdir = tmp / "base_tokenizer"
    base_vocab = _base_tokenizer(tokdir, extra)
    config.tokenizer = TokenizerConfig(kind="pretrained", path=str(tokdir))
    config.weights = WeightsConfig(allow_random=True)
    return AnyRefPipeline.from_config(config, device="cpu"), base_vocab, tokdir


def _llava_names(state, base_vocab, lisa=False):
    out = {}
    for name, tensor in state.items():
        if "lora_" in name:
            continue
        if name.startswith("language_model.model."):
            out["model." + name[len("language_model.model."):]] = tensor
        elif name == "language_model.lm_head.weight":
            out["lm_head.weight"] = tensor
        elif name.startswith("mm_projector."):
            out["model." + name] = tensor
        elif lisa and name.startswith("sam."):
            out["model.visual_model." + name[4:]] = tensor
        elif lisa and name.startswith("text_hidden_fcs."):
            out["model.text_hidden_fcs.0." + name[len("text_hidden_fcs."):]] = tensor
        elif lisa and name.startswith("vision_tower."):
            out["model.vision_tower." + name] = tensor
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        out[key] = out[key][:base_vocab].clone()
    out["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(4)  # old LLaMA files
    return out


def _write_hf_folder(folder: Path, tensors, tokdir: Path, architecture: str, shards=2):
    folder.mkdir(parents=True)
    names = sorted(tensors)
    weight_map = {}
    for i in range(shards):
        part = {n: tensors[n].contiguous() for n in names[i::shards]}
        file = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
        torch.save(part, folder / file)
        weight_map.update({n: file for n in part})
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps({"architectures": [architecture],
                                                    "mm_use_im_start_end": True}))
    for f in tokdir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())


def _write_official(tmp: Path, ref, base_vocab, tokdir):
    state = _state(ref)
    llava = tmp / "LLaVA-7B-Lightening-v1-1"
    _write_hf_folder(llava, _llava_names(state, base_vocab), tokdir, "LlavaLlamaForCausalLM")
    clip = tmp / "clip-vit-large-patch14"
    clip.mkdir()
    tensors = {n[len("vision_tower."):]: t for n, t in state.items() if n.startswith("vision_tower.")}
    tensors["text_model.embeddings.token_embedding.weight"] = torch.zeros(3, 2)
    tensors["logit_scale"] = torch.tensor(2.0)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(clip / "model.safetensors"))
    (clip / "config.json").write_text("{}")
    sam = {n[4:]: t for n, t in state.items() if n.startswith("sam.")}
    torch.save(sam, tmp / "sam_vit_h_4b8939.pth")
    imagebind = {n[len("audio_encoder."):]: t for n, t in state.items() if n.startswith("audio_encoder.")}
    imagebind["modality_trunks.vision.blocks.0.attn.in_proj_weight"] = torch.zeros(3, 1)
    torch.save(imagebind, tmp / "imagebind_huge.pth")
    trained = {n: t for n, t in state.items()
               if "lora_" in n or n.startswith(("text_hidden_fcs.", "audio_projector.",
                                                "sam.mask_decoder.output_upscaling.",
                                                "language_model.lm_head."))}
    trained["language_model.model.embed_tokens.weight"] = \
        state["language_model.model.embed_tokens.weight"][base_vocab:].clone()
    offsets = {"language_model.model.embed_tokens.weight": base_vocab}
    save_file({k: v.contiguous() for k, v in trained.items()}, str(tmp / "anyref_trained.safetensors"),
              metadata={ROW_OFFSETS: json.dumps(offsets)})
    return WeightsConfig(llava="../" + llava.name, clip="../" + clip.name,
                         sam="../sam_vit_h_4b8939.pth", imagebind="../imagebind_huge.pth",
                         trained="../anyref_trained.safetensors")


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("official")
    ref, base_vocab, tokdir = _reference(tmp, get_preset("tiny"))
    weights = _write_official(tmp, ref, base_vocab, tokdir)
    ckpt = tmp / "anyref-official"
    config = copy.deepcopy(ref.config)
    config.tokenizer = TokenizerConfig(kind="pretrained")
    config.weights = weights
    config.save(ckpt)
    return ref, ckpt, base_vocab


def test_official_component_files_reproduce_the_model(official, image):
    ref, ckpt, base_vocab = official
    pipe = AnyRefPipeline.from_pretrained(ckpt, device="cpu")
    assert len(pipe.tokenizer) == base_vocab + 5  # [SEG] + 4 reference tokens added
    assert pipe.tokenizer.convert_tokens_to_ids("[SEG]") == base_vocab  # after LLaVA's tokens
    _same_outputs(ref, pipe, image)


def test_save_pretrained_keeps_official_files_referenced(official, image, tmp_path):
    ref, ckpt, base_vocab = official
    pipe = AnyRefPipeline.from_pretrained(ckpt, device="cpu")
    out = tmp_path / "saved"
    pipe.save_pretrained(out)
    assert not (out / "base.safetensors").exists()  # every base tensor has an official file
    from safetensors import safe_open

    with safe_open(str(out / "trained.safetensors"), framework="pt") as f:
        keys = set(f.keys())
        assert f.get_tensor("language_model.model.embed_tokens.weight").shape[0] == 5
    assert any("lora_A" in k for k in keys) and "text_hidden_fcs.0.weight" in keys
    assert not any(k.startswith(("sam.image_encoder", "vision_tower", "audio_encoder")) for k in keys)
    saved = json.loads((out / "config.json").read_text())
    assert not Path(saved["weights"]["sam"]).is_absolute()
    _same_outputs(ref, AnyRefPipeline.from_pretrained(out, device="cpu"), image)


def test_lisa_folder(tmp_path, image):
    cfg = get_preset("tiny")
    cfg.name, cfg.lora, cfg.audio = "tiny-lisa", None, None
    cfg.tokens.use_ref_tokens = False
    cfg.prompt = PromptConfig(questions={"text": "Can you segment the {expression} in this image?"},
                              forced_answer="It is [SEG].", max_new_tokens=8)
    cfg.refocus = RefocusConfig(segment=0.0, describe=0.0)
    ref, vocab, tokdir = _reference(tmp_path, cfg, extra=("<im_patch>", "<im_start>", "<im_end>", "[SEG]"))
    lisa = tmp_path / "LISA-7B-v1"
    _write_hf_folder(lisa, _llava_names(_state(ref), vocab, lisa=True), tokdir, "LISAForCausalLM")
    config = copy.deepcopy(ref.config)
    config.tokenizer = TokenizerConfig(kind="pretrained")
    config.weights = WeightsConfig(lisa=str(lisa))
    pipe = AnyRefPipeline.from_config(config, device="cpu")
    assert len(pipe.tokenizer) == vocab
    _same_outputs(ref, pipe, image, describe=False)
    assert pipe.segment(image, text="dog").text == "It is."
    with pytest.raises(ValueError, match="no audio branch"):
        pipe.segment(image, audio=np.zeros(16000, np.float32), sample_rate=16000)


def test_tiny_round_trip_is_bit_exact_and_self_contained(tiny, image, tmp_path):
    tiny.save_pretrained(tmp_path / "ckpt")
    names = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert {"config.json", "config.yaml", "tokenizer.json", "base.safetensors",
            "trained.safetensors"} <= names
    loaded = AnyRefPipeline.from_pretrained(tmp_path / "ckpt", device="cpu")
    assert loaded.config.weights.allow_random is False
    _same_outputs(tiny, loaded, image)
    # a YAML-only folder loads too (without the manifest, which lists config.json)
    (tmp_path / "ckpt" / "config.json").unlink()
    (tmp_path / "ckpt" / "SHA256SUMS").unlink()
    _same_outputs(tiny, AnyRefPipeline.from_pretrained(tmp_path / "ckpt", device="cpu"), image,
                  describe=False)


def test_missing_file_is_named(official, tmp_path):
    _, ckpt, _ = official
    config = AnyRefConfig.load(ckpt)
    config.weights.sam = "nowhere/sam_vit_h_4b8939.pth"
    with pytest.raises(WeightsError, match=r"weights\.sam.*sam_vit_h_4b8939\.pth.*does not exist"):
        AnyRefPipeline.from_config(config, device="cpu", folder=ckpt)


def test_wrong_shape_is_named(official, tmp_path):
    _, ckpt, _ = official
    sam = torch.load(ckpt.parent / "sam_vit_h_4b8939.pth", weights_only=True)
    sam["mask_decoder.iou_token.weight"] = torch.zeros(1, 7)
    torch.save(sam, tmp_path / "bad_sam.pth")
    config = AnyRefConfig.load(ckpt)
    config.weights.sam = str(tmp_path / "bad_sam.pth")
    with pytest.raises(WeightsError, match=r"bad_sam\.pth.*mask_decoder\.iou_token\.weight.*"
                                           r"\[1, 7\].*expected \[1, 32\]"):
        AnyRefPipeline.from_config(config, device="cpu", folder=ckpt)


def test_missing_trained_weights_say_what_to_do(official):
    _, ckpt, _ = official
    config = AnyRefConfig.load(ckpt)
    config.weights.trained = None
    with pytest.raises(WeightsError) as err:
        AnyRefPipeline.from_config(config, device="cpu", folder=ckpt)
    message = str(err.value)
    assert "lora_A" in message or "text_hidden_fcs" in message
    assert "weights.trained" in message and "what to do" in message


def test_file_of_another_model_is_rejected(official):
    _, ckpt, _ = official
    config = AnyRefConfig.load(ckpt)
    config.weights.clip = config.weights.sam  # a SAM file where CLIP is expected
    with pytest.raises(WeightsError, match="do not belong"):
        AnyRefPipeline.from_config(config, device="cpu", folder=ckpt)


def test_unknown_source_and_preset_errors():
    with pytest.raises(FileNotFoundError, match="neither a checkpoint folder nor a preset"):
        AnyRefPipeline.from_pretrained("no-such-model")
    with pytest.raises(FileNotFoundError, match="weights.llava"):
        AnyRefPipeline.from_pretrained("anyref-7b", device="cpu")
    with pytest.raises(ValueError, match="dtype"):
        AnyRefPipeline.from_pretrained("tiny", device="cpu", dtype="int8")
    with pytest.raises(ValueError, match="device"):
        AnyRefPipeline.from_pretrained("tiny", device="tpu")


def test_bf16_and_fp16_run(image):
    for dtype in ("bfloat16", "float16"):
        pipe = AnyRefPipeline.from_pretrained("tiny", device="cpu", dtype=dtype)
        assert pipe.model.dtype == getattr(torch, dtype)
        ref = pipe.segment(image, text="cat")
        assert ref.mask.shape == image.shape[:2]
