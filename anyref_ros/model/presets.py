"""Named configurations.  Other code adds its own with ``register_preset``.

* ``anyref-7b``: LLaVA-7B-v1-1 + LoRA, CLIP ViT-L/14 (224 px), SAM ViT-H,
  ImageBind-H audio branch (the paper's model).
* ``lisa-7b``: the released LISA-7B-v1 layout (text queries only).
* ``tiny``: the anyref-7b architecture at tiny sizes with random weights
  (deterministic seed), for tests.
"""

from __future__ import annotations

from typing import Callable, Dict, List

from .config import (AnyRefConfig, AudioConfig, LanguageConfig, LoraSettings, PromptConfig,
                     RefocusConfig, SamConfig, TokenConfig, TokenizerConfig, VisionConfig, WeightsConfig)

_PRESETS: Dict[str, Callable[[], AnyRefConfig]] = {}


def register_preset(name: str, factory: Callable[[], AnyRefConfig]) -> None:
    """Make ``AnyRefPipeline.from_pretrained(name)`` build ``factory()``."""
    _PRESETS[name] = factory


def preset_names() -> List[str]:
    return sorted(_PRESETS)


def get_preset(name: str) -> AnyRefConfig:
    """A fresh config for preset ``name``; KeyError lists the known names."""
    if name not in _PRESETS:
        raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(preset_names())}")
    return _PRESETS[name]()


def anyref_7b() -> AnyRefConfig:
    """AnyRef (CVPR 2024) at full size.  Weights: see ``WeightsConfig``."""
    return AnyRefConfig(name="anyref-7b", dtype="bfloat16")


def lisa_7b() -> AnyRefConfig:
    """LISA-7B-v1: merged LLaVA-7B (no LoRA), CLIP with centre crop, no
    audio branch, no reference tokens, answers "It is [SEG].", no refocusing."""
    return AnyRefConfig(
        name="lisa-7b",
        vision=VisionConfig(center_crop=True),
        language=LanguageConfig(vocab_size=32004),
        lora=None,
        audio=None,
        tokens=TokenConfig(use_ref_tokens=False),
        prompt=PromptConfig(
            questions={"text": "Can you segment the {expression} in this image?"},
            forced_answer="It is [SEG].",
            max_new_tokens=32,
        ),
        refocus=RefocusConfig(segment=0.0, describe=0.0),
        trained_modules=("text_hidden_fcs", "sam.mask_decoder", "language_model.lm_head"),
        dtype="bfloat16",
    )


# Words of the tiny tokenizer: the templates' words plus a small scene vocabulary.
TINY_WORDS = (
    "a an the of and or with in on at to this that it is object objects region image "
    "can you segment provide description following reference audio please what where "
    "chat between curious human artificial intelligence assistant gives helpful detailed "
    "polite answers human's questions USER ASSISTANT A The Can It Sure "
    "cat dog cup ball box car person bird chair table bottle robot block cube sphere "
    "red green blue yellow black white small large big left right top bottom middle "
    "near next front behind "
    ". , ? ! : ' s"
).split()


def tiny() -> AnyRefConfig:
    """The anyref-7b architecture at toy sizes; a query takes milliseconds."""
    return AnyRefConfig(
        name="tiny",
        vision=VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=2, image_size=32, patch_size=8,
                            projection_dim=32),
        language=LanguageConfig(vocab_size=0, hidden_size=64, intermediate_size=128,
                                num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=4, max_position_embeddings=512),
        lora=LoraSettings(r=8, alpha=16, dropout=0.05),
        sam=SamConfig(image_size=128, patch_size=16, encoder_embed_dim=32, encoder_depth=2,
                      encoder_num_heads=2, encoder_global_attn_indexes=(1,), window_size=4,
                      prompt_embed_dim=32, mask_in_chans=4, decoder_depth=2, decoder_mlp_dim=64,
                      decoder_num_heads=2, iou_head_depth=3, iou_head_hidden_dim=32),
        audio=AudioConfig(embed_dim=32, num_blocks=1, num_heads=2, out_embed_dim=32),
        prompt=PromptConfig(max_new_tokens=8),
        tokenizer=TokenizerConfig(kind="word_level", vocabulary=list(TINY_WORDS)),
        weights=WeightsConfig(allow_random=True),
        dtype="float32",
        init_seed=0,
    )


register_preset("anyref-7b", anyref_7b)
register_preset("lisa-7b", lisa_7b)
register_preset("tiny", tiny)
