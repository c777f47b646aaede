"""The AnyRef network: components built from their packages, plus the glue.

``AnyRefModel`` holds (attribute names are also the state-dict prefixes):

* ``vision_tower``: transformers ``CLIPVisionModel``; patch tokens of hidden
  layer ``select_layer`` (CLS dropped);
* ``mm_projector``: ``Linear(clip hidden -> llm hidden)``;
* ``language_model``: transformers ``LlamaForCausalLM`` with a peft LoRA
  adapter on ``q_proj``/``v_proj`` (if configured);
* ``sam``: segment-anything ``Sam`` (image encoder, prompt encoder, mask decoder);
* ``text_hidden_fcs``: ``Linear(h, h) -> ReLU -> Linear(h, prompt dim) -> Dropout(0)``;
* ``audio_encoder`` (ImageBind audio branch, ImageBind's key names) and
  ``audio_projector``: ``Linear(audio out -> llm hidden)``, if configured.

It works on tensors; ``pipeline.py`` does the numpy side.  Nothing here reads
files (see ``loading.py``).
"""

from __future__ import annotations

from functools import partial
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from ._imports import imagebind_model
from .config import AnyRefConfig, AudioConfig, SamConfig
from .processing import pool_reference
from .prompts import AUDIO_REF, IMAGE, IMAGE_REF, Segment


def build_vision_tower(config: AnyRefConfig):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    v = config.vision
    return CLIPVisionModel(CLIPVisionConfig(
        hidden_size=v.hidden_size, intermediate_size=v.intermediate_size,
        num_hidden_layers=v.num_hidden_layers, num_attention_heads=v.num_attention_heads,
        image_size=v.image_size, patch_size=v.patch_size, projection_dim=v.projection_dim,
        layer_norm_eps=v.layer_norm_eps, hidden_act=v.hidden_act, num_channels=3))


def build_language_model(config: AnyRefConfig):
    from transformers import LlamaConfig, LlamaForCausalLM

    lang = config.language
    if lang.vocab_size <= 0:
        raise ValueError("language.vocab_size is not set; build the tokenizer first")
    llm = LlamaForCausalLM(LlamaConfig(
        vocab_size=lang.vocab_size, hidden_size=lang.hidden_size,
        intermediate_size=lang.intermediate_size, num_hidden_layers=lang.num_hidden_layers,
        num_attention_heads=lang.num_attention_heads,
        num_key_value_heads=lang.num_key_value_heads,
        max_position_embeddings=lang.max_position_embeddings, rms_norm_eps=lang.rms_norm_eps,
        rope_theta=lang.rope_theta, tie_word_embeddings=False, use_cache=True))
    if config.lora is not None:
        add_lora(llm, config)
    return llm


def add_lora(llm, config: AnyRefConfig) -> None:
    """Inject the LoRA adapter into the language model (in place)."""
    from peft import LoraConfig, inject_adapter_in_model

    lora = config.lora
    inject_adapter_in_model(LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules), bias="none"), llm)


def build_sam(cfg: SamConfig):
    from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,
                                           TwoWayTransformer)

    grid = cfg.embedding_size
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=cfg.encoder_depth, embed_dim=cfg.encoder_embed_dim, img_size=cfg.image_size,
            mlp_ratio=4, norm_layer=partial(nn.LayerNorm, eps=1e-6),
            num_heads=cfg.encoder_num_heads, patch_size=cfg.patch_size, qkv_bias=True,
            use_rel_pos=True, global_attn_indexes=tuple(cfg.encoder_global_attn_indexes),
            window_size=cfg.window_size, out_chans=cfg.prompt_embed_dim),
        prompt_encoder=PromptEncoder(
            embed_dim=cfg.prompt_embed_dim, image_embedding_size=(grid, grid),
            input_image_size=(cfg.image_size, cfg.image_size), mask_in_chans=cfg.mask_in_chans),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=cfg.num_multimask_outputs,
            transformer=TwoWayTransformer(depth=cfg.decoder_depth,
                                          embedding_dim=cfg.prompt_embed_dim,
                                          mlp_dim=cfg.decoder_mlp_dim,
                                          num_heads=cfg.decoder_num_heads),
            transformer_dim=cfg.prompt_embed_dim, iou_head_depth=cfg.iou_head_depth,
            iou_head_hidden_dim=cfg.iou_head_hidden_dim),
        pixel_mean=list(cfg.pixel_mean), pixel_std=list(cfg.pixel_std))


