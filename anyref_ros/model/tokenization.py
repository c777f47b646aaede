"""Tokenizers: the LLaMA one from a checkpoint folder, or a word-level one built here.

The word-level tokenizer (tiny/toy presets) needs no download: a fixed
vocabulary, split on spaces (SentencePiece-style ``▁`` word markers, so text
decodes with its spaces) and punctuation, ``<unk>`` for anything else.  It is a
``PreTrainedTokenizerFast`` and is saved into checkpoint folders like any other.

``add_model_tokens`` adds ``[SEG]``, ``<im_start>``/``<im_end>`` and the
reference start/end tokens in the documented order (tokens already present,
as in LLaVA's 32003-token vocabulary, keep their ids).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Optional

from .config import AnyRefConfig, TokenConfig

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
WORD_MARK = "\u2581"  # "▁", the SentencePiece word-start marker


def build_word_level_tokenizer(words: Iterable[str]):
    """A ``PreTrainedTokenizerFast`` over ``words`` (each also with a ``▁`` prefix)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: Dict[str, int] = {}
    for token in (UNK, BOS, EOS, WORD_MARK):
        vocab.setdefault(token, len(vocab))
    for word in words:
        for token in (word, WORD_MARK + word):
            vocab.setdefault(token, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.normalizer = normalizers.Replace("\n", " ")
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=WORD_MARK, prepend_scheme="first"),
        pre_tokenizers.Punctuation(),
    ])
    core.decoder = decoders.Metaspace(replacement=WORD_MARK, prepend_scheme="first")
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=EOS,
                                   unk_token=UNK, pad_token=UNK, padding_side="right")


def build_stand_in_tokenizer(config: AnyRefConfig):
    """A word-level tokenizer of exactly ``config.language.vocab_size`` tokens
    once the model tokens are added (the LLaMA vocabulary's size), for random
    full-size weights without the LLaMA tokenizer files: the prompt
    templates' words and a small scene vocabulary, then filler tokens
    ``<extra_N>``. Prompts come out about as long as with LLaMA's tokenizer
    (the image features dominate); answers are meaningless, as the weights are."""
    from .presets import TINY_WORDS

    words = list(dict.fromkeys(TINY_WORDS))
    natural = 4 + 2 * len(words)  # UNK BOS EOS WORD_MARK, then each word and "▁word"
    target = config.language.vocab_size - len(config.tokens.added_tokens())
    words += [f"extra{i}" for i in range(max(0, (target - natural) // 2))]
    tokenizer = build_word_level_tokenizer(words)
    if len(tokenizer) < target:  # an odd gap
        tokenizer.add_tokens(["<extra>"])
    return tokenizer


def add_model_tokens(tokenizer, tokens: TokenConfig) -> int:
    """Add the model's tokens in order; returns how many were new."""
    from tokenizers import AddedToken

    added = 0
    for text, special in tokens.added_tokens():
        added += tokenizer.add_tokens([AddedToken(text, normalized=False, special=special)],
                                      special_tokens=special)
    return added


def load_tokenizer(folder: str | Path, config: AnyRefConfig):
    """Read a tokenizer saved in ``folder`` (LLaMA sentencepiece or word-level)."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"tokenizer folder {folder} does not exist")
    names = {p.name for p in folder.iterdir()}
    if not names & {"tokenizer.json", "tokenizer.model", "tokenizer_config.json"}:
        raise FileNotFoundError(
            f"{folder}: no tokenizer.json / tokenizer.model; copy the tokenizer files of "
            "the LLaMA/LLaVA checkpoint into this folder or set tokenizer.path in the config")
    tokenizer = AutoTokenizer.from_pretrained(
        str(folder), model_max_length=config.prompt.model_max_length, padding_side="right",
        local_files_only=True)
    if tokenizer.pad_token is None and tokenizer.unk_token is not None:
        tokenizer.pad_token = tokenizer.unk_token
    return tokenizer


def make_tokenizer(config: AnyRefConfig, folder: Optional[str | Path] = None):
    """The tokenizer of ``config`` with the model tokens added.

    ``folder`` given: the tokenizer saved there (LLaMA sentencepiece files or
    ``tokenizer.json``).  Otherwise a ``word_level`` config builds one from
    ``config.tokenizer.vocabulary``; a ``pretrained`` config is an error.
    """
    kind = config.tokenizer.kind
    if kind not in ("pretrained", "word_level"):
        raise ValueError(f"tokenizer.kind {kind!r}: expected 'pretrained' or 'word_level'")
    if folder is not None:
        tokenizer = load_tokenizer(folder, config)
    elif kind == "word_level":
        tokenizer = build_word_level_tokenizer(config.tokenizer.vocabulary)
    else:
        raise FileNotFoundError(
            f"preset {config.name!r} needs the LLaMA tokenizer: set weights.llava or "
            "weights.lisa (or tokenizer.path) to a folder with tokenizer.model / tokenizer.json")
    add_model_tokens(tokenizer, config.tokens)
    return tokenizer


class TokenIds:
    """Ids of the model's tokens, looked up (never hard-coded)."""

    def __init__(self, tokenizer, tokens: TokenConfig) -> None:
        def lookup(text: str) -> int:
            ids = tokenizer.encode(text, add_special_tokens=False)
            if len(ids) != 1:
                raise ValueError(f"token {text!r} is not a single token of this tokenizer ({ids})")
            return ids[0]

        self.seg = lookup(tokens.seg)
        self.bos = tokenizer.bos_token_id
        self.eos = tokenizer.eos_token_id
        self.special: List[int] = sorted(set(tokenizer.all_special_ids) | {
            lookup(t) for t, special in tokens.added_tokens() if special})
