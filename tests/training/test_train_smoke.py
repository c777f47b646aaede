"""30 steps of the tiny preset: the loss falls, checkpoints reload, resume is exact."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from anyref_ros.model import AnyRefPipeline
from anyref_ros.training.trainer import LATEST, STATE_FILE, load_state, train


def _losses(folder):
    lines = (folder / "train.log").read_text().splitlines()
    return [json.loads(x)["loss"] for x in lines if x.startswith("{") and '"loss"' in x]


def test_loss_falls_and_checkpoint_reloads(tmp_path, make_config):
    out = tmp_path / "run"
    final = train(make_config(out))
    losses = _losses(out)
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses
    assert (out / LATEST).read_text().strip() == "checkpoint-30"
    assert load_state(final)["step"] == 30
    pipe = AnyRefPipeline.from_pretrained(final, device="cpu")
    fresh = AnyRefPipeline.from_pretrained("tiny", device="cpu")
    trained, initial = pipe.model.state_dict(), fresh.model.state_dict()
    # "paper" mode (a LoRA preset): the adapter and the listed modules train, the rest is frozen
    assert not torch.equal(trained["text_hidden_fcs.0.weight"], initial["text_hidden_fcs.0.weight"])
    lora = [k for k in trained if "lora_A" in k]
    assert lora and any(not torch.equal(trained[k], initial[k]) for k in lora)
    for frozen in ("sam.image_encoder.patch_embed.proj.weight", "mm_projector.weight",
                   "sam.mask_decoder.iou_prediction_head.layers.0.weight"):
        assert torch.equal(trained[frozen], initial[frozen]), frozen
    referral = pipe.segment(torch.zeros(48, 64, 3, dtype=torch.uint8).numpy(), text="red cube")
    assert referral.mask.shape == (48, 64)


def test_resume_matches_an_uninterrupted_run(tmp_path, make_config):
    straight = train(make_config(tmp_path / "a", steps=12, save_every=0))
    first = train(make_config(tmp_path / "b", steps=12, save_every=0), stop_at=6)
    assert load_state(first)["step"] == 6 and (first / STATE_FILE).is_file()
    resumed = train(make_config(tmp_path / "b", steps=12, save_every=0), resume="auto")
    assert load_state(resumed)["step"] == 12
    assert "resumed from" in (tmp_path / "b" / "train.log").read_text()
    a = load_file(str(straight / "trained.safetensors"))
    b = load_file(str(resumed / "trained.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


def test_accumulation_splits_the_global_batch_exactly(tmp_path, make_config):
    """Batch 4 x 1 micro-batch and 2 x 2 give the same weights (no dropout: its masks follow
    the micro-batch): each loss term is averaged over the whole step's tokens and masks."""
    run = dict(steps=3, save_every=0, threads=1, model_overrides={"lora": {"dropout": 0.0}})
    whole = train(make_config(tmp_path / "whole", batch_size=4, grad_accum=1, **run))
    split = train(make_config(tmp_path / "split", batch_size=2, grad_accum=2, **run))
    a = load_file(str(whole / "trained.safetensors"))
    b = load_file(str(split / "trained.safetensors"))
    assert load_state(whole)["next_draws"] == [12] and load_state(split)["next_draws"] == [12, 13]
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6, msg=name)
