"""Config IO, presets, the tokenizer, pre-processing and the summary."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from anyref_ros.model import AnyRefConfig, get_preset, preset_names, register_preset
from anyref_ros.model import processing as P
from anyref_ros.model.prompts import build_prompt, tokenize_prompt
from anyref_ros.model.summary import summary
from anyref_ros.model.tokenization import TokenIds, make_tokenizer


def test_presets_and_registry():
    assert {"anyref-7b", "lisa-7b", "tiny"} <= set(preset_names())
    cfg = get_preset("anyref-7b")
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout) == (8, 16, 0.05)
    assert cfg.lora.target_modules == ("q_proj", "v_proj")
    assert (cfg.refocus.segment, cfg.refocus.describe) == (0.1, 0.0)
    assert cfg.prompt.image_ref_num == 4 and cfg.audio.num_clips == 3
    assert cfg.vision.select_layer == -2 and not cfg.vision.center_crop
    assert get_preset("lisa-7b").audio is None
    register_preset("tiny-copy", lambda: get_preset("tiny"))
    assert "tiny-copy" in preset_names()
    with pytest.raises(KeyError, match="known presets"):
        get_preset("nope")


@pytest.mark.parametrize("suffix", ["json", "yaml"])
def test_config_round_trip(tmp_path, suffix):
    cfg = get_preset("anyref-7b")
    cfg.weights.sam = "sam_vit_h_4b8939.pth"
    cfg.save(tmp_path)
    loaded = AnyRefConfig.load(tmp_path / f"config.{suffix}")
    assert loaded == cfg
    data = json.loads((tmp_path / "config.json").read_text())
    data["sam"]["bogus"] = 1
    with pytest.raises(ValueError, match="unknown keys.*bogus"):
        AnyRefConfig.from_dict(data)


def test_tokens_added_in_order_and_ids_looked_up():
    cfg = get_preset("tiny")
    tok = make_tokenizer(cfg)
    added = [t for t, _ in cfg.tokens.added_tokens()]
    assert added == ["[SEG]", "<im_start>", "<im_end>", "<aud_ref_start>", "<aud_ref_end>",
                     "<img_ref_start>", "<img_ref_end>"]
    ids = [tok.convert_tokens_to_ids(t) for t in added]
    assert ids == sorted(ids) and ids[-1] == len(tok) - 1
    token_ids = TokenIds(tok, cfg.tokens)
    assert token_ids.seg == ids[0] and ids[0] not in token_ids.special
    assert tok.decode(tok.encode("the red cat[SEG].", add_special_tokens=False)) == "the red cat[SEG]."


def test_prompt_templates_and_placeholders():
    cfg = get_preset("tiny")
    p = build_prompt(cfg, "text+audio", "the dog")
    assert p.answer == "the dog[SEG]."
    assert p.text.startswith("A chat between a curious human and an artificial intelligence "
                             "assistant. The assistant gives helpful, detailed, and polite answers "
                             "to the human's questions. USER: <im_start><image><im_end>\n")
    assert ("Can you segment the dog with the following audio "
            "<aud_ref_start><aud_ref><aud_ref><aud_ref><aud_ref_end> in this image? ASSISTANT:") in p.text
    ex = build_prompt(cfg, "exemplar")
    assert ex.answer is None and ex.text.count("<img_ref>") == 4
    region = build_prompt(cfg, "region")
    assert "provide a description of the region <img_ref_start>" in region.text
    segments = tokenize_prompt(make_tokenizer(cfg), ex.text, cfg)
    assert [s for s in segments if isinstance(s, str)] == ["image"] + ["image_ref"] * 4
    assert segments[0] == [make_tokenizer(cfg).bos_token_id]


def test_clip_and_sam_preprocessing():
    img = np.zeros((30, 90, 3), np.uint8)
    img[..., 0] = 255
    cfg = get_preset("anyref-7b")
    x = P.clip_pixels(img, cfg.vision)
    assert x.shape == (1, 3, 224, 224)
    torch.testing.assert_close(x[0, 0, 0, 0], torch.tensor((1 - 0.48145466) / 0.26862954))
    s, resized = P.sam_pixels(img, cfg.sam)
    assert s.shape == (1, 3, 1024, 1024) and resized == (341, 1024)
    assert float(s[0, :, 400:, :].abs().sum()) == 0.0  # zero padding at the bottom
    torch.testing.assert_close(s[0, 0, 0, 0], torch.tensor((255 - 123.675) / 58.395))
    crop = P.clip_pixels(img, get_preset("lisa-7b").vision)  # shortest side + centre crop
    assert crop.shape == (1, 3, 224, 224)
    low = torch.zeros(1, 1, 256, 256)
    low[..., :10, :] = 5.0
    up = P.postprocess_masks(low, 1024, resized, (30, 90))
    assert up.shape == (1, 30, 90) and bool((up[0, :3] > 0).all())


@pytest.mark.parametrize("low_size, sam_size, resized, original", [
    (64, 128, (96, 128), (120, 160)), (256, 1024, (576, 1024), (720, 1280)),
    (256, 1024, (1024, 683), (1500, 1000)), (256, 1024, (341, 1024), (30, 90))])
def test_inference_masks_equal_the_training_masks(low_size, sam_size, resized, original):
    """masks_at_size (OpenCV, the pipeline's) gives exactly SAM's two-step
    postprocess_masks (torch, training's) thresholded: a one-step resize
    would leave masks a few pixels larger than the models were trained for."""
    gen = torch.Generator().manual_seed(low_size + original[0])
    low = torch.nn.functional.interpolate(torch.randn(3, 1, 8, 8, generator=gen) * 8, (low_size, low_size),
                                          mode="bilinear")
    want = (P.postprocess_masks(low, sam_size, resized, original) > 0.0).numpy()
    got = P.masks_at_size(low, sam_size, resized, original, 0.0)
    assert got.shape == want.shape and got.dtype == bool
    assert int((got != want).sum()) == 0


def test_reference_crop_and_pool():
    img = np.full((20, 30, 3), 200, np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[5:15, 10:20] = True
    img[0, 0] = 7
    crop = P.crop_reference(img, mask=mask)
    assert crop.shape == (8, 8, 3)  # the mask's 10x10 box trimmed 1 px per side
    whole = P.crop_reference(img, mask=np.ones((20, 30), bool))
    assert whole.shape == (18, 28, 3)
    m = np.zeros((20, 30), bool)
    m[2, 3] = True
    assert P.crop_reference(img, mask=m).shape == (1, 1, 3)
    assert float(P.crop_reference(img, mask=mask).min()) == 200
    feats = torch.arange(16 * 16 * 2, dtype=torch.float32).reshape(256, 2)
    pooled = P.pool_reference(feats, 16, 4)
    torch.testing.assert_close(pooled[0], feats[:64].mean(0))
    assert pooled.shape == (4, 2)


def test_audio_clips():
    cfg = get_preset("tiny").audio
    rate = 48000
    t = np.arange(5 * rate) / rate
    stereo = np.stack([np.sin(2 * np.pi * 440 * t)] * 2, 1).astype(np.float32)
    clips = P.audio_clips(P.check_audio(stereo, rate, cfg), rate, cfg)
    assert clips.shape == (1, 3, 1, 128, 204)
    short = P.audio_clips(P.check_audio(stereo[: rate // 2, 0], rate, cfg), rate, cfg)
    assert short.shape == (1, 3, 1, 128, 204)
    # half a second: padded with zeros (normalised) after ~50 frames
    assert torch.allclose(short[0, 0, 0, :, 100:], torch.tensor(4.268 / 9.138))
    assert torch.equal(short[0, 0], short[0, 2])  # all clips start at 0 when short


def test_summary_of_anyref_7b_matches_the_paper():
    counts = summary("anyref-7b")["components"]
    expected = {"language_model": 6.74e9, "vision_tower": 0.303e9, "mm_projector": 4.2e6,
                "sam": 0.641e9, "audio_encoder": 86e6, "audio_projector": 4.2e6,
                "text_hidden_fcs": 17.8e6}
    for name, value in expected.items():
        assert abs(counts[name] - value) / value < 0.01, (name, counts[name])


def test_summary_command():
    out = subprocess.run([sys.executable, "-m", "anyref_ros.model.summary", "lisa-7b"],
                         capture_output=True, text=True, timeout=120, check=True)
    data = json.loads(out.stdout)
    assert data["total"] == sum(data["components"].values())
    assert "audio_encoder" not in data["components"]


def test_no_ros_imports():
    from pathlib import Path
    import anyref_ros.model as pkg

    for path in Path(pkg.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert "rclpy" not in text and "sensor_msgs" not in text, path


@pytest.mark.parametrize("name", ["anyref-7b", "lisa-7b"])
def test_shipped_configs_match_presets(name):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "model" / "configs" / f"{name}.yaml"
    cfg = AnyRefConfig.load(path)
    preset = get_preset(name)
    preset.weights = cfg.weights
    assert cfg == preset
    assert cfg.weights.clip is not None and not Path(cfg.weights.clip).is_absolute()
