"""Tokenizers: training time, encoding and decoding throughput, compression.

    python benchmarks/tokenizer_speed.py                          # tinyshakespeare, the table
    python benchmarks/tokenizer_speed.py --corpus my.txt --json out.json

Measured on one corpus (--corpus PATH, by default tinyshakespeare.txt in the current directory,
and the built-in corpus where that file is missing), for our byte-level BPE (trained to
--vocab-size, 512 by default) and our character tokenizer. Where they are importable,
references run beside them:

  tiktoken        OpenAI's Rust BPE encoder, given *our* merges (it cannot train), so that it
                  encodes with the very same vocabulary: a like-for-like speed comparison.
  HF tokenizers   Hugging Face's Rust byte-level BPE, trained here to the same vocabulary size.

Rows (median of --repeats runs):
  train s        seconds to learn the tokenizer from the corpus
  encode cold    MB/s encoding the corpus with a tokenizer freshly loaded from its JSON file, so
                 that no cache of earlier work helps (our BPE remembers each chunk it encoded)
  encode warm    MB/s encoding it again with the same tokenizer object
  decode         MB/s of text produced when decoding the corpus's ids
  bytes/token    corpus bytes / number of tokens: higher means shorter sequences for a model
"""

import argparse
import functools
import os
import platform
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, ROOT)
import shakespeare_text  # noqa: E402
from alternate import at_least, json_file, write_figures  # noqa: E402
from tinyformer.data import builtin_corpus  # noqa: E402
from tinyformer.files import read_text  # noqa: E402
from tinyformer.tokenizers import BPETokenizer, CharTokenizer, load_tokenizer  # noqa: E402

try:
    import tiktoken
except ImportError:       # the table still prints, without this column
    tiktoken = None
try:
    import tokenizers as hf
except ImportError:
    hf = None

