"""The `tinyformer` command line (also `python cli.py ...`).

Its commands: train, generate, graph, attention, lens, plot, tokenize, exercises, bench, and
export, the way out to Hugging Face's GPT-2 format. Exit status is 0 on success, 2 on a usage
or input error (one line on stderr, no traceback), 1 on an internal error (a bug: the message
asks for a report, and `tinyformer --debug ...` shows the traceback).
"""

import contextlib
import dataclasses
import errno
import functools
import os
import sys
import time

import click
import numpy as np

import tinyautograd
from tinyautograd import no_grad
from tinyformer.decoding import beam_search
from tinyformer.checkpoint import export_pretrained, load_model
from tinyformer.data import BOS, EOS, Seq2SeqTask, builtin_corpus
from tinyformer.files import iter_text, read_text
from tinyformer.resources import blas_threads
from tinyformer.sampling import check_sampling
from tinyformer.schema import SEED, check_settings, option_name
from tinyformer.tokenizers import (END_OF_TEXT, BPETokenizer, CharTokenizer,
                                   check_special_tokens, encode_prompt, escape_controls,
                                   load_tokenizer)
from tinyformer.train import Trainer, TrainConfig, default_out_dir

EPILOG = """\b
Examples:
  tinyformer train                          a small GPT on the built-in corpus (about a minute)
  tinyformer generate --checkpoint runs/gpt-builtin --prompt "eve has a red kite."
  tinyformer tokenize show "Hello, world"   how a text splits into tokens
  tinyformer COMMAND --help                 each command's options and examples
"""


class InputError(click.ClickException):
    """Bad input from the user: printed as one line `Error: ...`, exit status 2."""
    exit_code = 2


@contextlib.contextmanager
def input_errors(*kinds):
    """Turn the library's complaints about the user's input (ValueError by default) into an
    InputError, so they reach the user as one line. Used only around code whose errors are the
    input's fault; anything else stays a traceback with exit status 1."""
    kinds = kinds or (ValueError,)
    try:
        yield
    except kinds as e:
        raise InputError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None


