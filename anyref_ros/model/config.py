"""Configuration of the AnyRef model: one dataclass tree, saved as JSON or YAML.

``AnyRefConfig`` describes every component (CLIP vision tower, LLaMA language
model with LoRA, SAM, ImageBind audio branch, projectors), the prompt
templates and special tokens, the refocusing weights, pre-processing
constants and where the weights come from.  A checkpoint folder holds it as
``config.json`` (and ``config.yaml`` for people); ``AnyRefConfig.load`` reads
either.  Presets (see ``presets.py``) are functions returning such objects.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

CONFIG_JSON = "config.json"
CONFIG_YAML = "config.yaml"
FORMAT_VERSION = 1


@dataclass
class VisionConfig:
    """CLIP ViT scene/exemplar encoder (transformers ``CLIPVisionModel``)."""

    hidden_size: int = 1024
    intermediate_size: int = 4096
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    image_size: int = 224
    patch_size: int = 14
    projection_dim: int = 768
    layer_norm_eps: float = 1e-5
    hidden_act: str = "quick_gelu"
    select_layer: int = -2  # hidden_states index whose patch tokens are used
    mean: Tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: Tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    center_crop: bool = False  # AnyRef: plain resize (no crop); LISA: CLIP crop

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


@dataclass
class LanguageConfig:
    """LLaMA decoder (transformers ``LlamaForCausalLM``)."""

    vocab_size: int = 32008
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int = 32
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0


@dataclass
class LoraSettings:
    """LoRA on the language model only."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: Tuple[str, ...] = ("q_proj", "v_proj")


@dataclass
class SamConfig:
    """Segment-anything image encoder, prompt encoder and mask decoder."""

    image_size: int = 1024
    patch_size: int = 16
    encoder_embed_dim: int = 1280
    encoder_depth: int = 32
    encoder_num_heads: int = 16
    encoder_global_attn_indexes: Tuple[int, ...] = (7, 15, 23, 31)
    window_size: int = 14
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    num_multimask_outputs: int = 3
    pixel_mean: Tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: Tuple[float, float, float] = (58.395, 57.12, 57.375)
    mask_threshold: float = 0.0  # on logits, i.e. sigmoid > 0.5

    @property
    def embedding_size(self) -> int:
        return self.image_size // self.patch_size


@dataclass
class AudioConfig:
    """ImageBind audio branch and its fbank pre-processing."""

    embed_dim: int = 768
    num_blocks: int = 12
    num_heads: int = 12
    out_embed_dim: int = 1024
    kernel_size: int = 16
    stride: int = 10
    drop_path: float = 0.1
    sample_rate: int = 16000
    clip_seconds: float = 2.0
    num_clips: int = 3
    num_mel_bins: int = 128
    target_length: int = 204
    mean: float = -4.268
    std: float = 9.138
    min_seconds: float = 0.1  # shorter input is rejected


@dataclass
class TokenConfig:
    """Added tokens (in this order) and the non-token feature placeholders."""

    seg: str = "[SEG]"
    image_start: str = "<im_start>"
    image_end: str = "<im_end>"
    audio_ref_start: str = "<aud_ref_start>"
    audio_ref_end: str = "<aud_ref_end>"
    image_ref_start: str = "<img_ref_start>"
    image_ref_end: str = "<img_ref_end>"
    # Placeholders replaced 1:1 by projected features; never tokenized.
    image: str = "<image>"
    image_ref: str = "<img_ref>"
    audio_ref: str = "<aud_ref>"
    use_ref_tokens: bool = True  # False: LISA (no reference tokens)

    def added_tokens(self) -> List[Tuple[str, bool]]:
        """(token, special) pairs in the documented order."""
        out = [(self.seg, False), (self.image_start, True), (self.image_end, True)]
        if self.use_ref_tokens:
            out += [(self.audio_ref_start, True), (self.audio_ref_end, True),
                    (self.image_ref_start, True), (self.image_ref_end, True)]
        return out


def _default_questions() -> Dict[str, str]:
    ref = "with the following reference {img_ref}"
    aud = "with the following audio {aud_ref}"
    return {
        "text": "Can you segment {expression} in this image?",
        "exemplar": "Can you segment object " + ref + " in this image?",
        "audio": "Can you segment object " + aud + " in this image?",
        "text+audio": "Can you segment {expression} " + aud + " in this image?",
        "text+exemplar": "Can you segment {expression} " + ref + " in this image?",
        "exemplar+audio": "Can you segment object " + ref + " and " + aud[5:] + " in this image?",
        "text+exemplar+audio": "Can you segment {expression} " + ref + " and " + aud[5:] + " in this image?",
        "region": "Can you provide a description of the region {img_ref} in this image?",
    }


@dataclass
class PromptConfig:
    """Conversation ("llava_v1") and task templates."""

    system: str = (
        "A chat between a curious human and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the human's questions."
    )
    user_role: str = "USER"
    assistant_role: str = "ASSISTANT"
    sep: str = " "
    image_prefix: str = "{image}\n"  # the user turn starts with the image
    questions: Dict[str, str] = field(default_factory=_default_questions)
    forced_answer: str = "{expression}[SEG]."  # answer of a text query
    # the model's reply when the referent is absent (prompts.NO_OBJECT_ANSWER for
    # models trained with absent queries); None: the model never says so
    no_object_answer: Optional[str] = None
    image_ref_num: int = 4
    max_new_tokens: int = 128
    model_max_length: int = 512


