"""Fixtures for the model-core tests: real tiny torch models, no downloads."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from anyref_ros.model import AnyRefPipeline  # noqa: E402
from anyref_ros.model import processing as P  # noqa: E402
from anyref_ros.model.prompts import (AUDIO_REF, IMAGE, IMAGE_REF, build_prompt,  # noqa: E402
                                      tokenize_answer, tokenize_prompt)

ANSWER = "cat[SEG]."


@pytest.fixture(scope="session")
def tiny() -> AnyRefPipeline:
    """The random tiny model (do not modify it in tests)."""
    torch.set_num_threads(2)
    return AnyRefPipeline.from_pretrained("tiny", device="cpu")


@pytest.fixture(scope="session")
def image() -> np.ndarray:
    rng = np.random.RandomState(0)
    img = (rng.rand(60, 80, 3) * 60).astype(np.uint8)
    img[15:45, 20:50] = (200, 30, 30)  # a red square
    return img


@pytest.fixture(scope="session")
def exemplar(image) -> np.ndarray:
    return image[10:50, 15:55].copy()


@pytest.fixture(scope="session")
def sound() -> tuple:
    """Three seconds of a 440 Hz tone, stereo, at 44.1 kHz."""
    t = np.arange(int(3 * 44100)) / 44100.0
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return np.stack([tone, tone], axis=1), 44100


def teach(pipe: AnyRefPipeline, cases, answer: str = ANSWER, steps: int = 25) -> None:
    """Overfit the tiny language model so that it answers ``answer`` to each
    (prompt key, features) case: the greedy paths then emit ``[SEG]``."""
    model = pipe.model
    lm = model.language_model
    answer_ids = tokenize_answer(pipe.tokenizer, answer) + [pipe.tokenizer.eos_token_id]
    target = torch.tensor(answer_ids)
    prepared = []
    for key, feats in cases:
        prompt = build_prompt(pipe.config, key, "cat" if "text" in key else None, force=False)
        prepared.append((tokenize_prompt(pipe.tokenizer, prompt.text, pipe.config), feats))
    params = [p for p in lm.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=2e-2)
    lm.train()
    for _ in range(steps):
        loss = 0.0
        for segments, feats in prepared:
            embeds, _ = model.embed_prompt(segments, feats)
            answer_embeds = lm.get_input_embeddings()(target[:-1]).unsqueeze(0)
            logits = lm(inputs_embeds=torch.cat([embeds, answer_embeds], 1)).logits[0]
            start = embeds.shape[1] - 1
            loss = loss + torch.nn.functional.cross_entropy(logits[start:start + len(target)], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    lm.eval()


@pytest.fixture(scope="session")
def taught(image, exemplar, sound) -> AnyRefPipeline:
    """A tiny model taught to answer "cat[SEG]." to exemplar, audio and region prompts."""
    torch.set_num_threads(2)
    pipe = AnyRefPipeline.from_pretrained("tiny", device="cpu")
    cfg = pipe.config
    with torch.no_grad():
        clip = pipe.model.image_features(P.clip_pixels(image, cfg.vision))
        ref = pipe.model.reference_features(P.clip_pixels(P.crop_reference(exemplar), cfg.vision))
        region = pipe.model.reference_features(
            P.clip_pixels(P.crop_reference(image, box=(10, 10, 50, 40)), cfg.vision))
        wave = P.check_audio(sound[0], sound[1], cfg.audio)
        aud = pipe.model.audio_features(P.audio_clips(wave, sound[1], cfg.audio))
    cases = [("exemplar", {IMAGE: clip, IMAGE_REF: ref}),
             ("audio", {IMAGE: clip, AUDIO_REF: aud}),
             ("region", {IMAGE: clip, IMAGE_REF: region})]
    teach(pipe, cases)
    return pipe
