"""The teacher-forced training pass computes what the pipeline computes."""

from __future__ import annotations

import pytest
import torch

from anyref_ros.data import ToyWorld, train_seed
from anyref_ros.model import processing as P
from anyref_ros.model.generation import forced
from anyref_ros.model.prompts import IMAGE, IMAGE_REF, AUDIO_REF, build_prompt, tokenize_answer, tokenize_prompt
from anyref_ros.model.tokenization import TokenIds
from anyref_ros.training.batch import TEMPLATE, collate, encode_sample, exclusive_box, reference_crop
from anyref_ros.training.config import LossWeights
from anyref_ros.training.forward import AnyRefTrainingModule, dice_loss, image_features


@pytest.fixture(scope="module")
def samples():
    world = ToyWorld(train_seed(0), size=(64, 48))
    return [world.sample(i, task) for i, task in enumerate(("text", "exemplar", "audio", "region"))]


def pipeline_logits(pipe, sample):
    """Mask logits at the sample's size through the pipeline's own steps."""
    model, cfg = pipe.model, pipe.config
    feats = pipe.encode_image(sample.image)
    refs = {IMAGE: feats.clip}
    crop = reference_crop(sample)
    if crop is not None:
        refs[IMAGE_REF] = model.reference_features(P.clip_pixels(crop, cfg.vision))
    if sample.task == "audio":
        wave = P.check_audio(sample.audio, sample.sample_rate, cfg.audio)
        refs[AUDIO_REF] = model.audio_features(P.audio_clips(wave, sample.sample_rate, cfg.audio))
    prompt = build_prompt(cfg, TEMPLATE[sample.task], sample.query, force=False)
    embeds, ids = model.embed_prompt(tokenize_prompt(pipe.tokenizer, prompt.text, cfg), refs)
    trace = forced(model.language_model, embeds, ids, tokenize_answer(pipe.tokenizer, sample.answer))
    weight = cfg.refocus.describe if sample.task == "region" else cfg.refocus.segment
    queries = pipe.seg_queries(trace, weight)
    low_res, _ = model.decode_masks(queries, feats.sam_embedding)
    return P.postprocess_masks(low_res, cfg.sam.image_size, feats.sam_input_size, feats.size)[0]


def test_training_pass_matches_pipeline(pipe, samples):
    seg = TokenIds(pipe.tokenizer, pipe.config.tokens).seg
    batch = collate([encode_sample(s, pipe.config, pipe.tokenizer, seg) for s in samples])
    module = AnyRefTrainingModule(pipe.model, LossWeights()).eval()
    with torch.no_grad():
        out = module(batch)
        expected = [pipeline_logits(pipe, s) for s in samples]
    assert out.mask_index == [0, 1, 2, 3]
    for got, want in zip(out.mask_logits, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert torch.isfinite(out.loss) and set(out.parts) == {"lm", "bce", "dice", "iou_mse", "iou_log", "loss"}


def test_gradients_reach_every_trained_part(pipe, samples):
    seg = TokenIds(pipe.tokenizer, pipe.config.tokens).seg
    batch = collate([encode_sample(s, pipe.config, pipe.tokenizer, seg) for s in samples])
    module = AnyRefTrainingModule(pipe.model, LossWeights(lm=0.0)).train()
    for p in module.parameters():
        p.requires_grad_(True)
    module.zero_grad()
    module(batch).loss.backward()
    named = dict(pipe.model.named_parameters())
    for name in ("text_hidden_fcs.0.weight", "audio_projector.weight",
                 "sam.mask_decoder.output_hypernetworks_mlps.0.layers.0.weight",
                 "language_model.model.layers.1.self_attn.k_proj.weight",
                 "sam.image_encoder.patch_embed.proj.weight"):
        grad = named[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    module.zero_grad()
    for p in module.parameters():
        p.requires_grad_(False)
    pipe.model.eval()


def test_answer_targets_and_boxes(pipe, samples):
    seg = TokenIds(pipe.tokenizer, pipe.config.tokens).seg
    ex = encode_sample(samples[0], pipe.config, pipe.tokenizer, seg)
    assert ex.answer_ids[-1] == pipe.tokenizer.eos_token_id
    assert [ex.answer_ids[i] for i in ex.seg_offsets] == [seg]
    assert ex.mask.shape == samples[0].image.shape[:2]
    assert exclusive_box((3, 4, 10, 12)) == (3, 4, 11, 13)
    region = samples[3]
    crop = reference_crop(region)
    x0, y0, x1, y1 = region.box
    assert crop.shape[:2] == (y1 - y0 + 1 - 2, x1 - x0 + 1 - 2)  # 1 px trimmed per side


def test_dice_loss_values():
    target = torch.zeros(1, 4, 4)
    target[0, :2] = 1
    perfect = (target * 40 - 20)
    assert float(dice_loss(perfect, target)) < 1e-3
    assert float(dice_loss(-perfect, target)) > 0.9


def test_batched_image_features_match_the_model(pipe, samples):
    pixels = torch.stack([P.clip_pixels(s.image, pipe.config.vision)[0] for s in samples[:2]])
    with torch.no_grad():
        batched = image_features(pipe.model, pixels)
        single = pipe.model.image_features(pixels[1:2])
    torch.testing.assert_close(batched[1], single)
