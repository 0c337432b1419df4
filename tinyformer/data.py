"""Data, all made here: a built-in text corpus, the seq2seq toy tasks, and batching.

Nothing is downloaded. The corpus is generated from a few word lists of our own, and the tasks
are generated digits; both are seeded, so the same seed gives the same data.
"""

from __future__ import annotations

import functools
import operator
import re
import weakref
from typing import Iterable, Sequence

import numpy as np

from .files import shown
from .schema import BadInput, check_whole
from .tokenizers import BPETokenizer

# --------------------------------------------------------------------------------------------
# The built-in corpus: short stories whose last sentence depends on the first.
#
# Each story gives someone a thing of some colour, wanders off for a sentence or two, then
# states the colour again:
#
#     eve has a green kite. the sun was hot. the kite of eve is green.
#
# The second "green" is fixed by a word 35 to 65 characters back. A Markov chain, which sees
# only the last few characters, can do no better than guess among the six colours (17%); a
# Transformer can attend back to the first sentence and get it right. benchmarks/corpus.py
# measures it: the best Markov chain (order 8 to 10) scores 0.21 nats/char and recalls 17%,
# while its 2-layer GPT (ReLU) trained for 600 steps (under a minute on two cores) scores 0.14
# and recalls all 500 of its held-out stories. `tinyformer train`'s default, a GPT-2 block
# (GELU) trained for 800 steps, recalls 97 to 100 of the 100 held-out prompts its evaluations
# measure (seeds 0 to 2; train_config.py's DEFAULTS).
#
# The stories are kept short (50 to 90 characters) so that most random training windows of
# 128 characters hold a whole story, first sentence included; the asides name no colour,
# thing or person, so the first sentence alone decides the last; and the colours begin with
# different letters, so that recalling the first letter is the whole task.

NAMES = ["ann", "bob", "eve", "max", "sam", "tom"]
THINGS = ["hat", "cup", "kite", "boat", "lamp", "sock"]
COLOURS = ["red", "blue", "green", "pink", "white", "yellow"]
ASIDES = [
    "the sun was hot.", "a dog barked.", "it rained.", "the wind was cold.", "a bell rang.",
    "the tea was sweet.", "a bird sang.", "the door was open.",
]


def story(rng: np.random.Generator) -> str:
    """One story: a thing with a colour, one or two asides, the colour recalled."""
    # Draw indices and index the Python lists rather than rng.choice(NAMES): choice makes an
    # array of the words and picks a numpy string from it, and numpy drops an exception that
    # a signal handler raises while it does (Ctrl-C or a stop during `train`'s corpus was lost
    # about one time in three). The draws are the same, so the corpus is the same.
    name, thing, colour = (NAMES[rng.integers(0, len(NAMES))],
                           THINGS[rng.integers(0, len(THINGS))],
                           COLOURS[rng.integers(0, len(COLOURS))])
    asides = [ASIDES[i] for i in rng.choice(len(ASIDES), size=rng.integers(1, 3), replace=False)]
    return " ".join([f"{name} has a {colour} {thing}.", *asides,
                     f"the {thing} of {name} is {colour}."])


def builtin_corpus(n_chars: int = 200_000, seed: int = 0) -> str:
    """About `n_chars` characters of stories, one per line; the same seed, the same text."""
    rng = np.random.default_rng(seed)
    lines, size = [], 0
    while size < n_chars:
        lines.append(story(rng))
        size += len(lines[-1]) + 1
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=4)
def builtin_bpe(n_merges: int = 64,
                special_tokens: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<mask>")
                ) -> BPETokenizer:
    """A BPE learned on the built-in corpus in a tenth of a second, so that showing how text
    splits needs no tokenizer file. The stories use a few dozen distinct words, which run out
    of pairs to merge long before 512 ids (about 110 merges); 64 merges keep the commonest
    words whole and leave the rest in pieces, which is what such a showing is for."""
    return BPETokenizer.train(builtin_corpus(), 256 + n_merges + len(special_tokens),
                              special_tokens=special_tokens)


def recall_prompts(n_stories: int, seed: int, context: int) -> list[tuple[str, str]]:
    """(prompt, colour) pairs from a corpus of another seed: the prompt is the text up to and
    including the last sentence's "is ", with the stories before it in front (cropped to
    `context` characters), just as a random training window would show it. A story may repeat
    one from training word for word; its colour is still only in its first sentence."""
    # The stories within the first `context` characters have too little in front of them; a
    # story is under 100 characters, so n_stories + 10 stories follow those.
    text = builtin_corpus(n_chars=context + (n_stories + 10) * 100, seed=seed)
    pairs, start = [], 0
    for line in text.splitlines(keepends=True):
        cut = line.rindex(" is ") + len(" is ")         # every story ends "is {colour}."
        prompt = text[:start + cut][-context:]
        start += len(line)
        if len(prompt) == context:                       # skip the first few stories
            pairs.append((prompt, line[cut:].rstrip("\n").rstrip(".")))
    return pairs[:n_stories]