SPECIALS = shakespeare_text.BPE_SPECIALS
# GPT-2's pre-split pattern, which ours imitates with Python's `re` (see tinyformer/tokenizers.py)
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def seconds(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure(name, train, load, encode, decode, text, repeats, workdir):
    """One column of the table. `train()` gives a tokenizer, `load(tok, path)` a fresh copy of
    it through a file, `encode(tok, text)` ids, `decode(tok, ids)` text. The round trip is
    checked, so a fast but wrong tokenizer cannot win."""
    megabytes = len(text.encode("utf-8")) / 1e6
    samples = {"train s": [], "encode cold MB/s": [], "encode warm MB/s": [], "decode MB/s": []}
    for _ in range(repeats):
        t, tok = seconds(train)
        samples["train s"].append(t)
        fresh = load(tok, os.path.join(workdir, f"{name}.json"))
        t, ids = seconds(functools.partial(encode, fresh, text))
        samples["encode cold MB/s"].append(megabytes / t)
        t, ids = seconds(functools.partial(encode, fresh, text))
        samples["encode warm MB/s"].append(megabytes / t)
        t, decoded = seconds(functools.partial(decode, fresh, ids))
        samples["decode MB/s"].append(megabytes / t)
        if decoded != text:
            raise AssertionError(f"{name}: decode(encode(text)) is not the text")
    row = {key: statistics.median(v) for key, v in samples.items()}
    row["bytes/token"] = megabytes * 1e6 / len(ids)
    row["tokens"] = len(ids)
    row["vocab"] = vocab_size_of(tok)
    return row


def vocab_size_of(tok):
    for attribute in ("vocab_size", "n_vocab"):
        if hasattr(tok, attribute):
            return getattr(tok, attribute)
    return tok.get_vocab_size()


def ours(text, vocab_size):
    def save_and_load(tok, path):
        tok.save(path)
        return load_tokenizer(path)

    def encode(tok, t): return tok.encode(t)
    def decode(tok, ids): return tok.decode(ids)
    return {
        "ours bpe": (lambda: BPETokenizer.train(text, vocab_size, SPECIALS), save_and_load,
                     encode, decode),
        "ours char": (lambda: CharTokenizer.train(text, SPECIALS), save_and_load,
                      encode, decode),
    }


def references(text, vocab_size, our_bpe):
    """The reference columns that can run here: {name: (train, load, encode, decode)}."""
    columns = {}
    if tiktoken is not None:
        # tiktoken ranks byte strings: id i of ours is the bytes it stands for, with rank i.
        pieces = [bytes([b]) for b in range(256)]
        for a, b in our_bpe.merges:
            pieces.append(pieces[a] + pieces[b])
        ranks = {piece: i for i, piece in enumerate(pieces)}

        def make():
            return tiktoken.Encoding("ours", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                                     special_tokens={})
        columns["tiktoken"] = (
            make, lambda tok, path: make(), lambda tok, t: tok.encode_ordinary(t),
            lambda tok, ids: tok.decode(ids))
    if hf is not None:
        def train():
            tok = hf.Tokenizer(hf.models.BPE())
            tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
            tok.decoder = hf.decoders.ByteLevel()
            trainer = hf.trainers.BpeTrainer(
                vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet())
            tok.train_from_iterator([text], trainer)
            return tok

        def save_and_load(tok, path):
            tok.save(path)
            return hf.Tokenizer.from_file(path)
        # Its decode drops special tokens by default, and its encode reads "<eos>" written
        # in the text as one: keep them, so that a corpus that names one comes back whole.
        columns["HF tokenizers"] = (
            train, save_and_load, lambda tok, t: tok.encode(t).ids,
            lambda tok, ids: tok.decode(ids, skip_special_tokens=False))
    return columns


def print_table(results, header):
    names = list(results)
    width = max(14, *(len(n) + 2 for n in names))
    print(header)
    if "tiktoken" in results:
        print("tiktoken encodes with our BPE's merges (it cannot train), without special tokens")
    print()
    print(f"{'':<18}" + "".join(f"{n:>{width}}" for n in names))
    print("-" * (18 + width * len(names)))
    for key, fmt in [("vocab", "{:d}"), ("train s", "{:.2f}"), ("encode cold MB/s", "{:.2f}"),
                     ("encode warm MB/s", "{:.2f}"), ("decode MB/s", "{:.2f}"),
                     ("bytes/token", "{:.2f}")]:
        cells = [fmt.format(results[n][key]) if results[n].get(key) is not None else "n/a"
                 for n in names]
        print(f"{key:<18}" + "".join(f"{c:>{width}}" for c in cells))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", metavar="PATH", help=f"a UTF-8 text file [default: "
                        f"{shakespeare_text.DEFAULT} in the current directory, else the "
                        f"built-in corpus]")
    # Every byte has an id of its own, and so has each special token: those come first.
    parser.add_argument("--vocab-size", type=at_least(256 + len(SPECIALS)),
                        default=shakespeare_text.BPE_VOCAB_SIZE)
    parser.add_argument("--repeats", type=at_least(1), default=3)
    parser.add_argument("--json", type=json_file, help="also write the raw results to this file")
    args = parser.parse_args(argv)

    vocab_size = args.vocab_size
    problem = shakespeare_text.missing(shakespeare_text.DEFAULT)
    if args.corpus is None and problem:
        # The built-in stories use a few dozen distinct words: they run out of pairs to merge
        # long before 512 ids, so learn 64 merges (as `tinyformer tokenize show` does).
        text, corpus = builtin_corpus(), shakespeare_text.BUILTIN
        vocab_size = min(vocab_size, 256 + 64 + len(SPECIALS))
        print(f"NOTE: measuring the built-in corpus, with a BPE of {vocab_size} ids (its few "
              f"distinct words run out of merges well before 512), not comparable with "
              f"tinyshakespeare's figures; those need {problem}.\n")
    else:
        path = args.corpus or shakespeare_text.DEFAULT
        try:
            text, corpus = read_text(path, "corpus"), os.path.relpath(path)
        except ValueError as e:          # a corpus named on the command line must exist
            parser.error(str(e))

    try:                       # a short text has too few pairs to merge for --vocab-size
        our_bpe = BPETokenizer.train(text, vocab_size, SPECIALS)
    except ValueError as e:
        parser.error(f"corpus {corpus!r} is too short for --vocab-size {vocab_size}: {e}")
    load = os.getloadavg()
    columns = ours(text, vocab_size)
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for name, (train, load_fn, encode, decode) in columns.items():
            results[name] = measure(name, train, load_fn, encode, decode, text, args.repeats,
                                    workdir)
        for name, (train, load_fn, encode, decode) in references(text, vocab_size,
                                                                 our_bpe).items():
            results[name] = measure(name, train, load_fn, encode, decode, text, args.repeats,
                                    workdir)
    if "tiktoken" in results:
        results["tiktoken"]["train s"] = None      # it cannot train: it was given our merges
    load_after = os.getloadavg()

    versions = [f"python {platform.python_version()}"]
    versions += [f"tiktoken {tiktoken.__version__}"] if tiktoken else ["tiktoken not installed"]
    versions += [f"tokenizers {hf.__version__}"] if hf else ["HF tokenizers not installed"]
    header = (f"{corpus}: {len(text.encode('utf-8')):,} bytes; median of {args.repeats}; "
              f"{platform.machine()}, {os.cpu_count()} cores, {', '.join(versions)}\n"
              f"load average (1 min) {load[0]:.2f} before, {load_after[0]:.2f} after")
    print_table(results, header)
    if args.json:
        write_figures(args.json, {"corpus": corpus, "bytes": len(text.encode("utf-8")),
                                  "vocab_size": vocab_size, "repeats": args.repeats,
                                  "load_before": load, "load_after": load_after,
                                  "tiktoken": tiktoken.__version__ if tiktoken else None,
                                  "tokenizers": hf.__version__ if hf else None,
                                  "results": results})


if __name__ == "__main__":
    main()
