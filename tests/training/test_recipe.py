"""The toy recipe's additions: absent-object samples, SAM's IoU-head loss,
warm starts, and the pipeline's not-found answer (tiny model, a few steps)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anyref_ros.data import ToyWorld, train_seed
from anyref_ros.model import AnyRefPipeline
from anyref_ros.model.generation import Trace
from anyref_ros.model.prompts import NO_OBJECT_ANSWER, tokenize_answer
from anyref_ros.model.tokenization import TokenIds
from anyref_ros.training.batch import collate, encode_samples
from anyref_ros.training.config import LossWeights, default_config
from anyref_ros.training.forward import AnyRefTrainingModule, binary_iou, iou_log_error, mask_iou
from anyref_ros.training.trainer import load_pipeline, train, trainable_names, warm_start


@pytest.fixture(scope="module")
def mixed():
    """An absent-object text sample, a normal text sample and a windowed sound."""
    world = ToyWorld(train_seed(0), size=(64, 48), sound_layout="train")
    return [world.sample(0, "text", absent=True), world.sample(1, "text"), world.sample(2, "audio")]


def test_absent_samples_get_a_forced_companion(pipe, mixed):
    seg = TokenIds(pipe.tokenizer, pipe.config.tokens).seg
    examples = encode_samples(mixed, pipe.config, pipe.tokenizer, seg)
    assert [e.task for e in examples] == ["text", "text", "text", "audio"]
    reply, companion = examples[0], examples[1]
    assert reply.seg_offsets == [] and reply.mask is None and reply.lm
    assert reply.answer_ids[:-1] == tokenize_answer(pipe.tokenizer, NO_OBJECT_ANSWER)
    forced = tokenize_answer(pipe.tokenizer, f"{mixed[0].query}[SEG].")
    assert companion.answer_ids == forced + [pipe.tokenizer.eos_token_id] and not companion.lm
    assert companion.seg_offsets == [forced.index(seg)]
    assert companion.segments == reply.segments and not companion.mask.any()
    assert examples[2].lm and examples[2].mask.any()


def test_mask_iou_by_hand():
    logits = torch.full((2, 4, 4), -5.0)
    logits[0, :2, :2] = 5.0  # 4 pixels predicted
    target = torch.zeros(2, 4, 4)
    target[0, :2, :] = 1.0  # 8 pixels, 4 shared -> IoU 0.5
    got = mask_iou(logits, target)  # second: nothing predicted, nothing there -> 0
    assert got.tolist() == [0.5, 0.0] and not got.requires_grad
    assert binary_iou((logits > 0).numpy(), target).tolist() == [0.5, 0.0]  # the pipeline's bool masks


def test_iou_head_learns_the_real_iou(pipe, mixed):
    """Only the IoU loss, only the IoU head trained: its error falls."""
    model = AnyRefPipeline.from_pretrained("tiny", device="cpu").model.train()
    seg = TokenIds(pipe.tokenizer, pipe.config.tokens).seg
    batch = collate(encode_samples(mixed, pipe.config, pipe.tokenizer, seg))
    module = AnyRefTrainingModule(model, LossWeights(lm=0.0, bce=0.0, dice=0.0, iou=1.0))
    head = [p for n, p in model.named_parameters() if "iou_prediction_head" in n]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(head, lr=1e-2)
    errors = []
    for _ in range(15):
        out = module(batch)
        errors.append(out.parts["iou_mse"])
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    assert out.mask_index == [1, 2, 3]  # the companion, the text sample, the sound
    assert errors[-1] < 0.5 * errors[0], errors


def test_iou_log_error_tells_good_masks_apart():
    """MSE barely sees 0.99 vs 0.97 (4e-4); the log-miss error does (ln 2 squared)."""
    pred, real = torch.tensor([0.99]), torch.tensor([0.97])
    assert float(torch.nn.functional.mse_loss(pred, real)) < 1e-3
    assert abs(float(iou_log_error(pred, real)) - np.log(2.0) ** 2) < 1e-4
    assert float(iou_log_error(torch.tensor([1.3]), torch.tensor([1.0]))) == 0.0  # clamped like score
    assert float(iou_log_error(torch.tensor([0.5]), torch.tensor([0.5]))) == 0.0


def test_train_only_trains_the_iou_head_alone(tmp_path, pipe):
    """A head-only stage (configs/toy-iou-head.yaml style) changes the IoU head and nothing else."""
    head = "sam.mask_decoder.iou_prediction_head"
    names = trainable_names(pipe.model, "all", [head])
    assert names and all(n.startswith(head + ".") for n in names)
    with pytest.raises(ValueError, match="train_only"):
        trainable_names(pipe.model, "all", ["sam.mask_decoder.no_such_module"])
    with pytest.raises(ValueError, match="train_only"):  # tiny's paper set leaves the head out
        trainable_names(pipe.model, "paper", [head])
    pipe.save_pretrained(tmp_path / "source")
    config = default_config("tiny")
    config.init_from, config.train_only, config.trainable = str(tmp_path / "source"), [head], "all"
    config.steps, config.save_every, config.output_dir = 3, 0, str(tmp_path / "run")
    config.loss = LossWeights(lm=0.0, bce=0.0, dice=0.0, iou=1.0, iou_log=0.03)
    final = train(config)
    old = pipe.model.state_dict()
    new = AnyRefPipeline.from_pretrained(final, device="cpu").model.state_dict()
    changed = {k for k in old if not torch.equal(old[k], new[k].to(old[k].dtype))}
    assert changed and all(k.startswith(head + ".") for k in changed), changed


def test_warm_start_copies_weights_and_maps_token_rows(tmp_path, pipe):
    pipe.save_pretrained(tmp_path / "source")
    config = default_config("tiny")
    config.init_from = str(tmp_path / "source")
    config.model_overrides = {"tokenizer": {"vocabulary": ["zebra"] + list(pipe.config.tokenizer.vocabulary)}}
    warm = load_pipeline(config)
    assert warm.warm_start_counts["rows"] == 2 and warm.warm_start_counts["fresh"] == 0
    old, new = pipe.model.state_dict(), warm.model.state_dict()
    name = "sam.mask_decoder.iou_prediction_head.layers.0.weight"
    assert torch.equal(old[name], new[name])
    vocab_old, vocab_new = pipe.tokenizer.get_vocab(), warm.tokenizer.get_vocab()
    assert len(vocab_new) == len(vocab_old) + 2  # "zebra" and its word-start form
    for emb in ("language_model.model.embed_tokens.weight", "language_model.lm_head.weight"):
        key = next(k for k in new if k.endswith(emb.split("language_model.")[1]) and "language_model" in k)
        for token in ("[SEG]", "\u2581cat", "</s>"):
            assert torch.equal(new[key][vocab_new[token]], old[key][vocab_old[token]]), (key, token)
    assert warm_start(warm, pipe)["copied"] > 0


def _trace(first_logits, answer_ids):
    return Trace(ids=torch.zeros(1), hidden=torch.zeros(1, 1), layer_input=torch.zeros(1, 1),
                 answer_start=1, answer_ids=list(answer_ids), first_logits=first_logits)


def test_says_absent_compares_the_first_tokens(pipe, monkeypatch):
    reply = "It is a cat."
    monkeypatch.setattr(pipe.config.prompt, "no_object_answer", reply)
    r0 = tokenize_answer(pipe.tokenizer, reply)[0]
    a0 = tokenize_answer(pipe.tokenizer, "red cube[SEG].")[0]
    logits = torch.zeros(len(pipe.tokenizer))
    logits[r0], logits[a0] = 2.0, 1.0
    assert pipe.says_absent(_trace(logits, [a0]))
    logits[a0] = 3.0
    assert not pipe.says_absent(_trace(logits, [a0]))
    assert not pipe.says_absent(_trace(None, [a0]))
    monkeypatch.setattr(pipe.config.prompt, "no_object_answer", None)
    logits[r0] = 9.0
    assert not pipe.says_absent(_trace(logits, [a0]))  # a model never taught to say so


def test_not_found_referral(pipe, monkeypatch):
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    monkeypatch.setattr(pipe.config.prompt, "no_object_answer", NO_OBJECT_ANSWER)
    monkeypatch.setattr(pipe, "says_absent", lambda trace: True)
    ref = pipe.segment(image, text="red cube")
    assert not ref.found and ref.mask.shape == (48, 64) and not ref.mask.any()
    assert ref.box is None and ref.score == 0.0 and ref.masks == []
    assert ref.text == NO_OBJECT_ANSWER and ref.decoding == "forced"
    monkeypatch.setattr(pipe, "says_absent", lambda trace: False)
    ref = pipe.segment(image, text="red cube")
    assert ref.found == bool(ref.mask.any()) and 0.0 <= ref.score <= 1.0
    if ref.found:
        assert ref.box is not None and ref.text == "red cube."