def recalled(continuation: str, colour: str) -> bool:
    """The colour, spelled out and then ended by the full stop."""
    return continuation.startswith(colour + ".")


# --------------------------------------------------------------------------------------------
# Language-model batches


def _check_batch_shape(batch_size: int, context: int) -> None:
    """ValueError unless a batch of `batch_size` rows of `context` tokens has something in it
    (TypeError, as for any size, unless both are whole numbers): numpy would make a batch of
    size 0 from a context of 0 or less, which trains on nothing (a mean loss over no tokens is
    NaN), and fail on a batch size of 0 in its own words ("need at least one array to stack")."""
    for name, value in (("batch_size", batch_size), ("context", context)):
        if operator.index(value) < 1:
            raise BadInput(f"{name} must be a whole number >= 1, got {value!r}")


def lm_batch(tokens: np.ndarray, batch_size: int, context: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random windows of a token array (an ndarray or a np.memmap, which is never read whole):
    inputs x (B, T) and targets y (B, T), y being x shifted one token to the left."""
    _check_batch_shape(batch_size, context)
    if len(tokens) <= context:
        raise BadInput(f"the corpus has {len(tokens)} tokens, fewer than context + 1 = "
                       f"{context + 1}; use a longer text or a smaller --context")
    starts = rng.integers(0, len(tokens) - context, batch_size)
    x = np.stack([tokens[s:s + context] for s in starts]).astype(np.int64)
    y = np.stack([tokens[s + 1:s + 1 + context] for s in starts]).astype(np.int64)
    return x, y


# Each token array's lines, found once and kept while the array lives: a batch draws a line
# from them with one index, where finding the lines again would read the whole text each time.
_LINES: dict[tuple[int, int], np.ndarray] = {}
LINE_BLOCK = 1 << 24                   # tokens looked through at a time when finding the lines


def lines_of(tokens: np.ndarray, newline_id: int) -> np.ndarray:
    """Where each line of `tokens` with something on it begins and ends (n_lines, 2): the
    line is tokens[begin:end], without its newline. The first line and the last (which may
    lack its newline) count as the others do, and so the two parts of a line that a split
    of the text (training, validation) cuts; empty lines do not. The same array (the same
    object, which is not to be changed afterwards) gets the lines found the first time.

    Cost, for a 100M-token corpus: one pass over it, in blocks of LINE_BLOCK tokens (about
    a second; of a np.memmap, the whole file is read, and its pages stay in memory as the
    system's cache of it), about 40 bytes a line while they are found, and 8 bytes a line
    kept (16 past 4 billion tokens): 80 MB for lines of 10 tokens, 8 MB for lines of 100."""
    key = (id(tokens), newline_id)
    if key not in _LINES:
        ends = np.concatenate(                            # each newline, and the text's end
            [np.flatnonzero(np.asarray(tokens[i:i + LINE_BLOCK]) == newline_id) + i
             for i in range(0, len(tokens), LINE_BLOCK)] + [[len(tokens)]])
        begins = np.concatenate([[0], ends[:-1] + 1])     # after the newline before
        kept = ends > begins                              # not an empty line
        dtype = np.uint32 if len(tokens) < 2 ** 32 else np.int64
        lines = np.stack([begins[kept].astype(dtype), ends[kept].astype(dtype)], axis=1)
        # Forgotten with the array, before its id can be another's. Set first: an object that
        # cannot be followed (a list) raises here, leaving no lines under an id to be reused.
        weakref.finalize(tokens, _LINES.pop, key, None)
        _LINES[key] = lines
    return _LINES[key]


def line_batch(tokens: np.ndarray, batch_size: int, context: int, newline_id: int,
               pad_id: int, rng: np.random.Generator) -> np.ndarray:
    """Lines of a token array (an ndarray or a np.memmap, read whole once, by lines_of, and
    then only where a line is drawn) as a batch (B, T): each drawn uniformly from the lines with
    something on them, the first and last included, without its newline, and padded at the
    end with `pad_id` to the longest. A line longer than `context` gives a window of
    `context` tokens of it, at a place drawn uniformly (so that a text of long lines, or of
    one, gives windows of all of it). For a text of one example a line, as the built-in
    stories are, the rows are the examples themselves, each from its start, as a prompt is.
    A text of line breaks alone is one line, of its line breaks."""
    _check_batch_shape(batch_size, context)
    if len(tokens) <= context:
        raise BadInput(f"the corpus has {len(tokens)} tokens, fewer than context + 1 = "
                       f"{context + 1}; use a longer text or a smaller --context")
    lines = lines_of(tokens, newline_id)
    if not len(lines):
        lines = np.array([[0, len(tokens)]])
    begin, end = lines[rng.integers(0, len(lines), batch_size)].astype(np.int64).T   # (B,)
    length = np.minimum(end - begin, context)
    begin += rng.integers(0, end - begin - length + 1)    # 0 unless the line is longer
    batch = np.full((batch_size, length.max()), pad_id, dtype=np.int64)
    for row, b, n in zip(batch, begin, length):
        row[:n] = tokens[b:b + n]
    return batch


# --------------------------------------------------------------------------------------------
# Seq2seq tasks: map one digit string to another.

TASKS = ("copy", "reverse", "sort", "add")
SPECIALS = ["<pad>", "<bos>", "<eos>"]
PAD, BOS, EOS = 0, 1, 2
TASK_SYMBOLS = "0123456789+"                  # what sources and targets are written with
SYMBOLS = SPECIALS + list(TASK_SYMBOLS)      # token id = position in this list


def solve(task: str, source: str) -> str:
    """The target string for a source string: what the model must learn."""
    if task == "copy":
        return source
    if task == "reverse":
        return source[::-1]
    if task == "sort":
        return "".join(sorted(source))
    a, b = source.split("+")
    return add_digits(a, b)


def add_digits(a: str, b: str) -> str:
    """The sum of two numbers written in digits, added as on paper: digit by digit from the
    right, carrying the tens. Python's int() refuses to read a number of more than 4,300 digits
    (sys.set_int_max_str_digits, a guard against slow conversions), and an add task's numbers
    may have 5,000 (--max-len 10000)."""
    width = max(len(a), len(b))
    digits, carry = [], 0
    for x, y in zip(reversed(a.zfill(width)), reversed(b.zfill(width))):
        carry, digit = divmod(int(x) + int(y) + carry, 10)
        digits.append(str(digit))
    if carry:
        digits.append(str(carry))
    return "".join(reversed(digits))


def is_source(task: str, text: str) -> bool:
    """Whether `text` has the form of the task's sources: digits for copy, reverse and sort;
    two numbers joined by + for add, neither starting with 0, as _source makes them (a model
    never shown "01+2" is not asked it). The tasks share one vocabulary, so a tokenizer takes
    a + in a sort's source too: a symbol its model never read there."""
    return re.fullmatch(r"[1-9][0-9]*\+[1-9][0-9]*" if task == "add" else "[0-9]+",
                        text) is not None


def first_number_digits(length: int) -> int:
    """The digits of the first number of every add source of `length` digits in all: half,
    rounded down (at least one), the second number having the rest ("12+345" for 5). A model
    trained on the task has never read another split of that length ("123+45")."""
    return max(1, length // 2)


def _source(task, length, rng):
    if task == "add":                            # two numbers whose digits add up to `length`
        n_a = first_number_digits(length)
        digits = rng.integers(0, 10, length)
        digits[[0, n_a]] = rng.integers(1, 10, 2)    # no leading zeros
        return "".join(map(str, digits[:n_a])) + "+" + "".join(map(str, digits[n_a:]))
    return "".join(map(str, rng.integers(0, 10, length)))


def n_sources(task: str, min_len: int, max_len: int) -> int:
    """How many distinct sources a task has with lengths in [min_len, max_len]: 10^L digit
    strings of each length L; for add, 81 10^(L - 2), neither number starting with 0."""
    return sum(81 * 10 ** (length - 2) if task == "add" else 10 ** length
               for length in range(min_len, max_len + 1))


def all_sources(task: str, min_len: int, max_len: int) -> list[str]:
    """Every distinct source of the lengths, in order (as many as n_sources says)."""
    sources = []
    for length in range(min_len, max_len + 1):
        if task == "add":                        # as _source splits the digits
            n_a = first_number_digits(length)
            sources += [f"{a}+{b}" for a in range(10 ** (n_a - 1), 10 ** n_a)
                        for b in range(10 ** (length - n_a - 1), 10 ** (length - n_a))]
        else:
            sources += [f"{k:0{length}d}" for k in range(10 ** length)]
    return sources


# How many held-out pairs an evaluation scores at once (Seq2Seq.evaluate), without a graph: as
# many rows as a batch of 250, whatever --batch-size is, which the memory check counts too.
EVAL_PAIRS = 250


def task_context(max_len: int) -> int:
    """The longest sequence a task's model sees, from its sources' longest length alone (so
    that a context too short is refused before the pairs are made, which takes minutes for
    long ones): an add's source, max_len digits and its +; or a target with <bos> or <eos>,
    of at most max_len digits (a sum has no more digits than its two numbers together)."""
    return max_len + 1


class Seq2SeqTask:
    """A task from TASKS with source lengths in [min_len, max_len]: `train` and `val` lists of
    (source, target) strings. Validation pairs are drawn with their own seed and never occur
    in training, so validation accuracy measures generalisation, not memory.

    Lengths with fewer distinct sources than n_train + n_val asked for have them all, shuffled
    by the seed: validation holds out its share first (n_val, but at most a tenth, as of a
    text), and training has the rest, up to n_train. Lengths with fewer than twice as many
    as asked for are also made all and shuffled, then cut to n_val and n_train: drawn at
    random, the last few would be found only after very many draws (more than are made)."""

    vocab_size = len(SYMBOLS)

    def __init__(self, name: str, min_len: int = 4, max_len: int = 10, n_train: int = 20_000,
                 n_val: int = 500, seed: int = 0) -> None:
        if name not in TASKS:
            raise BadInput(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
        # A negative n_val held out all but the last pair (pairs[:-1]) and trained on one.
        check_whole("Seq2SeqTask", 1, n_train=n_train)
        check_whole("Seq2SeqTask", 0, n_val=n_val)
        if not 2 <= min_len <= max_len:
            raise BadInput(f"task lengths must satisfy 2 <= min_len <= max_len, got "
                           f"{min_len} and {max_len}")
        self.name, self.min_len, self.max_len = name, min_len, max_len
        self.n_sources = n_sources(name, min_len, max_len)
        if self.n_sources >= 2 * (n_train + n_val):
            self.train = self._pairs(n_train, np.random.default_rng(seed), exclude=set())
            seen = {source for source, _ in self.train}
            self.val = self._pairs(n_val, np.random.default_rng(seed + 1), exclude=seen)
        else:       # drawing at random would find the last few sources only after many tries
            # (with n_train 9900 and n_val 100 of 10,000 sources, validation had 33 pairs)
            sources = all_sources(name, min_len, max_len)
            order = np.random.default_rng(seed).permutation(len(sources))
            pairs = [(sources[i], solve(name, sources[i])) for i in order]
            enough = len(pairs) >= n_train + n_val
            n_held = n_val if enough else min(n_val, len(pairs) // 10)
            self.val, self.train = pairs[:n_held], pairs[n_held:n_held + n_train]
        self.context = task_context(max_len)

    def _pairs(self, n, rng, exclude):
        pairs, sources = [], set(exclude)
        for _ in range(50 * n):                  # bounded: the last sources are slow to find
            if len(pairs) == n:
                break
            source = _source(self.name, int(rng.integers(self.min_len, self.max_len + 1)), rng)
            if source not in sources:
                sources.add(source)
                pairs.append((source, solve(self.name, source)))
        return pairs

    @staticmethod
    def encode(text: str) -> list[int]:
        """The ids of text's symbols, their positions in SYMBOLS; ValueError, in one line, at a
        character that is none of them (list.index said only "'a' is not in list")."""
        for position, char in enumerate(text):
            if char not in TASK_SYMBOLS:
                raise BadInput(f"Seq2SeqTask.encode: {char!r} at position {position} of "
                               f"{shown(text)} is no symbol of the tasks: they are written with "
                               f"the digits 0 to 9 and +")
        return [SYMBOLS.index(c) for c in text]

    @staticmethod
    def decode(ids: Iterable[int]) -> str:
        """Symbols up to the first <eos>, specials dropped."""
        out = []
        for i in ids:
            if i == EOS:
                break
            if i >= len(SPECIALS):
                out.append(SYMBOLS[i])
        return "".join(out)

    def batch(self, pairs: Sequence[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Padded arrays for teacher forcing: src (B, S), tgt_in = <bos> target (B, T), and
        tgt_out = target <eos> (B, T), the next token at every position; PAD fills the rest
        (ignore it in the loss with ignore_index=PAD)."""
        if not len(pairs):              # padded to the longest of none: max() of nothing
            raise BadInput("Seq2SeqTask.batch: no pairs to batch; give at least one "
                           "(source, target) pair")
        src = [self.encode(s) for s, _ in pairs]
        tgt = [self.encode(t) for _, t in pairs]
        return (_pad(src), _pad([[BOS] + t for t in tgt]), _pad([t + [EOS] for t in tgt]))

    def sample_batch(self, batch_size: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`batch` of `batch_size` training pairs drawn with `rng` (with replacement)."""
        _check_batch_shape(batch_size, self.context)     # as lm_batch's, in its words
        picks = rng.integers(0, len(self.train), batch_size)
        return self.batch([self.train[i] for i in picks])


def _pad(rows):
    out = np.full((len(rows), max(map(len, rows))), PAD, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out
