"""Decoding: turning a model that scores the next token into one that writes text.

Every model that generates does it the same way: it holds a batch of sequences so far, gives
the logits of the next token of each, and takes the tokens chosen. A `Session` is that state,
and the decoding loops below are written once against it:

    session.tokens          (B, t) the sequences so far: the prompt (or <bos>) and what
                            has been written
    session.next_logits()   (B, V) the logits of the next token of every sequence; asked
                            again before the sequences change, the same ones (a copy)
    session.append(tokens)  (B,) add one token to every sequence
    session.select(rows)    keep these rows, in this order, repeats allowed: beam search
                            copies and drops sequences as it goes
    session.room            how many more tokens the model can write, or None for no end;
                            a loop asked for more refuses before its first step
    session.model           (optional) the Module it runs, for the loops to switch off its
                            dropout while they decode
    session.vocab_size      (optional) how many tokens the model can write, for the loops to
                            check their eos_id before any step; without it, the first
                            step's logits tell

The loops below run their session's model as at inference whatever mode it is in (see
`inference`): every loop, and every model's way in to them, decodes without dropout.

Two kinds of session cover the Transformer family. A decoder-only model (GPT) continues its
prompt; an encoder-decoder (the Transformer) encodes its source once and writes a target from
<bos>, its decoder attending to the encoding at every step. Both hold their tokens, and the
logits of the next ones until a token is appended, the same way (`SequencesSoFar`). Each keeps
a KVCache, so that a step computes the self-attention keys and values of the new token only
(the encoder-decoder's cross-attention keys and values, projections of the encoding, are
computed at the first step and kept there too), and gives the same logits as running the model
on the whole sequence again (`use_cache=False` does that, for the tests and the curious).
Either way a step asks the model for the last position's logits alone (`logits_to_keep=1`, the
keyword of GPT's forward and the Transformer's decode, named as transformers names it): the
others would be thrown away, and for a long prompt and a large vocabulary their (B, T, V) is
the largest array of the step. A forward (or decode) of your own, in a subclass, may take
neither (`def forward(self, idx)`): a session reads what it takes once (`step_call`) and gives
it only that, running the whole window at each step without a cache, and reading the last of
every position's logits.

The loops: `generate` picks each next token (greedy at temperature 0, else sampled with
temperature, top-k and top-p, see sampling.py), and `beam_search` keeps the `beam_size` most
likely sequences (see its docstring). Both take each step's logits the same way, `step_logits`,
which refuses (ValueError) logits that leave no token to pick, NaN above all: a model whose
weights hold a NaN would otherwise write token 0 at every step, without a word.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

from tinyautograd import Tensor, nn, no_grad, random

from .attention import KVCache
from .layers import Tokens, token_array
from .sampling import check_generator, check_sampling, draw_next
from .schema import BadInput, Whole, check_whole, is_finite_number

if TYPE_CHECKING:                   # the models import this module
    from .gpt import GPT
    from .resources import AdaptiveThreads, FixedThreads
    from .transformer import Transformer

__all__ = ["DecoderOnlySession", "EncoderDecoderSession", "generate", "beam_search",
           "Hypothesis", "gnmt_length_penalty", "ends", "fill_after_end", "NoTokenToPick"]

# The token that ends a sequence, or several (as transformers' eos_token_id: a chat model's
# <|im_end|> ends its answer, <|endoftext|> a whole text), or None: nothing ends it early.
EosIds = Union[int, Sequence[int], None]


def ends(tokens: ArrayLike, eos_id: EosIds) -> np.ndarray:
    """Where `tokens` end their sequence: True at each token that is `eos_id`, or one of them."""
    if eos_id is None:
        return np.zeros(np.shape(tokens), dtype=bool)
    return np.isin(tokens, eos_id)


def check_eos_id(where: str, eos_id: EosIds, vocab_size: int) -> None:
    """BadInput, in one line, unless `eos_id` is None, a token id in [0, vocab_size) or a list
    of them: an id the model cannot write would never end anything. The loops check it before
    their first step where the session knows its vocabulary (every model's does), else at
    that step, where the logits say how many tokens the model has."""
    if eos_id is None:
        return
    if isinstance(eos_id, np.ndarray):
        ids = eos_id.ravel().tolist()
    elif isinstance(eos_id, Sequence):
        ids = list(eos_id)
    else:
        ids = [eos_id]
    if not ids:
        raise BadInput(f"{where}: eos_id names no token; give an id, a list of ids, or None")
    token = Whole(0, vocab_size - 1)                    # not 1.5, not True, not "2"
    if any(token.why(i) for i in ids):
        raise BadInput(f"{where}: eos_id must be a token id in [0, {vocab_size}) or a list "
                       f"of them, got {eos_id!r}")


def check_fill_after_eos(where: str, fill_after_eos: int | None, vocab_size: int) -> None:
    """BadInput, in one line, unless `fill_after_eos` is None or a token id in [0, vocab_size):
    checked with eos_id, before any step, rather than written into the rows that ended (a
    float making every token a float) and refused by the next step, or returned."""
    if fill_after_eos is not None and Whole(0, vocab_size - 1).why(fill_after_eos):
        raise BadInput(f"{where}: fill_after_eos must be None or a token id in [0, "
                       f"{vocab_size}), got {fill_after_eos!r}")


def fill_after_end(eos_id: EosIds, pad_id: int | None = None) -> int | None:
    """What a model's decoding writes in a row once it has ended, for `generate`'s
    `fill_after_eos`: the model's `pad_id`, or else its end id, the first of several (as
    transformers pads with eos where a model has no padding token). None when nothing ends a
    row. The one rule for every model: one id for every row, whatever the batch."""
    if eos_id is None:
        return None
    if pad_id is not None:
        return pad_id
    first = np.ravel(eos_id)[:1]            # [] names no token: nothing to fill with
    return first[0].item() if first.size else None


# --------------------------------------------------------------------------------------------
# Sessions: a batch of sequences being written, and the model that continues them


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Run `model` with every module in eval mode (dropout off), each module put back in the
    mode it was in afterwards. What reads a model rather than trains it runs under it (decoding,
    the summary's count, the logit lens), so that a model left in training mode gives what it
    gives in eval mode, and draws nothing from the engine's random generator. A stand-in model
    that is not a Module has no modes. The modes are the model's, not the thread's: reading
    one model from several threads at once wants model.eval() first, as in torch."""
    modules = list(model.modules()) if isinstance(model, nn.Module) else []
    modes = [module.training for module in modules]
    for module in modules:
        module.training = False
    try:
        yield
    finally:
        for module, mode in zip(modules, modes):
            module.training = mode


