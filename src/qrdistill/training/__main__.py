"""`python -m qrdistill.training --config X.yaml --paths P --out D [--resume] [--set k=v ...]`.

The same command runs under `accelerate launch -m qrdistill.training ...` for several processes.
The YAML may be a bare TrainConfig or a run config with a `train:` section.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qrdistill.errors import QRDistillError
from qrdistill.training.config import TrainConfig
from qrdistill.utils.config import apply_overrides, load_yaml, validate_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qrdistill.training", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--paths", required=True, type=Path, help="ReasoningPath JSONL to train on")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in --out"
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        data = load_yaml(args.config)
        if "train" in data and "students" not in data:
            data = data["train"]
        cfg = validate_config(TrainConfig, apply_overrides(data, args.overrides), str(args.config))
        from qrdistill.training.recipe import train

        train(cfg, args.paths, args.out, resume=args.resume)
    except QRDistillError as err:  # one line, exit 2, like the qrdistill command
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
