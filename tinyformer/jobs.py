"""Jobs: what a model learns, from what data, with what loss.

    LanguageModelling   GPT predicts each next token of a text (the built-in corpus or a file)
    MaskedLM            BERT fills in hidden tokens of a text
    Seq2Seq             an encoder-decoder Transformer maps digit strings (copy, reverse, ...)

A job gives the trainer (train.py) what differs between them: its tokenizer, the model's
arguments (`model_config`), training batches (`train_batch`), the loss of a batch, the figures
of an evaluation on held-out data, and a sample to print.

A text is tokenised once, in chunks, into a flat array file (tokens.bin) that training reads
through a memory map: a 100 MB corpus never sits in memory as Python objects.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import unicodedata
from typing import Any, Callable, Iterator, Protocol

import numpy as np
from numpy.typing import DTypeLike

from tinyautograd import Tensor
from tinyautograd import functional as F

from .bert import BERT, BEGINS, CONTINUES, IGNORE, TokenMasker
from .checkpoint import Model, load_tokenizer_at
from .data import (BOS, COLOURS, EOS, EVAL_PAIRS, PAD, SPECIALS, SYMBOLS, Seq2SeqTask,
                   builtin_corpus, line_batch, lm_batch, recall_prompts, recalled, task_context)
from .files import StrPath, check_exists, command_line, iter_text, shown, size_said
from .gpt import GPT
from .parallel import Batch, side_by_side, without_graph
from .prompts import answer_text, likeliest_ordinary
from .progress import FileProgress
from .rundir import (TOKEN_DTYPES, TOKENS, CheckpointError, open_run_file, open_tokens,
                     write_tokens)
from .schema import BadInput, OneOf, option_name
from .tokenizers import (MASK, WHITESPACE, BPETokenizer, CharTokenizer, EncodeError, Tokenizer,
                         encode_pieces, line_and_column, one_line, shown_char)
from .train_config import TOKENIZER_KINDS, TrainConfig
from .transformer import Transformer

# ---------------------------------------------------------------------------------------------
# Data: a text as one token array on disk
# ---------------------------------------------------------------------------------------------

BPE_TRAIN_CHARS = 10_000_000     # a BPE learns its merges from the first 10 M characters

Chunks = Callable[[], Iterator[str]]    # a text: each call iterates over its chunks afresh


def encode_chars(tokenizer: CharTokenizer, text: str) -> np.ndarray:
    """A char tokenizer's ids for `text` as an array, computed in numpy rather than a Python loop
    (a 100 MB corpus is 100 M characters): each character found by binary search in the
    vocabulary sorted by code point (as one learned from a text is; a file's may not be)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    alphabet = np.array([ord(c) for c in tokenizer.chars], dtype=np.uint32)
    order = np.argsort(alphabet, kind="stable")
    # After the sorted vocabulary, one number past every code point: a character beyond the
    # vocabulary's last (or any, in a vocabulary of special tokens alone) is found there, and
    # is no character of it.
    known = np.append(alphabet[order], np.uint32(sys.maxunicode + 1))
    where = np.searchsorted(known, codes)
    bad = known[where] != codes
    if bad.any():                           # cannot happen for the text it was trained on
        position = int(bad.argmax())
        raise EncodeError(shown_char(text[position]), position,
                          f"not in the tokenizer's {len(tokenizer.chars)}-character vocabulary")
    return order[where] + len(tokenizer.special_tokens)


def train_tokenizer(config: TrainConfig, chunks: Chunks,
                    special_tokens: list[str]) -> Tokenizer:
    """The tokenizer of a text given as a function returning an iterator over its chunks."""
    if config.tokenizer == "char":
        chars = set()
        for chunk in chunks():
            chars.update(chunk)
        return CharTokenizer(sorted(chars), special_tokens)
    sample, size = [], 0
    for chunk in chunks():
        sample.append(chunk[:BPE_TRAIN_CHARS - size])
        size += len(sample[-1])
        if size >= BPE_TRAIN_CHARS:
            break
    return BPETokenizer.train("".join(sample), config.vocab_size, special_tokens,
                              name=option_name,          # as the settings are named
                              progress=True)             # seconds to a minute: show them


def encode_chunks(tokenizer: Tokenizer, chunks: Chunks, source: str | None = None,
                  learned_from: StrPath | None = None) -> Iterator[list[int]]:
    """The ids of the text, a part at a time, which joined are the ids of the whole text: a
    char tokenizer's chunk by chunk (its ids part anywhere); any other's in encode_pieces'
    pieces, cut where its ids part (a chunk's edge may cut a word, which would be two tokens).
    `source`: the file a tokenizer was read from, named when it cannot encode the text.
    `learned_from`: the file a tokenizer was learned from, which it encodes whole unless the
    file changed after the pass that learned it (a character came in): named when it did."""
    if not isinstance(tokenizer, CharTokenizer):         # (a BPE encodes any text)
        for _, ids in encode_pieces(tokenizer, chunks()):
            yield ids
        return
    offset, line, column = 0, 1, 1       # of the chunk's first character, in the whole text
    for chunk in chunks():
        try:
            ids = encode_chars(tokenizer, chunk)
        except EncodeError as error:
            # Said by its line in the whole text: a position in a chunk means nothing to a user.
            line_of, column_of = line_and_column(chunk[:error.position], line, column)
            e = EncodeError(error.shown, offset + error.position, error.why,
                            f"line {line_of}, column {column_of}")
            if source is not None:
                raise BadInput(f"the tokenizer {source!r} does not fit the text: {e}; use "
                               f"a bpe tokenizer (it encodes any text), or a char tokenizer "
                               f"trained on this text") from None
            if learned_from is not None:
                raise BadInput(f"corpus {os.fspath(learned_from)!r} changed while it was "
                               f"read: {e} learned from it a moment before; train on it "
                               f"once nothing writes to it, or on a copy") from None
            raise e from None
        offset += len(chunk)
        line, column = line_and_column(chunk, line, column)
        yield ids


class TextData:
    """A tokenised text as one memory-mapped array: the first 90% to train on, the rest held
    out. Windows are read as batches need them, so the text's size is bounded by the disk."""

    VAL_FRACTION = 0.1
    BLOCK = 1 << 20                     # tokens read at a time in the pass over the file
    PROGRESS_AFTER = 1.0                # seconds of tokenising before a progress line shows

    def __init__(self, path: StrPath, dtype: DTypeLike, n_tokens: int,
                 vocab_size: int | None = None, sha256: str | None = None) -> None:
        tokens = open_tokens(path, dtype, n_tokens)
        # A tokens.bin changed or swapped since the run wrote it would train on other data
        # silently, or fail deep in the embedding mid-run (an id beyond the vocabulary): one
        # pass over the file when it is opened checks both, its SHA-256 against the one
        # recorded (runs from before it was recorded have none) and its largest id. The pass
        # reads the file, not the memory map: each page read through the map would stay in
        # the process's memory (its resident size), which would grow to the whole file.
        digest, largest = hashlib.sha256(), -1
        with open_run_file(path) as f:
            blocks = iter(lambda: f.read(self.BLOCK * tokens.itemsize), b"")
            for block in (np.frombuffer(data, dtype=tokens.dtype) for data in blocks):
                if sha256 is not None:
                    digest.update(block)
                if vocab_size is not None:
                    largest = max(largest, int(block.max()))
        if sha256 is not None and digest.hexdigest() != sha256:
            raise CheckpointError(f"{path} (the tokenised corpus) was changed since the run "
                                  f"wrote it (its SHA-256 differs from the one recorded); "
                                  f"restore it, or start the run again with --force")
        if vocab_size is not None and largest >= vocab_size:
            raise CheckpointError(f"{path} (the tokenised corpus) holds token id {largest}, "
                                  f"beyond the tokenizer's {vocab_size} tokens; restore it, or "
                                  f"start the run again with --force")
        n_train = self.n_train(n_tokens)
        self.train, self.val = tokens[:n_train], tokens[n_train:]

    @classmethod
    def n_train(cls, n_tokens: int) -> int:
        """How many of a text's `n_tokens` are trained on: the first 1 - VAL_FRACTION."""
        return int(n_tokens * (1 - cls.VAL_FRACTION))

    @classmethod
    def prepare(cls, config: TrainConfig, path: StrPath, special_tokens: list[str],
                log: Callable[[str], None], tokenizer: Tokenizer | None = None
                ) -> tuple[Tokenizer, dict[str, Any]]:
        """Tokenise the corpus (or the built-in one) into the file `path` with `tokenizer` (a
        tokenizer file's), or else with one learned from the text; returns (tokenizer, info
        for config.json, which names the file as the run keeps it: tokens.bin). ValueError if
        the text cannot be used."""
        if config.corpus is None:
            text = builtin_corpus(seed=config.seed)
            def chunks():
                return iter([text])
            name, size = "the built-in corpus", len(text)
        else:
            # Trainer.start checked the whole file before creating --out; iter_text checks
            # each chunk again as it reads, so a file changed since still fails cleanly.
            size = os.path.getsize(config.corpus)
            def chunks():
                return iter_text(config.corpus, "corpus")
            name = f"{config.corpus} ({size_said(size)})"

        def check_length(n_tokens):
            n_train = cls.n_train(n_tokens)
            parts = {"training": n_train, "validation": n_tokens - n_train}
            # The context that fits both parts, which the user would otherwise find by trying
            fits = min(parts.values()) - 1
            fix = "a longer text" + (f" or --context {fits} at most" if fits >= 1 else "")
            for part, n in parts.items():
                if n <= config.context:
                    raise BadInput(f"the corpus is too short: its {part} part has {n} tokens, "
                                   f"fewer than --context + 1 = {config.context + 1}; use "
                                   f"{fix}")

        # A tokenizer file, or a run folder holding one, is named as what it is, not as a kind
        # ("with a runs/tiny tokenizer").
        used = (f"the tokenizer of {config.tokenizer_file} ({tokenizer.kind}, "
                f"{tokenizer.vocab_size:,} ids)" if tokenizer is not None and config.tokenizer_file
                else f"a {config.tokenizer} tokenizer")
        log(f"tokenising {name} with {used}...")
        began = time.perf_counter()
        learned = tokenizer is None
        if learned:
            tokenizer = train_tokenizer(config, chunks, special_tokens)
        # The pass that encodes takes a while on a large corpus (a 200 MB text of words, about
        # a minute with a bpe): a progress line follows it, chunk by chunk.
        progress = FileProgress("tokenising", size, after=cls.PROGRESS_AFTER)
        def chunks_shown():
            for chunk in chunks():
                yield chunk
                progress.update(len(chunk.encode("utf-8")))     # once the next is asked for
        try:
            ids = encode_chunks(tokenizer, chunks_shown, config.tokenizer_file,
                                learned_from=config.corpus if learned else None)
            dtype, n_tokens, sha256 = write_tokens(path, ids, tokenizer.vocab_size,
                                                   check_length)
        finally:
            progress.clear()
        info = {"tokens": TOKENS, "dtype": dtype, "n_tokens": n_tokens, "sha256": sha256}
        n_train = cls.n_train(n_tokens)
        log(f"data: {n_tokens:,} tokens (vocabulary {tokenizer.vocab_size}), {n_train:,} to "
            f"train on and {n_tokens - n_train:,} held out; tokenised in "
            f"{time.perf_counter() - began:.1f} s")
        return tokenizer, info

    @classmethod
    def load(cls, directory: StrPath, info: dict[str, Any],
             vocab_size: int | None = None) -> TextData:
        """The tokens a run wrote in `directory`, as `info` (prepare's, kept in config.json,
        and in manifest.json until the first checkpoint) describes them. ValueError, one
        line, if info is not as prepare writes it (check_data_info)."""
        check_data_info(info)
        data = cls(os.path.join(directory, TOKENS), info["dtype"], info["n_tokens"],
                   vocab_size, info.get("sha256"))
        data.info = info                    # for config.json: where the tokens are, and how
        return data


def check_data_info(info: Any) -> None:
    """ValueError, one line, unless `info` is a text's data info as TextData.prepare writes
    it: the run's own tokens.bin (a damaged or edited file must not reach one outside the
    run), one of write_tokens' types (a float or signed type would read its bytes as
    fractions or negative ids, which no embedding takes), a whole number of tokens, and its
    SHA-256 as text where recorded (runs from before it was recorded have none)."""
    if not isinstance(info, dict):
        raise BadInput(f"its data is {shown(info)}, where a run writes the name, type "
                       f"and length of its {TOKENS}")
    for key in ("tokens", "dtype", "n_tokens"):
        if key not in info:
            raise BadInput(f"its data has no {key!r}, which a run writes")
    name, dtype, n_tokens = info["tokens"], info["dtype"], info["n_tokens"]
    if name != TOKENS:
        raise BadInput(f"its data names the tokens file {shown(name)}, where a run "
                       f"writes {TOKENS}")
    if not (isinstance(dtype, str) and dtype in TOKEN_DTYPES):
        raise BadInput(f"its data gives the tokens' type as {shown(dtype)}, where a "
                       f"run writes {' or '.join(TOKEN_DTYPES)}")
    if not (type(n_tokens) is int and n_tokens >= 0):
        raise BadInput(f"its data gives the number of tokens as {shown(n_tokens)}, "
                       f"where a run writes a whole number")
    if not isinstance(info.get("sha256", ""), str):
        raise BadInput(f"its data gives the tokens' SHA-256 as "
                       f"{shown(info['sha256'])}, where a run writes text")


# ---------------------------------------------------------------------------------------------
# Jobs: what is learned from what
# ---------------------------------------------------------------------------------------------

class Job(Protocol):
    """What the trainer asks of a job, whichever it is (LanguageModelling, MaskedLM, Seq2Seq).
    A batch (`Batch`) is a tuple of arrays whose first axis is its rows: (inputs, targets) for
    a text, (sources, decoder inputs, decoder targets) for a task."""

    special_tokens: list[str]           # the tokens its tokenizer must have, besides the text's
    tokenizer: Tokenizer

    def model_config(self) -> dict[str, Any]:
        """The model's arguments, as its class takes them."""

    def open_data(self, directory: StrPath, info: dict[str, Any] | None) -> None:
        """Open the data the run in `directory` wrote, as `info` (data_info's) describes it."""

    def data_info(self) -> dict[str, Any] | None:
        """What config.json records of the data, to find it again on --resume (None: none)."""

    def train_batch(self, rng: np.random.Generator) -> Batch:
        """A training batch, drawn with `rng`."""

    def loss(self, model: Model, batch: Batch) -> Tensor:
        """The model's loss on `batch`: a mean over its counted targets."""

    def counted(self, batch: Batch) -> int:
        """How many targets the loss of `batch` averages over (micro-batches weigh by it)."""

    def evaluate(self, model: Model, threads: int = 1) -> dict[str, float]:
        """Figures on held-out data, val_loss among them, on up to `threads` threads."""

    def sample(self, model: Model, rng: np.random.Generator) -> str:
        """What the model makes of some held-out data, to print beside the figures."""

    def example_prompt(self) -> str | None:
        """The prompt the command line suggests after training (None: generate without one):
        one line, for the command that holds it to be pasted whole."""


# --------------------------------------------------------------------------------------------
# The loss of each kind of model: what its job trains, and what `tinyformer graph --checkpoint`
# draws


def next_token_loss(model: GPT, x: np.ndarray, y: np.ndarray) -> Tensor:
    """A GPT's: predict every next token; x and y (B, T), y being x shifted one to the left."""
    return F.cross_entropy(model(x), y)


def masked_lm_loss(model: BERT, inputs: np.ndarray, targets: np.ndarray) -> Tensor:
    """A BERT's: guess the hidden tokens; targets (B, T) hold IGNORE where nothing was hidden."""
    return F.cross_entropy(model(inputs), targets, ignore_index=IGNORE)


def seq2seq_loss(model: Transformer, src: np.ndarray, tgt_in: np.ndarray, tgt_out: np.ndarray,
                 label_smoothing: float = 0.0) -> Tensor:
    """An encoder-decoder's, with teacher forcing: the decoder reads the target shifted right
    (tgt_in: <bos> t1 t2 ...) and predicts it (tgt_out: t1 t2 ... <eos>); padding ignored."""
    return F.cross_entropy(model(src, tgt_in), tgt_out, ignore_index=PAD,
                           label_smoothing=label_smoothing)


class LanguageModelling:
    """GPT on a text: predict every next token of random windows."""

    special_tokens = []
    # The letters a recall writes after its prompt: the longest colour and its full stop. The
    # prompts leave room for them in the context, so that the window never slides while they
    # are written: the KV cache then serves each new letter, where a sliding window would run
    # the model over all of it again, letter after letter (seven times the work).
    recall_letters = max(map(len, COLOURS)) + 1

    def __init__(self, config: TrainConfig, tokenizer: Tokenizer) -> None:
        self.config, self.tokenizer = config, tokenizer
        self.data: TextData | None = None                                   # open_data's
        # On the built-in corpus (the stories are written in characters), evaluations also
        # measure the colour recall, on prompts made once.
        self.recall_prompts = None
        if config.corpus is None and isinstance(tokenizer, CharTokenizer):
            length = max(config.context - self.recall_letters, 1)
            self.recall_prompts = recall_prompts(100, config.seed + 1000, length)

    def open_data(self, directory: StrPath, info: dict[str, Any] | None) -> None:
        """Map the tokens the run in `directory` wrote, as `info` (data_info's) describes."""
        self.data = TextData.load(directory, info, self.tokenizer.vocab_size)

    def data_info(self) -> dict[str, Any]:
        """What config.json records of the data, to find the tokens again on --resume."""
        return self.data.info

    def model_config(self) -> dict[str, Any]:
        """GPT's arguments: the tokenizer's vocab_size and the settings' sizes and switches."""
        return {"vocab_size": self.tokenizer.vocab_size, **text_model_config(self.config)}

    def train_batch(self, rng: np.random.Generator) -> Batch:
        """A batch of the training tokens, drawn with `rng`."""
        return self.batch(self.data.train, rng)

    def batch(self, tokens: np.ndarray, rng: np.random.Generator) -> Batch:
        """(x, y), each (batch_size, context): windows of `tokens` at places drawn with
        `rng`, y being x shifted one to the left."""
        return lm_batch(tokens, self.config.batch_size, self.config.context, rng)

    def loss(self, model: GPT, batch: Batch) -> Tensor:
        """The mean cross-entropy of `model`'s next-token predictions on `batch` (x, y)."""
        return next_token_loss(model, *batch)

    def counted(self, batch: Batch) -> int:
        """How many targets the loss averages over (micro-batches weigh by it): all of them."""
        return batch[1].size

    def evaluate(self, model: GPT | BERT, threads: int = 1) -> dict[str, float]:
        """The mean loss over every target of eval_iters validation batches: the same
        batches every time (their own generator, seeded afresh), so evaluations compare like
        with like; up to `threads` batches at once, which changes nothing but the time. Each
        batch's mean weighs by its targets (`counted`), as micro-batches do in training: a
        BERT batch hides a varying number of tokens, and one that hides few would otherwise
        count as much as one that hides many."""
        rng = np.random.default_rng(self.config.seed + 1)
        batches = [self.batch(self.data.val, rng) for _ in range(self.config.eval_iters)]
        losses = side_by_side(without_graph(lambda batch: self.loss(model, batch).item()),
                              batches, threads)
        counts = [self.counted(batch) for batch in batches]
        figures = {"val_loss": float(np.average(losses, weights=counts))}
        if self.recall_prompts is not None:
            figures["val_recall"] = self.recall(model)
        return figures

    def recall(self, model: GPT) -> float:
        """On the built-in corpus: the share of held-out stories (from another seed) whose
        last colour the model completes right, greedily. This is what attention buys: a Markov
        chain gets 1 in len(COLOURS).

        The prompts are written batch_size at a time: all of them at once would hold keys,
        values and attention scores for every prompt, several times a training step's
        memory, which the memory check before training does not count on."""
        prompts = self.recall_prompts
        idx = np.array([self.tokenizer.encode(prompt) for prompt, _ in prompts])   # (n, T)
        size = self.config.batch_size
        out = np.concatenate([model.generate(idx[i:i + size], self.recall_letters,
                                             temperature=0)
                              for i in range(0, len(idx), size)])[:, idx.shape[1]:]
        return float(np.mean([recalled(self.tokenizer.decode(row), colour)
                              for row, (_, colour) in zip(out, prompts)]))

    def sample(self, model: GPT, rng: np.random.Generator) -> str:
        """A continuation of the start of a line (or of the first held-out token)."""
        start = self.tokenizer.encode("\n") if self._has_new_line() else [int(self.data.val[0])]
        ids = model.generate(np.array([start]), self.config.sample_tokens, temperature=0.8,
                             generator=rng)[0]
        return self.tokenizer.decode(ids).strip("\n")

    def example_prompt(self) -> str | None:
        """A prompt for `tinyformer generate` to suggest: on the built-in stories, a first
        sentence whose colour the model should recall; on a text, none where the model can
        start from a new line, as generate does without one, else the first held-out token."""
        if self.config.corpus is None:
            return "eve has a red kite."
        return None if self._has_new_line() else self.tokenizer.decode([int(self.data.val[0])])

    def _has_new_line(self) -> bool:
        """Whether the vocabulary has a new line (a character one of a text of one line has
        not)."""
        try:
            self.tokenizer.encode("\n")
        except ValueError:
            return False
        return True


class MaskedLM(LanguageModelling):
    """BERT on a text: hide `mask_rate` of the tokens of its lines (whole words at a time with
    `whole_words`) and predict them."""

    special_tokens = ["<pad>", "<mask>"]
    recall_letters = 0                  # the colour is filled in where it stands: no room needed

    def __init__(self, config: TrainConfig, tokenizer: Tokenizer) -> None:
        super().__init__(config, tokenizer)
        # The recall hides a colour whole, its full stop after it: a context shorter than the
        # longest colour and its stop would hide only part of some colours, never right, and
        # the figure would count the short colours alone. There is none to measure then.
        if config.context < max(map(len, COLOURS)) + 1:
            self.recall_prompts = None
        self.mask_id = tokenizer.token_to_id("<mask>")
        self.pad_id = tokenizer.token_to_id("<pad>")
        # Every special token of the tokenizer, not only the two BERT needs: a tokenizer file's
        # <bos> or <eos> is no more a token of the text than <pad> is, and one put in as a
        # random swap would teach the model to read it (mask_tokens swaps in ordinary ones).
        self.special_ids = [tokenizer.special_id(s) for s in tokenizer.special_tokens]
        # Runs saved before these two settings existed hid 15% of the tokens one by one.
        self.mask_rate = 0.15 if config.mask_rate is None else config.mask_rate
        in_word = word_tokens(tokenizer) if config.whole_words else None
        # Made once: its settings and the vocabulary's tables are checked here, not per batch.
        self.masker = TokenMasker(self.mask_id, tokenizer.vocab_size, self.special_ids,
                                  rate=self.mask_rate, in_word=in_word)
        self.newline_id = _single_token(tokenizer, "\n")      # None: a text without lines

    def model_config(self) -> dict[str, Any]:
        """BERT's arguments: GPT's (the sizes and switches) and the <pad> token's pad_id."""
        config = super().model_config()
        config["pad_id"] = self.pad_id
        return config

    def recall(self, model: BERT) -> float:
        """On the built-in corpus: the share of held-out stories (GPT's, from another seed)
        whose last colour, hidden whole, the model fills in exactly (every letter its most
        likely ordinary token, as generate and the samples fill a mask in: a special token
        ranked first, a <mask> "filled" with <mask>, is passed over). Each story is read
        alone, from its start, as a prompt to `tinyformer generate` would be. The colour is
        only in the first sentence, so this is what attention buys. Without it, the best
        guess knows only how many letters are hidden: right for 4 stories in 6 (red and yellow
        are the only colours of their lengths; blue and pink, green and white share theirs);
        the commonest letter everywhere gets none."""
        inputs, hidden, colours = self.recall_inputs()
        guesses = likeliest_ordinary(model(inputs).data, self.tokenizer)          # (n, T)
        return float(np.mean([self.tokenizer.decode(guess[row_hidden].tolist()) == colour
                              for guess, row_hidden, colour in zip(guesses, hidden, colours)]))

    def recall_inputs(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The held-out stories with their last colour's letters replaced by <mask>, padded at
        the end with <pad> to the longest: inputs (n, T), where the colour was hidden (n, T),
        and the colours."""
        stories = [(prompt.rsplit("\n", 1)[-1], colour)            # the story, from its start
                   for prompt, colour in self.recall_prompts]
        rows = [self.tokenizer.encode(story + colour + ".")[-self.config.context:]
                for story, colour in stories]
        inputs = np.full((len(rows), max(map(len, rows))), self.pad_id, dtype=np.int64)
        hidden = np.zeros(inputs.shape, dtype=bool)
        for i, (row, (_, colour)) in enumerate(zip(rows, stories)):
            inputs[i, :len(row)] = row
            hidden[i, len(row) - 1 - len(colour):len(row) - 1] = True      # before the "."
        inputs[hidden] = self.mask_id
        return inputs, hidden, [colour for _, colour in stories]

    # Draws of a batch's hiding that hide nothing before the batch is refused. At BERT's
    # rates even a batch of one short line hides something within a few dozen; a thousand
    # empty draws mean a --mask-rate that practically never hides (1e-300: a draw for
    # each token, and none falls below it), which would otherwise draw for ever.
    most_draws = 1000

    def batch(self, tokens: np.ndarray, rng: np.random.Generator) -> Batch:
        """Examples of `tokens` with `mask_rate` of their tokens hidden: (inputs, targets).

        A batch with nothing hidden has no loss (a mean over no tokens is NaN), which would
        stop training as if it diverged: its hiding is drawn again until something is hidden
        (a small batch of short examples can draw nothing; BERT's own data hid at least one
        token of every example). NothingToHide, one line, where nothing can be hidden: examples
        of special tokens only, or a rate that hides nothing in `most_draws` draws."""
        return self._hidden(self.examples(tokens, rng), rng)

    def _hidden(self, examples: np.ndarray, rng: np.random.Generator) -> Batch:
        """(inputs, targets) of `examples` (B, T), drawn until something is hidden."""
        for draw in range(self.most_draws):
            batch = self.masker(examples, rng)
            if self.counted(batch):
                return batch
            if draw == 0:                    # (counted once, and only where a draw hid nothing)
                ordinary = np.count_nonzero(~np.isin(examples, self.special_ids))
            if not ordinary:
                specials = " and ".join(self.special_tokens)
                raise NothingToHide(f"BERT's examples hold only {specials} tokens, none of "
                                    f"which can be hidden; train on a text of ordinary tokens "
                                    f"(special ones written in it encoded as text)")
        raise NothingToHide(f"--mask-rate {self.mask_rate:g} hid none of a batch's {ordinary} "
                            f"tokens in {self.most_draws} draws; raise --mask-rate")

    def examples(self, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """What BERT reads (B, T): where the text has lines, a line each, every line as likely
        as another, padded (a built-in story each, from its start, as a prompt is; a window of
        a line longer than the context); else random windows."""
        if self.newline_id is None:
            return super().batch(tokens, rng)[0]
        return line_batch(tokens, self.config.batch_size, self.config.context,
                          self.newline_id, self.pad_id, rng)

    def loss(self, model: BERT, batch: Batch) -> Tensor:
        """The mean cross-entropy of `model`'s guesses of the hidden tokens of `batch`."""
        return masked_lm_loss(model, *batch)

    def counted(self, batch: Batch) -> int:
        """The hidden tokens: the loss averages over those alone."""
        return int(np.count_nonzero(batch[1] != IGNORE))

    def example_prompt(self) -> str:
        """A prompt for `tinyformer generate` that shows what the model learned: a held-out
        example (a line, where the text has lines) with its last word hidden, a <mask> for
        each of the word's tokens (for a text without words, its last token); of that, the
        line that holds the masks. An example may span lines (a new line inside a token of its
        own, "\\n\\n", which does not end a line), and the command suggested, which holds the
        prompt, is to be pasted as one line."""
        example = self.examples(self.data.val, np.random.default_rng(0))[0]
        ids = example[example != self.pad_id].tolist()                              # (T,)
        pieces = [self.tokenizer.decode([i]) for i in ids]
        is_letters = [piece.strip().isalpha() for piece in pieces]
        end = max((k for k in range(len(ids)) if is_letters[k]), default=len(ids) - 1)
        start = end
        # A word's tokens are letters, and only its first begins with a space (" pro" "ceed").
        while start > 0 and is_letters[start - 1] and not pieces[start][:1].isspace():
            start -= 1
        # A mask that takes the whitespace before it (a BPE's <mask>) would take a space
        # token before the word into it, leaving the model one mask short: hide it too.
        if MASK in self.tokenizer.lstrip_tokens:
            while start > 0 and pieces[start - 1] and set(pieces[start - 1]) <= WHITESPACE:
                start -= 1
        before, after = self.tokenizer.decode(ids[:start]), self.tokenizer.decode(ids[end + 1:])
        # What follows the last line break before the masks, and comes before the first after
        # them (the "|" keeps a line break at the very end, or start, from being lost).
        return ((before + "|").splitlines()[-1][:-1] + "<mask>" * (end + 1 - start)
                + ("|" + after).splitlines()[0][1:])

    def sample(self, model: BERT, rng: np.random.Generator) -> str:
        """A held-out example with some tokens hidden, and the model's guesses for them."""
        example = self.examples(self.data.val, rng)[0]
        example = example[example != self.pad_id]                                     # (T,)
        inputs, targets = self._hidden(example[None], rng)       # a guess to show, at least
        guess = likeliest_ordinary(model(inputs).data, self.tokenizer)[0]
        # A guess on one line (a new line shown as \n): a guessed new line broke the line in two,
        # its brackets on either side and the rest of the story indented as another sample.
        shown = [f"[{one_line(self.tokenizer.decode([g]))}]" if t != IGNORE
                 else self.tokenizer.decode([i])
                 for i, t, g in zip(inputs[0], targets[0], guess)]
        return "".join(shown) + "\n(hidden tokens in [brackets], filled in by the model)"


class NothingToHide(ValueError):
    """A BERT batch in which nothing can be hidden: the settings' or the text's fault, which
    a new run must mend (resuming would fail again), not a bug."""


def word_tokens(tokenizer: Tokenizer) -> np.ndarray:
    """What each id of the vocabulary is to a word, for whole-word masking (mask_tokens'
    `in_word`): CONTINUES for the ordinary tokens spelled with letters only (a character
    tokenizer's letters; a BPE's pieces such as "een"), BEGINS for a space and then letters (a
    BPE's " g" or " the", which start a word), 0 for the rest. A letter's marks count as
    letters: Hindi's vowel signs (ि in हिंदी), an accent written apart from its e."""
    special = set(tokenizer.special_tokens)
    pieces = [tokenizer.id_to_token(i) for i in range(tokenizer.vocab_size)]
    return np.array([0 if piece in special else CONTINUES if _letters(piece)
                     else BEGINS if piece[:1].isspace() and _letters(piece.lstrip()) else 0
                     for piece in pieces], dtype=np.int8)


def _letters(piece: str) -> bool:
    """Whether `piece` is spelled with letters and their marks alone (Unicode's L and M):
    str.isalpha() counts no mark, and cut a Hindi word at each of its vowel signs."""
    return piece != "" and all(unicodedata.category(c)[0] in "LM" for c in piece)


def _single_token(tokenizer, text):
    """The id of `text` if the tokenizer has one token for it, else None."""
    try:
        ids = tokenizer.encode(text)
    except ValueError:                                  # a vocabulary without it
        return None
    return ids[0] if len(ids) == 1 else None


class Seq2Seq:
    """An encoder-decoder on a digit task, with teacher forcing: the decoder reads the target
    shifted right (<bos> t1 t2 ...) and predicts it (t1 t2 ... <eos>)."""

    special_tokens = SPECIALS

    def __init__(self, config: TrainConfig, tokenizer: Tokenizer | None = None) -> None:
        self.config = config
        # Before the pairs are made: --max-len 10000 took minutes to make them, only to be
        # refused for a --context of 16.
        needed = task_context(config.max_len)
        if config.context is not None and config.context < needed:
            raise BadInput(f"--context {config.context} is too short for --max-len "
                           f"{config.max_len}: the task needs {needed}")
        self.data = Seq2SeqTask(config.task, config.min_len, config.max_len, seed=config.seed)
        # The task's own symbols, saved like any tokenizer so the checkpoint is self-contained.
        self.tokenizer = (tokenizer if tokenizer is not None
                          else CharTokenizer(SYMBOLS[len(SPECIALS):], SPECIALS))
        if len(self.data.val) < 10:
            raise BadInput(f"--task {config.task} with lengths {config.min_len} to "
                           f"{config.max_len} has {self.data.n_sources} distinct sequences, "
                           f"too few to hold some out for validation; raise --max-len")

    def model_config(self) -> dict[str, Any]:
        """The Transformer's arguments: one vocabulary (the task's symbols) for source and
        target, the task's context unless set, padding with PAD, the settings' sizes."""
        c = self.config
        vocab = self.tokenizer.vocab_size
        return _drop_none(src_vocab_size=vocab, tgt_vocab_size=vocab,
                          context=c.context or self.data.context, n_layer=c.n_layer,
                          n_head=c.n_head, d_model=c.d_model, d_ff=c.d_ff, dropout=c.dropout,
                          positions=c.positions, norm=c.norm, pad_id=PAD,
                          share_embeddings=c.share_embeddings, **block_switches(c))

    def open_data(self, directory: StrPath, info: dict[str, Any] | None) -> None:
        """Nothing to open: the task's pairs are made from its settings."""
        pass                                    # the task is made from its settings: no file

    def data_info(self) -> None:
        """None: the task is made again from its settings, with no file to find."""
        return None                             # the task is made again from its settings

    def train_batch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(src, tgt_in, tgt_out) of batch_size training pairs drawn with `rng`."""
        return self.data.sample_batch(self.config.batch_size, rng)

    def loss(self, model: Transformer,
             batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Tensor:
        """The mean cross-entropy of `model`'s target predictions on `batch`, padding left
        out, smoothed by the settings' label_smoothing."""
        return seq2seq_loss(model, *batch, label_smoothing=self.config.label_smoothing)

    def counted(self, batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> int:
        """The target tokens other than padding: the loss averages over those."""
        return int(np.count_nonzero(batch[2] != PAD))

    def evaluate(self, model: Transformer, threads: int = 1) -> dict[str, float]:
        """Teacher-forced loss and exact match of greedy decoding on every held-out pair, in
        chunks of EVAL_PAIRS (250) pairs, up to `threads` chunks at once. The loss is the mean
        over every held-out target token, as one batch of all the pairs would give it: each
        chunk's mean weighs by its tokens, as micro-batches do in training."""
        pairs = self.data.val

        def score(chunk):              # (the chunk's summed loss, its tokens, its right answers)
            batch = self.data.batch(chunk)
            guesses = self.translate(model, batch[0])
            tokens = self.counted(batch)
            return (self.loss(model, batch).item() * tokens, tokens,
                    sum(guess == target for (_, target), guess in zip(chunk, guesses)))

        chunks = [pairs[i:i + EVAL_PAIRS] for i in range(0, len(pairs), EVAL_PAIRS)]
        scores = side_by_side(without_graph(score), chunks, threads)
        return {"val_loss": sum(loss for loss, _, _ in scores) / sum(n for _, n, _ in scores),
                "val_accuracy": sum(right for _, _, right in scores) / len(pairs)}

    def translate(self, model: Transformer, src: np.ndarray) -> list[str | None]:
        """Greedy answers for src (B, S): a string each, or None where the output is not
        symbols followed by <eos> (it never stopped, or put a special token inside)."""
        # A target of `context - 1` symbols plus <eos> takes `context` generated tokens.
        out = model.greedy_decode(src, max_len=model.context, bos_id=BOS, eos_id=EOS)
        answers = []
        for row in out[:, 1:].tolist():                     # after <bos>
            body = row[:row.index(EOS)] if EOS in row else None
            ok = body is not None and all(t >= len(SPECIALS) for t in body)
            answers.append(self.data.decode(body) if ok else None)
        return answers

    def example_prompt(self) -> str:
        """A prompt for `tinyformer generate` that shows what the model learned: the first
        held-out source, of the run's lengths and form (two numbers and a + for add)."""
        return self.data.val[0][0]

    def sample(self, model: Transformer, rng: np.random.Generator) -> str:
        """Three held-out pairs and the model's greedy answers, each written as `tinyformer
        generate` writes it: a special token among the symbols by its name, "…" after an
        answer that never wrote <eos>, NO_ANSWER for <eos> at once (were every wrong answer
        that is not symbols shown as NO_ANSWER, generate's "<bos><bos>…" for the same source
        would seem another model's)."""
        picks = rng.choice(len(self.data.val), 3, replace=False)
        pairs = [self.data.val[i] for i in picks]
        src = self.data.batch(pairs)[0]
        out = model.greedy_decode(src, max_len=model.context, bos_id=BOS, eos_id=EOS)
        answers = [answer_text(self.tokenizer, row) for row in out[:, 1:].tolist()]
        # A target is symbols alone: no answer with a special token's name, "…" or NO_ANSWER
        # in it equals one, so this is translate's exact match.
        return "\n".join(f"{source} -> {answer}  "
                         f"{'ok' if answer == target else f'(want {target})'}"
                         for (source, target), answer in zip(pairs, answers))


# The arguments of a text's model that its tokenizer gives (a BERT's pad_id too): where the
# tokenizer is learned from the text, they are known only once it is read.
TOKENIZER_ARGUMENTS = ("vocab_size", "pad_id")


def text_model_config(config: TrainConfig) -> dict[str, Any]:
    """The arguments of a GPT's or a BERT's model that its settings give: all but
    TOKENIZER_ARGUMENTS (those left None: the class's defaults)."""
    c = config
    return _drop_none(context=c.context, n_layer=c.n_layer, n_head=c.n_head, d_model=c.d_model,
                      d_ff=c.d_ff, dropout=c.dropout, positions=c.positions, norm=c.norm,
                      **block_switches(c))


def block_switches(config: TrainConfig) -> dict[str, Any]:
    """The modern block's switches of a run, tie_weights and d_head, as every model takes them
    (None: its default)."""
    return {name: getattr(config, name) for name in (
        "normalization", "rmsnorm_affine", "activation", "n_kv_head", "qk_norm",
        "logit_softcap", "bias", "rope_theta", "tie_weights", "d_head")}


def _drop_none(**kwargs):
    """Arguments left None take the model class's own defaults."""
    return {key: value for key, value in kwargs.items() if value is not None}


def text_job(config: TrainConfig) -> type[LanguageModelling]:
    """The class of the job of a config on a text: BERT's or GPT's."""
    return MaskedLM if config.model == "bert" else LanguageModelling


def prepare_data(config: TrainConfig, path: StrPath, log: Callable[[str], None],
                 tokenizer: Tokenizer | None = None
                 ) -> tuple[Tokenizer | None, dict[str, Any] | None]:
    """A new run's data: its corpus tokenised into the file `path`, with `tokenizer` if given
    (a tokenizer file's: load_tokenizer_file), else one learned from the text; returns (the
    tokenizer, the data info for the job's open_data and config.json). A task draws its
    sequences as it trains: nothing is written, and the data info is None."""
    if config.task:
        return tokenizer, None
    return TextData.prepare(config, path, text_job(config).special_tokens, log, tokenizer)


def make_job(config: TrainConfig, tokenizer: Tokenizer | None = None) -> Job:
    """The job for a config, with its tokenizer (a task's makes its own): what the model is
    (model_config), before any file of the run is read; `open_data` then opens its data."""
    if config.task:
        return Seq2Seq(config, tokenizer)
    return text_job(config)(config, tokenizer)


def load_tokenizer_file(config: TrainConfig, pipe: bool = False) -> Tokenizer:
    """The tokenizer saved in the file that config.tokenizer names (`tinyformer tokenize
    train` writes one, and a run directory holds its own), with the special tokens its job
    needs. ValueError in one line naming the file: missing, not a tokenizer, or without them."""
    path = config.tokenizer_file
    # Missing: most likely a kind misspelt (BPE, chr), so the message says what may be given.
    check_exists(path, "tokenizer", f"tokenizer {path!r} is neither char nor bpe, and no such "
                                    f"file exists; give char, bpe, or a file that "
                                    f"`{command_line('tokenize', 'train')}` wrote"
                                    f"{OneOf(*TOKENIZER_KINDS).near(path)}")
    # A file, or a directory's tokenizer (a run's, say), as `tinyformer tokenize` reads it;
    # its complaints name the file.
    tokenizer = load_tokenizer_at(path, pipe=pipe)
    # A model's folder gives the tokenizer of its tokenizer.json as the tokenizers library
    # reads it, which cannot be saved as the run's own: refused here, not after the corpus is
    # tokenised with it (an internal error, then).
    if not isinstance(tokenizer, (CharTokenizer, BPETokenizer)):
        raise BadInput(f"the tokenizer of {path!r} is read from its tokenizer.json as the "
                       f"tokenizers library reads it, and a run saves its tokenizer, which "
                       f"must be tinyformer's own kind (a GPT-2 BPE, or a char one): give a "
                       f"folder of GPT-2's vocab.json and merges.txt, or a file that "
                       f"`{command_line('tokenize', 'train')}` wrote")
    missing = [s for s in text_job(config).special_tokens if tokenizer.special_id(s) is None]
    if missing:
        raise BadInput(f"the tokenizer {path!r} has no {' and no '.join(missing)} token, "
                       f"which --model {config.model} needs; train one with "
                       f"`{command_line('tokenize', 'train')}` and its default special tokens")
    return tokenizer
