"""The training loop: accelerate, mixed-task batches, checkpoints, resume.

Checkpoints are folders written by ``AnyRefPipeline.save_pretrained`` (so
``AnyRefPipeline.from_pretrained(folder)`` loads them) plus
``training_state.pt`` (optimizer, step, each data lane's next draw, elapsed
time, the training config), read back with ``torch.load(weights_only=True)``.

Several processes (``accelerate launch``, ``torchrun``; gloo on CPU) train
one data-parallel job that equals one process with the same global batch:

* data: micro-batch ``m`` of process ``r`` reads lane ``m * P + r`` of the
  sample stream (``data.build_lanes``), so no two processes share a sample;
* loss: each term is normalised by its count over the whole optimizer step
  (answer tokens, masks; summed over micro-batches and processes) and
  scaled back from the gradient averaging, so the gradient is that of the
  global batch, however it is split;
* randomness (LoRA dropout): torch's generator is seeded per micro-batch
  from (run seed, step, lane), never from the process number;
* logs, ``training_config.json`` and checkpoints are written by the main
  process only; resuming reads the lanes' positions back (another split
  with the same lane count ``P * A`` continues exactly).

Under DeepSpeed (``configs/accelerate/``) the batch, accumulation and
clipping come from the ``TrainConfig`` (``configure_deepspeed``), the
engine's partitioned optimizer state is saved by every process beside the
checkpoint (``engine/``), and ZeRO-3 gathers the weights to save them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data.toy import ToyWorld, train_seed
from ..model.config import AnyRefConfig
from ..model.presets import get_preset, preset_names
from ..model.tokenization import TokenIds
from . import toy_preset  # noqa: F401  (registers the "toy" preset)
from .batch import collate, encode_samples
from .config import TrainConfig
from .data import build_lanes, lane_of
from .forward import MASK_TERMS, AnyRefTrainingModule, Outputs

STATE_FILE = "training_state.pt"
ENGINE_DIR = "engine"  # DeepSpeed only: the engine's partitioned optimizer state, one file per process
LATEST = "latest"
FINAL = "final"
VALIDATION_K = 10 ** 6  # validation scenes: ToyWorld(train_seed(VALIDATION_K)), never trained on


# ------------------------------------------------------------------ model
def merge(base: Dict, overrides: Dict, where: str = "model_overrides") -> Dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if key not in out:
            raise ValueError(f"{where}: unknown key {key!r}")
        if isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = merge(out[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


def load_pipeline(config: TrainConfig, source: Optional[Path] = None):
    """The pipeline to train: a checkpoint folder (``source``, or
    ``config.preset`` if it is a folder) or a fresh preset with
    ``model_overrides`` applied."""
    from ..model.pipeline import AnyRefPipeline

    dtype = config.model_dtype
    if source is not None:
        return AnyRefPipeline.from_pretrained(source, device="cpu", dtype=dtype)
    if Path(config.preset).is_dir():
        return AnyRefPipeline.from_pretrained(config.preset, device="cpu", dtype=dtype)
    if config.preset not in preset_names():
        raise ValueError(f"preset {config.preset!r} is neither a checkpoint folder nor a preset "
                         f"({', '.join(preset_names())})")
    model_config = AnyRefConfig.from_dict(merge(get_preset(config.preset).to_dict(),
                                                config.model_overrides))
    pipe = AnyRefPipeline.from_config(model_config, device="cpu", dtype=dtype)
    if config.init_from:
        source = AnyRefPipeline.from_pretrained(config.init_from, device="cpu", dtype=dtype)
        pipe.warm_start_counts = warm_start(pipe, source)
    return pipe


def warm_start(pipe, source) -> Dict[str, int]:
    """Copy ``source``'s weights into ``pipe`` (``TrainConfig.init_from``):
    parameters of the same name and shape as they are; token-indexed
    matrices (input embeddings, LM head) row by row where the token string
    exists in both tokenizers.  Returns counts (copied, rows, fresh)."""
    old = source.model.state_dict()
    old_vocab = source.tokenizer.get_vocab()
    new_vocab = pipe.tokenizer.get_vocab()
    shared = [(new_vocab[t], i) for t, i in old_vocab.items() if t in new_vocab]
    counts = {"copied": 0, "rows": 0, "fresh": 0}
    with torch.no_grad():
        for name, tensor in pipe.model.state_dict().items():
            src = old.get(name)
            if src is not None and src.shape == tensor.shape:
                tensor.copy_(src.to(tensor.dtype))
                counts["copied"] += 1
            elif (src is not None and src.dim() == tensor.dim() and src.shape[1:] == tensor.shape[1:]
                  and src.shape[0] == len(old_vocab) and tensor.shape[0] == len(new_vocab)):
                new_rows = torch.tensor([n for n, _ in shared])
                old_rows = torch.tensor([o for _, o in shared])
                tensor[new_rows] = src[old_rows].to(tensor.dtype)
                counts["rows"] += 1
            else:
                counts["fresh"] += 1
    return counts


def under(name: str, prefixes) -> bool:
    """Whether parameter ``name`` lies in one of the modules ``prefixes``."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def trainable_names(model, mode: str, only: Sequence[str] = ()) -> List[str]:
    """``all``: every parameter (from scratch); ``paper``: LoRA, the
    config's ``trained_modules``, the input embeddings and the LM head;
    ``only`` (``TrainConfig.train_only``): of those, the ones under these
    module prefixes (each must match a parameter)."""
    if only:
        names = [n for n in trainable_names(model, mode) if under(n, only)]
        missing = [p for p in only if not any(under(n, [p]) for n in names)]
        if missing:
            raise ValueError(f"train_only: {missing} match no trainable parameter "
                             f"(trainable={mode!r}); give module names such as "
                             f"'sam.mask_decoder.iou_prediction_head'")
        return names
    cfg = model.config
    if mode == "auto":
        mode = "all" if cfg.weights.allow_random and cfg.lora is None else "paper"
    names = []
    for name, _ in model.named_parameters():
        if mode == "all" or "lora_" in name or "embed_tokens" in name or under(name, cfg.trained_modules):
            names.append(name)
    return names


