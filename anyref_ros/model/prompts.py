"""Prompt text ("llava_v1" conversation) and its tokenization into segments.

A prompt is text with feature placeholders (``<image>``, ``<img_ref>``,
``<aud_ref>``) that are not tokens: ``tokenize_prompt`` splits the text at
them, tokenizes each text chunk (BOS once, at the start) and returns a list
of segments, token-id lists and placeholder names, which the model turns into
one embedding sequence (each placeholder replaced 1:1 by feature vectors).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

from .config import AnyRefConfig

Segment = Union[List[int], str]  # token ids, or a placeholder name

IMAGE, IMAGE_REF, AUDIO_REF = "image", "image_ref", "audio_ref"

#: The fixed reply of a model trained to say that the referent is absent
#: (no ``[SEG]`` token, so no mask).  Models that learned it set
#: ``PromptConfig.no_object_answer`` to it; the pipeline then reports
#: ``Referral.found = False`` for absent referents (see ``AnyRefPipeline.segment``).
NO_OBJECT_ANSWER = "It is not in view."
REFERENCE_KINDS = ("text", "exemplar", "audio")


def question_key(kinds: Sequence[str]) -> str:
    """Template key for a set of reference kinds, e.g. ("text", "audio") -> "text+audio"."""
    return "+".join(k for k in REFERENCE_KINDS if k in kinds)


def check_user_text(text: str, config: AnyRefConfig, tokenizer=None) -> str:
    """The stripped expression; ValueError if empty or it holds a token the
    user must not write: the model's added tokens and placeholders
    (``[SEG]``, ``<im_start>``, ``<image>``, ...) and, given ``tokenizer``,
    its special tokens (``<s>``, ``</s>``, ``<unk>``, ...) and added tokens.
    Such text is refused, not escaped: a tokenizer turns these strings into
    control ids (``</s>`` would end the user turn early), and there is no
    spelling of them the model was trained to read as plain text."""
    if not isinstance(text, str):
        raise ValueError(f"text: expected a str, got {type(text).__name__}")
    text = text.strip()
    if not text:
        raise ValueError("text: expected a non-empty referring expression, got an empty string")
    found = [t for t in reserved_strings(config, tokenizer) if t in text]
    if found:
        raise ValueError(f"text: must not contain the model's reserved tokens {found}; "
                         "write the expression in plain words")
    return text


def reserved_strings(config: AnyRefConfig, tokenizer=None) -> List[str]:
    """Strings that a tokenizer turns into control ids, or that the prompt
    builder replaces: see :func:`check_user_text`."""
    tokens = config.tokens
    reserved = [t for t, _ in tokens.added_tokens()] + [tokens.image, tokens.image_ref, tokens.audio_ref]
    if tokenizer is not None:
        reserved += list(getattr(tokenizer, "all_special_tokens", []) or [])
        added = getattr(tokenizer, "get_added_vocab", None)
        reserved += list(added()) if callable(added) else []
    return [t for t in dict.fromkeys(reserved) if t]


@dataclass
class Prompt:
    """The conversation text up to ``ASSISTANT:`` and the answer to force, if known."""

    text: str
    answer: Optional[str]
    task: str  # "segment" or "describe"


def build_prompt(config: AnyRefConfig, key: str, expression: Optional[str] = None,
                 force: bool = True) -> Prompt:
    """The llava_v1 prompt for template ``key`` (see ``PromptConfig.questions``)."""
    p, t = config.prompt, config.tokens
    if key not in p.questions:
        supported = ", ".join(sorted(p.questions))
        raise ValueError(f"preset {config.name!r} has no prompt for {key!r} references; "
                         f"it supports: {supported}")
    question = p.questions[key]
    if "{expression}" in question and expression is None:
        raise ValueError(f"the {key!r} template needs a text expression")
    if expression is not None:
        question = question.replace("{expression}", expression)
    audio_clips = config.audio.num_clips if config.audio is not None else 0
    question = question.replace(
        "{img_ref}", t.image_ref_start + t.image_ref * p.image_ref_num + t.image_ref_end)
    question = question.replace(
        "{aud_ref}", t.audio_ref_start + t.audio_ref * audio_clips + t.audio_ref_end)
    image = t.image_start + t.image + t.image_end
    user = p.image_prefix.replace("{image}", image) + question
    text = (f"{p.system}{p.sep}{p.user_role}: {user}{p.sep}{p.assistant_role}:")
    answer = None
    if force and expression is not None and key != "region":
        answer = p.forced_answer.replace("{expression}", expression)
    return Prompt(text=text, answer=answer, task="describe" if key == "region" else "segment")


def tokenize_prompt(tokenizer, text: str, config: AnyRefConfig,
                    memo: Optional[dict] = None) -> List[Segment]:
    """Split ``text`` at placeholders and tokenize the chunks (BOS first).
    ``memo``: a dict that keeps the ids of chunks seen before (the system
    prompt is the same in every query); it is emptied past 512 entries."""
    t = config.tokens
    names = {t.image: IMAGE, t.image_ref: IMAGE_REF, t.audio_ref: AUDIO_REF}
    pattern = "(" + "|".join(re.escape(k) for k in names) + ")"
    segments: List[Segment] = []
    if tokenizer.bos_token_id is not None:
        segments.append([tokenizer.bos_token_id])
    for piece in re.split(pattern, text):
        if piece in names:
            segments.append(names[piece])
        elif piece and memo is not None:
            ids = memo.get(piece)
            if ids is None:
                if len(memo) >= 512:
                    memo.clear()
                ids = memo[piece] = tokenizer.encode(piece, add_special_tokens=False)
            segments.append(list(ids))
        elif piece:
            segments.append(tokenizer.encode(piece, add_special_tokens=False))
    return segments


def tokenize_answer(tokenizer, answer: str) -> List[int]:
    """Token ids of a forced answer, as the model would generate them."""
    return tokenizer.encode(answer, add_special_tokens=False)


# ------------------------------------------------------ shared prompt start
def _flatten(segments: Sequence[Segment]) -> List[Union[int, str]]:
    items: List[Union[int, str]] = []
    for seg in segments:
        if isinstance(seg, str):
            items.append(seg)
        else:
            items.extend(seg)
    return items


def _group(items: Sequence[Union[int, str]]) -> List[Segment]:
    segments: List[Segment] = []
    for item in items:
        if isinstance(item, str):
            segments.append(item)
        elif segments and not isinstance(segments[-1], str):
            segments[-1].append(item)
        else:
            segments.append([item])
    return segments


def shared_prefix(tokenizer, config: AnyRefConfig) -> List[Segment]:
    """The segments every prompt of ``config`` starts with, whatever the query:
    the longest common start of all question templates (each with two
    different expressions), tokenized, ending before the first placeholder
    other than the image and without its last token (which could merge with
    what follows).  Typically BOS, the system prompt, the user role, the
    image and the fixed start of the question."""
    t = config.tokens
    flats = []
    for key, question in config.prompt.questions.items():
        expressions = (t.seg, t.image_start) if "{expression}" in question else (None,)
        for expression in expressions:
            text = build_prompt(config, key, expression, force=False).text
            flats.append(_flatten(tokenize_prompt(tokenizer, text, config)))
    if not flats:
        return []
    first, n = flats[0], 0
    while (n < len(first) and all(len(f) > n and f[n] == first[n] for f in flats)
           and (not isinstance(first[n], str) or first[n] == IMAGE)):
        n += 1
    if n and not isinstance(first[n - 1], str):
        n -= 1
    return _group(first[:n])


def split_prefix(segments: Sequence[Segment], prefix: Sequence[Segment]) -> Optional[List[Segment]]:
    """The segments after ``prefix`` when ``segments`` start with exactly its
    tokens (and go on after it); None otherwise."""
    items, start = _flatten(segments), _flatten(prefix)
    if not start or len(items) <= len(start) or items[: len(start)] != start:
        return None
    return _group(items[len(start):])
