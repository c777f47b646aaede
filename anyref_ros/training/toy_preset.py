"""The ``toy`` preset: a small AnyRef-shaped model for the toy world.

Same architecture as ``anyref-7b`` (CLIP-style vision tower, LLaMA, SAM
image encoder + prompt encoder + mask decoder, ImageBind audio branch), at
sizes that train from scratch on a 2-core CPU within an hour.  Design
choices (see ``model/toy/README.md`` for the measured effect):

* few scene tokens for the language model (CLIP 32 px, patch 8: 16 tokens),
  since no toy task needs the language model to look at the scene;
* capacity on the SAM side, where colour, shape and location meet
  (patch-8 ViT over the 128 px scene, 16x16 embedding, 64x64 mask logits),
  and a 128-d prompt space: SAM's upscaled per-pixel features have
  ``prompt_embed_dim / 8`` channels, which the ``[SEG]`` query's
  hypernetwork reads linearly (64 would leave 8 channels for colour, shape
  and outline);
* refocusing weight 1.0 (the paper: 0.1 for segmentation, 0 for region
  descriptions): the ``[SEG]`` query then carries the answer's earlier
  words, e.g. the colour in "red object[SEG]" / "red circle[SEG]".  With
  0.1 the from-scratch model learned to ignore colour (held-out IoU 0.31 on
  "{colour} object" queries, text cIoU stuck at 0.73); with 1.0 colour
  queries reach ~0.8 IoU by step 2000;
* no LoRA: everything trains from scratch;
* absent referents: text queries about objects that are not in the scene
  are answered with ``prompts.NO_OBJECT_ANSWER`` ("It is not in view.", no
  ``[SEG]``); its three words not used elsewhere are in the vocabulary.

Registered on import of ``anyref_ros.training`` (and ``anyref_ros.evaluation.cli``).
"""

from __future__ import annotations

from ..model.config import (AnyRefConfig, AudioConfig, LanguageConfig, PromptConfig, RefocusConfig,
                            SamConfig, TokenizerConfig, VisionConfig, WeightsConfig)
from ..model.presets import register_preset
from ..model.prompts import NO_OBJECT_ANSWER

#: Words of the toy tokenizer: the prompt templates plus the toy world's names.
TOY_WORDS = (
    "A chat between a human and an assistant USER ASSISTANT "
    "Can you segment object with the following reference audio provide description of "
    "region in this image it is "
    "circle square triangle red green blue yellow "
    ". , ? : "
    "It not view"  # the no-object reply, prompts.NO_OBJECT_ANSWER
).split()

TOY_SYSTEM = "A chat between a human and an assistant."


def toy() -> AnyRefConfig:
    """The toy-world model (about 2 M parameters)."""
    return AnyRefConfig(
        name="toy",
        vision=VisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=4, image_size=32, patch_size=8,
                            projection_dim=64, select_layer=-1),
        language=LanguageConfig(vocab_size=0, hidden_size=128, intermediate_size=256,
                                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                max_position_embeddings=256),
        lora=None,
        sam=SamConfig(image_size=128, patch_size=8, encoder_embed_dim=96, encoder_depth=4,
                      encoder_num_heads=4, encoder_global_attn_indexes=(1, 3), window_size=8,
                      prompt_embed_dim=128, mask_in_chans=4, decoder_depth=2, decoder_mlp_dim=256,
                      decoder_num_heads=4, iou_head_depth=2, iou_head_hidden_dim=64),
        audio=AudioConfig(embed_dim=48, num_blocks=1, num_heads=2, out_embed_dim=64, drop_path=0.0),
        prompt=PromptConfig(system=TOY_SYSTEM, max_new_tokens=8, model_max_length=256,
                            no_object_answer=NO_OBJECT_ANSWER),
        refocus=RefocusConfig(segment=1.0, describe=1.0),
        tokenizer=TokenizerConfig(kind="word_level", vocabulary=list(TOY_WORDS)),
        weights=WeightsConfig(allow_random=True),
        dtype="float32",
        init_seed=0,
    )


register_preset("toy", toy)
