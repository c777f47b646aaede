"""The shared-prefix KV cache and batched queries change no answer.

On the tiny model (taught so that exemplar, audio and region prompts emit
``[SEG]``) and on the trained ``model/toy``: every reference type answered
with and without the prefix cache, and in one ``segment_batch`` call, gives
the same mask and text (score and language-model states within float
tolerance) as one query at a time on the whole prompt.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from anyref_ros.model import AnyRefPipeline
from anyref_ros.model.prompts import IMAGE, shared_prefix, split_prefix, tokenize_prompt

TOY = Path(__file__).resolve().parents[2] / "model" / "toy"


@contextmanager
def prefix_cache(pipe: AnyRefPipeline, on: bool):
    before = pipe.prefix_cache
    pipe.prefix_cache = on
    try:
        yield
    finally:
        pipe.prefix_cache = before


def ask(pipe, features, request):
    request = dict(request)
    if "box" in request:
        return pipe.describe(features, request.pop("box"), **request)
    return pipe.segment(features, **request)


def assert_same(a, b, what):
    np.testing.assert_array_equal(a.mask, b.mask, err_msg=what)
    assert (a.text, a.answer, a.found, a.box, a.decoding) == (b.text, b.answer, b.found, b.box, b.decoding), what
    assert a.score == pytest.approx(b.score, abs=1e-4), what
    assert len(a.masks) == len(b.masks), what


def assert_same_states(pipe, features, request):
    """Language-model states over the whole sequence, with and without the prefix."""
    traces = {}
    for on in (False, True):
        with prefix_cache(pipe, on), torch.inference_mode():
            if "box" in request:
                query = pipe._describe_query(time.perf_counter(), features, request["box"])
            else:
                query = pipe._segment_query(time.perf_counter(), **request)
            traces[on] = pipe.traces(features, [query])[0]
            assert (query.prefix is not None) == on
    a, b = traces[False], traces[True]
    assert a.answer_ids == b.answer_ids and a.answer_start == b.answer_start
    assert torch.equal(a.ids, b.ids)
    torch.testing.assert_close(a.hidden, b.hidden, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a.layer_input, b.layer_input, rtol=1e-4, atol=1e-4)


def check_pipeline(pipe, image, requests):
    features = pipe.encode_image(image)
    with prefix_cache(pipe, False):
        plain = [ask(pipe, features, r) for r in requests]
    assert features.prefix is None
    built = pipe.counters["prefix_built"]
    with prefix_cache(pipe, True):
        cached = [ask(pipe, features, r) for r in requests]
        batched = pipe.segment_batch(features, requests)
        batched_fresh = pipe.segment_batch(image, requests)  # encodes, builds its own prefix
    assert pipe.counters["prefix_built"] == built + 2 and pipe.counters["prefix_missed"] == 0
    for request, p, c, b, f in zip(requests, plain, cached, batched, batched_fresh):
        what = str({k: v for k, v in request.items() if isinstance(v, (str, tuple))})
        assert_same(p, c, "prefix cache: " + what)
        assert_same(p, b, "batch: " + what)
        assert_same(p, f, "batch on a new frame: " + what)
    with prefix_cache(pipe, False):  # batching without the prefix cache
        for p, b in zip(plain, pipe.segment_batch(features, requests)):
            assert_same(p, b, "batch without prefix cache")
    for request in requests:
        assert_same_states(pipe, features, request)
    return plain


def test_prefix_ends_before_the_user_reference(tiny):
    prefix = shared_prefix(tiny.tokenizer, tiny.config)
    assert IMAGE in prefix
    text = tiny.tokenizer.decode([t for seg in prefix if not isinstance(seg, str) for t in seg])
    assert tiny.config.prompt.user_role in text and "cat" not in text
    for key, expression in (("text", "the red cat"), ("region", None), ("exemplar", None)):
        from anyref_ros.model.prompts import build_prompt

        segments = tokenize_prompt(tiny.tokenizer, build_prompt(tiny.config, key, expression).text, tiny.config)
        rest = split_prefix(segments, prefix)
        assert rest is not None and IMAGE not in rest


def test_tiny_answers_unchanged_by_prefix_cache_and_batching(taught, image, exemplar, sound):
    requests = [dict(text="the red square"), dict(text="a cat on the left"),
                dict(exemplar=exemplar), dict(audio=sound[0], sample_rate=sound[1]),
                dict(box=(10, 10, 50, 40)), dict(text="cat", audio=sound[0], sample_rate=sound[1]),
                dict(text="the red square", refocus_lambda=0.0)]
    plain = check_pipeline(taught, image, requests)
    assert [r.decoding for r in plain] == ["forced", "forced", "greedy", "greedy", "greedy", "forced", "forced"]
    assert all(r.masks for r in plain[2:5])  # the taught greedy answers hold [SEG]: masks compared


def test_batch_hands_back_bad_requests_and_answers_the_rest(tiny, image):
    features = tiny.encode_image(image)
    results = tiny.segment_batch(features, [dict(text=""), dict(text="red square"), dict(box=(0, 0, 500, 5))],
                                 return_exceptions=True)
    assert isinstance(results[0], ValueError) and isinstance(results[2], ValueError)
    assert_same(results[1], tiny.segment(features, text="red square"), "the good request")
    with pytest.raises(ValueError, match="text"):
        tiny.segment_batch(features, [dict(text="red square"), dict(text="")])


@pytest.mark.skipif(not (TOY / "config.json").is_file(), reason="model/toy is not in this checkout")
def test_toy_answers_unchanged_by_prefix_cache_and_batching():
    from anyref_ros.data.toy import ToyWorld

    torch.set_num_threads(2)
    pipe = AnyRefPipeline.from_pretrained(TOY, device="cpu")
    world = ToyWorld(seed=5, size=(320, 240))
    image = world.sample(0, "text").image
    scene = [world.sample(i, "text") for i in range(3)]
    ex, au, rg = world.sample(3, "exemplar"), world.sample(4, "audio"), world.sample(5, "region")
    box = (rg.box[0], rg.box[1], rg.box[2] + 1, rg.box[3] + 1)
    requests = [dict(text=s.query) for s in scene] + [
        dict(exemplar=ex.exemplar, exemplar_mask=ex.exemplar_mask),
        dict(audio=au.audio, sample_rate=au.sample_rate), dict(box=box)]
    plain = check_pipeline(pipe, image, requests)
    assert any(r.found for r in plain)


def test_attention_row_from_the_kv_cache_keys_matches_eager_attention(tiny, image):
    """Refocusing reads the last layer's keys from the pass's KV cache (prefix
    included); the row equals eager attention's."""
    import copy

    features = tiny.encode_image(image)
    with torch.inference_mode():
        query = tiny._segment_query(time.perf_counter(), text="the red cat")
        trace = tiny.traces(features, [query])[0]
    assert query.prefix is not None and trace.keys.shape[1] == trace.ids.shape[0]
    lm = copy.deepcopy(tiny.model.language_model)
    lm.set_attn_implementation("eager")
    segments = tokenize_prompt(tiny.tokenizer, query.prompt.text, tiny.config)
    with torch.no_grad():
        embeds, _ = tiny.model.embed_prompt(segments, {IMAGE: features.clip})
        answer = lm.get_input_embeddings()(trace.ids[embeds.shape[1]:]).unsqueeze(0)
        out = lm(inputs_embeds=torch.cat([embeds, answer], 1), output_attentions=True)
    eager = out.attentions[-1][0].mean(0)
    from anyref_ros.model.refocus import attention_row

    for e in (trace.answer_start - 1, trace.ids.shape[0] - 2):
        with torch.inference_mode():
            row = attention_row(tiny.model.language_model, trace.layer_input, e, trace.keys)
        torch.testing.assert_close(row, eager[e, : e + 1].float(), atol=1e-5, rtol=1e-4)
