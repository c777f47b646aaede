"""Running the language model: one forced pass, or bounded greedy decoding.

Both return a ``Trace`` over the expanded sequence (image and reference
features counted as positions): the last layer's input and its normed
output for every position that was fed to the model, which is what the
``[SEG]`` queries and refocusing need.

* ``forced``: the answer is known (text query "{exp}[SEG]."): the prompt and
  the answer go through the model in a single forward pass, no decoding.
* ``greedy``: the answer is unknown (exemplar, audio, region): argmax
  decoding with a KV cache until EOS or ``max_new_tokens``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch


@dataclass
class Trace:
    """LLM states over the expanded sequence.

    ``ids``: (L,) token ids, -1 at feature positions (prompt and answer, the
    answer possibly one token longer than the states, see ``greedy``);
    ``hidden``: (T, D) normed last-layer outputs; ``layer_input``: (T, D)
    inputs of the last layer; ``answer_start``: index of the first answer
    token in ``ids``; ``answer_ids``: the answer's token ids.
    """

    ids: torch.Tensor
    hidden: torch.Tensor
    layer_input: torch.Tensor
    answer_start: int
    answer_ids: List[int]
    first_logits: Optional[torch.Tensor] = None


def _cache_kwarg(language_model) -> str:
    params = inspect.signature(language_model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def forced(language_model, embeds: torch.Tensor, ids: torch.Tensor,
           answer_ids: Sequence[int]) -> Trace:
    """One forward pass over prompt ``embeds`` (1, P, D) + ``answer_ids``."""
    answer = torch.tensor(list(answer_ids), dtype=torch.long)
    answer_embeds = language_model.get_input_embeddings()(answer.to(embeds.device)).unsqueeze(0)
    full = torch.cat([embeds, answer_embeds.to(embeds.dtype)], dim=1)
    out = language_model(inputs_embeds=full, output_hidden_states=True, use_cache=False)
    return Trace(ids=torch.cat([ids, answer]), hidden=out.hidden_states[-1][0],
                 layer_input=out.hidden_states[-2][0], answer_start=embeds.shape[1],
                 answer_ids=list(answer_ids), first_logits=out.logits[0, embeds.shape[1] - 1])


def greedy(language_model, embeds: torch.Tensor, ids: torch.Tensor, max_new_tokens: int,
           eos_id: int) -> Trace:
    """Argmax decoding from prompt ``embeds`` (1, P, D); stops after EOS
    (not part of ``answer_ids``) or ``max_new_tokens`` tokens.  The last
    generated token is never fed back, so states cover P + n - 1 positions."""
    from transformers import DynamicCache

    embed = language_model.get_input_embeddings()
    cache = DynamicCache(config=language_model.config)
    key = _cache_kwarg(language_model)
    hidden: List[torch.Tensor] = []
    layer_input: List[torch.Tensor] = []
    generated: List[int] = []
    step = embeds
    for _ in range(max_new_tokens):
        out = language_model(inputs_embeds=step, output_hidden_states=True, use_cache=True,
                             logits_to_keep=1, **{key: cache})
        hidden.append(out.hidden_states[-1][0])
        layer_input.append(out.hidden_states[-2][0])
        token = int(out.logits[0, -1].argmax())
        if token == eos_id:
            break
        generated.append(token)
        step = embed(torch.tensor([[token]], device=embeds.device)).to(embeds.dtype)
    answer = torch.tensor(generated, dtype=torch.long)
    return Trace(ids=torch.cat([ids, answer]), hidden=torch.cat(hidden),
                 layer_input=torch.cat(layer_input), answer_start=embeds.shape[1],
                 answer_ids=generated)