# --------------------------------------------------------------- schedule
def lr_factor(config: TrainConfig, progress: float, step: int) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine/linear decay to
    ``min_lr_ratio`` at ``progress`` 1 (constant: no decay)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    p = min(max(progress, 0.0), 1.0)
    low = config.min_lr_ratio
    if config.schedule == "cosine":
        return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * p))
    if config.schedule == "linear":
        return low + (1 - low) * (1 - p)
    return 1.0


def progress(config: TrainConfig, step: int, elapsed: float) -> float:
    """Fraction of the run done: by steps, or by wall time when a time limit is set."""
    by_steps = step / config.steps
    if config.time_limit_minutes > 0:
        return max(by_steps, elapsed / (60 * config.time_limit_minutes))
    return by_steps


# ------------------------------------------------------------ checkpoints
def save_checkpoint(pipe, folder: Path, optimizer, state: Dict, config: TrainConfig,
                    engine: Optional[Path] = None) -> None:
    """Write ``folder`` through ``folder.tmp`` (renamed last); ``optimizer``
    None: its state is in ``engine`` (DeepSpeed), moved in as ``ENGINE_DIR``."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp)
    saved = {"config": config.to_dict(), **state}
    if optimizer is not None:
        saved["optimizer"] = optimizer.state_dict()
    torch.save(saved, tmp / STATE_FILE)
    (tmp / "training_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    if engine is not None:
        engine.rename(tmp / ENGINE_DIR)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def latest_checkpoint(output_dir: Path) -> Optional[Path]:
    marker = output_dir / LATEST
    if marker.is_file():
        path = output_dir / marker.read_text().strip()
        if (path / STATE_FILE).is_file():
            return path
    return None


def prune(output_dir: Path, keep: int) -> None:
    found = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    for path in found[:-keep] if keep > 0 else []:
        shutil.rmtree(path, ignore_errors=True)


def load_state(folder: Path) -> Dict:
    return torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)


def lane_starts(saved: Dict, lanes: int) -> Tuple[List[int], bool]:
    """Each lane's next draw after resuming from ``saved`` and whether the
    data continues exactly: the saved positions when the lane count is the
    same, else every lane starts after the furthest saved draw (no sample
    is read twice; some are skipped)."""
    positions = [int(x) for x in saved.get("next_draws", [saved.get("next_draw", 0)])]
    if len(positions) == lanes:
        return positions, True
    return [max(positions)] * lanes, False


def micro_seed(run_seed: int, step: int, lane: int) -> int:
    """torch's seed for micro-batch ``lane`` of optimizer step ``step``."""
    return int(np.random.SeedSequence([train_seed(run_seed), step, lane]).generate_state(1)[0])


