"""Where the benchmarks find the tinyshakespeare text: `--corpus PATH`, by default
tinyshakespeare.txt in the current directory, where the README's download puts it (tinyformer
never downloads anything, and the repository holds no copy)."""

import os

DEFAULT = "tinyshakespeare.txt"
URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/"
       "input.txt")
HELP = f"the tinyshakespeare text [{DEFAULT}, in the current directory]"

# What the benchmarks learn from the text, as their scripts do: the Shakespeare recipe
# (shakespeare.py, blocks.py) holds out the last tenth and reads windows of 64 characters
# and the one after each; the tokenizer benchmark (tokenizer_speed.py) learns a BPE of 512
# ids, four of them special tokens.
RECIPE_CONTEXT = 64
BPE_VOCAB_SIZE, BPE_SPECIALS = 512, ["<pad>", "<bos>", "<eos>", "<mask>"]
# The tokenizer benchmark's name for the text it measures where this one is missing.
BUILTIN = "built-in corpus"


def missing(path):
    """None where the text is at `path`; else what is needed and how to get it, to follow
    "... needs " in a one-line error."""
    if os.path.isfile(path):
        return None
    if os.path.isdir(path):             # "not at" a path that is there misleads
        return (f"the tinyshakespeare text, and {path!r} is a folder: give the text file's own "
                f"path with --corpus PATH")
    if os.path.exists(path):            # a pipe or a device: there, and read once at most
        from tinyformer.files import not_regular
        return (f"the tinyshakespeare text, and {path!r} is {not_regular(path)}, not a file, "
                f"which the benchmarks read more than once: save the text to a file and give "
                f"its path with --corpus PATH")
    from tinyformer.files import separator_after_file
    separator = separator_after_file(path)
    if separator:                       # the text's path with a / at its end: not "not at"
        return f"the tinyshakespeare text, and {separator}"
    return (f"the tinyshakespeare text, which is not at {path!r}: download it with "
            f"`curl -o {DEFAULT} {URL}`, or give its path with --corpus PATH")


def unusable(path, recipe=False, bpe=False):
    """None where the text at `path` serves the benchmarks that read it; else what is wrong,
    in one line. It is read as `tinyformer train --corpus` reads a corpus (an empty file, a
    binary one, a text not in UTF-8 each said so), then measured against what the benchmarks
    learn from it: the Shakespeare recipe's context, with `recipe`, and the tokenizer
    benchmark's merges, with `bpe` (learning them takes about a second from the whole
    tinyshakespeare text). Found before any benchmark runs,
    rather than by the one that reads it, minutes later."""
    from tinyformer.files import read_text
    from tinyformer.tokenizers import BPETokenizer
    try:
        text = read_text(path, "corpus")
    except ValueError as e:
        return str(e)
    held_out = len(text) - int(len(text) * 0.9)
    if recipe and held_out <= RECIPE_CONTEXT:
        return (f"corpus {path!r} is too short: its last tenth, held out, has {held_out} "
                f"characters, and the Shakespeare recipe's context needs "
                f"{RECIPE_CONTEXT + 1}; give the tinyshakespeare text")
    if bpe:
        try:
            BPETokenizer.train(text, BPE_VOCAB_SIZE, BPE_SPECIALS)
        except ValueError:
            return (f"corpus {path!r} is too short for the tokenizer benchmark's BPE of "
                    f"{BPE_VOCAB_SIZE} ids: it has too few pairs of tokens to merge; give "
                    f"the tinyshakespeare text")
    return None
