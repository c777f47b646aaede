"""Mixed-task sample streams for training (and the sources they draw from).

A stream is deterministic: draw number ``n`` (0, 1, 2, ...) picks its
source with ``default_rng([seed, n])`` by the configured weights, then its
item (toy: ``ToyWorld.sample(n)``, whose seed is ``train_seed(...)``, never
``EVAL_SEED``; datasets: a random index).  Stream ``p`` of ``P`` takes the
draws ``p, p + P, ...``; resuming only needs the next draw number.

Training splits the draws into lanes (``build_lanes``): with ``P``
processes and ``A`` accumulation micro-batches per optimizer step there are
``L = P * A`` lanes, and micro-batch ``m`` of process ``r`` always reads
lane ``m * P + r``.  Lanes never share a draw, and an optimizer step reads
the same samples in the same micro-batches for every ``(P, A)`` with the
same ``L``: 2 processes x 1 micro-batch train exactly as 1 process x 2.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Sequence

import numpy as np

from ..data.sample import Sample
from ..data.toy import ToyWorld, train_seed
from .config import CurriculumStage, DataSource, TrainConfig


def _reader(kind: str) -> Callable:
    from ..data import readers

    table = readers.READERS
    if kind not in table:
        raise ValueError(f"data source kind {kind!r}: expected toy or one of {sorted(table)}")
    return table[kind]


def toy_seed(run_seed: int, source_index: int) -> int:
    """Training toy seed of source ``source_index`` in run ``run_seed``."""
    return train_seed(run_seed * 100 + source_index)


def build_source(source: DataSource, index: int, run_seed: int, seg_token: str):
    """A ``ToyWorld`` or a dataset reader (anything with ``sample(n)`` or ``[i]``)."""
    args = dict(source.args)
    if source.kind == "toy":
        if "size" in args:
            args["size"] = tuple(args["size"])
        return ToyWorld(toy_seed(run_seed, index), seg_token=seg_token, **args)
    return _reader(source.kind)(seg_token=seg_token, **args)


class SampleStream:
    """Endless mixed stream of ``Sample`` (see the module docstring)."""

    def __init__(self, sources: Sequence, weights: Sequence[float], seed: int,
                 curriculum: Sequence[CurriculumStage] = (), rank: int = 0, world: int = 1,
                 start: int = 0) -> None:
        p = np.asarray(weights, dtype=float)
        self.sources = list(sources)
        self.probs = p / p.sum()
        self.seed = seed
        self.curriculum = sorted(curriculum, key=lambda c: c.until_step)
        self.rank, self.world = rank, world
        self.next_draw = start  # global draw number of this process's next draw
        if self.next_draw % world != rank:
            self.next_draw += (rank - self.next_draw) % world

    def draw(self, n: int) -> Sample:
        rng = np.random.default_rng([self.seed, n])
        k = int(rng.choice(len(self.sources), p=self.probs))
        source = self.sources[k]
        if isinstance(source, ToyWorld):
            return source.sample(n)
        return source[int(rng.integers(len(source)))]

    def max_objects(self, step: int) -> int:
        for stage in self.curriculum:
            if step < stage.until_step:
                return stage.max_objects
        return 10 ** 9

    def take(self, count: int, step: int = 0) -> List[Sample]:
        """The next ``count`` samples of this process (curriculum of ``step`` applied)."""
        limit = self.max_objects(step)
        out: List[Sample] = []
        while len(out) < count:
            sample = self.draw(self.next_draw)
            self.next_draw += self.world
            if len(sample.metadata.get("objects", ())) <= limit:
                out.append(sample)
        return out

    def __iter__(self) -> Iterator[Sample]:
        while True:
            yield self.take(1)[0]


def build_stream(config: TrainConfig, seg_token: str, rank: int = 0, world: int = 1,
                 start: int = 0) -> SampleStream:
    return build_lanes(config, seg_token, [rank], world, [start])[0]


def lane_of(micro: int, rank: int, processes: int) -> int:
    """The lane that micro-batch ``micro`` of process ``rank`` reads (module docstring)."""
    return micro * processes + rank


def build_lanes(config: TrainConfig, seg_token: str, lanes: Sequence[int], count: int,
                starts: Sequence[int]) -> List[SampleStream]:
    """Streams of lanes ``lanes`` of ``count``, sharing one set of sources;
    lane ``k`` starts at its first draw ``>= starts[i]``."""
    sources = [build_source(s, i, config.seed, seg_token) for i, s in enumerate(config.sources)]
    weights = [s.weight for s in config.sources]
    return [SampleStream(sources, weights, seed=train_seed(config.seed), curriculum=config.curriculum,
                         rank=k, world=count, start=start) for k, start in zip(lanes, starts)]


def task_counts(samples: Sequence[Sample]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for s in samples:
        out[s.task] = out.get(s.task, 0) + 1
    return out
