"""Text metrics for region descriptions: exact match, CIDEr-D, METEOR.

* Exact match compares normalised strings (:func:`normalise_text`); it is the
  toy world's description metric.
* CIDEr-D is implemented here from its definition (Vedantam et al., CVPR
  2015, as used by the COCO caption evaluation): TF-IDF weighted n-gram
  vectors (n = 1..4, IDF from the reference sets of the whole corpus),
  cosine similarity with clipping of the candidate's weights by the
  reference's, a Gaussian length penalty (sigma 6), averaged over n and over
  references, times 10. Tokenisation is lower-case words with punctuation
  removed (the COCO tool uses the Stanford PTB tokenizer, so scores on real
  captions can differ slightly).
* METEOR needs WordNet and a paraphrase table; it is computed only when an
  installed scorer is found (``pycocoevalcap`` with Java, or ``nltk`` with its
  WordNet data), else :class:`MetricUnavailable` is raised.
"""

from __future__ import annotations

import math
import re
import shutil
from collections import Counter
from collections.abc import Sequence

from ..data.sample import SEG_TOKEN


class MetricUnavailable(RuntimeError):
    """A metric whose scorer is not installed on this machine."""


_TRAILING = ".,;:!? \t\n"


def normalise_text(text: str, seg_token: str = SEG_TOKEN) -> str:
    """Drop every ``seg_token``, lower-case, collapse whitespace and strip
    surrounding whitespace and trailing punctuation (``.,;:!?``).
    ``"  Red  Circle[SEG]. "`` -> ``"red circle"``."""
    text = text.replace(seg_token, " ") if seg_token else text
    return " ".join(text.lower().split()).rstrip(_TRAILING).strip()


def exact_match(predictions: Sequence[str], references: Sequence[str], seg_token: str = SEG_TOKEN) -> float:
    """Fraction of predictions equal to their reference after
    :func:`normalise_text`. Raises ValueError on length mismatch; NaN if empty."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        return float("nan")
    hits = sum(normalise_text(p, seg_token) == normalise_text(r, seg_token) for p, r in zip(predictions, references))
    return hits / len(predictions)


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens; punctuation is dropped (apostrophes kept inside words)."""
    return re.findall(r"[a-z0-9]+(?:'[a-z0-9]+)*", text.lower())


def _ngrams(words: list[str], n_max: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for n in range(1, n_max + 1) for i in range(len(words) - n + 1))


def _tfidf(counts: Counter, df: Counter, log_n_docs: float, n_max: int):
    """Per-order weight dicts, their L2 norms and the bigram count (the length
    used by the penalty, as in the COCO implementation)."""
    vec = [dict() for _ in range(n_max)]
    for gram, tf in counts.items():
        vec[len(gram) - 1][gram] = tf * (log_n_docs - math.log(max(1.0, df[gram])))
    norms = [math.sqrt(sum(w * w for w in v.values())) for v in vec]
    length = sum(tf for gram, tf in counts.items() if len(gram) == 2)
    return vec, norms, length


def cider_d(
    candidates: Sequence[str], references: Sequence[Sequence[str]], n_max: int = 4, sigma: float = 6.0,
) -> tuple[float, list[float]]:
    """CIDEr-D of ``candidates[i]`` against the reference list ``references[i]``.

    Returns ``(corpus score, per-candidate scores)``; the corpus score is the
    mean. IDF needs a corpus: with a single item every weight is 0.
    Raises ValueError on length mismatch or an empty reference list.
    """
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} reference lists")
    if any(len(refs) == 0 for refs in references):
        raise ValueError("every candidate needs at least one reference")
    if not candidates:
        return float("nan"), []
    ref_counts = [[_ngrams(tokenize(r), n_max) for r in refs] for refs in references]
    df: Counter = Counter()
    for refs in ref_counts:
        df.update(set().union(*refs))
    log_n = math.log(float(len(candidates)))
    scores = []
    for cand, refs in zip(candidates, ref_counts):
        hv, hn, hl = _tfidf(_ngrams(tokenize(cand), n_max), df, log_n, n_max)
        total = 0.0
        for ref in refs:
            rv, rn, rl = _tfidf(ref, df, log_n, n_max)
            penalty = math.exp(-((hl - rl) ** 2) / (2 * sigma**2))
            for n in range(n_max):
                val = sum(min(w, rv[n].get(g, 0.0)) * rv[n].get(g, 0.0) for g, w in hv[n].items())
                if hn[n] and rn[n]:
                    val /= hn[n] * rn[n]
                total += val * penalty / n_max
        scores.append(10.0 * total / len(refs))
    return sum(scores) / len(scores), scores


def meteor(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, list[float]]:
    """METEOR via an installed scorer; returns ``(corpus score, per-candidate scores)``.

    Tries ``pycocoevalcap`` (needs ``java`` on PATH), then ``nltk`` with its
    WordNet data. Raises :class:`MetricUnavailable` when neither works.
    """
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} reference lists")
    problems = []
    try:
        from pycocoevalcap.meteor.meteor import Meteor  # type: ignore[import-not-found]

        if shutil.which("java") is None:
            raise MetricUnavailable("pycocoevalcap's METEOR needs java on PATH")
        gts = {i: [normalise_text(r) for r in refs] for i, refs in enumerate(references)}
        res = {i: [normalise_text(c)] for i, c in enumerate(candidates)}
        score, per = Meteor().compute_score(gts, res)
        return float(score), [float(s) for s in per]
    except (ImportError, MetricUnavailable, OSError) as exc:
        problems.append(f"pycocoevalcap: {exc}")
    try:
        from nltk.translate.meteor_score import meteor_score  # type: ignore[import-not-found]

        per = [float(meteor_score([tokenize(r) for r in refs], tokenize(c))) for c, refs in zip(candidates, references)]
        return (sum(per) / len(per) if per else float("nan")), per
    except (ImportError, LookupError) as exc:
        problems.append(f"nltk: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
    raise MetricUnavailable(
        "METEOR is unavailable: install pycocoevalcap (with Java) or nltk with its WordNet data "
        f"({'; '.join(problems)})"
    )
