"""Running the language model: one forced pass, or bounded greedy decoding.

Both return a ``Trace`` over the expanded sequence (image and reference
features counted as positions): the last layer's input and its normed
output for every position that was fed to the model, which is what the
``[SEG]`` queries and refocusing need.

* ``forced``: the answer is known (text query "{exp}[SEG]."): the prompt and
  the answer go through the model in a single forward pass, no decoding.
* ``greedy``: the answer is unknown (exemplar, audio, region): argmax
  decoding with a KV cache until EOS or ``max_new_tokens``.
* ``forced_batch``: several forced passes as one right-padded batch.

Each can continue from a ``Prefix``: the KV cache and last-layer states of
the positions every query on a frame shares (system prompt, image, the fixed
start of the user turn), computed once by ``run_prefix``.  The prefix is
never modified: each pass continues from its own ``Prefix.fork()``, and its
``Trace`` covers the prefix and the query's own positions, so refocusing
still sees the full attention row.

Stopping: ``greedy`` takes a ``stop`` callable, asked before every token;
when it returns True the generation ends with :class:`Stopped` (a node that
deactivates during a long generation gets its model back after one token,
not after ``max_new_tokens``).  ``greedy`` also never runs past the model's
context (``max_position_embeddings``): the prompt is refused before it gets
there (``AnyRefPipeline``), and generation ends at the last position.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch


class Stopped(RuntimeError):
    """A generation was asked to stop (its ``stop`` callable returned True)."""


def check_stop(stop: Optional[Callable[[], bool]]) -> None:
    """Raise :class:`Stopped` when ``stop`` says so (None: never)."""
    if stop is not None and stop():
        raise Stopped("the query was stopped while the model ran")


def context_length(language_model) -> int:
    """Positions the language model was built for (RoPE goes on past them, into garbage)."""
    return int(getattr(language_model.config, "max_position_embeddings", 0) or 0)


@dataclass
class Trace:
    """LLM states over the expanded sequence.

    ``ids``: (L,) token ids, -1 at feature positions (prompt and answer, the
    answer possibly one token longer than the states, see ``greedy``);
    ``hidden``: (T, D) normed last-layer outputs; ``layer_input``: (T, D)
    inputs of the last layer; ``answer_start``: index of the first answer
    token in ``ids``; ``answer_ids``: the answer's token ids; ``keys``:
    the last layer's rotated keys (KV heads, T, d) from the KV cache, which
    refocusing's attention row reuses (None: it computes them).
    """

    ids: torch.Tensor
    hidden: torch.Tensor
    layer_input: torch.Tensor
    answer_start: int
    answer_ids: List[int]
    first_logits: Optional[torch.Tensor] = None
    keys: Optional[torch.Tensor] = None


@dataclass
class Prefix:
    """The shared start of every prompt on one frame, run once.

    ``kv``: per layer, the (1, heads, P, d) keys and values (never changed);
    ``ids``: (P,) token ids, -1 at feature positions; ``hidden`` /
    ``layer_input``: (P, D) last-layer states, as in ``Trace``.
    """

    kv: List[Tuple[torch.Tensor, torch.Tensor]]
    ids: torch.Tensor
    hidden: torch.Tensor
    layer_input: torch.Tensor

    @property
    def length(self) -> int:
        return int(self.ids.shape[0])

    def fork(self, language_model, batch: int = 1):
        """A new ``DynamicCache`` holding (copies of) the prefix's keys and
        values for ``batch`` rows; passes that continue from it leave the
        prefix untouched."""
        from transformers import DynamicCache

        return DynamicCache(ddp_cache_data=[(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1))
                                            for k, v in self.kv], config=language_model.config)


def _cache_kwarg(language_model) -> str:
    params = inspect.signature(language_model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def run_prefix(language_model, embeds: torch.Tensor, ids: torch.Tensor) -> Prefix:
    """Run the shared prompt start ``embeds`` (1, P, D) once and keep its KV cache and states."""
    from transformers import DynamicCache

    cache = DynamicCache(config=language_model.config)
    out = language_model(inputs_embeds=embeds, output_hidden_states=True, use_cache=True,
                         logits_to_keep=1, **{_cache_kwarg(language_model): cache})
    kv = [(layer.keys, layer.values) for layer in cache.layers]
    return Prefix(kv=kv, ids=ids, hidden=out.hidden_states[-1][0],
                  layer_input=out.hidden_states[-2][0])


def _with_prefix(prefix: Optional[Prefix], ids: torch.Tensor, hidden: torch.Tensor,
                 layer_input: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Prepend the prefix's ids and states; returns them and the prefix length."""
    if prefix is None:
        return ids, hidden, layer_input, 0
    return (torch.cat([prefix.ids, ids]), torch.cat([prefix.hidden, hidden]),
            torch.cat([prefix.layer_input, layer_input]), prefix.length)


def forced(language_model, embeds: torch.Tensor, ids: torch.Tensor,
           answer_ids: Sequence[int], prefix: Optional[Prefix] = None) -> Trace:
    """One forward pass over prompt ``embeds`` (1, P, D) + ``answer_ids``
    (after ``prefix``, if given: ``embeds``/``ids`` are then what follows it)."""
    return forced_batch(language_model, [(embeds, ids, answer_ids)], prefix)[0]


