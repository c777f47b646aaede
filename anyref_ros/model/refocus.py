"""Refocusing: mix the answer's hidden states into the ``<obj>``/``[SEG]`` query.

    a_j = A[e, j] / sum_{k=s}^{e-1} A[e, k]     for j in [s, e)
    h'  = H[e] + lambda * sum_j a_j H[j]

``H``: last-layer hidden states after the final norm; ``A``: the last
layer's self-attention averaged over heads; ``e``: the position predicting
``[SEG]``; ``s``: the position predicting the first answer token.

Only the one row ``A[e, :]`` is needed, so it is computed here from the last
layer's *input* hidden states (``output_hidden_states``) with the layer's own
modules (input norm, ``q_proj``/``k_proj``, so a LoRA adapter on them counts),
the rotary embedding, a causal softmax and a head mean.  The model itself
keeps its fused (SDPA) attention.
"""

from __future__ import annotations

from typing import Optional

import torch


def attention_row(language_model, layer_input: torch.Tensor, e: int,
                  keys: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Head-averaged last-layer attention of position ``e`` over ``0..e``.

    ``language_model``: a transformers ``LlamaForCausalLM``;
    ``layer_input``: (L, D) input of its last decoder layer, L > e;
    ``keys``: the last layer's rotated keys (KV heads, >= e + 1, d) from the
    pass's KV cache, if at hand (otherwise computed here from ``layer_input``).
    Returns (e + 1,) float32 probabilities.
    """
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, repeat_kv

    base = language_model.model
    layer = base.layers[-1]
    attn = layer.self_attn
    head_dim = attn.head_dim
    positions = torch.arange(e + 1, device=layer_input.device).unsqueeze(0)
    x_e = layer.input_layernorm(layer_input[e: e + 1].unsqueeze(0))  # (1, 1, D); the norm is per row
    cos, sin = base.rotary_emb(x_e, positions)
    q = attn.q_proj(x_e).view(1, 1, -1, head_dim).transpose(1, 2)  # (1, H, 1, d)
    q, _ = apply_rotary_pos_emb(q, q, cos[:, e:], sin[:, e:])
    if keys is None:
        x = layer.input_layernorm(layer_input[: e + 1].unsqueeze(0))  # (1, e+1, D)
        k = attn.k_proj(x).view(1, e + 1, -1, head_dim).transpose(1, 2)  # (1, KV, e+1, d)
        _, k = apply_rotary_pos_emb(k, k, cos, sin)
    else:
        k = keys[:, : e + 1].unsqueeze(0).to(q.dtype)
    k = repeat_kv(k, attn.num_key_value_groups)
    scores = torch.matmul(q, k.transpose(2, 3)) * attn.scaling  # (1, H, 1, e+1)
    probs = torch.softmax(scores.float(), dim=-1)  # keys 0..e only: causal
    return probs.mean(dim=1)[0, 0]


def refocus(hidden: torch.Tensor, row: torch.Tensor, s: int, e: int, weight: float) -> torch.Tensor:
    """``H[e] + weight * sum_{j in [s, e)} a_j H[j]`` with ``a`` = ``row``
    renormalised over ``[s, e)``.  ``hidden``: (L, D).  With ``weight == 0``
    or an empty range (``[SEG]`` opens the answer) it is ``H[e]``."""
    h_e = hidden[e]
    if weight == 0 or e <= s:
        return h_e
    a = row[s:e]
    a = a / a.sum()
    mixed = (a.to(hidden.dtype).unsqueeze(1) * hidden[s:e]).sum(dim=0)
    return h_e + weight * mixed