class Program(click.Group):
    """The command group, with click's usage errors shortened to one line: click prints the
    usage and a hint on lines of their own, we print what was wrong and where to look."""

    def main(self, args=None, prog_name=None, **extra):
        extra.pop("standalone_mode", None)
        try:
            return super().main(args, prog_name, standalone_mode=False, **extra)
        except click.UsageError as e:
            where = f" (see {e.ctx.command_path} --help)" if e.ctx is not None else ""
            click.echo(f"Error: {e.format_message()}{where}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        # What the commands did not turn into an InputError themselves. Running out of memory
        # or disk, or a file that cannot be read or written, is the machine's answer to the
        # input, not a bug: one line, exit status 2.
        except MemoryError:
            click.echo("Error: out of memory; try smaller sizes (--batch-size, --context, "
                       "--d-model, --n-layer) or close other programs", err=True)
            sys.exit(2)
        except OSError as e:
            click.echo(f"Error: {describe_os_error(e)}", err=True)
            sys.exit(2)
        except Exception:
            # Anything else is a bug of ours: exit status 1, and a request to report it. The
            # traceback, which helps us and not the user, is shown with --debug.
            if getattr(self, "debug", False):
                raise
            error = sys.exc_info()[1]
            first = str(error).splitlines()[0] if str(error) else ""
            click.echo(f"Error: internal error ({type(error).__name__}: {first}); this is a "
                       f"bug in tinyformer: please report it with the output of the same "
                       f"command run as `tinyformer --debug ...`", err=True)
            sys.exit(1)


def describe_os_error(error):
    """One line for an OSError: the file it concerns and what went wrong, with what to do
    when there is something obvious."""
    what = error.strerror or str(error) or type(error).__name__
    advice = {errno.ENOSPC: "; free some disk space and try again",
              errno.EACCES: "; check the permissions", errno.EROFS: "; choose another place"}
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{what[:1].lower()}{what[1:]}{advice.get(error.errno, '')}"


@click.group(cls=Program, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EPILOG)
@click.version_option(tinyautograd.__version__, prog_name="tinyformer")
@click.option("--debug", is_flag=True, help="On an internal error, show Python's traceback "
              "(to report the bug).")
def main(debug):
    """tinyformer: see every gradient of a Transformer, on a numpy autograd engine."""
    # Program.main reads it when an exception reaches it, after this context has closed.
    click.get_current_context().command.debug = debug


# ---------------------------------------------------------------------------------------------
# tokenize: train, apply and inspect tokenizers
# ---------------------------------------------------------------------------------------------

DEFAULT_SPECIALS = ("<pad>", "<bos>", "<eos>", "<mask>")
# `show` without --tokenizer: a BPE learned on the built-in corpus. Its stories use a few dozen
# distinct words, which run out of pairs to merge long before 512 ids (about 110 merges); 64
# merges keep the commonest words whole and leave the rest in pieces, which is what `show` is
# there to show.
DEFAULT_SHOW_MERGES = 64


@main.group(epilog="""\b
Examples:
  tinyformer tokenize train corpus.txt --out tok.json        a 512-token BPE
  tinyformer tokenize train corpus.txt --kind char --out chars.json
  tinyformer tokenize show "Hello, world" --tokenizer tok.json
  tinyformer tokenize encode "Hello, world" --tokenizer tok.json
  tinyformer tokenize decode 72 101 108 --tokenizer tok.json
""")
def tokenize():
    """Train, apply and inspect tokenizers (text <-> ids).

    A tokenizer file is the JSON that `tokenize train` writes; in Python,
    tinyformer.tokenizers.load_tokenizer(path) reads it.
    """


@tokenize.command("train", epilog="""\b
Examples:
  tinyformer tokenize train corpus.txt --out tok.json
  tinyformer tokenize train corpus.txt --vocab-size 1024 --special "<eos>" --out tok.json
  tinyformer tokenize train corpus.txt --kind char --no-special --out chars.json
""")
@click.argument("input_path", metavar="INPUT")
@click.option("--kind", type=click.Choice(["char", "bpe"]), default="bpe", show_default=True,
              help="bpe: byte-level byte-pair encoding (GPT-2's); char: one id per character.")
@click.option("--vocab-size", type=int, default=None,
              help="Total ids for bpe, the 256 bytes and the special tokens included "
                   "[default: 512].")
@click.option("--special", "specials", multiple=True, metavar="TOKEN",
              help="A special token (repeat for several) [default: "
                   + " ".join(DEFAULT_SPECIALS) + "].")
@click.option("--no-special", is_flag=True, help="No special tokens at all.")
@click.option("--out", "out_path", required=True, metavar="FILE.json",
              help="Where to save the tokenizer.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def tokenize_train(input_path, kind, vocab_size, specials, no_special, out_path, force):
    """Learn a tokenizer from the UTF-8 text file INPUT and save it as JSON.

    A BPE tokenizer starts from the 256 bytes, so it encodes any text, and learns merges
    until it has --vocab-size ids; a char tokenizer has one id per character of INPUT and
    cannot encode characters that INPUT lacks. Prints the vocabulary and the compression on
    INPUT (bytes per token: higher means shorter sequences for the model).
    """
    if no_special and specials:
        raise InputError("give --special or --no-special, not both")
    with input_errors():
        specials = [] if no_special else check_special_tokens(specials or DEFAULT_SPECIALS)
    if kind == "char" and vocab_size is not None:
        raise InputError("--vocab-size is for --kind bpe; a char tokenizer's vocabulary is "
                         "the characters of INPUT")
    if kind == "bpe":
        vocab_size = 512 if vocab_size is None else vocab_size
        smallest = 256 + len(specials)
        if vocab_size < smallest:
            raise InputError(f"--vocab-size {vocab_size} is too small: a byte-level BPE needs "
                             f"the 256 bytes plus {len(specials)} special tokens, at least "
                             f"{smallest}")
    check_out_file(out_path, force=force)        # before the work, not after it

    with input_errors():
        text = "".join(iter_text(input_path, "input file"))
    n_bytes = os.path.getsize(input_path)
    what = f"a {vocab_size}-token BPE" if kind == "bpe" else "a char tokenizer"
    # BPE on a large corpus takes a while: say what is happening (on stderr, so stdout keeps
    # only the result).
    click.echo(f"Training {what} on {input_path} ({n_bytes:,} bytes)...", err=True)
    start = time.perf_counter()
    with input_errors():                      # e.g. too little text for that many merges
        if kind == "bpe":
            tok = BPETokenizer.train(text, vocab_size, special_tokens=specials)
        else:
            tok = CharTokenizer.train(text, special_tokens=specials)
    seconds = time.perf_counter() - start
    n_tokens = len(tok.encode(text))

    with input_errors(OSError):               # e.g. the disk filled up since the check
        tok.save(out_path)

    click.echo(f"Trained {what} on {input_path} in {seconds:.2f} s, saved to {out_path}")
    special_note = f" + {len(specials)} special ({' '.join(specials)})" if specials else ""
    if kind == "bpe":
        click.echo(f"  vocabulary   {tok.vocab_size} ids: 256 bytes + {len(tok.merges)} merges"
                   + special_note)
        learned = [tok.id_to_token(i) for i in range(256, 256 + len(tok.merges))]
        click.echo("  first merges " + " ".join(repr(t) for t in learned[:8]))
        click.echo("  longest      " + " ".join(repr(t) for t in sorted(learned, key=len)[-5:]))
    else:
        click.echo(f"  vocabulary   {tok.vocab_size} ids: {len(tok.chars)} characters"
                   + special_note)
    click.echo(f"  compression  {n_bytes / n_tokens:.2f} bytes per token on the input "
               f"({n_tokens:,} tokens)")


def check_out_file(path, suffixes=None, force=True):
    """InputError unless a file can be written at `path` (the --out of `tokenize train`, `plot`,
    `attention` and `graph`), checked before any work so that a mistake costs no waiting:
    not a directory, a suffix among `suffixes` (which name the format) if given, not an
    existing file unless `force`, in a directory that exists and is writable."""
    if os.path.isdir(path):
        raise InputError(f"--out {path!r} is a directory; give a file name")
    if suffixes and not path.lower().endswith(tuple(suffixes)):
        raise InputError(f"--out {path!r} should end in {' or '.join(suffixes)}: the suffix "
                         f"says the format")
    if os.path.exists(path) and not force:
        raise InputError(f"--out {path!r} exists; pass --force to overwrite it")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError(f"cannot write --out {path!r}: directory {directory!r} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(f"cannot write --out {path!r}: directory {directory!r} is not "
                         f"writable")


def open_tokenizer(path):
    """The tokenizer saved at `path`, or an InputError saying why it cannot be read."""
    if not os.path.exists(path):
        raise InputError(f"tokenizer {path!r} does not exist; make one with "
                         f"`tinyformer tokenize train`")
    if os.path.isdir(path):
        raise InputError(f"tokenizer {path!r} is a directory; give its JSON file")
    with input_errors(ValueError, OSError):
        return load_tokenizer(path)


@functools.lru_cache(maxsize=1)
def default_tokenizer():
    """The tokenizer `show` uses without --tokenizer: a BPE learned on the built-in corpus,
    in a tenth of a second, so that it needs no file."""
    vocab_size = 256 + DEFAULT_SHOW_MERGES + len(DEFAULT_SPECIALS)
    return BPETokenizer.train(builtin_corpus(), vocab_size, special_tokens=DEFAULT_SPECIALS)


def text_to_tokenize(text, file_path):
    """TEXT or the contents of --file: exactly one of them."""
    if (text is None) == (file_path is None):
        raise InputError("give a TEXT or --file PATH (one of them)")
    if file_path is not None:
        with input_errors():
            return read_text(file_path, "file")
    # Bytes of the command line that are not UTF-8 reach Python as lone surrogates, which no
    # UTF-8 tokenizer can encode.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"TEXT is not valid UTF-8 (at character {e.start})") from None
    return text


def encode_or_fail(tok, text, allow_special):
    with input_errors():            # a char tokenizer meets a character it does not know
        return tok.encode(text, allow_special=allow_special)


text_options = [
    click.argument("text", required=False),
    click.option("--file", "file_path", metavar="PATH", help="Read the text from a UTF-8 "
                 "file instead of TEXT."),
    click.option("--allow-special", is_flag=True, help="Give special tokens written in the "
                 "text (\"<eos>\") their own ids; by default they are plain text."),
]


def with_text_options(command):
    for option in reversed(text_options):
        command = option(command)
    return command


@tokenize.command("encode", epilog="""\b
Examples:
  tinyformer tokenize encode "Hello, world" --tokenizer tok.json
  tinyformer tokenize encode --file story.txt --tokenizer tok.json > ids.txt
  tinyformer tokenize encode "<bos>Hi<eos>" --allow-special --tokenizer tok.json
""")
@with_text_options
@click.option("--tokenizer", "tokenizer_path", required=True, metavar="FILE.json",
              help="A tokenizer saved by `tokenize train`.")
def tokenize_encode(text, file_path, allow_special, tokenizer_path):
    """Print the ids of TEXT (or of --file PATH), separated by spaces."""
    tok = open_tokenizer(tokenizer_path)
    ids = encode_or_fail(tok, text_to_tokenize(text, file_path), allow_special)
    click.echo(" ".join(map(str, ids)))


@tokenize.command("decode", epilog="""\b
Examples:
  tinyformer tokenize decode 72 101 108 108 111 --tokenizer tok.json
  tinyformer tokenize decode $(tinyformer tokenize encode "Hi" --tokenizer tok.json) \\
      --tokenizer tok.json
""")
@click.argument("ids", nargs=-1, type=int, required=True)
@click.option("--tokenizer", "tokenizer_path", required=True, metavar="FILE.json",
              help="A tokenizer saved by `tokenize train`.")
def tokenize_decode(ids, tokenizer_path):
    """Print the text of the token IDS (followed by a newline).

    With a BPE tokenizer, ids that cut a character's bytes apart decode to the replacement
    character (U+FFFD); the ids of any text decode to exactly that text.
    """
    tok = open_tokenizer(tokenizer_path)
    with input_errors():            # an id outside the vocabulary
        click.echo(tok.decode(ids))


# Alternating background colours mark where one token ends and the next begins.
SHOW_COLOURS = ("cyan", "yellow", "green", "magenta")


@tokenize.command("show", epilog=f"""\b
Examples:
  tinyformer tokenize show "Hello, world"                   the default tokenizer
  tinyformer tokenize show "Hello, world" --tokenizer tok.json --ids
  tinyformer tokenize show --file story.txt --tokenizer chars.json --no-color

Without --tokenizer, `show` uses a BPE of {DEFAULT_SHOW_MERGES} merges learned on the built-in
corpus (the stories `tinyformer train` learns from) in a fraction of a second, so it needs no
file: the corpus's commonest words (" the", " has") are single tokens, and any other text
falls back to smaller pieces and, at worst, bytes. Train your own with `tokenize train`.
""")
@with_text_options
@click.option("--tokenizer", "tokenizer_path", metavar="FILE.json",
              help="A tokenizer saved by `tokenize train` [default: see below].")
@click.option("--ids", "show_ids", is_flag=True, help="Also print the ids, in order.")
@click.option("--color/--no-color", default=None,
              help="Colour the tokens [default: when writing to a terminal]; without colour "
                   "they are framed by '|'.")
def tokenize_show(text, file_path, allow_special, tokenizer_path, show_ids, color):
    """Show how TEXT (or --file PATH) splits into tokens, and how well it compresses.

    Tokens are shown in alternating colours on a terminal, otherwise framed by '|' as in
    |Hello|,| world|. Newlines and tabs are shown as \\n and \\t; a BPE token holding only
    part of a character's bytes is shown as \\xNN.
    """
    tok = open_tokenizer(tokenizer_path) if tokenizer_path else default_tokenizer()
    text = text_to_tokenize(text, file_path)
    ids = encode_or_fail(tok, text, allow_special)
    pieces = [visible(tok.id_to_token(i)) for i in ids]
    if color is None:
        color = sys.stdout.isatty()
    if color:
        click.echo("".join(click.style(p, bg=SHOW_COLOURS[k % len(SHOW_COLOURS)], fg="black")
                           for k, p in enumerate(pieces)), color=True)
    else:
        click.echo("|" + "|".join(pieces) + "|" if pieces else "(no tokens)")
    if show_ids:
        click.echo("ids: " + " ".join(map(str, ids)))
    n_bytes = len(text.encode("utf-8"))
    summary = f"{len(ids)} tokens, {len(text)} characters ({n_bytes} bytes)"
    if ids:
        summary += (f": {len(text) / len(ids):.2f} characters per token, "
                    f"{n_bytes / len(ids):.2f} bytes per token")
    click.echo(summary)
    source = tokenizer_path or "the default (see --help)"
    click.echo(f"tokenizer: {source}, {tok.kind}, {tok.vocab_size} ids")


def visible(piece):
    """A token's text with the characters that would break the line shown as escapes."""
    return piece.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

TRAIN_EPILOG = """\b
Examples:
  tinyformer train                                   a small GPT on the built-in stories
  tinyformer train --corpus input.txt --out runs/shakespeare
  tinyformer train --corpus input.txt --tokenizer bpe --vocab-size 512
  tinyformer train --task reverse --min-len 10 --max-len 10
  tinyformer train --model bert --iters 300
  tinyformer train --config run.toml --lr 3e-4      flags override the file
  tinyformer train --resume runs/shakespeare        continue after Ctrl-C or a crash
  tinyformer train --corpus input.txt --threads 2   two BLAS threads [default: all cores]

\b
Defaults depend on the data: the built-in corpus trains a 2-layer GPT in about a minute; a
--corpus file gets nanoGPT's small CPU recipe (4 layers, 4 heads, width 128, context 64,
batch 12, 2000 steps, lr 1e-3 with 100 warmup steps, cosine to 1e-4); a --task a 2-layer
encoder-decoder, for 400 steps (copy, reverse), 1000 (sort) or 4000 (add). A run
directory holds config.json, the weights, the tokenizer, the optimizer state and
metrics.jsonl (one JSON line a step).
"""


threads_option = click.option(
    "--threads", type=click.IntRange(min=1, max=4096), metavar="N",
    help="BLAS threads for the matrix products [default: as numpy's BLAS chooses, usually one "
         "per core]; 1 is steadiest on a shared machine.")


def train_options(command):
    """The settings of TrainConfig as options. Each defaults to None, meaning "not given", so
    that a --config file's value or the job's default applies; what is given overrides both."""
    options = [
        click.option("--corpus", metavar="PATH", help="A UTF-8 text file to train on (default: "
                     "the built-in corpus of generated stories)."),
        click.option("--task", metavar="NAME", help="A seq2seq task: copy, reverse, sort or "
                     "add (trains an encoder-decoder)."),
        click.option("--min-len", type=int, help="Shortest task sequence [4]."),
        click.option("--max-len", type=int, help="Longest task sequence [10]."),
        click.option("--model", metavar="NAME", help="gpt, bert or transformer [gpt; "
                     "transformer with --task]."),
        click.option("--tokenizer", metavar="KIND", help="char or bpe [char]."),
        click.option("--vocab-size", type=int, help="BPE vocabulary size [512]."),
        click.option("--n-layer", type=int, help="Transformer blocks."),
        click.option("--n-head", type=int, help="Attention heads per block."),
        click.option("--d-model", type=int, help="Width of the residual stream."),
        click.option("--d-ff", type=int, help="Width of the feed-forward layer [4 d_model]."),
        click.option("--context", type=int, help="Longest sequence the model sees."),
        click.option("--positions", metavar="KIND", help="learned, sinusoidal, rope or none "
                     "[the model's own]."),
        click.option("--norm", metavar="WHERE", help="pre or post [the model's own]."),
        click.option("--normalization", metavar="KIND", help="layernorm or rmsnorm, for every "
                     "norm [layernorm]."),
        click.option("--activation", metavar="NAME", help="The feed-forward's: gelu, relu, "
                     "swiglu or relu2 [the model's own]."),
        click.option("--n-kv-head", type=int, help="Key-value heads, dividing --n-head: "
                     "grouped-query attention (1: multi-query) [n-head]."),
        click.option("--qk-norm", is_flag=True, default=None, help="Normalise each head's "
                     "queries and keys before their dot product."),
        click.option("--logit-softcap", type=float, help="Squash the logits into (-c, c), "
                     "c tanh(logits / c) [none]."),
        click.option("--no-bias", "bias", flag_value=False, default=None, help="No biases in "
                     "the linear layers and norms."),
        click.option("--rope-theta", type=float, help="RoPE's base, with --positions rope "
                     "[10000]."),
        click.option("--dropout", type=float, help="Dropout rate [0]."),
        click.option("--batch-size", type=int, help="Sequences per step."),
        click.option("--iters", type=int, help="Optimizer steps."),
        click.option("--lr", type=float, help="Peak learning rate."),
        click.option("--min-lr", type=float, help="Learning rate at the end of the cosine "
                     "[lr / 10]."),
        click.option("--warmup", type=int, help="Steps of linear warmup."),
        click.option("--schedule", metavar="KIND", help="cosine or noam [cosine]."),
        click.option("--weight-decay", type=float, help="AdamW's decoupled weight decay, on "
                     "weights only [0.1]."),
        click.option("--clip", type=float, help="Largest gradient norm, 0 for none [1.0]."),
        click.option("--label-smoothing", type=float, help="For seq2seq tasks [0]."),
        click.option("--eval-every", type=int, help="Steps between evaluations (validation "
                     "loss, a sample, a checkpoint)."),
        click.option("--eval-iters", type=int, help="Validation batches per evaluation [20]."),
        click.option("--checkpoint-every", type=int, help="Steps between checkpoints "
                     "[eval-every]."),
        click.option("--seed", type=int, help="Seeds the data order, the initial weights and "
                     "dropout [0]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def read_toml(path):
    """The settings of a TOML file as a dict (a [train] table, or keys at the top level)."""
    try:
        import tomllib
    except ModuleNotFoundError:                       # Python 3.10
        import tomli as tomllib
    text = read_text(path, "--config file")
    try:
        settings = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"--config file {path!r} is not valid TOML ({e})") from None
    return settings.get("train", settings) if isinstance(settings.get("train"), dict) else settings


@main.command(epilog=TRAIN_EPILOG)
@train_options
@click.option("--config", "config_path", metavar="FILE.toml",
              help="Settings from a TOML file (keys as the options, with _ or -).")
@click.option("--out", metavar="DIR", help="The run directory [runs/<model>-<data>, numbered "
              "if taken].")
@click.option("--force", is_flag=True, help="Overwrite a non-empty --out (only a run's own "
              "files are removed).")
@click.option("--resume", "resume_dir", metavar="DIR", help="Continue the run in DIR to its "
              "planned --iters, exactly as if it had not stopped.")
@threads_option
@click.pass_context
def train(ctx, config_path, out, force, resume_dir, threads, **options):
    """Train a model, printing samples and saving checkpoints as it goes.

    With no options: a small GPT learns the built-in stories, whose last sentence recalls a
    colour from the first, so it needs attention to get them right. Ctrl-C stops after the
    current step with a checkpoint; --resume continues it.
    """
    given = {name: value for name, value in options.items()
             if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    with input_errors():
        if resume_dir is not None:
            extra = [f"--{name.replace('_', '-')}" for name in given]
            extra += [flag for flag, value in (("--config", config_path), ("--out", out),
                                               ("--force", force)) if value]
            if extra:
                raise ValueError(f"--resume continues a run with its saved settings; drop "
                                 f"{' '.join(extra)}")
            trainer = Trainer.resume(resume_dir, log=click.echo)
        else:
            # The file's values are checked and named as the file's ("lr in run.toml"), the
            # options' as options ("--lr"); the options override the file.
            config = TrainConfig.from_dict(read_toml(config_path) if config_path else {},
                                           config_path)
            config = dataclasses.replace(config, **given).resolved()
            out = out or default_out_dir(config)
            trainer = Trainer.start(config, out, force=force, log=click.echo)
    directory = trainer.directory
    click.echo(f"model: {summary_line(trainer.model)}; run directory: {directory}")
    first_step = trainer.step
    try:
        with blas_threads(threads):
            outcome = trainer.train()
    except FloatingPointError as e:       # settings that diverge: the input's fault
        # Resuming would diverge again, the same way: the settings must change.
        raise InputError(f"{e}, with the run's other settings, in a new run: `tinyformer "
                         f"train --out {directory} --force ...` replaces this one") from None
    if trainer.step > first_step:                    # also after Ctrl-C: the curves so far
        plot_after_training(directory)
    if outcome == "interrupted":
        click.echo(f"stopped at step {trainer.step} with a checkpoint in {directory}; "
                   f"continue with: tinyformer train --resume {directory}", err=True)
        sys.exit(130)                                # the shell's code for "stopped by Ctrl-C"
    prompt = ' --prompt "' + ("0123456789" if trainer.config.task else
                              "the kite of eve is <mask><mask><mask>"
                              if trainer.config.model == "bert" else "eve has a red kite.") + '"'
    click.echo(f"done: checkpoint in {directory}\ntry: tinyformer generate --checkpoint "
               f"{directory}{prompt if trainer.config.corpus is None else ''}")


def summary_line(model):
    c = model.config
    return (f"{type(model).__name__} with {model.num_parameters():,} parameters "
            f"({c['n_layer']} layers, {c['n_head']} heads, width {c['d_model']}, "
            f"context {c['context']})")


# ---------------------------------------------------------------------------------------------
# generate
# ---------------------------------------------------------------------------------------------

GENERATE_EPILOG = """\b
Examples:
  tinyformer generate --checkpoint runs/gpt-builtin --prompt "eve has a red kite."
  tinyformer generate --checkpoint runs/gpt-builtin --prompt "bob" --temperature 0 (greedy)
  tinyformer generate --checkpoint runs/gpt-builtin --prompt "bob has" --beam 4 (most likely)
  tinyformer generate --checkpoint runs/shakespeare --max-new-tokens 500 --top-k 20
  tinyformer generate --checkpoint runs/transformer-reverse --prompt 0123456789 --beam 4
  tinyformer generate --checkpoint runs/bert-builtin --prompt "the kite is <mask><mask>"
  tinyformer generate --checkpoint gpt2 --prompt "Hello, I'm a language model," --top-k 40
  tinyformer generate --checkpoint gpt2 --threads 2     two BLAS threads [default: all cores]

\b
--checkpoint also takes a Hugging Face GPT-2 directory: config.json, model.safetensors,
vocab.json and merges.txt (or transformers' tokenizer.json), as on GPT-2's model page
(README: "Real GPT-2 in, your model out"), or as `tinyformer export` writes. With GPT-2's
tokenizer, no --prompt starts from <|endoftext|>, and generation stops where the model writes
<|endoftext|>.
"""


@main.command(epilog=GENERATE_EPILOG)
@click.option("--checkpoint", "checkpoint_dir", required=True, metavar="DIR",
              help="A run directory written by `tinyformer train`, or a GPT-2 directory.")
@click.option("--prompt", default="", help="The text to continue (GPT), to translate "
              "(seq2seq), or with <mask> tokens to fill in (BERT).")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--temperature", type=float, default=0.8, show_default=True,
              help="Below 1 sharper, above 1 flatter; 0 always takes the likeliest token.")
@click.option("--top-k", type=int, help="Sample among the k likeliest tokens only.")
@click.option("--top-p", type=float, help="Sample among the likeliest tokens whose "
              "probabilities add up to p (nucleus sampling).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--beam", type=click.IntRange(min=1), help="Beam search with N beams: the most "
              "likely text rather than a sample (gpt and seq2seq checkpoints).")
@threads_option
def generate(checkpoint_dir, prompt, max_new_tokens, temperature, top_k, top_p, seed, beam,
             threads):
    """Continue a prompt with a trained model (or translate it, or fill in its masks)."""
    with blas_threads(threads):
        write_generation(checkpoint_dir, prompt, max_new_tokens, temperature, top_k, top_p,
                         seed, beam)


def write_generation(checkpoint_dir, prompt, max_new_tokens, temperature, top_k, top_p, seed,
                     beam):
    with input_errors():
        check_sampling(temperature, top_k, top_p, name=option_name)    # before loading
        check_settings({"seed": seed}, {"seed": SEED})
        model, tokenizer, saved = load_model(checkpoint_dir)
        kind = saved["model"]
        if beam is not None and kind == "bert":
            raise ValueError("--beam is for models that write (gpt and seq2seq); a bert "
                             "checkpoint fills in masks")
        if kind == "gpt":
            # GPT-2 marks where one document ends and the next begins with <|endoftext|>:
            # it starts a text from nothing, and ends one.
            end_of_text = tokenizer.special_id(END_OF_TEXT)
            if prompt:
                ids = encode_prompt(tokenizer, prompt, allow_special=False)
            else:                              # from nothing: <|endoftext|>, or a new line
                ids = [end_of_text] if end_of_text is not None else tokenizer.encode("\n")
        else:
            if not prompt:
                raise ValueError(f"a {kind} checkpoint needs a --prompt to "
                                 f"{'translate' if kind == 'transformer' else 'fill in'}")
            ids = encode_prompt(tokenizer, prompt, allow_special=kind == "bert",
                                context=model.context)
    if kind == "gpt":
        click.echo(prompt, nl=False)
        stream = TextStream(tokenizer, end_of_text,
                            skip_newlines=not prompt and end_of_text is None)
        if beam:                              # the most likely continuation, then shown
            best = beam_search(model.start_decoding(np.array([ids])), beam_size=beam,
                               max_len=max_new_tokens, eos_id=end_of_text)
            for token in best.tokens[len(ids):]:
                stream(token[None])
        else:
            model.generate(np.array([ids]), max_new_tokens, temperature, top_k, top_p,
                           eos_id=end_of_text, generator=np.random.default_rng(seed),
                           streamer=stream)
        stream.close()
        click.echo()
    elif kind == "transformer":
        # The task's tokenizer numbers its symbols as data.SYMBOLS does, so the task decodes
        # them: symbols up to <eos>. A target of context - 1 symbols and <eos> takes `context`
        # generated tokens.
        src = np.array([ids])
        if beam:
            out = beam_search(model.start_decoding(src, BOS), beam_size=beam,
                              max_len=model.context, eos_id=EOS).tokens
        else:
            out = model.greedy_decode(src, model.context, BOS, EOS)[0]
        click.echo(escape_controls(Seq2SeqTask.decode(out[1:])))
    else:
        mask_id = tokenizer.token_to_id("<mask>")
        if mask_id not in ids:
            raise InputError("--prompt has no <mask> token for BERT to fill in; write one, "
                             "e.g. \"the kite is <mask><mask><mask>\"")
        with no_grad():
            guess = model(np.array([ids])).data.argmax(-1)[0]
        click.echo(escape_controls(tokenizer.decode([g if i == mask_id else i
                                                     for i, g in zip(ids, guess)])))


class TextStream:
    """Print a GPT's text as generate() chooses its tokens, for a big model's slow ones.

    A token may hold part of a character's UTF-8 bytes; decoding then ends in U+FFFD until the
    rest arrives, so what is shown is the decoded text of all new tokens so far, less a
    trailing U+FFFD, less what was already printed. `skip_newlines` drops the new lines at the
    very start (after the new line that starts a text from nothing)."""

    def __init__(self, tokenizer, end_of_text, skip_newlines):
        self.tokenizer, self.end_of_text, self.skip_newlines = tokenizer, end_of_text, skip_newlines
        self.ids, self.shown = [], 0

    def __call__(self, next_token):                     # (1,): one row
        if next_token[0] != self.end_of_text:           # generate stops there; not printed
            self.ids.append(int(next_token[0]))
            self._show(self._text().removesuffix("\ufffd"))

    def close(self):
        """Print the rest, a character cut short at the end included (as U+FFFD)."""
        self._show(self._text())

    def _text(self):
        text = self.tokenizer.decode(self.ids)
        return text.lstrip("\n") if self.skip_newlines else text

    def _show(self, text):
        click.echo(escape_controls(text[self.shown:]), nl=False)
        self.shown = len(text)


# ---------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------

EXPORT_EPILOG = """\b
Examples:
  tinyformer export --checkpoint runs/shakespeare --out shakespeare-hf
  tinyformer generate --checkpoint shakespeare-hf --prompt "ROMEO:"

\b
The directory is in Hugging Face's GPT-2 format, so PyTorch users load it with
  transformers.GPT2LMHeadModel.from_pretrained("shakespeare-hf")
A BPE tokenizer is written as GPT-2's vocab.json and merges.txt (then
transformers.AutoTokenizer loads it too); a character tokenizer has no GPT-2 form and is kept
as tinyformer-tokenizer.json.
"""


@main.command(epilog=EXPORT_EPILOG)
@click.option("--checkpoint", "checkpoint_dir", required=True, metavar="DIR",
              help="A GPT run directory written by `tinyformer train` (or a GPT-2 directory).")
@click.option("--out", "out_dir", required=True, metavar="DIR",
              help="A new directory to write (it must not exist).")
def export(checkpoint_dir, out_dir):
    """Write a trained GPT in Hugging Face's GPT-2 format (config.json, model.safetensors)."""
    if not out_dir.strip():
        raise InputError("--out is empty; give the name of a new directory")
    with input_errors(ValueError, OSError):      # OSError: the disk, permissions, a race
        if os.path.exists(out_dir):           # before loading anything
            raise InputError(f"--out {out_dir!r} exists; give a new directory")
        model, tokenizer, _ = load_model(checkpoint_dir)
        export_pretrained(model, tokenizer, out_dir)
    click.echo(f"wrote {out_dir}: try tinyformer generate --checkpoint {out_dir}")


# ---------------------------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------------------------

ATTENTION_EPILOG = """\b
Examples:
  tinyformer attention --checkpoint runs/gpt-builtin --prompt "eve has a red kite. the kite is "
  tinyformer attention --checkpoint runs/bert-builtin --prompt "the kite is <mask><mask>"
  tinyformer attention --checkpoint runs/transformer-reverse --prompt 0123456 --which cross

\b
One heatmap per layer (rows) and head (columns): row i is how query token i spreads its
attention over the key tokens (it sums to 1). Spaces show as '␣'. A seq2seq checkpoint
translates the prompt greedily and shows the decoder's cross-attention (target -> source) by
default; --which encoder or decoder shows the self-attention of either side. Prompts longer
than 48 tokens show their last 48.
"""


@main.command(epilog=ATTENTION_EPILOG)
@click.option("--checkpoint", "checkpoint_dir", required=True, metavar="DIR",
              help="A run directory written by `tinyformer train`.")
@click.option("--prompt", required=True, help="The text to read (for BERT, <mask> tokens "
              "allowed; for seq2seq, the source to translate).")
@click.option("--out", "out_path", default="attention.png", show_default=True,
              metavar="FILE.png", help="Where to write the picture; an existing file is "
              "replaced.")
@click.option("--which", type=click.Choice(["self", "cross", "encoder", "decoder"]),
              help="Which attention of a seq2seq checkpoint [cross]; GPT and BERT have "
              "self-attention only.")
def attention(checkpoint_dir, prompt, out_path, which):
    """Draw a checkpoint's attention maps for a prompt: every layer and head, as a PNG."""
    check_out_file(out_path, [".png"])           # before loading and running the model
    try:
        from viz.attention import attention_maps, choose_map, plot_attention
        import matplotlib  # noqa: F401  (imported late by plot_attention; checked here)
    except ModuleNotFoundError:
        raise InputError("drawing attention needs matplotlib: pip install matplotlib") from None
    with input_errors():
        model, tokenizer, saved = load_model(checkpoint_dir)
        kind = saved["model"]
        name = choose_map(model, which)
        chosen = attention_maps(model, tokenizer, prompt, kind)[name]
    run = os.path.basename(os.path.abspath(checkpoint_dir))
    title = (f"{run} ({kind}): {chosen.description} - {chosen.weights.shape[0]} layers x "
             f"{chosen.weights.shape[1]} heads")
    with input_errors(OSError):                      # e.g. the disk filled up
        plot_attention(chosen.weights, chosen.queries, chosen.keys, out_path, title)
    click.echo(out_path)


# ---------------------------------------------------------------------------------------------
# lens
# ---------------------------------------------------------------------------------------------

LENS_EPILOG = """\b
Examples:
  tinyformer lens --checkpoint runs/gpt-builtin --prompt "eve has a red kite. the kite of eve is "
  tinyformer lens --checkpoint runs/gpt-builtin --prompt "bob has a" --out lens.png
  tinyformer lens --checkpoint runs/transformer-reverse --prompt 0123456

\b
The logit lens: the residual stream after the embeddings and after each layer, read by the
model's own final norm and head, as if the model stopped there. Each row is a position of the
prompt (its token on the left); each column a state of the stream; each cell the token that
state would predict, and its probability (coloured in a terminal): the next token for a GPT
or a seq2seq decoder, the token at that position for BERT. The last column is the model's own
prediction. A seq2seq checkpoint translates the prompt greedily and shows its decoder at each
step.
"""


@main.command(epilog=LENS_EPILOG)
@click.option("--checkpoint", "checkpoint_dir", required=True, metavar="DIR",
              help="A run directory written by `tinyformer train`, or a GPT-2 folder.")
@click.option("--prompt", required=True, help="The text to read (for BERT, <mask> tokens "
              "allowed; for seq2seq, the source to translate).")
@click.option("--out", "out_path", default="-", show_default=True, metavar="-|FILE.png",
              help="- prints the table; a .png file draws it (an existing file is replaced).")
def lens(checkpoint_dir, prompt, out_path):
    """The logit lens: what a checkpoint would predict after each layer, for each position."""
    from viz.lens import lens_figure, lens_of_prompt, lens_text
    if out_path != "-":
        check_out_file(out_path, [".png"])             # before loading and running the model
    with input_errors():
        model, tokenizer, saved = load_model(checkpoint_dir)
        table, tokens = lens_of_prompt(model, tokenizer, prompt, saved["model"])
    if out_path == "-":
        click.echo(lens_text(table, tokens, tokenizer, style=_by_probability))
        return
    run = os.path.basename(os.path.abspath(checkpoint_dir))
    with input_errors(OSError):
        lens_figure(table, tokens, tokenizer, title=f"{run}: the logit lens").savefig(
            out_path, dpi=120)
    click.echo(out_path)


def _by_probability(text, probability):
    """A prediction in a terminal: bright and bold when sure, dim when not."""
    if probability >= 0.8:
        return click.style(text, fg="bright_green", bold=True)
    return click.style(text, fg="green") if probability >= 0.4 else click.style(text, dim=True)


# ---------------------------------------------------------------------------------------------
# plot
# ---------------------------------------------------------------------------------------------

PLOT_EPILOG = """\b
Examples:
  tinyformer plot runs/gpt-builtin                 writes runs/gpt-builtin/loss.png
  tinyformer plot runs/gpt-builtin --out curves.png
  tinyformer plot runs/gpt-builtin/metrics.jsonl   the metrics file itself also works

\b
The picture: train loss per step (thin) and smoothed (thick), validation loss at each
evaluation (dots), recall or accuracy if the run measured one, and the learning rate below.
`tinyformer train` draws it at the end of every run; this command redraws it, e.g. while a
run is still going.
"""


@main.command(epilog=PLOT_EPILOG)
@click.argument("run_dir", metavar="RUN_DIR")
@click.option("--out", "out_path", metavar="FILE.png", help="Where to write the picture "
              "[RUN_DIR/loss.png]; an existing file is replaced.")
def plot(run_dir, out_path):
    """Plot a run's loss curves and learning rate (from its metrics.jsonl) to a PNG."""
    if not os.path.exists(run_dir):
        raise InputError(f"run directory {run_dir!r} does not exist; check the path")
    if os.path.isdir(run_dir) and not os.path.isfile(os.path.join(run_dir, "metrics.jsonl")):
        raise InputError(f"run directory {run_dir!r} has no metrics.jsonl; is it a run "
                         f"directory from tinyformer train?")
    if out_path is not None:
        check_out_file(out_path, [".png"])
    try:
        from viz.plots import plot_metrics
        import matplotlib  # noqa: F401  (imported late by plot_metrics; checked here)
    except ModuleNotFoundError:
        raise InputError("plotting needs matplotlib: pip install matplotlib") from None
    with input_errors(ValueError, OSError):          # OSError: e.g. a read-only disk
        written = plot_metrics(run_dir, out_path)
    click.echo(written)


def plot_after_training(directory):
    """Draw the run's loss.png at the end of `tinyformer train`. A missing matplotlib or a
    run with no metrics yet is a note, not an error: the checkpoint is what matters."""
    try:
        from viz.plots import plot_metrics
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        click.echo("note: no loss plot (matplotlib is not installed: pip install matplotlib)",
                   err=True)
        return
    try:
        click.echo(f"loss plot: {plot_metrics(directory)}")
    except ValueError as e:
        click.echo(f"note: no loss plot ({str(e).splitlines()[0]})", err=True)


# ---------------------------------------------------------------------------------------------
# graph
# ---------------------------------------------------------------------------------------------

GRAPH_EPILOG = """\b
Examples:
  tinyformer graph --example mlp --out mlp.svg
  tinyformer graph --example layernorm --what backward --out ln-backward.png
  tinyformer graph --example gpt --what backward --depth 2 --out gpt-backward.svg
  tinyformer graph --example bert --fold-repeats --out bert.svg    layers: EncoderLayer x 2
  tinyformer graph --example gpt --grad --out gpt.pdf       gradient norms in the boxes
  tinyformer graph --example mlp --flow --out flow.png      coloured by gradient norm
  tinyformer graph --example transformer --what backward --flow --depth 1 --out flow.svg
  tinyformer graph --checkpoint runs/gpt-builtin --prompt "eve has a red kite." --out step.svg
  tinyformer graph --checkpoint runs/gpt-builtin --prompt "eve has a red kite." \\
      --what backward --depth 1 --out gpt-backward.png
  tinyformer graph --example attention --out attention.dot  the graphviz source only

\b
--what forward draws the graph that computes the loss: each op with its output shape, each
parameter by its name in the module tree. --what backward draws the graph that computing the
gradients records: how each gradient comes from the one above it and the values the forward
saved, the chain rule made visible, down to one dL/d<parameter> per parameter. svg, png and
pdf need graphviz's dot program.

\b
Both graphs box the ops of each module by its path (decoder.layers.0, decoder.layers.0.attn,
...); a backward op goes in the box of the forward op whose backward it is. --depth N
collapses each module N levels down into one node with its class, parameter count and number
of ops: --depth 2 draws a GPT as its token and position embeddings, each block and the final
norm. --fold-repeats collapses a stack of blocks of one class into one node,
"decoder.layers: DecoderLayer x 4".

\b
--grad writes each gradient's norm, min and max in its box; --flow colours every node by its
gradient norm on a log scale, with a legend. On the forward graph they come from a backward
pass; on the backward graph, each node is the gradient it computes.

\b
--checkpoint takes a run of any model: a GPT predicts each next token of --prompt, a BERT
guesses every seventh token of it, hidden; a seq2seq Transformer translates it, a source of
its task (e.g. "3141+27" for add), into the task's answer (teacher forcing).
"""


@main.command(epilog=GRAPH_EPILOG)
@click.option("--example", type=click.Choice(["mlp", "attention", "layernorm", "gpt", "bert",
                                              "transformer"]),
              help="A small built-in computation to draw.")
@click.option("--checkpoint", "checkpoint_dir", metavar="DIR", help="Draw a checkpoint's "
              "training step (forward and loss) on --prompt instead.")
@click.option("--prompt", help="With --checkpoint: the text of the batch.")
@click.option("--what", type=click.Choice(["forward", "backward"]), default="forward",
              show_default=True)
@click.option("--data", "show_data", is_flag=True, help="Show each value's norm, min and max.")
@click.option("--grad", "show_grad", is_flag=True, help="Show each gradient's norm, min and "
              "max.")
@click.option("--flow", is_flag=True, help="Colour every node by its gradient norm on a log "
              "scale (gradient flow), with a legend.")
@click.option("--max-nodes", type=click.IntRange(min=2), default=1000, show_default=True,
              help="Draw at most this many nodes, those nearest the loss (forward) or the "
              "gradients (backward).")
@click.option("--depth", type=click.IntRange(min=0), default=None, metavar="N",
              help="Collapse each module N levels down into one node.")
@click.option("--fold-repeats", is_flag=True, help="Collapse each stack of blocks of one "
              "class into one node (decoder.layers: DecoderLayer x N).")
@click.option("--out", "out_path", default="graph.svg", show_default=True,
              metavar="FILE.svg|png|pdf|dot")
def graph(example, checkpoint_dir, prompt, what, show_data, show_grad, flow, max_nodes, depth,
          fold_repeats, out_path):
    """Draw a computation graph, forward or backward, to svg, png, pdf or dot."""
    import viz
    from viz.examples import checkpoint_step
    from viz.examples import example as build_example
    if (example is None) == (checkpoint_dir is None):
        raise InputError("give one of --example NAME or --checkpoint DIR")
    if checkpoint_dir is not None and prompt is None:
        raise InputError("--checkpoint needs --prompt TEXT: the batch whose step is drawn")
    check_out_file(out_path, [".svg", ".png", ".pdf", ".dot", ".gv"])
    # Recording which module made each op costs little, and lets the picture box the ops by
    # module (and collapse them with --depth). The model is built inside, so no root is given:
    # the outermost module called is taken as the root.
    with input_errors(), viz.record():
        if example is not None:
            shown = build_example(example)
        else:
            shown = checkpoint_step(*load_model(checkpoint_dir), prompt)
    folding = dict(depth=depth, fold_repeats=fold_repeats)
    if what == "backward":
        picture = viz.draw_backward(shown.loss, params=shown.params, inputs=shown.inputs,
                                    show_data=show_data, show_grad=show_grad,
                                    color_by_grad=flow, max_nodes=max_nodes, **folding)
    else:
        if show_grad or flow:
            if flow:
                viz.retain_grads(shown.loss)        # so that ops, not only leaves, get colours
            shown.loss.backward(retain_graph=True)
        picture = viz.draw_graph(shown.loss, params=shown.params, inputs=shown.inputs,
                                 show_data=show_data, show_grad=show_grad, max_nodes=max_nodes,
                                 color_by_grad=flow, **folding)
    try:
        written = viz.render(picture, out_path)
    except viz.DotNotFoundError as e:
        raise InputError(str(e)) from None
    click.echo(written)


# ---------------------------------------------------------------------------------------------
# exercises: the course, with a runner that checks a learner's files
# ---------------------------------------------------------------------------------------------

@main.group(epilog="""\b
Examples:
  tinyformer exercises init my-course       copy a fresh set of exercise files into my-course/
  cd my-course
  tinyformer exercises show 1               read exercise 1's explanation, then edit its file
  tinyformer exercises check                check the next unfinished exercise
  tinyformer exercises watch                the same, again on every save
  tinyformer exercises hint 1               a hint (ask again for the next one)
""")
def exercises():
    """Work through the course: from one-hot vectors to a Transformer whose weights you set
    by hand. Each exercise is a file you edit; the runner says what is still wrong."""


def workspace_option(command):
    return click.option("--workspace", "-w", "workspace_dir", metavar="DIR",
                        envvar="TINYFORMER_EXERCISES",
                        help="The workspace [the one holding the current directory].")(command)


def exercise_argument(required=True):
    return click.argument("name", metavar="N" if required else "[N]", required=required)


def open_workspace(workspace_dir):
    from tinyformer.exercises.workspace import WorkspaceError, find_workspace
    with input_errors(WorkspaceError):
        return find_workspace(workspace_dir)


def find_exercise(name):
    from tinyformer.exercises import find
    with input_errors():
        return find(name)


STATUS_STYLE = {"done": "green", "not done": None, "edited": "yellow"}


@exercises.command("init")
@click.argument("directory", default="tinyformer-exercises", metavar="[DIR]")
def exercises_init(directory):
    """Copy a fresh workspace of exercise files into DIR (new or empty)
    [tinyformer-exercises]."""
    from tinyformer.exercises import exercises as course
    from tinyformer.exercises.workspace import WorkspaceError, init_workspace
    with input_errors(WorkspaceError):
        workspace = init_workspace(directory)
    first = course()[0]
    click.echo(f"Wrote {len(course())} exercises to {workspace.root}/. Start with:\n"
               f"  cd {directory}\n"
               f"  tinyformer exercises show 1      then edit {first.file}\n"
               f"  tinyformer exercises check       or `watch`, to re-check on every save")


@exercises.command("list")
@workspace_option
def exercises_list(workspace_dir):
    """Every exercise, by chapter, done or not done."""
    from tinyformer.exercises import CHAPTERS
    from tinyformer.exercises import exercises as course
    from tinyformer.exercises.workspace import WorkspaceError, find_workspace
    with input_errors(WorkspaceError):
        workspace = find_workspace(workspace_dir, required=False)
    done = 0
    for chapter, (_, title) in enumerate(CHAPTERS, start=1):
        click.echo(click.style(f"{chapter}. {title}", bold=True))
        for ex in course():
            if ex.chapter != chapter:
                continue
            status = workspace.status(ex) if workspace else ""
            done += status == "done"
            mark = click.style(f"{status:9s}", fg=STATUS_STYLE.get(status))
            click.echo(f"  {ex.number:3d}  {mark} {ex.slug:32s} {ex.title}")
    if workspace is None:
        click.echo("\nNo workspace here: `tinyformer exercises init DIR` makes one.")
    else:
        click.echo(f"\n{done} of {len(course())} done, in {workspace.root}")
        if any(workspace.status(ex) == "edited" for ex in course()):
            click.echo("(edited: it passed once and has changed since; check it again)")


@exercises.command("show")
@exercise_argument()
@workspace_option
def exercises_show(name, workspace_dir):
    """Print exercise N's explanation (N is its number or its name)."""
    import ast
    from tinyformer.exercises import exercises as course
    ex = find_exercise(name)
    doc = ast.get_docstring(ast.parse(ex.source.read_text()))
    click.echo(click.style(f"Exercise {ex.number} of {len(course())}: {ex.title}  "
                           f"(chapter {ex.chapter}, {ex.chapter_title})", bold=True))
    body = doc.split("\n", 1)[1].strip() if "\n" in doc else doc   # line 1 is the title
    click.echo(f"\n{body}\n")
    from tinyformer.exercises.workspace import WorkspaceError, find_workspace
    with input_errors(WorkspaceError):
        workspace = find_workspace(workspace_dir, required=False)
    if workspace is None:
        click.echo(f"Your file: {ex.file}, in a workspace made by `tinyformer exercises init`")
    else:
        click.echo(f"Your file: {workspace.path(ex)}  ({workspace.status(ex)})")


@exercises.command("hint")
@exercise_argument()
@workspace_option
def exercises_hint(name, workspace_dir):
    """One more hint for exercise N each time you ask."""
    workspace = open_workspace(workspace_dir)
    ex = find_exercise(name)
    shown = workspace.take_hint(ex)
    for i, hint in enumerate(shown, start=1):
        click.echo(f"Hint {i} of {len(ex.hints)}: {hint}")
    if len(shown) < len(ex.hints):
        click.echo(f"(ask again for hint {len(shown) + 1})")


def report_check(workspace, ex, message, printed, quiet=False):
    """Print one check's outcome; True when it passed."""
    name = f"{ex.number} {ex.slug} ({ex.file})"
    if printed.strip() and not quiet:
        lines = printed.rstrip().splitlines()
        shown = lines[-20:]
        click.echo(click.style("Your code printed:", dim=True)
                   + (f" (the last 20 of {len(lines)} lines)" if len(lines) > 20 else ""))
        click.echo("\n".join("  " + line for line in shown))
    if message is None:
        click.echo(click.style("PASS ", fg="green", bold=True) + name)
        return True
    click.echo(click.style("FAIL ", fg="red", bold=True) + name)
    if not quiet:
        click.echo("\n".join("  " + line for line in message.splitlines()))
        click.echo(f"  (a hint: tinyformer exercises hint {ex.number})")
    return False


def say_next(workspace):
    following = workspace.next_unfinished()
    if following is None:
        from tinyformer.exercises import exercises as course
        click.echo(f"All {len(course())} exercises pass. You have built a Transformer, "
                   f"piece by piece.")
    else:
        click.echo(f"Next: {following.number} {following.slug}, {following.title}: "
                   f"tinyformer exercises show {following.number}")


@exercises.command("check", epilog="""\b
Exit status: 0 when the check passes (with --all: all of them), 1 when it does not.""")
@exercise_argument(required=False)
@click.option("--all", "check_all", is_flag=True, help="Check every exercise, one line each.")
@click.option("--timeout", type=click.IntRange(min=1), default=120, show_default=True,
              help="Seconds before a check that has not finished is stopped.")
@workspace_option
def exercises_check(name, check_all, timeout, workspace_dir):
    """Check exercise N [the next unfinished one] and say what is still wrong."""
    from tinyformer.exercises import exercises as course
    from tinyformer.exercises.workspace import WorkspaceError
    workspace = open_workspace(workspace_dir)
    if check_all and name is not None:
        raise InputError("give an exercise N or --all, not both")
    if check_all:
        passed = 0
        for ex in course():
            with input_errors(WorkspaceError):
                message, printed = workspace.check(ex, timeout)
            passed += report_check(workspace, ex, message, printed, quiet=True)
        click.echo(f"\n{passed} of {len(course())} pass")
        sys.exit(0 if passed == len(course()) else 1)
    ex = find_exercise(name) if name is not None else workspace.next_unfinished()
    if ex is None:
        say_next(workspace)
        return
    with input_errors(WorkspaceError):
        message, printed = workspace.check(ex, timeout)
    if report_check(workspace, ex, message, printed):
        say_next(workspace)
        return
    sys.exit(1)


@exercises.command("watch")
@exercise_argument(required=False)
@click.option("--timeout", type=click.IntRange(min=1), default=120, show_default=True,
              help="Seconds before a check that has not finished is stopped.")
@click.option("--max-checks", type=click.IntRange(min=1), hidden=True,
              help="Stop after this many checks (for tests).")
@workspace_option
def exercises_watch(name, timeout, max_checks, workspace_dir):
    """Check exercise N [the next unfinished one] again every time you save it; when it
    passes, move on to the next. Ctrl-C stops."""
    from tinyformer.exercises.workspace import WorkspaceError
    workspace = open_workspace(workspace_dir)
    ex = find_exercise(name) if name is not None else workspace.next_unfinished()
    checks = 0
    try:
        while ex is not None:
            with input_errors(WorkspaceError):
                message, printed = workspace.check(ex, timeout)
            checks += 1
            passed = report_check(workspace, ex, message, printed)
            if passed:
                say_next(workspace)
                ex = workspace.next_unfinished()
                if ex is None or (max_checks and checks >= max_checks):
                    return
                continue        # check the next one at once: it says what to write first
            if max_checks and checks >= max_checks:
                return
            path = workspace.path(ex)
            click.echo(click.style(f"Watching {path}: save it to check again (Ctrl-C stops)",
                                   dim=True))
            seen = path.stat().st_mtime_ns if path.exists() else None
            while (path.stat().st_mtime_ns if path.exists() else None) == seen:
                time.sleep(0.3)
            click.echo()
    except KeyboardInterrupt:
        click.echo("\nStopped watching.")
    if ex is None:                  # every exercise passes (from the start, or now)
        say_next(workspace)


@exercises.command("reset")
@exercise_argument()
@workspace_option
def exercises_reset(name, workspace_dir):
    """Restore exercise N's file as it came; your version is kept in .tinyformer/backups/."""
    workspace = open_workspace(workspace_dir)
    ex = find_exercise(name)
    backup = workspace.reset(ex)
    click.echo(f"Restored {workspace.path(ex)}"
               + (f"; your version is in {backup}" if backup else ""))


# ---------------------------------------------------------------------------------------------
# bench: the benchmarks, ours beside PyTorch eager
# ---------------------------------------------------------------------------------------------

BENCH_NAMES = ["train_step", "generation", "ops", "memory", "tokenizer", "whole_run", "gpt2",
               "blocks"]
BENCH_SUITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks", "suite.py")


@main.command(epilog="""\b
Examples:
  tinyformer bench --quick                  every benchmark, briefly (about two minutes)
  tinyformer bench --only train_step        one training step, ours and PyTorch's
  tinyformer bench --whole-run --save       also 2000 Shakespeare steps; keep the JSON
  tinyformer bench --only gpt2 --threads 2  GPT-2 small (124M) generating, ours and PyTorch's

\b
It runs the scripts in the repository's benchmarks/ folder (benchmarks/suite.py), each in its
own process, and prints their tables and a summary against the project's speed targets.
PyTorch's columns appear when PyTorch is installed (pip install -e '.[test]').""")
@click.option("--only", multiple=True, type=click.Choice(BENCH_NAMES), metavar="NAME",
              help=f"Run only this benchmark (repeatable): {', '.join(BENCH_NAMES)}.")
@click.option("--quick", is_flag=True, help="Fewer repetitions: rougher figures, sooner.")
@click.option("--whole-run", is_flag=True, help="Also train the Shakespeare recipe to the end "
              "in both engines (about ten minutes; needs the tinyshakespeare text: see README).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="BLAS and PyTorch threads (one is steadiest on a shared machine).")
@click.option("--save", is_flag=True, help="Write each benchmark's JSON to benchmarks/results/.")
def bench(only, quick, whole_run, threads, save):
    """Measure our engine beside PyTorch eager: training step, generation, per-op overhead,
    memory, tokenizer, and the whole Shakespeare run."""
    import subprocess
    if not os.path.exists(BENCH_SUITE):
        raise InputError("the benchmarks live in the repository's benchmarks/ folder, which "
                         "this installation lacks: clone the repository and `pip install -e .`")
    command = [sys.executable, BENCH_SUITE, "--threads", str(threads)]
    command += ["--only", *only] if only else []
    command += ["--quick"] * quick + ["--whole-run"] * whole_run + ["--save"] * save
    sys.exit(subprocess.run(command).returncode)


if __name__ == "__main__":
    sys.exit(main())