@contextlib.contextmanager
def inference(model: Any) -> Iterator[None]:
    """Run `model` as decoding must: in eval mode (the same tokens at every call, from a model
    left in training mode too) and no gradients recorded. The two loops run under it, and so
    does an encoder-decoder session's encoding, so that every way of decoding does: once a
    call, since walking a model's modules costs about as much as a token of a small model.
    The logit lens (lens.py) reads a model under it too."""
    with eval_mode(model), no_grad():
        yield


class StepCall(NamedTuple):
    """How a decoding step calls its model, read from the signature of the model's method once
    per session (`step_call`): GPT's forward and the Transformer's decode take a KVCache after
    the arguments always given, and `logits_to_keep=1` for the last position's logits alone.
    A method of your own in a subclass, written without them (`def forward(self, idx)`), gets
    only what it takes, where passing them would be a TypeError: without a cache the session
    runs the whole window at each step (as use_cache=False), and without the keyword the step
    reads the last of every position's logits."""
    takes_cache: bool
    last_only: dict[str, int]          # {"logits_to_keep": 1}, or {} where it has no such keyword

    def __call__(self, method: Callable[..., Tensor], *given: Any,
                 cache: KVCache | None) -> np.ndarray:
        """The logits (B, V) of the last position of `method(*given, cache, logits_to_keep=1)`,
        given the cache and the keyword where it takes them. All or nothing: a step cut short
        (Ctrl-C, an error) rewinds the cache to where it was, so that asking again runs the
        same step again (see KVCache). Cut short in the
        head, after the model advanced `length`, the cache would otherwise count tokens whose
        logits no one has, and the next step would give the model none."""
        with_cache = (cache,) if self.takes_cache else ()
        length = None if cache is None else cache.length
        try:
            return method(*given, *with_cache, **self.last_only).data[:, -1]
        except BaseException:                       # KeyboardInterrupt too
            if cache is not None:
                cache.rewind(length)
            raise