class AudioEncoder(nn.Module):
    """ImageBind's audio branch only.  Sub-module names match ImageBind's
    checkpoint keys (``modality_trunks.audio.…``).  Unlike ImageBind, the
    clips are not averaged: (B, S, 1, mel, T) -> (B, S, out_embed_dim)."""

    def __init__(self, cfg: AudioConfig) -> None:
        super().__init__()
        # ImageBindModel builds every modality; the others are built tiny
        # (see _imagebind_kwargs) and dropped with ``full``.
        target = torch.get_default_device()
        # ImageBind's constructor calls .item() on tensors, which the meta
        # device cannot do: build on the CPU, then move to the meta device.
        with torch.device("cpu" if target.type == "meta" else target):
            full = imagebind_model().ImageBindModel(**_imagebind_kwargs(cfg))
        if target.type == "meta":
            full = full.to("meta")
        for name in ("modality_preprocessors", "modality_trunks", "modality_heads",
                     "modality_postprocessors"):
            setattr(self, name, nn.ModuleDict({"audio": getattr(full, name)["audio"]}))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        b, s = clips.shape[:2]
        x = clips.reshape(b * s, *clips.shape[2:])
        prep = self.modality_preprocessors["audio"](audio=x)
        x = self.modality_trunks["audio"](**prep["trunk"])
        x = self.modality_heads["audio"](x, **prep["head"])
        x = self.modality_postprocessors["audio"](x)
        return x.reshape(b, s, -1)


def _imagebind_kwargs(cfg: AudioConfig) -> Dict[str, object]:
    # The non-audio modalities are shrunk: they are built only to be dropped.
    small = dict(vision_embed_dim=8, vision_num_blocks=1, vision_num_heads=1,
                 text_embed_dim=8, text_num_blocks=1, text_num_heads=1,
                 depth_embed_dim=8, depth_num_blocks=1, depth_num_heads=1,
                 thermal_embed_dim=8, thermal_num_blocks=1, thermal_num_heads=1,
                 imu_embed_dim=8, imu_num_blocks=1, imu_num_heads=1)
    return dict(small, audio_kernel_size=cfg.kernel_size, audio_stride=cfg.stride,
                out_embed_dim=cfg.out_embed_dim, audio_embed_dim=cfg.embed_dim,
                audio_num_blocks=cfg.num_blocks, audio_num_heads=cfg.num_heads,
                audio_num_mel_bins=cfg.num_mel_bins, audio_target_len=cfg.target_length,
                audio_drop_path=cfg.drop_path)


