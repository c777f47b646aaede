"""Inference-time forms of the model: merged LoRA, quantized language model,
compiled modules, random full-size weights.  Used by ``loading.py``.

* ``merge_lora``: peft's LoRA layers are merged into their base weights
  (``W + B A * alpha / r``) and replaced by the plain ``nn.Linear``: one
  matrix product per projection instead of three.  Training keeps the
  unmerged, trainable form (``from_pretrained`` merges only when asked).
* ``quantization`` ``"8bit"``/``"4bit"``: the language model's decoder
  linear layers become bitsandbytes ``Linear8bitLt`` (LLM.int8, outlier
  threshold 6) or ``Linear4bit`` (NF4, double-quantized block statistics);
  embeddings, ``lm_head``, norms, the LoRA adapter (if not merged) and every
  other component stay in the pipeline's dtype.  bitsandbytes is optional
  (``pip install 'anyref_ros[quantization]'`` or ``requirements/model.txt``).
* ``compile``: ``torch.compile`` of the language model's and the mask
  decoder's forward (in place: parameter names do not change), CUDA only.
* random weights: the architecture is built on the ``meta`` device and each
  parameter gets storage directly on the target device in the target dtype
  (normal(0, 0.02) weights, zero biases, unit norm scales), so a 7B model
  never exists as a float32 copy on the CPU.  The linear layers that will be
  quantized are materialised, merged and quantized one at a time, so loading
  never holds the whole language model in full precision on the device.
"""

from __future__ import annotations

import logging
from typing import Iterator, List, Optional, Tuple

import torch
from torch import nn

QUANTIZATIONS = ("8bit", "4bit")
# bitsandbytes' CPU backend (int8 and NF4 without a GPU) exists from 0.46 on.
BNB_MIN_CPU = (0, 46)
INIT_STD = 0.02

log = logging.getLogger(__name__)


# ------------------------------------------------------------ quantization
def resolve_quantization(value, config_value: Optional[str] = None) -> Optional[str]:
    """``None``: the config's value; ``"none"``/``""``/``False``: off;
    ``"8bit"``/``"4bit"``. Anything else is a ValueError."""
    if value is None:
        value = config_value
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if isinstance(value, str) and value.strip().lower() in QUANTIZATIONS:
        return value.strip().lower()
    raise ValueError(f"quantization: expected none, 8bit or 4bit, got {value!r}")


def check_quantization(mode: Optional[str], device: torch.device):
    """The bitsandbytes module for ``mode`` on ``device`` (None if ``mode`` is
    None); an ImportError or ValueError that says what to do otherwise.
    Checked before anything heavy is built."""
    if mode is None:
        return None
    hint = f"pip install 'bitsandbytes>={BNB_MIN_CPU[0]}.{BNB_MIN_CPU[1]}' or set quantization: none"
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise ImportError(f"quantization={mode!r} needs bitsandbytes and a CUDA GPU (or a CPU with "
                          f"bitsandbytes >= 0.46), but bitsandbytes is not installed: {hint}") from None
    if device.type == "cuda":
        return bnb
    if device.type == "cpu" and _version(getattr(bnb, "__version__", "0")) >= BNB_MIN_CPU:
        return bnb
    raise ValueError(f"quantization={mode!r} needs bitsandbytes and a CUDA GPU (or a CPU with "
                     f"bitsandbytes >= 0.46); got device {device} and bitsandbytes "
                     f"{getattr(bnb, '__version__', '?')}: {hint}")


def _version(text: str) -> Tuple[int, int]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple((parts + [0, 0])[:2])


def quantized_linear(bnb, linear: nn.Linear, mode: str, device: torch.device,
                     dtype: torch.dtype) -> nn.Module:
    """A bitsandbytes copy of ``linear`` on ``device`` (computing in ``dtype``)."""
    # Both bnb parameter kinds quantize when moved from the CPU to the device.
    weight = linear.weight.detach().to("cpu", torch.float16)
    bias = linear.bias is not None
    if mode == "8bit":
        new = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias,
                                  has_fp16_weights=False, threshold=6.0)
        new.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    else:
        new = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias, compute_dtype=dtype,
                                compress_statistics=True, quant_type="nf4")
        new.weight = bnb.nn.Params4bit(weight, requires_grad=False, compress_statistics=True,
                                       quant_type="nf4")
    if bias:
        new.bias = nn.Parameter(linear.bias.detach().to("cpu", dtype), requires_grad=False)
    del weight
    return new.to(device)


def weight_bytes(module: nn.Module) -> int:
    """Bytes of ``module``'s parameters and buffers, bitsandbytes' quantization
    statistics included (int8 row scales; NF4 block absmax, nested or not)."""
    total, seen = 0, set()

    def add(t) -> None:
        nonlocal total
        if isinstance(t, torch.Tensor) and id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()

    for t in list(module.parameters()) + list(module.buffers()):
        add(t)
        add(getattr(t, "SCB", None))
        state = getattr(t, "quant_state", None)
        while state is not None:
            add(state.absmax)
            add(getattr(state, "code", None))
            add(getattr(state, "offset", None))
            state = getattr(state, "state2", None)
    return total


