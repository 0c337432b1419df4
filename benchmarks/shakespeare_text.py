"""Where the benchmarks find the tinyshakespeare text: `--corpus PATH`, by default
tinyshakespeare.txt in the current directory, where the README's download puts it (tinyformer
never downloads anything, and the repository holds no copy)."""

import os

DEFAULT = "tinyshakespeare.txt"
URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/"
       "input.txt")
HELP = f"the tinyshakespeare text [{DEFAULT}, in the current directory]"


def missing(path):
    """None where the text is at `path`; else what is needed and how to get it, to follow
    "... needs " in a one-line error."""
    if os.path.isfile(path):
        return None
    return (f"the tinyshakespeare text, which is not at {path!r}: download it with "
            f"`curl -o {DEFAULT} {URL}`, or give its path with --corpus PATH")
