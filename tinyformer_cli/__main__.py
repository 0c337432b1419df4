"""`python -m tinyformer_cli ...` is the `tinyformer` command."""

import sys

from tinyformer_cli import main

sys.exit(main())
