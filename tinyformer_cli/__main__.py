"""`python -m tinyformer_cli ...` is the `tinyformer` command."""

import sys

from tinyformer_cli import main

sys.exit(main(prog_name="python -m tinyformer_cli"))     # as usage lines and messages name it