def forced_batch(language_model, items: Sequence[Tuple[torch.Tensor, torch.Tensor, Sequence[int]]],
                 prefix: Optional[Prefix] = None) -> List[Trace]:
    """Forced passes of several (embeds (1, P_i, D), ids (P_i,), answer_ids)
    as one batch: right-padded, with an attention mask (the padding follows
    every real position, so causal attention never reads it).  Logits are
    computed only where ``Trace.first_logits`` needs them: each row's
    position before its first answer token, taken from that row's own
    last-layer states and put through the LM head here (rows differ in
    length, and ``logits_to_keep`` with one position per row is not
    understood alike by every transformers version)."""
    from transformers import DynamicCache

    embed = language_model.get_input_embeddings()
    rows, lengths, answers = [], [], []
    for embeds, _, answer_ids in items:
        answer = torch.tensor(list(answer_ids), dtype=torch.long)
        answer_embeds = embed(answer.to(embeds.device)).to(embeds.dtype)
        rows.append(torch.cat([embeds[0], answer_embeds]))
        lengths.append(rows[-1].shape[0])
        answers.append(answer)
    longest = max(lengths)
    batch = rows[0].new_zeros((len(rows), longest, rows[0].shape[1]))
    for b, row in enumerate(rows):
        batch[b, : row.shape[0]] = row
    past = prefix.length if prefix is not None else 0
    cache = (prefix.fork(language_model, len(rows)) if prefix is not None
             else DynamicCache(config=language_model.config))
    kwargs = {_cache_kwarg(language_model): cache}
    if len(rows) > 1:
        mask = torch.zeros((len(rows), past + longest), dtype=torch.long, device=batch.device)
        for b, n in enumerate(lengths):
            mask[b, : past + n] = 1
        kwargs["attention_mask"] = mask
    out = language_model(inputs_embeds=batch, output_hidden_states=True, use_cache=True,
                         logits_to_keep=1, **kwargs)
    keys = cache.layers[-1].keys
    # the position predicting each row's first answer token, row by row
    first = torch.tensor([item[0].shape[1] - 1 for item in items], device=batch.device)
    rows_at = out.hidden_states[-1][torch.arange(len(items), device=batch.device), first]
    first_logits = language_model.get_output_embeddings()(rows_at)
    traces = []
    for b, (embeds, ids, answer_ids) in enumerate(items):
        n = lengths[b]
        all_ids, hidden, layer_input, start = _with_prefix(
            prefix, torch.cat([ids, answers[b]]), out.hidden_states[-1][b, :n],
            out.hidden_states[-2][b, :n])
        traces.append(Trace(ids=all_ids, hidden=hidden, layer_input=layer_input,
                            answer_start=start + embeds.shape[1], answer_ids=list(answer_ids),
                            first_logits=first_logits[b], keys=keys[b, :, : past + n]))
    return traces


def greedy(language_model, embeds: torch.Tensor, ids: torch.Tensor, max_new_tokens: int,
           eos_id: int, prefix: Optional[Prefix] = None, stop: Optional[Callable[[], bool]] = None,
           on_token: Optional[Callable[[List[int]], None]] = None) -> Trace:
    """Argmax decoding from prompt ``embeds`` (1, P, D) (after ``prefix``,
    if given); stops after EOS (not part of ``answer_ids``), after
    ``max_new_tokens`` tokens or at the model's last position.  The last
    generated token is never fed back, so states cover P + n - 1 positions.
    ``stop`` is asked before every forward pass (:class:`Stopped`);
    ``on_token`` gets the answer ids so far after every new token."""
    from transformers import DynamicCache

    embed = language_model.get_input_embeddings()
    cache = prefix.fork(language_model) if prefix is not None else DynamicCache(config=language_model.config)
    key = _cache_kwarg(language_model)
    hidden: List[torch.Tensor] = []
    layer_input: List[torch.Tensor] = []
    generated: List[int] = []
    step = embeds
    context = context_length(language_model)
    start = (prefix.length if prefix is not None else 0) + embeds.shape[1]
    if context:
        max_new_tokens = min(max_new_tokens, context - start + 1)
    for _ in range(max_new_tokens):
        check_stop(stop)
        out = language_model(inputs_embeds=step, output_hidden_states=True, use_cache=True,
                             logits_to_keep=1, **{key: cache})
        hidden.append(out.hidden_states[-1][0])
        layer_input.append(out.hidden_states[-2][0])
        token = int(out.logits[0, -1].argmax())
        if token == eos_id:
            break
        generated.append(token)
        if on_token is not None:
            on_token(generated)
        step = embed(torch.tensor([[token]], device=embeds.device)).to(embeds.dtype)
    answer = torch.tensor(generated, dtype=torch.long)
    all_ids, hidden_all, layer_all, start = _with_prefix(
        prefix, torch.cat([ids, answer]), torch.cat(hidden), torch.cat(layer_input))
    return Trace(ids=all_ids, hidden=hidden_all, layer_input=layer_all,
                 answer_start=start + embeds.shape[1], answer_ids=generated,
                 keys=cache.layers[-1].keys[0])
