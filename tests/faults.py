"""TEST ONLY: fault plans injected inside the engine's model call.

The engine has one test seam, ``Engine(..., hook=...)``: a callable that gets
each model call (``anyref_ros.engine.ModelCall``: its jobs, numbered in the
order the worker started them, the attempt, and the call's ``stop``) and
returns a context manager entered around it. :class:`FaultPlan` is such a
hook: while the call runs it puts a forward pre-hook on the pipeline's
language model, so every fault happens inside the model call, inside the
batched forward pass when the query was batched with others. Nothing here
is read from the environment; node processes get a plan through the
test-only entry point ``tests/helpers/faulty_anyref_node.py``.

Plan syntax, comma-separated (queries numbered from 1; a node's warm-up
query is query 1):

* ``exception:N``: a language-model pass of a call that holds query N
  raises ``RuntimeError`` (the whole batched pass fails, as a real bad row
  would make it);
* ``oom:N`` / ``oom:NxK``: the first K (default 1) attempts of a call that
  holds query N raise ``torch.OutOfMemoryError``;
* ``slow:S``: each query spends S more seconds in its call's first pass
  (a batch of k: k x S, as if run one after another), in short sleeps that
  end once the call is asked to stop;
* ``step:S``: every language-model pass (every generated token) takes S
  more seconds, ignoring stop: a long generation that only the generation
  loop's own per-token check can end;
* ``hang:S``: each call blocks S seconds in its first pass, ignoring stop
  (a model call that cannot be interrupted);
* ``load:S``: every model load takes S more seconds (the engine is built S
  seconds late, after the weights are read), so a node stays "loading the
  model" that long: for what happens while it loads.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Mapping

SYNTAX = "expected comma-separated exception:N, oom:N, oom:NxK, slow:S, step:S, hang:S, load:S"


@dataclass
class FaultPlan:
    exception: frozenset = frozenset()  # query numbers whose calls raise
    oom: Mapping[int, int] = field(default_factory=dict)  # query number -> attempts that run out of memory
    slow: float = 0.0
    step: float = 0.0
    hang: float = 0.0
    load: float = 0.0
    calls: list = field(default_factory=list, repr=False)  # (query numbers, attempt) of every call seen

    @classmethod
    def parse(cls, text: str) -> "FaultPlan":
        plan = cls()
        exception, oom = set(), {}
        for item in filter(None, (part.strip() for part in re.split(r"[,;\s]+", text))):
            kind, _, arg = item.partition(":")
            try:
                if kind == "exception":
                    exception.add(_positive(int(arg)))
                elif kind == "oom":
                    query, _, times = arg.partition("x")
                    oom[_positive(int(query))] = _positive(int(times)) if times else 1
                elif kind in ("slow", "step", "hang", "load"):
                    seconds = float(arg)
                    if not 0 <= seconds < 3600:
                        raise ValueError
                    setattr(plan, kind, seconds)
                else:
                    raise ValueError
            except ValueError:
                raise ValueError(f"fault plan: cannot read {item!r}; {SYNTAX}") from None
        plan.exception, plan.oom = frozenset(exception), oom
        return plan

    @contextmanager
    def __call__(self, call):
        """The engine's hook: faults inside ``call`` (an engine ``ModelCall``)."""
        numbers = [job.number for job in call.jobs]
        self.calls.append((numbers, call.attempt))
        passes = []

        def pre_forward(module, args, kwargs):
            first = not passes
            passes.append(1)
            if first and self.slow > 0:
                end = time.monotonic() + self.slow * len(numbers)
                while time.monotonic() < end and not call.stop():
                    time.sleep(0.02)
            if first and self.hang > 0:
                time.sleep(self.hang)
            if self.step > 0:
                time.sleep(self.step)
            for n in numbers:
                if n in self.exception:
                    raise RuntimeError(f"injected fault: query {n} raised inside the model (test fault plan)")
                if call.attempt <= self.oom.get(n, 0):
                    import torch

                    raise torch.OutOfMemoryError(f"CUDA out of memory (injected fault: query {n}, "
                                                 f"attempt {call.attempt}, test fault plan)")

        handle = call.pipeline.model.language_model.register_forward_pre_hook(pre_forward, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()


def _positive(n: int) -> int:
    if n < 1:
        raise ValueError
    return n


def engine_with(plan: FaultPlan):
    """An ``Engine`` class whose engines use ``plan`` unless given another hook."""
    from anyref_ros import engine

    class FaultyEngine(engine.Engine):
        def __init__(self, *args, **kwargs):
            time.sleep(plan.load)  # (a model load builds one engine, after reading the weights)
            kwargs.setdefault("hook", plan)
            super().__init__(*args, **kwargs)

    return FaultyEngine


def install(plan: FaultPlan) -> None:
    """Make every engine this process creates use ``plan`` (for the test-only
    node entry point; the node itself never installs anything)."""
    from anyref_ros import engine

    engine.Engine = engine_with(plan)
