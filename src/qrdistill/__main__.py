"""`python -m qrdistill` (and `accelerate launch -m qrdistill train CONFIG`)."""

import sys

from qrdistill.cli import main

sys.exit(main())