class AnyRefModel(nn.Module):
    """All components of one AnyRef model (see the module docstring)."""

    def __init__(self, config: AnyRefConfig) -> None:
        super().__init__()
        self.config = config
        lang = config.language.hidden_size
        self.vision_tower = build_vision_tower(config)
        self.mm_projector = nn.Linear(config.vision.hidden_size, lang)
        self.language_model = build_language_model(config)
        self.sam = build_sam(config.sam)
        self.text_hidden_fcs = nn.Sequential(
            nn.Linear(lang, lang), nn.ReLU(inplace=True),
            nn.Linear(lang, config.sam.prompt_embed_dim), nn.Dropout(0.0))
        if config.audio is not None:
            self.audio_encoder = AudioEncoder(config.audio)
            self.audio_projector = nn.Linear(config.audio.out_embed_dim, lang)
        else:
            self.audio_encoder = None
            self.audio_projector = None

    def place(self, device: torch.device, dtype: torch.dtype) -> "AnyRefModel":
        """Move to ``device``/``dtype``.  SAM's random positional-encoding
        matrix stays float32: segment-anything multiplies it with float32
        coordinates."""
        self.to(device=device, dtype=dtype)
        pe = self.sam.prompt_encoder.pe_layer
        pe.positional_encoding_gaussian_matrix = pe.positional_encoding_gaussian_matrix.float()
        return self

    # ------------------------------------------------------------ encoders
    @property
    def dtype(self) -> torch.dtype:
        return self.mm_projector.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.mm_projector.weight.device

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """CLIP pixels (1, 3, S, S) -> projected patch features (P, llm hidden)."""
        out = self.vision_tower(pixels.to(self.device, self.dtype), output_hidden_states=True)
        patches = out.hidden_states[self.config.vision.select_layer][:, 1:]
        return self.mm_projector(patches)[0]

    def reference_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Exemplar/region crop pixels -> IMG_REF_NUM pooled tokens (N, llm hidden)."""
        return pool_reference(self.image_features(pixels), self.config.vision.grid,
                              self.config.prompt.image_ref_num)

    def audio_features(self, clips: torch.Tensor) -> torch.Tensor:
        """Fbank clips (1, S, 1, mel, T) -> one token per clip (S, llm hidden)."""
        if self.audio_encoder is None:
            raise ValueError(f"preset {self.config.name!r} has no audio branch; "
                             "audio references need an AnyRef checkpoint")
        emb = self.audio_encoder(clips.to(self.device, self.dtype))[0]
        return self.audio_projector(emb)

    def sam_embedding(self, pixels: torch.Tensor) -> torch.Tensor:
        """SAM pixels (1, 3, S, S) -> image embedding (1, C, s, s)."""
        return self.sam.image_encoder(pixels.to(self.device, self.dtype))

    # ---------------------------------------------------------- LLM input
    def embed_prompt(self, segments: Sequence[Segment],
                     features: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Token segments + placeholder features -> (embeds (1, L, D), ids (L,)).

        ``features``: ``image`` (P, D) replaces the one image placeholder;
        ``image_ref``/``audio_ref`` (N, D) replace their placeholders one row
        each, in order.  ``ids`` is -1 at feature positions (the expanded
        sequence, in which all positions are counted).
        """
        embed = self.language_model.get_input_embeddings()
        used = {IMAGE: 0, IMAGE_REF: 0, AUDIO_REF: 0}
        parts: List[torch.Tensor] = []
        ids: List[torch.Tensor] = []
        for seg in segments:
            if isinstance(seg, str):
                if seg not in features:
                    raise ValueError(f"the prompt has a {seg} placeholder but no {seg} features")
                rows = features[seg]
                if seg == IMAGE:
                    chunk = rows
                else:
                    if used[seg] >= rows.shape[0]:
                        raise ValueError(f"more {seg} placeholders than {seg} features ({rows.shape[0]})")
                    chunk = rows[used[seg]: used[seg] + 1]
                used[seg] += chunk.shape[0]
                parts.append(chunk.to(self.dtype))
                ids.append(torch.full((chunk.shape[0],), -1, dtype=torch.long))
            else:
                tok = torch.tensor(seg, dtype=torch.long)
                parts.append(embed(tok.to(self.device)))
                ids.append(tok)
        for name, rows in features.items():
            if used.get(name, 0) != rows.shape[0]:
                raise ValueError(f"{rows.shape[0]} {name} features but {used.get(name, 0)} placeholders")
        return torch.cat(parts).unsqueeze(0), torch.cat(ids)

    # --------------------------------------------------------- mask head
    def decode_masks(self, queries: torch.Tensor,
                     image_embedding: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Prompt vectors (n, C) -> low-res mask logits (n, 1, h, w), IoU scores (n,).

        Each query is the only sparse prompt token; the dense prompt is the
        no-mask embedding; ``multimask_output=False``.
        """
        sam = self.sam
        sparse, dense = sam.prompt_encoder(points=None, boxes=None, masks=None)
        n = queries.shape[0]
        sparse = torch.cat([sparse.expand(n, -1, -1), queries.unsqueeze(1)], dim=1).to(self.dtype)
        low_res, iou = sam.mask_decoder(
            image_embeddings=image_embedding.to(self.dtype),
            image_pe=sam.prompt_encoder.get_dense_pe().to(self.dtype),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense.to(self.dtype),
            multimask_output=False)
        return low_res, iou[:, 0]
