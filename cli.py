"""The `tinyformer` command line, run from a clone: `python cli.py train`, `python cli.py
--help`. The program itself is the package tinyformer_cli, which the installed `tinyformer`
command runs too; this file only starts it."""

import sys

try:
    from tinyformer_cli import main
except KeyboardInterrupt:   # Ctrl-C before the package could catch it (see its loading.py)
    sys.stderr.write("stopped by Ctrl-C\n")
    sys.exit(130)

if __name__ == "__main__":
    # Named as it was run from here, as usage lines and messages name it: `python cli.py` in
    # the clone, `python ../cli.py` in an exercise workspace made inside it, where the
    # commands that messages advise are run.
    import shlex

    from tinyformer.files import script_path
    sys.exit(main(prog_name=f"python {shlex.quote(script_path(__file__))}"))
