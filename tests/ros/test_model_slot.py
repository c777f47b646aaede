"""The node's model slot (anyref_ros/nodes/anyref/loading.py) in-process, on the
tiny preset: deactivate -> activate during a long generation never holds two
models. Long generations come from a test fault plan (tests/faults.py) through
the engine's test seam: every generated token takes longer (``step``, which
only the generation's own stop check can cut short), or the model call ignores
stop altogether (``hang``). Memory is measured as the parameters of every
AnyRef model alive in the process, sampled every 2 ms from a thread."""

from __future__ import annotations

import threading
import time
import weakref

import numpy as np
import pytest

from anyref_ros import engine as eng
from anyref_ros.model.modeling import AnyRefModel
from anyref_ros.nodes.anyref.loading import LoadSettings, ModelSlot
from faults import FaultPlan, engine_with

SETTINGS = LoadSettings(checkpoint="tiny", device="cpu", dtype=None, max_queue=4, frame_cache=2, warmup=False)


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text):
        self.lines.append(text)

    warning = error = info


class ModelMemory:
    """Bytes of parameters of the AnyRef models alive, sampled from a thread."""

    def __init__(self, monkeypatch) -> None:
        self.live: weakref.WeakSet = weakref.WeakSet()
        self.peak_models, self.peak_bytes, self.one_model = 0, 0, 0
        init = AnyRefModel.__init__
        live = self.live

        def tracked(model, *args, **kwargs):
            init(model, *args, **kwargs)
            live.add(model)

        monkeypatch.setattr(AnyRefModel, "__init__", tracked)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            models = list(self.live)
            size = sum(p.numel() * p.element_size() for m in models for p in m.parameters())
            self.peak_models = max(self.peak_models, len(models))
            self.peak_bytes = max(self.peak_bytes, size)
            if len(models) == 1:
                self.one_model = max(self.one_model, size)  # (LoRA merged at load: the size changes)
            del models
            time.sleep(0.002)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def wait_ready(slot: ModelSlot, timeout: float = 120.0) -> float:
    t = time.monotonic()
    while slot.state != "ready":
        assert slot.state == "loading", (slot.state, slot.failure)
        assert time.monotonic() - t < timeout, f"not ready after {timeout} s: {slot.stage}"
        time.sleep(0.01)
    return time.monotonic() - t


@pytest.mark.parametrize("plan", ["step:0.3", "hang:3"])
def test_deactivate_activate_during_a_long_generation_never_holds_two_models(plan, monkeypatch):
    monkeypatch.setattr(eng, "Engine", engine_with(FaultPlan.parse(plan)))
    log = Log()
    slot = ModelSlot(log, on_failure=lambda gen, reason: None)
    with ModelMemory(monkeypatch) as memory:
        slot.start(SETTINGS)
        wait_ready(slot)
        generating = threading.Event()
        image = np.random.default_rng(0).integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
        # a region description is generated token by token (greedy)
        job = slot.engine.submit(eng.Request(frame=eng.Frame(image=image), box=(5, 5, 40, 30)),
                                 on_stage=lambda j, s: s == "generating" and generating.set())
        assert generating.wait(60)
        t = time.monotonic()
        slot.release(timeout=1.0)  # deactivate
        slot.start(SETTINGS)  # activate at once
        wait_ready(slot)
        reloaded = time.monotonic() - t
    with pytest.raises(eng.Cancelled):
        job.result(timeout=0)
    answered = job.finished - t
    print(f"{plan}: caller answered {answered:.2f} s after deactivate, ready again {reloaded:.2f} s after it; "
          f"peak {memory.peak_bytes / 2**20:.2f} MiB of model parameters, one model "
          f"{memory.one_model / 2**20:.2f} MiB")
    assert answered < 1.5  # the caller never waits for the model to let go
    assert memory.peak_models == 1, f"{memory.peak_models} models were alive at once"
    assert memory.peak_bytes <= memory.one_model
    if plan.startswith("hang"):  # the load waited for the call that ignored stop
        assert reloaded >= 2.5 and any("previous model was released" in line for line in log.lines)
    slot.release()