def step_call(method: Callable[..., Tensor], given: int) -> StepCall:
    """The StepCall of a model's `method`, `given` being the number of positional arguments
    a step always gives it (the tokens; for decode, the encoding and its mask too): it takes a
    cache if it takes one positional argument more, other than logits_to_keep (or *args), and
    logits_to_keep if it has a parameter of that name that a keyword can give (or **kwargs)."""
    parameter = inspect.Parameter
    named = inspect.signature(method).parameters                    # name -> Parameter
    kinds = [p.kind for p in named.values()]
    positional = [name for name, p in named.items()
                  if p.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)]
    takes_cache = ((len(positional) > given and positional[given] != "logits_to_keep")
                   or parameter.VAR_POSITIONAL in kinds)
    keep = named.get("logits_to_keep")
    keeps = parameter.VAR_KEYWORD in kinds or (
        keep is not None and keep.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY))
    return StepCall(takes_cache, {"logits_to_keep": 1} if keeps else {})


# What to do with prompts of different lengths: not to pad them, as a model with a padding mask
# would take them.
ONE_LENGTH = ("a GPT has no padding mask and would read padding as text: continue the prompts "
              "of each length in a call of their own")


class SequencesSoFar:
    """What both sessions keep the same way: the sequences so far, `tokens` (B, t), and the
    logits of their next tokens once computed (`kept`), until the sequences change. Asked
    again before a token is appended, `next_logits` gives the kept ones: with the cache the
    model could not run again, every token's keys being in it already. A subclass says how to
    compute them (`compute_logits`), and what else follows the rows in `select`."""

    tokens: np.ndarray
    cache: KVCache | None
    kept: np.ndarray | None = None              # (B, V), or None until next_logits computes it

    def compute_logits(self) -> np.ndarray:
        """The logits (B, V) of each sequence's next token, from the model: written by each
        session."""
        raise NotImplementedError

    def next_logits(self) -> np.ndarray:
        """The logits (B, V) of each sequence's next token: computed once per step, then a
        copy of the kept ones."""
        # A copy, so that a caller that edits its logits (to rule tokens out) leaves the next
        # call's alone.
        if self.kept is None:
            self.kept = self.compute_logits()
        return self.kept.copy()

    def append(self, tokens: ArrayLike) -> None:
        """Write the next token of each sequence, `tokens` (B,): ids the model can read. Others
        are refused (BadInput), the sequences left as they were: appended, a float would make
        every token a float, and an id outside the vocabulary would fail every later step."""
        tokens = np.asarray(tokens)
        B, vocab_size = len(self.tokens), getattr(self, "vocab_size", None)
        if (tokens.shape != (B,) or tokens.dtype.kind not in "iu" or (
                vocab_size is not None and B and (tokens.min() < 0 or tokens.max() >= vocab_size))):
            ids = "token id" if vocab_size is None else f"token id in [0, {vocab_size})"
            raise BadInput(f"append: tokens must be one {ids} per sequence, shape ({B},); got "
                           f"{tokens.dtype} of shape {tokens.shape}: {tokens.tolist()!r:.60}")
        self.tokens = np.concatenate([self.tokens, tokens[:, None]], axis=1)
        self.kept = None

    def select(self, rows: np.ndarray) -> None:
        """Keep the sequences `rows` (indices, repeats allowed: beam search's), with all that
        follows them: kept logits, cache."""
        self.tokens = self.tokens[rows]
        if self.kept is not None:
            self.kept = self.kept[rows]
        if self.cache is not None:
            self.cache.select(rows)


