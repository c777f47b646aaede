"""Refocusing and decoding: the hand-computed attention row, the formula,
and forced vs greedy decoding."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from anyref_ros.model import processing as P
from anyref_ros.model.generation import forced, greedy
from anyref_ros.model.prompts import IMAGE, IMAGE_REF, build_prompt, tokenize_answer, tokenize_prompt
from anyref_ros.model.refocus import attention_row, refocus


def _text_trace(pipe, image, answer="the red cat[SEG]."):
    prompt = build_prompt(pipe.config, "text", "the red cat")
    segments = tokenize_prompt(pipe.tokenizer, prompt.text, pipe.config)
    with torch.no_grad():
        clip = pipe.model.image_features(P.clip_pixels(image, pipe.config.vision))
        embeds, ids = pipe.model.embed_prompt(segments, {IMAGE: clip})
        trace = forced(pipe.model.language_model, embeds, ids, tokenize_answer(pipe.tokenizer, answer))
    return trace, embeds


def test_positions_come_from_the_expanded_sequence(tiny, image):
    trace, embeds = _text_trace(tiny, image)
    n_image = tiny.config.vision.grid ** 2
    assert int((trace.ids == -1).sum()) == n_image  # the image features count as positions
    seg = [i for i, t in enumerate(trace.ids.tolist()) if t == tiny.ids.seg]
    assert len(seg) == 1 and seg[0] >= trace.answer_start == embeds.shape[1]
    assert trace.hidden.shape[0] == trace.ids.shape[0]


def test_attention_row_matches_eager_attention(tiny, image):
    trace, embeds = _text_trace(tiny, image)
    lm = copy.deepcopy(tiny.model.language_model)
    lm.set_attn_implementation("eager")
    full = torch.cat([embeds, lm.get_input_embeddings()(trace.ids[embeds.shape[1]:]).unsqueeze(0)], 1)
    with torch.no_grad():
        out = lm(inputs_embeds=full, output_attentions=True, output_hidden_states=True)
        eager = out.attentions[-1][0].mean(0)  # (L, L), head mean
        lora = [n for n, _ in lm.named_parameters() if "lora_B" in n]
        assert lora  # the adapter is part of q_proj/v_proj
        for e in (embeds.shape[1] - 1, trace.ids.shape[0] - 2):
            row = attention_row(tiny.model.language_model, trace.layer_input, e)
            torch.testing.assert_close(row, eager[e, : e + 1].float(), atol=1e-5, rtol=1e-4)
            assert float(eager[e, e + 1:].abs().sum()) == 0.0  # causal


def test_refocus_matches_hand_computation():
    torch.manual_seed(0)
    hidden = torch.randn(10, 6)
    row = torch.softmax(torch.randn(8), 0)  # attention of e = 7 over 0..7
    s, e, lam = 3, 7, 0.1
    expected = hidden[e].clone()
    total = sum(float(row[k]) for k in range(s, e))
    for j in range(s, e):
        expected += lam * float(row[j]) / total * hidden[j]
    torch.testing.assert_close(refocus(hidden, row, s, e, lam), expected)
    assert torch.equal(refocus(hidden, row, s, e, 0.0), hidden[e])
    assert torch.equal(refocus(hidden, row, e, e, lam), hidden[e])  # [SEG] opens the answer


def test_pipeline_query_uses_the_refocused_state(tiny, image):
    trace, _ = _text_trace(tiny, image)
    lam = tiny.config.refocus.segment
    assert lam == pytest.approx(0.1)
    e = trace.ids.tolist().index(tiny.ids.seg) - 1
    s = trace.answer_start - 1
    with torch.no_grad():
        row = attention_row(tiny.model.language_model, trace.layer_input, e)
        h = trace.hidden[e] + lam * (row[s:e] / row[s:e].sum()) @ trace.hidden[s:e]
        expected = tiny.model.text_hidden_fcs(h.unsqueeze(0))
        got = tiny.seg_queries(trace, lam)
        plain = tiny.seg_queries(trace, 0.0)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, plain)


def test_forced_and_greedy_agree(taught, image, exemplar):
    cfg = taught.config
    prompt = build_prompt(cfg, "exemplar", force=False)
    segments = tokenize_prompt(taught.tokenizer, prompt.text, cfg)
    with torch.no_grad():
        clip = taught.model.image_features(P.clip_pixels(image, cfg.vision))
        ref = taught.model.reference_features(P.clip_pixels(P.crop_reference(exemplar), cfg.vision))
        embeds, ids = taught.model.embed_prompt(segments, {IMAGE: clip, IMAGE_REF: ref})
        lm = taught.model.language_model
        g = greedy(lm, embeds, ids, cfg.prompt.max_new_tokens, taught.ids.eos)
        f = forced(lm, embeds, ids, g.answer_ids)
        assert taught.ids.seg in g.answer_ids
        n = g.hidden.shape[0]
        torch.testing.assert_close(g.hidden, f.hidden[:n], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(g.layer_input, f.layer_input[:n], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(taught.seg_queries(g, 0.1), taught.seg_queries(f, 0.1),
                                   atol=1e-5, rtol=1e-4)
    answer = taught.tokenizer.decode(g.answer_ids)
    a = taught.segment(image, exemplar=exemplar)  # greedy
    b = taught.segment(image, exemplar=exemplar, answer=answer)  # forced
    assert (a.decoding, b.decoding) == ("greedy", "forced")
    assert a.answer == b.answer == "cat[SEG]."
    assert np.mean(a.mask == b.mask) > 0.999 and a.score == pytest.approx(b.score, abs=1e-4)


def test_text_query_greedy_and_forced_share_the_path(tiny, image):
    r = tiny.segment(image, text="cat", decoding="greedy")
    assert r.decoding == "greedy" and r.mask.shape == image.shape[:2]
