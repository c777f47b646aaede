"""Text metrics for region descriptions: exact match, CIDEr-D, METEOR.

* Exact match compares normalised strings (:func:`normalise_text`); it is the
  toy world's description metric.
* CIDEr-D (Vedantam et al., CVPR 2015) is computed by ``pycocoevalcap``, the
  COCO caption evaluation's own scorer, when it is installed (``make setup``
  installs it), else by our implementation of the same definition
  (:func:`cider_d_ours`: TF-IDF weighted n-gram vectors, n = 1..4, IDF from
  the reference sets of the whole corpus, cosine similarity with clipping of
  the candidate's weights by the reference's, a Gaussian length penalty
  (sigma 6), averaged over n and over references, times 10); the two agree
  to rounding (tests/evaluation/test_text_metrics.py). Both see the same
  tokens: lower-case words, punctuation removed (the COCO tool's Stanford
  PTB tokenizer needs Java, so scores on real captions can differ slightly
  from published ones).
* METEOR 1.5 needs its Java program: it is computed by ``pycocoevalcap``
  (one java process per Python process, started on first use) when a
  ``java`` runtime is on PATH (``make setup JAVA=1`` installs
  ``default-jre-headless``), else :class:`MetricUnavailable` says why it was
  skipped.
"""

from __future__ import annotations

import math
import re
import shutil
import threading
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


def _check_pairs(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} reference lists")
    if any(len(refs) == 0 for refs in references):
        raise ValueError("every candidate needs at least one reference")


def cider_backend() -> str:
    """Which scorer :func:`cider_d` uses here: ``"pycocoevalcap"`` or ``"anyref_ros"``."""
    try:
        from pycocoevalcap.cider.cider import Cider  # noqa: F401
    except ImportError:
        return "anyref_ros"
    return "pycocoevalcap"


def cider_d(
    candidates: Sequence[str], references: Sequence[Sequence[str]], n_max: int = 4, sigma: float = 6.0,
    backend: str = "auto",
) -> tuple[float, list[float]]:
    """CIDEr-D of ``candidates[i]`` against the reference list ``references[i]``.

    Returns ``(corpus score, per-candidate scores)``; the corpus score is the
    mean. IDF needs a corpus: with a single item every weight is 0.
    ``backend``: ``"auto"`` (pycocoevalcap when installed, see
    :func:`cider_backend`), ``"pycocoevalcap"`` or ``"anyref_ros"``.
    Raises ValueError on length mismatch or an empty reference list.
    """
    _check_pairs(candidates, references)
    if backend not in ("auto", "pycocoevalcap", "anyref_ros"):
        raise ValueError(f"backend must be auto, pycocoevalcap or anyref_ros, got {backend!r}")
    if backend == "auto":
        backend = cider_backend()
    if backend == "anyref_ros":
        return cider_d_ours(candidates, references, n_max, sigma)
    if not candidates:
        return float("nan"), []
    from pycocoevalcap.cider.cider import Cider

    gts = {i: [" ".join(tokenize(r)) for r in refs] for i, refs in enumerate(references)}
    res = {i: [" ".join(tokenize(c))] for i, c in enumerate(candidates)}
    score, per = Cider(n=n_max, sigma=sigma).compute_score(gts, res)
    return float(score), [float(x) for x in per]


def cider_d_ours(
    candidates: Sequence[str], references: Sequence[Sequence[str]], n_max: int = 4, sigma: float = 6.0,
) -> tuple[float, list[float]]:
    """Our CIDEr-D (the fallback of :func:`cider_d`; same arguments and result)."""
    _check_pairs(candidates, references)
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


#: What the evaluation report says when METEOR cannot run.
NO_JAVA_NOTE = "METEOR skipped: no Java runtime (make setup JAVA=1)"
NO_PYCOCOEVALCAP_NOTE = "METEOR skipped: pycocoevalcap is not installed (make setup installs it)"


_METEOR: list = []  # the one pycocoevalcap Meteor of this process (its java program loads for ~10 s)
_METEOR_LOCK = threading.Lock()


def meteor(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, list[float]]:
    """METEOR 1.5 by ``pycocoevalcap`` (its Java program, started on the first
    call and kept for the process); returns ``(corpus score, per-candidate
    scores)``. Texts are normalised (:func:`normalise_text`). Raises
    :class:`MetricUnavailable` with :data:`NO_JAVA_NOTE` or
    :data:`NO_PYCOCOEVALCAP_NOTE` when it cannot run, or with the scorer's
    own error."""
    _check_pairs(candidates, references)
    if not candidates:
        return float("nan"), []
    try:
        from pycocoevalcap.meteor.meteor import Meteor
    except ImportError:
        raise MetricUnavailable(NO_PYCOCOEVALCAP_NOTE) from None
    if shutil.which("java") is None:
        raise MetricUnavailable(NO_JAVA_NOTE)
    gts = {i: [normalise_text(r) or "." for r in refs] for i, refs in enumerate(references)}
    res = {i: [normalise_text(c) or "."] for i, c in enumerate(candidates)}
    with _METEOR_LOCK:
        try:
            if not _METEOR:
                _METEOR.append(Meteor())
            score, per = _METEOR[0].compute_score(gts, res)
        except (OSError, ValueError) as exc:
            detail = ""
            if _METEOR:
                process = _METEOR.pop().meteor_p
                process.kill()
                detail = process.stderr.read().decode(errors="replace").strip()[-300:]
            raise MetricUnavailable(f"METEOR failed: {type(exc).__name__}: {exc} {detail}".strip()) from None
    return float(score), [float(x) for x in per]