class DecoderOnlySession(SequencesSoFar):
    """A decoder-only model continuing `prompt` (B, T): `model(idx, cache, logits_to_keep=1)`
    gives the logits (B, 1, V) of the last of tokens idx, which follow the `cache.length` tokens
    already in the cache (the logits of every position, (B, T, V), without the keyword). A
    forward of your own, in a subclass, is given only those of the two it takes (StepCall).

    The model sees at most `model.context` tokens. Once the sequences outgrow it, the window
    slides: every position shifts, so the cached keys no longer fit and each step runs the
    model on its whole window again, exactly as without the cache. So it can write on and on:
    its `room` is None."""

    room: int | None = None

    def __init__(self, model: GPT, prompt: Tokens, use_cache: bool = True) -> None:
        self.model = model
        self.step = step_call(model.forward, given=1)
        self.use_cache = use_cache and self.step.takes_cache
        # The model's own check of its input, ids outside its vocabulary too, now rather than
        # at the first step; int64, as the tokens written after it.
        self.vocab_size = model.config["vocab_size"]
        self.tokens = token_array(prompt, ragged=ONE_LENGTH,                      # (B, T)
                                  vocab_size=self.vocab_size).astype(np.int64)
        self.cache = None

    def compute_logits(self) -> np.ndarray:
        context = self.model.context
        if self.cache is not None and self.tokens.shape[1] <= context:
            new = self.tokens[:, self.cache.length:]                    # not yet in the cache
        else:                                                           # first step, or slid
            self.cache = KVCache(context) if self.use_cache else None
            new = self.tokens[:, -context:]
        # The last position's logits only: the head skips the prompt's other rows.
        return self.step(self.model, new, cache=self.cache)              # (B, V)


class EncoderDecoderSession(SequencesSoFar):
    """An encoder-decoder writing a target for each source row of `src` (B, S), starting from
    `bos_id`: `model.encode(src)` runs once, then `model.decode(tgt, memory, src_mask, cache,
    logits_to_keep=1)` gives the logits (B, 1, V) of the last of the target tokens after the
    `cache.length` cached ones (a decode of your own is given only those it takes: StepCall)."""

    def __init__(self, model: Transformer, src: Tokens, bos_id: int,
                 use_cache: bool = True) -> None:
        self.model = model
        with inference(model):                              # (B, S, C), (B, 1, 1, S) or None
            self.memory, self.src_mask = model.encode(src)
        self.tokens = np.full((self.memory.shape[0], 1), bos_id, dtype=np.int64)
        self.vocab_size = model.config["tgt_vocab_size"]
        self.step = step_call(model.decode, given=3)
        self.cache = KVCache(model.context) if use_cache and self.step.takes_cache else None

    @property
    def room(self) -> int:
        """How many more tokens it can write: writing one reads every token so far, <bos>
        included, and the decoder reads at most `model.context` (it has no window to slide:
        each target position is attended from the source as it is)."""
        return self.model.context - self.tokens.shape[1] + 1

    def compute_logits(self) -> np.ndarray:
        if self.cache is None:
            new = self.tokens                                           # the whole target
        else:
            new = self.tokens[:, self.cache.length:]
        return self.step(self.model.decode, new, self.memory, self.src_mask,
                         cache=self.cache)                              # (B, V)

    def select(self, rows: np.ndarray) -> None:
        super().select(rows)                        # the tokens, kept logits and cache
        if self.src_mask is not None:
            self.src_mask = self.src_mask[rows]
        # The memory follows the same rows. A cache that holds it (the context its
        # cross-attention keys came from) has moved its rows already: the next step gives it
        # back that very one, which its check knows without comparing.
        held = self.cache.memory if self.cache is not None else None
        self.memory = held if held is not None else Tensor(self.memory.data[rows],
                                                           dtype=self.memory.dtype)