# ------------------------------------------------------ processes, DeepSpeed
#: Variables set for each process by torchrun, accelerate's multi-process launchers and MPI.
WORLD_VARIABLES = ("WORLD_SIZE", "LOCAL_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def single_process_launch(env=None) -> Optional[str]:
    """Why this launch would train one process where several were asked
    for, or None.  ``accelerate launch --cpu --num_processes N`` starts one
    process (accelerate runs several CPU processes only under mpirun); it
    gives it ``MASTER_ADDR`` but no world size."""
    env = os.environ if env is None else env
    if env.get("ACCELERATE_USE_CPU", "").lower() in ("true", "1") and "MASTER_ADDR" in env \
            and not any(k in env for k in WORLD_VARIABLES):
        return ("accelerate launch --cpu started a single process (accelerate starts several CPU "
                "processes only through mpirun). For N processes on this machine run "
                "'accelerate launch --multi_gpu --num_processes N -m anyref_ros.training ...' "
                "(on a machine without CUDA the processes use the CPU and gloo) or "
                "'torchrun --nproc_per_node N -m anyref_ros.training ...'")
    return None


def configure_deepspeed(plugin, config: TrainConfig) -> None:
    """Write the run's micro-batch, accumulation and clipping into DeepSpeed's
    config (``plugin.deepspeed_config``); the accelerate config may leave
    them out or ``auto``, or give the same values."""
    ds = plugin.deepspeed_config
    wanted = {"train_micro_batch_size_per_gpu": config.batch_size,
              "gradient_accumulation_steps": config.grad_accum,
              "gradient_clipping": float(config.clip_grad)}
    for key, value in wanted.items():
        have = ds.get(key, "auto")
        if have != "auto" and float(have) != float(value):
            raise ValueError(f"DeepSpeed {key} = {have} differs from the training config ({value}); "
                             f"leave it out of the accelerate config (the training config sets it)")
        ds[key] = value
    plugin.gradient_accumulation_steps = config.grad_accum


def offloads_optimizer(plugin) -> bool:
    zero = plugin.deepspeed_config.get("zero_optimization", {}) if plugin is not None else {}
    return zero.get("offload_optimizer", {}).get("device", "none") in ("cpu", "nvme")


def make_optimizer(params, config: TrainConfig, plugin=None):
    """AdamW; DeepSpeed's CPU AdamW where ZeRO offloads the optimizer to the CPU."""
    kwargs = dict(lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay)
    if offloads_optimizer(plugin):
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(params, adamw_mode=True, **kwargs)
    return torch.optim.AdamW(params, **kwargs)


def whole_weights(plugin, model):
    """A context in which ``model``'s parameters are whole on every process
    (ZeRO-3 partitions them; every process must enter it)."""
    if plugin is None or plugin.zero_stage != 3:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None)


