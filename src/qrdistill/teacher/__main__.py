"""`python -m qrdistill.teacher CONFIG EXAMPLES OUT_DIR`: stage 1 on its own.

CONFIG is a YAML file holding a GenerateConfig (the `generate:` section of a run config).
Exit status 2 with a one-line error when the config, the data or the backend is at fault; 3 when
generation stopped at `budget` (raise it and rerun to continue); 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys

from qrdistill.errors import BudgetReached, QRDistillError
from qrdistill.teacher.config import GenerateConfig
from qrdistill.teacher.generate import generate_paths
from qrdistill.utils.config import load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qrdistill.teacher",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config")
    parser.add_argument("examples")
    parser.add_argument("out_dir")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(GenerateConfig, args.config)
        print(generate_paths(cfg, args.examples, args.out_dir))
    except BudgetReached as err:
        print("budget reached: " + " ".join(str(err).split()), file=sys.stderr)
        return 3
    except QRDistillError as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to continue where it stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