# What the decoding loops write with: the state of a batch of sequences and their model.
Session = Union[DecoderOnlySession, EncoderDecoderSession]


# --------------------------------------------------------------------------------------------
# Choosing one token at a time: greedy and sampling


def generate(session: Session, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, eos_id: EosIds = None,
             generator: np.random.Generator | None = None,
             streamer: Callable[[np.ndarray], None] | None = None,
             fill_after_eos: int | None = None,
             threads: AdaptiveThreads | FixedThreads | None = None,
             *, where: str = "generate") -> np.ndarray:
    """Write up to `max_new_tokens` tokens after each sequence of `session`; returns the
    session's tokens (B, t + new). A decoder-only session's prompts are of one length, none
    padded: nothing hides padding from a GPT, which would read the pad tokens as part of the
    text; prompts of different lengths take one session, and call, per length. `temperature` 0
    is greedy; `top_k` and `top_p` narrow the draw as for GPT.generate (sampling.sample_next).
    Stops early once every row has written `eos_id` (or one of several ids); with
    `fill_after_eos`, a finished row's later tokens are that token (a padding id) instead of
    whatever the model would go on to write.
    `streamer`, if given, is called with each step's tokens (B,) as soon as they are chosen.
    `generator` (a numpy Generator) makes sampling repeatable; by default it is the engine's
    seeded one. `threads` (an entered resources.step_threads) runs the steps on the BLAS threads
    given, or times them to choose, as training does; the tokens do not depend on it. Without
    it, BLAS uses the threads it has. `max_new_tokens` 0 writes nothing. Its errors start
    with `where`: a function that writes through it (Transformer.greedy_decode) gives its own
    name, the one its caller called.

    The session comes from the model (GPT.generate and Transformer.greedy_decode make their
    own this way):

        tokens = generate(gpt.start_decoding(prompt), max_new_tokens=20, temperature=0.8)
        tokens = generate(transformer.start_decoding(src, bos_id), 20, temperature=0)"""
    check_session(session, where)
    check_whole(where, 0, max_new_tokens=max_new_tokens)
    check_room(session.room, where, max_new_tokens=max_new_tokens)
    check_sampling(temperature, top_k, top_p)
    check_generator(where, "generator", generator)
    check_streamer(where, streamer)
    vocab_size = getattr(session, "vocab_size", None)          # None: the logits will tell
    if vocab_size is not None:
        check_eos_id(where, eos_id, vocab_size)
        check_fill_after_eos(where, fill_after_eos, vocab_size)
    rng = generator if generator is not None else random.default_generator()
    finished = np.zeros(len(session.tokens), dtype=bool)
    with inference(getattr(session, "model", None)):
        for step in range(max_new_tokens):
            logits = step_logits(session, where, step + 1, threads)
            if step == 0 and vocab_size is None:
                check_eos_id(where, eos_id, logits.shape[-1])
                check_fill_after_eos(where, fill_after_eos, logits.shape[-1])
            next_token = draw_next(logits, temperature, top_k, top_p, rng)
            if fill_after_eos is not None:
                next_token = np.where(finished, fill_after_eos, next_token)
            session.append(next_token)
            if streamer is not None:
                streamer(next_token)
            if eos_id is not None:
                finished |= ends(next_token, eos_id)
                if finished.all():
                    break
    return session.tokens


