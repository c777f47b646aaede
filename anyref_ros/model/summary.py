"""Parameter counts per component, from the full architecture built on ``meta``.

    python -m anyref_ros.model.summary anyref-7b

prints ``{"components": {NAME: PARAMS, ...}, "total": N}``.  Nothing is
allocated and no weights are read; the vocabulary is the preset's
``language.vocab_size`` (the base tokenizer plus the added tokens).
"""

from __future__ import annotations

import json
import sys
from typing import Dict

import torch

from .config import AnyRefConfig
from .presets import get_preset, preset_names

COMPONENTS = (
    ("language_model", "LLaMA language model"),
    ("lora", "LoRA adapter"),
    ("vision_tower", "CLIP vision tower"),
    ("mm_projector", "vision projector"),
    ("sam", "SAM"),
    ("audio_encoder", "ImageBind audio branch"),
    ("audio_projector", "audio projector"),
    ("text_hidden_fcs", "text_hidden_fcs"),
)


def count_parameters(config: AnyRefConfig) -> Dict[str, int]:
    """Parameters per component (``COMPONENTS`` keys) of ``config``'s model."""
    from .modeling import AnyRefModel

    if config.language.vocab_size <= 0:  # set from a word-level tokenizer
        from .tokenization import make_tokenizer

        config.language.vocab_size = len(make_tokenizer(config))
    with torch.device("meta"):
        model = AnyRefModel(config)
    counts = {key: 0 for key, _ in COMPONENTS}
    for name, param in model.named_parameters():
        top = name.split(".", 1)[0]
        key = "lora" if "lora_" in name else top
        counts[key] += param.numel()
    return {key: n for key, n in counts.items() if n}


def summary(name: str) -> Dict[str, object]:
    counts = count_parameters(get_preset(name))
    return {"components": counts, "total": sum(counts.values())}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in preset_names():
        print(f"usage: python -m anyref_ros.model.summary PRESET  (one of: {', '.join(preset_names())})",
              file=sys.stderr)
        return 2
    print(json.dumps(summary(argv[0]), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
