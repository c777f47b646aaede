"""Teacher-forced forward pass and the AnyRef loss.

``AnyRefTrainingModule`` wraps an ``AnyRefModel`` so that one ``forward``
call (what DDP / accelerate see) runs a whole ``Batch``:

1. SAM image encoder and CLIP on the batch; exemplar/region crops pooled
   with the model's ``pool_reference``; audio through the ImageBind branch
   and ``audio_projector``;
2. per sample, ``model.embed_prompt`` (the pipeline's prompt embedding)
   followed by the answer tokens; right padding (causal attention: the real
   positions see exactly what the pipeline's single forced pass sees);
3. one language-model pass; LM cross-entropy on the answer + EOS;
4. per ``[SEG]``: ``e`` = its index - 1, ``s`` = answer start - 1, the
   model's ``attention_row`` and ``refocus`` with the pipeline's weight
   (``refocus.segment``; ``refocus.describe`` for region samples), gradients
   flowing through the attention, and ``text_hidden_fcs``, then ``model.decode_masks`` and
   ``postprocess_masks`` to the ground-truth size;
5. loss = lm * CE + bce * BCE + dice * Dice + iou * MSE + iou_log * LogMSE
   (samples without ``[SEG]``: LM only).  The IoU terms train SAM's IoU
   prediction head: MSE, as SAM does, between the predicted IoU and the real
   IoU with the target of the binary mask the pipeline would return
   (``postprocess_masks`` thresholded, which ``processing.masks_at_size``
   reproduces exactly), the real IoU
   detached (0 for an empty target: nothing there to find); LogMSE, the same
   error on the log of the miss ``1 - IoU + IOU_LOG_EPS`` (``iou_log_error``).
   MSE alone cannot rank good masks: most masks score 0.95-1.0, where its
   errors are below 1e-3, so the head's scores of good masks vary at random;
   on the log scale IoU 0.97 and 0.99 lie 0.69 apart.  Examples with
   ``lm=False`` (absent-object forced passes) have no LM labels.

``Outputs.sums`` keep each term summed (CE over answer tokens, the mask
terms over masks) with the counts ``tokens`` and ``masks``:
``Outputs.loss_over(tokens, masks)`` normalises them by counts of a larger
batch, so that micro-batches and processes add up to exactly the loss of
the whole optimizer step (``loss`` is ``loss_over`` this batch's own counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..model.modeling import AnyRefModel
from ..model.processing import pool_reference, postprocess_masks
from ..model.prompts import AUDIO_REF, IMAGE, IMAGE_REF
from ..model.refocus import attention_row, refocus
from .batch import Batch
from .config import LossWeights

IGNORE = -100
#: Floor of the miss ``1 - IoU`` in ``iou_log_error`` (a mask is never
#: ranked on differences much below 1 % of its union).
IOU_LOG_EPS = 0.01


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """``1 - (2 sum(p t) + 1) / (sum p + sum t + 1)`` per mask, averaged; p = sigmoid."""
    p = logits.sigmoid().flatten(1)
    t = target.flatten(1)
    return (1 - (2 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)).mean()


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel BCE-with-logits, averaged per mask, then over masks."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).mean(1).mean()


def mask_iou(logits: torch.Tensor, target: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """Real IoU (n,) of the binary masks ``logits > threshold`` with ``target``
    (n, H, W), detached; 0 where the union is empty (nothing to find)."""
    with torch.no_grad():
        pred = (logits > threshold).flatten(1)
        gt = target.flatten(1) > 0.5
        inter = (pred & gt).sum(1).float()
        union = (pred | gt).sum(1).float()
        return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))


def binary_iou(pred, target: torch.Tensor) -> torch.Tensor:
    """``mask_iou`` of bool masks ``pred`` (n, H, W; numpy or torch) with ``target``."""
    pred = torch.as_tensor(pred, device=target.device)
    return mask_iou(pred.float() - 0.5, target)


def iou_log_error(pred: torch.Tensor, real: torch.Tensor, eps: float = IOU_LOG_EPS) -> torch.Tensor:
    """Mean squared error of ``log(1 - IoU + eps)`` between the predicted
    IoU (clamped to [0, 1], as ``Referral.score``) and the real one."""
    miss = lambda x: torch.log(1.0 - x.float().clamp(0.0, 1.0) + eps)  # noqa: E731
    return F.mse_loss(miss(pred), miss(real))


def image_features(model: AnyRefModel, pixels: torch.Tensor) -> torch.Tensor:
    """``model.image_features`` for a batch: (B, 3, s, s) -> (B, P, D)."""
    out = model.vision_tower(pixels.to(model.dtype), output_hidden_states=True)
    return model.mm_projector(out.hidden_states[model.config.vision.select_layer][:, 1:])


#: Terms of ``Outputs.sums`` normalised per mask (the LM term per answer token).
MASK_TERMS = ("bce", "dice", "iou_mse", "iou_log")


@dataclass
class Outputs:
    loss: torch.Tensor
    parts: Dict[str, float]
    mask_logits: List[torch.Tensor]  # per [SEG] sample, (H, W) at the ground-truth size
    mask_index: List[int]  # batch index of each entry of mask_logits
    sums: Dict[str, torch.Tensor] = field(default_factory=dict)  # "lm" and MASK_TERMS, summed
    tokens: int = 0  # answer tokens with LM labels
    masks: int = 0  # [SEG] masks decoded
    weights: Optional[LossWeights] = None
    anchor: Optional[torch.Tensor] = None  # zero term over the trained parameters (reach_all)

    def loss_over(self, tokens: int, masks: int) -> torch.Tensor:
        """The weighted loss with the LM term divided by ``tokens`` and the
        mask terms by ``masks`` (each at least 1)."""
        w = self.weights
        loss = w.lm * self.sums["lm"] / max(tokens, 1)
        factors = {"bce": w.bce, "dice": w.dice, "iou_mse": w.iou, "iou_log": w.iou_log}
        for term in MASK_TERMS:
            if term in self.sums and factors[term]:
                loss = loss + factors[term] * self.sums[term] / max(masks, 1)
        return loss if self.anchor is None else loss + self.anchor


class AnyRefTrainingModule(nn.Module):
    """The model plus its teacher-forced loss (see the module docstring)."""

    def __init__(self, model: AnyRefModel, weights: LossWeights, reach_all: bool = False) -> None:
        super().__init__()
        self.model = model
        self.weights = weights
        # True (several processes): a loss that reaches no trained parameter
        # (nothing trained in this batch) gets a zero term over them, so every
        # process runs backward and the gradient all-reduce never waits.
        self.reach_all = reach_all

    def forward(self, batch: Batch) -> Outputs:
        model = self.model
        cfg = model.config
        lm = model.language_model
        sam_embedding = model.sam.image_encoder(batch.sam_pixels.to(model.dtype))
        scene = image_features(model, batch.clip_pixels)
        refs = image_features(model, batch.ref_pixels) if batch.ref_pixels is not None else None
        audio = None
        if batch.audio_clips is not None:
            audio = model.audio_projector(model.audio_encoder(batch.audio_clips.to(model.dtype)))

        embed = lm.get_input_embeddings()
        rows, labels, starts = [], [], []
        r = a = 0
        for i, ex in enumerate(batch.examples):
            feats = {IMAGE: scene[i]}
            if ex.ref_pixels is not None:
                feats[IMAGE_REF] = pool_reference(refs[r], cfg.vision.grid, cfg.prompt.image_ref_num)
                r += 1
            if ex.audio_clips is not None:
                feats[AUDIO_REF] = audio[a]
                a += 1
            prompt, _ = model.embed_prompt(ex.segments, feats)
            answer = torch.tensor(ex.answer_ids, device=prompt.device)
            rows.append(torch.cat([prompt[0], embed(answer[:-1]).to(prompt.dtype)]))
            start = prompt.shape[1]
            target = torch.full((rows[-1].shape[0],), IGNORE, dtype=torch.long, device=prompt.device)
            if ex.lm:
                target[start - 1:] = answer  # position j predicts token j + 1
            labels.append(target)
            starts.append(start)
        length = max(x.shape[0] for x in rows)
        embeds = torch.stack([F.pad(x, (0, 0, 0, length - x.shape[0])) for x in rows])
        attention = torch.stack([(torch.arange(length, device=embeds.device) < x.shape[0]).long()
                                 for x in rows])
        target = torch.stack([F.pad(t, (0, length - t.shape[0]), value=IGNORE) for t in labels])
        out = lm(inputs_embeds=embeds, attention_mask=attention, output_hidden_states=True,
                 use_cache=False)
        tokens = int((target != IGNORE).sum())
        if tokens:
            lm_sum = F.cross_entropy(out.logits.float().flatten(0, 1), target.flatten(),
                                     ignore_index=IGNORE, reduction="sum")
        else:
            lm_sum = out.logits.sum() * 0.0

        hidden, layer_input = out.hidden_states[-1], out.hidden_states[-2]
        states, index = [], []
        for i, ex in enumerate(batch.examples):
            # as the pipeline: describe() refocuses with its own weight
            weight = cfg.refocus.describe if ex.task == "region" else cfg.refocus.segment
            for k in ex.seg_offsets[:1]:  # one [SEG] per sample
                e, s = starts[i] + k - 1, starts[i] - 1
                row = attention_row(lm, layer_input[i], e) if weight else None
                states.append(refocus(hidden[i], row, s, e, weight))
                index.append(i)
        sums = {"lm": lm_sum}
        masks: List[torch.Tensor] = []
        if states:
            queries = model.text_hidden_fcs(torch.stack(states))
            bce = dice = iou_mse = iou_log = 0.0
            for q, i in zip(queries, index):
                ex = batch.examples[i]
                low_res, iou_pred = model.decode_masks(q.unsqueeze(0), sam_embedding[i:i + 1])
                logits = postprocess_masks(low_res, cfg.sam.image_size, ex.sam_input_size, ex.size)
                gt = ex.mask.to(logits.device)[None]
                bce = bce + bce_loss(logits, gt)
                dice = dice + dice_loss(logits, gt)
                # the IoU of the very mask the pipeline returns (processing.masks_at_size
                # gives exactly these logits thresholded; this stays on the device)
                real = mask_iou(logits, gt, cfg.sam.mask_threshold)
                iou_mse = iou_mse + F.mse_loss(iou_pred.float(), real)
                iou_log = iou_log + iou_log_error(iou_pred, real)
                masks.append(logits[0])
            sums.update(bce=bce, dice=dice, iou_mse=iou_mse, iou_log=iou_log)
        result = Outputs(loss=lm_sum, parts={}, mask_logits=masks, mask_index=index, sums=sums,
                         tokens=tokens, masks=len(index), weights=self.weights)
        result.loss = result.loss_over(tokens, len(index))
        if self.reach_all and not result.loss.requires_grad:
            trained = [p.sum() for p in self.parameters() if p.requires_grad]
            if trained:
                result.anchor = torch.stack(trained).sum() * 0.0
                result.loss = result.loss + result.anchor
        result.parts = {k: float(v.detach()) / max(tokens if k == "lm" else len(index), 1)
                        for k, v in sums.items()}
        result.parts["loss"] = float(result.loss.detach())
        return result