def check_session(session: Session, where: str) -> None:
    """TypeError, in one line, unless `session` is a decoding session (it has `next_logits`
    and `room`): a model or an array of tokens passed in its place would otherwise fail
    deep inside the loop, on an attribute the message does not explain."""
    if not (hasattr(session, "next_logits") and hasattr(session, "room")):
        raise TypeError(f"{where} takes a decoding session: model.start_decoding(prompt) for "
                        f"a GPT, model.start_decoding(src, bos_id) for a Transformer; got a "
                        f"{type(session).__name__} object")


def check_streamer(where: str, streamer: object) -> None:
    """TypeError, in one line, unless `streamer` is None or callable: refused before the first
    step rather than at its end. transformers' streamers are objects with a `put` method (its
    TextStreamer): the message says to give that method."""
    if streamer is None or callable(streamer):
        return
    put = ""
    if callable(getattr(streamer, "put", None)):            # transformers' TextStreamer
        put = " (an object with put, as transformers' streamers: give its put)"
    raise TypeError(f"{where}: streamer must be a function, called with each step's tokens "
                    f"(B,), or None; got a {type(streamer).__name__} object{put}")


def check_room(room: int | None, where: str, **count: int) -> None:
    """BadInput, in one line, unless the count of tokens asked for, named as the caller wrote
    it, fits in `room` (a session's: how many more tokens its model can write; None for no
    end): refused before any work, not at the step that no longer fits."""
    (name, value), = count.items()
    if room is not None and value > room:
        raise BadInput(f"{where}: {name} {value} does not fit in the model's context: give "
                       f"at most {room}")


def step_logits(session: Session, where: str, step: int,
                threads: AdaptiveThreads | FixedThreads | None) -> np.ndarray:
    """The logits (B, V) of the step that writes the `step`-th token (from 1), as every loop
    takes them: on `threads` (see `_timed`), and checked (`check_logits`). Activations that
    overflow make numpy warn at op after op; the check says so once, in one line, instead (as
    training's check of its loss does)."""
    with _timed(threads), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        logits = session.next_logits()
    check_logits(where, logits, step)
    return logits


class NoTokenToPick(BadInput):
    """A step's logits leave no token to pick (check_logits): the model's weights, or its
    activations on this input, are not finite. The fault of the model or its input, found only
    as the loop writes, once every setting has passed its checks: a caller tells it from a bug
    by its class (`tinyformer generate` says it in one line, as bad input)."""


def check_logits(where: str, logits: np.ndarray, step: int) -> None:
    """NoTokenToPick (a ValueError), in one line, unless every row of `logits` (B, V) leaves a
    token to pick: a NaN or a +inf in a row, or a row of -inf alone, does not. A model whose
    weights hold a NaN (one that diverged in training, left in memory) gives NaN logits at
    every step, and argmax reads NaN as the largest logit: it would write token 0 until the
    end, without a word (torch.multinomial refuses them, and so transformers' generate does).
    A -inf is a token ruled out (a mask, top-k) and is fine among others. One np.isfinite over
    the row of each sequence, a small part of the step that computed it; the rest runs only
    when that finds something."""
    if np.isfinite(logits).all():
        return
    nan = np.isnan(logits).any(axis=-1)                                 # (B,)
    plus_inf = (logits == np.inf).any(axis=-1)
    all_minus_inf = (logits == -np.inf).all(axis=-1)
    for bad, what in ((nan, "hold NaN"), (plus_inf, "hold +inf"),
                      (all_minus_inf, "are -inf for every token")):
        if bad.any():
            raise NoTokenToPick(
                f"{where}: the model's logits {what} at step {step} (row "
                f"{np.flatnonzero(bad)[0]}), so there is no token to pick: its weights, or its "
                f"activations on this input, are not finite; in Python, run the model "
                f"under tinyautograd.detect_anomaly() to find the op that makes them (a model "
                f"whose training diverged: train it again with a lower learning rate)")


def _timed(threads):
    """A step under `threads`' BLAS threads (timed, where it chooses them); without `threads`
    (an API caller gave none), on the threads BLAS has."""
    return threads.step() if threads is not None else contextlib.nullcontext()