# ------------------------------------------------------------ validation
def validate(pipe, scenes: int, size) -> Dict[str, float]:
    """Quick scores on validation scenes (a training-side seed never trained on)."""
    from ..scoring.runner import evaluate

    seed, seg = train_seed(VALIDATION_K), pipe.config.tokens.seg
    world = ToyWorld(seed, size=size, seg_token=seg)
    samples = [world.sample(i) for i in range(scenes)]
    extra = max(scenes // 4, 1)
    no_object = pipe.config.prompt.no_object_answer
    if no_object:  # absent-object queries (models trained to say so)
        absent = ToyWorld(seed, size=size, seg_token=seg, absent_answer=no_object)
        samples += [absent.sample(scenes + i, "text", absent=True) for i in range(extra)]
    if pipe.config.audio is not None:  # detector-window sounds
        windowed = ToyWorld(seed, size=size, seg_token=seg, sound_layout="offset")
        samples += [windowed.sample(scenes + i, "audio") for i in range(extra)]
    for sample in samples[scenes:]:
        sample.metadata["eval_group"] = "text_absent" if sample.task == "text" else "audio_offset"
    was_training = pipe.model.training
    pipe.model.eval()
    try:
        result = evaluate(pipe, samples, text_metrics=False)
    finally:
        pipe.model.train(was_training)
    out = {}
    for task, s in result["tasks"].items():
        if task == "text_absent":
            out["no_target_acc"] = round(float(s.get("no_target_accuracy", float("nan"))), 3)
            continue
        out[f"{task}_cIoU"] = round(float(s["cIoU"]), 3)
        if "exact_match" in s:
            out[f"{task}_em"] = round(float(s["exact_match"]), 3)
    if "score_spearman" in result["overall"]:
        out["score_spearman"] = round(float(result["overall"]["score_spearman"]), 3)
    return out


# ------------------------------------------------------------------ train
class RunLog:
    """Lines to ``train.log`` in the output folder (main process) and to the console."""

    def __init__(self, path: Optional[Path]) -> None:
        self.path = path

    def __call__(self, message: str, file_only: bool = False) -> None:
        if self.path is None:
            return
        with open(self.path, "a") as f:
            f.write(message + "\n")
        if not file_only:
            from tqdm import tqdm

            tqdm.write(message)


def train(config: TrainConfig, resume: Optional[str] = None, stop_at: int = 0) -> Path:
    """Run ``config``; ``resume``: a checkpoint folder or "auto" (the latest
    in ``output_dir``, if any); ``stop_at`` > 0: end this session after that
    step with a resumable checkpoint (the schedule still spans
    ``config.steps``).  Returns the last checkpoint folder written."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs
    from tqdm import tqdm

    if config.threads > 0:
        torch.set_num_threads(config.threads)
    cuda = torch.cuda.is_available()
    # cpu=True without CUDA: several processes (torchrun, accelerate launch --multi_gpu) then
    # form one gloo job instead of each training alone
    accelerator = Accelerator(cpu=not cuda, mixed_precision=config.mixed_precision if cuda else "no",
                              gradient_accumulation_steps=config.grad_accum,
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None:
        configure_deepspeed(plugin, config)
    processes, rank = accelerator.num_processes, accelerator.process_index
    lanes = processes * config.grad_accum
    output_dir = Path(config.output_dir)
    start_from = None
    if resume == "auto":
        start_from = latest_checkpoint(output_dir)
    elif resume:
        start_from = Path(resume)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    log = RunLog(output_dir / "train.log" if accelerator.is_main_process else None)
    pipe = load_pipeline(config, start_from)
    if getattr(pipe, "warm_start_counts", None):
        log(f"warm start from {config.init_from}: {json.dumps(pipe.warm_start_counts)}")
    model = pipe.model
    names = set(trainable_names(model, config.trainable, config.train_only))
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_(name in names)
        if name in names:
            p.data = p.data.float()  # trained weights (and their optimizer state) in float32
            params.append(p)
    if config.gradient_checkpointing:
        model.language_model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    seg_id = TokenIds(pipe.tokenizer, pipe.config.tokens).seg
    module = AnyRefTrainingModule(model, config.loss, reach_all=processes > 1)
    optimizer = make_optimizer(params, config, plugin)
    state = {"step": 0, "elapsed": 0.0, "samples": 0}
    starts = [0] * lanes
    if start_from is not None:
        saved = load_state(start_from)
        if "optimizer" in saved:
            optimizer.load_state_dict(saved["optimizer"])
        state = {k: saved[k] for k in state}
        starts, exact = lane_starts(saved, lanes)
        log(f"resumed from {start_from} at step {state['step']}")
        if not exact:
            log(f"the checkpoint has another lane count (processes x grad_accum) than this run's "
                f"{lanes}: the data continues after draw {starts[0]}, not where it stopped")
    module, optimizer = accelerator.prepare(module, optimizer)
    if start_from is not None and plugin is not None and (start_from / ENGINE_DIR).is_dir():
        accelerator.load_state(str(start_from / ENGINE_DIR), load_module_strict=False)
    mine = [lane_of(m, rank, processes) for m in range(config.grad_accum)]
    streams = build_lanes(config, pipe.config.tokens.seg, mine, lanes, [starts[k] for k in mine])
    n_params = sum(p.numel() for p in params)
    if accelerator.is_main_process:
        config.save(output_dir / "training_config.json")
        log(f"training {pipe.config.name}: {n_params:,} trainable parameters, "
            f"{config.steps} steps x {config.batch_size} x {config.grad_accum} x "
            f"{processes} processes, device {accelerator.device}"
            + (f", {accelerator.distributed_type.value} ({accelerator.state.backend})" if processes > 1 else ""))
    toy_size = next((tuple(s.args.get("size", (160, 120))) for s in config.sources if s.kind == "toy"),
                     (160, 120))

    def checkpoint(folder_name: str) -> Path:
        """Every process calls this (gathers, DeepSpeed's state); the main one writes."""
        folder = output_dir / folder_name
        positions = accelerator.gather(torch.tensor([s.next_draw for s in streams],
                                                    device=accelerator.device)).tolist()
        next_draws = [0] * lanes
        for r in range(processes):
            for m in range(config.grad_accum):
                next_draws[lane_of(m, r, processes)] = int(positions[r * config.grad_accum + m])
        engine = None
        if plugin is not None:  # every process writes its part of the optimizer state
            engine = folder.with_name(folder.name + ".engine")
            accelerator.save_state(str(engine), exclude_frozen_parameters=True)
        with whole_weights(plugin, model):
            if accelerator.is_main_process:
                save_checkpoint(pipe, folder, None if plugin is not None else optimizer,
                                dict(state, next_draws=next_draws), config, engine)
                if folder_name.startswith("checkpoint-"):
                    (output_dir / LATEST).write_text(folder_name + "\n")
                    prune(output_dir, config.keep_last)
        accelerator.wait_for_everyone()
        return folder

    def validation(key: str) -> None:
        if plugin is not None and plugin.zero_stage == 3:
            log(f"step {state['step']}: validation skipped under ZeRO-3 (run anyref-eval on a checkpoint)")
        elif accelerator.is_main_process:
            scores = validate(pipe, config.validate_scenes, toy_size)
            log(json.dumps({"step": state["step"], "elapsed_s": round(state["elapsed"], 1), key: scores}))

    bar = tqdm(total=config.steps, initial=state["step"], disable=not accelerator.is_local_main_process,
               dynamic_ncols=True, mininterval=2.0)
    clock = time.perf_counter()
    base_elapsed = state["elapsed"]
    window = {"t": clock, "n": 0}
    running: Dict[str, float] = {}
    terms = ("lm",) + MASK_TERMS
    while state["step"] < config.steps:
        state["elapsed"] = base_elapsed + time.perf_counter() - clock
        if config.time_limit_minutes > 0 and processes > 1:  # one clock for the schedule and the stop
            state["elapsed"] = float(accelerator.reduce(torch.tensor(state["elapsed"], device=accelerator.device),
                                                        reduction="mean"))
        frac = progress(config, state["step"], state["elapsed"])
        if config.time_limit_minutes > 0 and frac >= 1.0:
            log(f"time limit reached at step {state['step']}")
            break
        for group in optimizer.param_groups:
            group["lr"] = config.lr * lr_factor(config, frac, state["step"])
        batches = [collate(encode_samples(stream.take(config.batch_size, state["step"]), pipe.config,
                                          pipe.tokenizer, seg_id)) for stream in streams]
        # the step's answer tokens and masks over all micro-batches and processes
        counts = accelerator.reduce(torch.tensor([sum(b.label_counts()[i] for b in batches) for i in (0, 1)],
                                                 device=accelerator.device), reduction="sum").tolist()
        sums = torch.zeros(len(terms), dtype=torch.float64)
        for lane, batch in zip(mine, batches):
            torch.manual_seed(micro_seed(config.seed, state["step"], lane))
            with accelerator.accumulate(module):
                out = module(batch.to(accelerator.device))
                # processes average their gradients and accelerate divides by grad_accum:
                # scaled back, the gradient is that of the step's loss over the global batch
                loss = out.loss_over(*counts) * lanes
                if loss.requires_grad:  # else nothing trained is in this batch (train_only)
                    accelerator.backward(loss)
            sums += torch.tensor([float(out.sums[t].detach()) if t in out.sums else 0.0 for t in terms],
                                 dtype=torch.float64)
        if config.clip_grad > 0 and plugin is None:  # DeepSpeed clips in its own step
            accelerator.clip_grad_norm_(params, config.clip_grad)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        total = accelerator.reduce(sums.to(accelerator.device), reduction="sum").cpu()
        step_out = Outputs(loss=None, parts={}, mask_logits=[], mask_index=[], weights=config.loss,
                           sums={t: total[i] for i, t in enumerate(terms) if t == "lm" or counts[1]})
        parts = {t: float(v) / max(counts[0] if t == "lm" else counts[1], 1) for t, v in step_out.sums.items()}
        parts["loss"] = float(step_out.loss_over(*counts))
        for k, v in parts.items():
            running[k] = 0.9 * running.get(k, v) + 0.1 * v
        state["step"] += 1
        done = config.batch_size * lanes
        state["samples"] += done
        window["n"] += done
        bar.update(1)
        if state["step"] % config.log_every == 0 or state["step"] == 1:
            now = time.perf_counter()
            rate = window["n"] / max(now - window["t"], 1e-9)
            window.update(t=now, n=0)
            bar.set_postfix(loss=f"{running['loss']:.3f}", samples_s=f"{rate:.1f}",
                            lr=f"{optimizer.param_groups[0]['lr']:.2e}")
            log(json.dumps({"step": state["step"], "elapsed_s": round(state["elapsed"], 1),
                            "samples_per_s": round(rate, 1),
                            **{k: round(v, 4) for k, v in running.items()}}), file_only=True)
        if config.validate_every and state["step"] % config.validate_every == 0:
            validation("validation")
        saved = None
        if config.save_every and state["step"] % config.save_every == 0:
            saved = checkpoint(f"checkpoint-{state['step']}")
        if stop_at and state["step"] >= stop_at:
            bar.close()
            log(f"stopped at step {state['step']} (--stop-at); resume with --resume auto")
            if saved is None:
                state["elapsed"] = base_elapsed + time.perf_counter() - clock
                saved = checkpoint(f"checkpoint-{state['step']}")
            return saved
    bar.close()
    state["elapsed"] = base_elapsed + time.perf_counter() - clock
    if config.validate_every:
        validation("final_validation")
    final = checkpoint(FINAL)
    log(f"saved {final} (step {state['step']}, {state['elapsed'] / 60:.1f} min)")
    return final
