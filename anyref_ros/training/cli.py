"""``anyref-train``: train or fine-tune an AnyRef model.

    anyref-train                                   # the toy run (built-in config "toy")
    anyref-train --config my_run.yaml              # a YAML/JSON TrainConfig
    anyref-train --config toy --set steps=200 --set output_dir=runs/x
    anyref-train --config my_run.yaml --resume auto

Several processes train one data-parallel job (equal to one process with
the same global batch; README "Training on more GPUs and machines"):

    accelerate launch --multi_gpu --num_processes 8 -m anyref_ros.training --config anyref-7b
    accelerate launch --config_file anyref_ros/training/configs/accelerate/deepspeed-zero2.yaml
        -m anyref_ros.training --config anyref-7b      # (one line) DeepSpeed ZeRO-2, pip install deepspeed
    accelerate launch --multi_gpu --num_processes 2 -m anyref_ros.training --config tiny
                                                   # 2 CPU processes (gloo); or torchrun --nproc_per_node 2
"""

from __future__ import annotations

import argparse
import json
import os
from typing import List, Optional

from .config import TrainConfig, default_config


def parse_set(config: TrainConfig, assignments: List[str]) -> TrainConfig:
    """Apply ``key=value`` overrides (value parsed as JSON, else a string;
    dotted keys reach into mappings, e.g. ``loss.dice=1.0``)."""
    data = config.to_dict()
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected key=value")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        target = data
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return TrainConfig.from_dict(data)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anyref-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="toy",
                        help="YAML/JSON training config, or a built-in name: toy, tiny, anyref-7b")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config entry (JSON value), e.g. --set steps=100")
    parser.add_argument("--resume", default=None,
                        help="checkpoint folder to resume from, or 'auto' (latest in output_dir)")
    parser.add_argument("--stop-at", type=int, default=0, metavar="STEP",
                        help="end this session after STEP with a resumable checkpoint")
    parser.add_argument("--print-config", action="store_true", help="print the config and exit")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if os.path.isfile(args.config):
        config = TrainConfig.load(args.config)
    else:
        config = default_config(args.config)
    config = parse_set(config, args.set)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    from .trainer import single_process_launch, train

    problem = single_process_launch()
    if problem:
        raise SystemExit(f"anyref-train: {problem}")
    train(config, resume=args.resume, stop_at=args.stop_at)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