# --------------------------------------------------------------------------------------------
# Beam search


class Hypothesis(NamedTuple):
    """One decoded sequence: `tokens` (the prompt or <bos> first, eos last if it finished), its
    penalised `score`, and its unpenalised `log_prob`, of the tokens written after the start."""
    tokens: np.ndarray
    score: float
    log_prob: float


def gnmt_length_penalty(length: int, alpha: float) -> float:
    """lp(Y) = ((5 + |Y|) / 6)^alpha, where `length` = |Y| counts the tokens written."""
    # A Python float whatever alpha is: a numpy float32 alpha made lp,
    # and so every score divided by it, float32, ranking the hypotheses to 7 digits.
    return ((5.0 + length) / 6.0) ** float(alpha)


def beam_search(session: Session, beam_size: int = 4, max_len: int = 32, eos_id: EosIds = None,
                length_penalty: float = 0.6,
                threads: AdaptiveThreads | FixedThreads | None = None) -> Hypothesis:
    """The best continuation of the one sequence in `session` (its batch holds one row), by
    beam search with the GNMT length penalty (Wu et al. 2016, section 7):

        score(Y) = log P(Y | start) / lp(Y),        lp(Y) = ((5 + |Y|) / 6)^alpha

    |Y| counts the tokens written, eos included; alpha = `length_penalty`. log P only falls as
    Y grows, so without the penalty (alpha = 0) short outputs win; alpha > 0 evens this out.

    One step, for the live beams (the session's rows):

        1. expand:  every beam b, every token v  ->  candidate b + [v],
                    log P(b + [v]) = log P(b) + log_softmax(logits of b)[v]
        2. rank:    the candidates by log P, best first (they all have one length, so this is
                    their order under the penalty too); ties go to the earlier beam, then the
                    lower token id, so that beam_size = 1 takes greedy's tokens
        3. finish:  a candidate among the first beam_size that ends in eos is set aside,
                    scored with the penalty
        4. prune:   the best beam_size candidates that do not end in eos are the next beams
                    (the session keeps those rows and appends their tokens)

    Stopping: a live beam's log P can only fall, so the best score any continuation of it can
    reach is log P(beam) / the largest lp still reachable. The search stops once a hypothesis
    has finished and no live beam's bound beats it: that returns what waiting for more would.
    Otherwise it stops after `max_len` tokens (generate's max_new_tokens: the most it writes), and
    the live beams, cut off, compete with the finished ones as they are. `eos_id` may name several
    ids, and `threads`, as for `generate`.

    A beam of one writes greedy decoding's text where nothing ends it or alpha = 0. With a
    penalty it may not: the eos greedy writes is set aside and the beam goes on with the next
    likeliest token, and a longer ending the penalty scores better wins.

    Against transformers' `generate(num_beams=N)`: the search is the same (steps 1 to 4, the
    text cut off at max_new_tokens), but transformers' `length_penalty`, of the same name, is
    an exponent on |Y| itself, score = log P / |Y|^length_penalty, 1.0 by default; and its
    default `early_stopping=False` stops on an estimate, where this stop is exact (its
    `early_stopping="never"`). With `length_penalty=0` in both (no penalty), both return
    the same text and score. transformers' `num_beams=1` is greedy decoding itself, whatever
    its `length_penalty`.

    The session comes from the model, for one prompt or one source row:

        best = beam_search(gpt.start_decoding(prompt[:1]), beam_size=4, max_len=20, eos_id=eos)
        best = beam_search(transformer.start_decoding(src[:1], bos_id), 4, 20, eos_id=eos)
        best.tokens, best.score             # the start and what it wrote; its penalised score
    """
    check_session(session, "beam_search")
    check_whole("beam_search", 1, beam_size=beam_size, max_len=max_len)
    check_room(session.room, "beam_search", max_len=max_len)
    if len(session.tokens) != 1:
        raise BadInput(f"beam_search: the session must hold one sequence, got "
                       f"{len(session.tokens)}: search each in a session of its own, "
                       f"model.start_decoding(prompt[i:i + 1]) for a GPT, "
                       f"model.start_decoding(src[i:i + 1], bos_id) for a Transformer")
    if not is_finite_number(length_penalty):
        raise BadInput(f"beam_search: length_penalty must be a finite number, got "
                       f"{length_penalty!r}")
    # lp grows (or, alpha < 0, shrinks) with the length from lp(1) = 1: the longest is the
    # farthest from 1. Past a float's range, it failed in Python's words (OverflowError, or a
    # division by an lp of 0) at the step that reached it.
    try:
        longest = gnmt_length_penalty(max_len, length_penalty)
    except OverflowError:
        longest = math.inf
    if not 0 < longest < math.inf:
        raise BadInput(f"beam_search: length_penalty {length_penalty!r} makes the penalty of "
                       f"{max_len} tokens, ((5 + {max_len}) / 6)^{length_penalty!r}, "
                       f"{'overflow' if longest else 'underflow to 0'}; give one nearer 0 "
                       f"(the default is 0.6)")
    vocab_size = getattr(session, "vocab_size", None)          # None: the logits will tell
    if vocab_size is not None:
        check_eos_id("beam_search", eos_id, vocab_size)
    eos_ids = set() if eos_id is None else set(np.ravel(eos_id).tolist())   # per candidate
    beam_log_probs = np.zeros(1)            # (n,) the live beams', best first
    best = None                             # the best finished hypothesis so far
    with inference(getattr(session, "model", None)):
        for step in range(1, max_len + 1):  # step = |Y| of the candidates made now
            # 1. Expand. float64: log-probabilities add up over many steps.
            logits = Tensor(step_logits(session, "beam_search", step, threads), dtype=np.float64)
            if step == 1 and vocab_size is None:
                check_eos_id("beam_search", eos_id, logits.shape[-1])
            candidates = beam_log_probs[:, None] + logits.log_softmax().data      # (n, V)
            V = candidates.shape[1]
            # 2. Rank: a stable sort of the flattened (n * V,) array breaks ties by beam,
            # then by token id.
            order = np.argsort(-candidates.ravel(), kind="stable")
            rows, tokens, log_probs = [], [], []
            for rank, flat in enumerate(order):
                beam, token = divmod(int(flat), V)
                log_prob = float(candidates[beam, token])
                if token in eos_ids:
                    # 3. Finish: only an eos among the first beam_size candidates counts.
                    if rank < beam_size:
                        done = Hypothesis(np.append(session.tokens[beam], token),
                                          log_prob / gnmt_length_penalty(step, length_penalty),
                                          log_prob)
                        if best is None or done.score > best.score:
                            best = done
                else:
                    rows.append(beam)       # 4. Prune: these live on
                    tokens.append(token)
                    log_probs.append(log_prob)
                if len(rows) == beam_size:
                    break
            if not rows:                    # a vocabulary of eos alone: nothing lives on
                return best
            session.select(np.array(rows))
            session.append(np.array(tokens))
            beam_log_probs = np.array(log_probs)
            if best is not None and step < max_len:
                # lp is monotonic in the length (rising for alpha > 0, falling for alpha < 0):
                # its largest over the lengths still reachable is at one end of them. Taken
                # over every length, it cost max_len evaluations a step.
                largest_lp = max(gnmt_length_penalty(step + 1, length_penalty),
                                 gnmt_length_penalty(max_len, length_penalty))
                if (beam_log_probs / largest_lp).max() <= best.score:
                    return best
    for tokens, log_prob in zip(session.tokens, beam_log_probs):   # max_len reached
        cut = Hypothesis(tokens, float(log_prob) / gnmt_length_penalty(max_len, length_penalty),
                         float(log_prob))
        if best is None or cut.score > best.score:
            best = cut
    return best