def is_quantized(model: nn.Module) -> bool:
    """True when some module of ``model`` is a bitsandbytes layer."""
    return any(type(m).__module__.startswith("bitsandbytes") for m in model.modules())


# ------------------------------------------------------------------- LoRA
def _is_lora(module: nn.Module) -> bool:
    from peft.tuners.lora import LoraLayer

    return isinstance(module, LoraLayer)


def merge_lora_module(module: nn.Module) -> nn.Module:
    """``module`` (a peft LoRA layer) merged: its base layer with the adapter added."""
    module.merge(safe_merge=True)
    return module.get_base_layer()


def merge_lora(model: nn.Module) -> int:
    """Merge every peft LoRA layer of ``model`` into its base layer and put
    the base layer in its place (no ``lora_`` modules remain); returns how
    many were merged. Sets ``model.lora_merged``."""
    count = 0
    for parent, name, child in list(_children(model)):
        if _is_lora(child):
            setattr(parent, name, merge_lora_module(child))
            count += 1
    model.lora_merged = bool(count) or getattr(model, "lora_merged", False)
    return count


def _children(model: nn.Module) -> Iterator[Tuple[nn.Module, str, nn.Module]]:
    for module in model.modules():
        for name, child in module.named_children():
            yield module, name, child


# ------------------------------------------------- detach, materialise, attach
def detach_language_linears(model) -> List[Tuple[nn.Module, str, nn.Module]]:
    """Take the language model's decoder projections (plain ``nn.Linear`` or
    LoRA layers around one) out of ``model``, leaving ``nn.Identity`` in their
    place; returns (parent, name, module) to put back with ``attach``."""
    out = []
    for parent, name, child in list(_children(model.language_model.model.layers)):
        if _is_lora(child) or (type(child) is nn.Linear and not _inside_lora(parent)):
            out.append((parent, name, child))
    for parent, name, _ in out:
        setattr(parent, name, nn.Identity())
    return out


def _inside_lora(parent: nn.Module) -> bool:
    return _is_lora(parent) or isinstance(parent, nn.ModuleDict)


def attach_language_linears(detached, *, device: torch.device, dtype: torch.dtype, merge: bool,
                            bnb=None, mode: Optional[str] = None,
                            generator: Optional[torch.Generator] = None) -> None:
    """Put ``detached`` back one module at a time: parameters still on
    ``meta`` get random values on ``device``, a LoRA layer is merged if
    ``merge``, the (base) linear is quantized if ``mode``; everything ends on
    ``device``/``dtype``. Only one full-precision layer exists at a time."""
    while detached:
        parent, name, module = detached.pop(0)
        materialise(module, device, dtype, generator)
        if merge and _is_lora(module):
            module = merge_lora_module(module.to(device=device, dtype=dtype))
        if mode is not None:
            if _is_lora(module):
                module.base_layer = quantized_linear(bnb, module.base_layer, mode, device, dtype)
                for sub_name, sub in module.named_children():
                    if sub_name != "base_layer":
                        sub.to(device=device, dtype=dtype)
            else:
                module = quantized_linear(bnb, module, mode, device, dtype)
        else:
            module = module.to(device=device, dtype=dtype)
        setattr(parent, name, module)
        del module


def materialise(model: nn.Module, device: torch.device, dtype: torch.dtype,
                generator: Optional[torch.Generator] = None) -> int:
    """Give every parameter of ``model`` that is on ``meta`` storage on
    ``device`` (floating ones in ``dtype``), initialised at random: biases 0,
    norm scales 1, everything else normal(0, ``INIT_STD``). Returns how
    many parameters were materialised."""
    done = {}
    for module in model.modules():
        norm = "norm" in type(module).__name__.lower()
        for name, param in list(module._parameters.items()):
            if param is None or param.device.type != "meta":
                continue
            if id(param) not in done:
                want = dtype if param.is_floating_point() else param.dtype
                data = torch.empty(param.shape, device=device, dtype=want)
                with torch.no_grad():
                    if name.endswith("bias"):
                        data.zero_()
                    elif norm and name == "weight":
                        data.fill_(1.0)
                    else:
                        data.normal_(0.0, INIT_STD, generator=generator)
                done[id(param)] = nn.Parameter(data, requires_grad=param.requires_grad)
            module._parameters[name] = done[id(param)]
    return len(done)


def random_generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


# ---------------------------------------------------------------- compile
def compile_model(model, device: torch.device) -> bool:
    """``torch.compile`` the language model and the SAM mask decoder in place
    when ``device`` is CUDA; returns whether it did. On other devices it
    logs and does nothing (inductor's CPU code is not faster here)."""
    if device.type != "cuda":
        log.warning("compile: skipped on %s (torch.compile is used on CUDA only)", device)
        return False
    model.language_model.compile(dynamic=None)
    model.sam.mask_decoder.compile(dynamic=None)
    return True