@dataclass
class RefocusConfig:
    """Weight lambda of the refocusing term, per task (0 disables it)."""

    segment: float = 0.1
    describe: float = 0.0


@dataclass
class TokenizerConfig:
    """``pretrained``: the (LLaMA sentencepiece) tokenizer saved in a folder:
    the checkpoint folder, else ``path``, else the ``lisa``/``llava`` folder.
    ``word_level``: built here from ``vocabulary`` (tiny/toy presets)."""

    kind: str = "pretrained"
    path: Optional[str] = None  # folder, relative paths against the checkpoint folder
    vocabulary: List[str] = field(default_factory=list)


@dataclass
class WeightsConfig:
    """Where weights come from.  Paths may be relative to the checkpoint folder.

    ``base``: this project's safetensors with base weights (self-contained
    folders); ``llava``: LLaVA-7B-v1-1 HF folder; ``lisa``: LISA-7B-v1 HF
    folder; ``clip``: CLIP ViT HF folder; ``sam``: ``sam_vit_*.pth``;
    ``imagebind``: ``imagebind_huge.pth``; ``trained``: this project's
    safetensors with the trained parts (applied last).
    """

    base: Optional[str] = None
    llava: Optional[str] = None
    lisa: Optional[str] = None
    clip: Optional[str] = None
    sam: Optional[str] = None
    imagebind: Optional[str] = None
    trained: Optional[str] = None
    # True: weights that no file provides are initialised randomly (seed
    # ``init_seed``; for from-scratch tiny/toy models).  False: an error.
    allow_random: bool = False


@dataclass
class AnyRefConfig:
    """The whole model.  ``audio=None`` builds no audio branch (LISA)."""

    name: str = "anyref-7b"
    vision: VisionConfig = field(default_factory=VisionConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    lora: Optional[LoraSettings] = field(default_factory=LoraSettings)
    sam: SamConfig = field(default_factory=SamConfig)
    audio: Optional[AudioConfig] = field(default_factory=AudioConfig)
    tokens: TokenConfig = field(default_factory=TokenConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    refocus: RefocusConfig = field(default_factory=RefocusConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    # Trained parts saved in the "trained" file (module-name prefixes); the
    # LoRA adapter and the added-token rows are always included.
    trained_modules: Tuple[str, ...] = (
        "text_hidden_fcs",
        "audio_projector",
        "sam.mask_decoder.mask_tokens",
        "sam.mask_decoder.output_upscaling",
        "sam.mask_decoder.output_hypernetworks_mlps",
        "language_model.lm_head",
    )
    dtype: str = "float32"
    # "8bit"/"4bit": load the language model's linear layers with
    # bitsandbytes (CUDA, or the CPU with bitsandbytes >= 0.46; see
    # optimize.py); None: plain ``dtype``.
    quantization: Optional[str] = None
    init_seed: int = 0  # random initialisation of weights no file provides
    format_version: int = FORMAT_VERSION

    # ----------------------------------------------------------------- IO
    def to_dict(self) -> Dict[str, Any]:
        return to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "AnyRefConfig":
        return dataclass_from_dict(cls, data, "config")

    def save(self, folder: str | Path) -> None:
        """Write ``config.json`` and ``config.yaml`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        data = self.to_dict()
        (folder / CONFIG_JSON).write_text(json.dumps(data, indent=2) + "\n")
        try:
            import yaml
        except ImportError:  # YAML is a convenience copy only
            return
        (folder / CONFIG_YAML).write_text(yaml.safe_dump(data, sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> "AnyRefConfig":
        """Read a config from a ``.json``/``.yaml`` file or a checkpoint folder."""
        path = Path(path)
        if path.is_dir():
            for name in (CONFIG_JSON, CONFIG_YAML):
                if (path / name).is_file():
                    return cls.load(path / name)
            raise FileNotFoundError(
                f"{path}: no {CONFIG_JSON} or {CONFIG_YAML}; this is not an anyref_ros "
                "checkpoint folder (save one with AnyRefPipeline.save_pretrained)")
        return cls.from_dict(read_mapping(path))


def read_mapping(path: Path) -> dict:
    """The mapping in a JSON or YAML (``.yaml``/``.yml``) file."""
    text = Path(path).read_text()
    if Path(path).suffix in (".yaml", ".yml"):
        import yaml
        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def to_plain(value: Any) -> Any:
    """Tuples -> lists, recursively (JSON/YAML-ready ``dataclasses.asdict`` output)."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def dataclass_from_dict(cls: type, data: Dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` (nested dataclasses, Optional, tuples) from plain
    JSON/YAML data; unknown keys are errors naming ``where``.  Reusable by
    other config trees (e.g. training)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; expected some of {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, f"{where}.{name}")
    return cls(**kwargs)


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if value is None:
        return None
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping")
        return dataclass_from_dict(hint, value, where)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, where) if len(inner) == 1 else value
    if origin is tuple:
        return tuple(value)
    if origin is list:
        return list(value)
    return value
