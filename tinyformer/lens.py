"""The logit lens: what the model would predict if it stopped after each layer.

Every layer of a Transformer adds its output to the residual stream, and the head reads only
the stream's last state. But the head can read any earlier state too: apply the stack's final
norm and the unembedding to the stream after the embeddings, after layer 1, after layer 2, ...
and each gives a distribution over the vocabulary (nostalgebraist 2020, "interpreting GPT: the
logit lens"). Watching the top prediction settle from layer to layer shows where in the stack a
model works out its answer; the last row is the model's own prediction.

    stream_0 = embed(tokens)                       "embed"
    stream_l = layer_l(stream_{l-1})               "layer l"
    lens_l   = softmax(head(final_norm(stream_l)))   (T, V) for each state

The stacks (blocks.Encoder, blocks.Decoder) keep their stream in a list while `lens` runs the
model; for an encoder-decoder the decoder's stream is read, the one the head reads.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from tinyautograd import Tensor, nn

from .attention import unrounded_probabilities
from .blocks import Decoder, Encoder
from .decoding import inference
from .schema import check_whole

__all__ = ["Lens", "logit_lens"]


@dataclass
class Lens:
    """The logit lens of one sequence: `rows` names each state ("embed", "layer 1", ...),
    `top_ids` and `top_probs` (rows, T, k) hold the k likeliest next tokens after each state,
    at each position, with their probabilities: 1 (or 0) only where the model is sure of the
    token (or rules it out), one that float32 rounds there kept just short of it."""
    rows: list[str]
    top_ids: np.ndarray
    top_probs: np.ndarray

    def __repr__(self) -> str:
        # The arrays' shapes, not their numbers: a notebook cell ending with `lens` printed
        # every id and probability, hundreds of lines for one short prompt.
        return (f"Lens(rows={self.rows!r}, top_ids=<array {self.top_ids.shape} "
                f"{self.top_ids.dtype}>, top_probs=<array {self.top_probs.shape} "
                f"{self.top_probs.dtype}>)")


@contextlib.contextmanager
def _recording(stack: Encoder | Decoder) -> Iterator[list]:
    stack.stream = []
    try:
        yield stack.stream
    finally:
        stack.stream = None


def head_stack(model: nn.Module) -> Encoder | Decoder:
    """The stack whose output the head reads: the last Encoder or Decoder of the model."""
    stacks = [m for m in model.modules() if isinstance(m, (Encoder, Decoder))]
    if not stacks:
        raise ValueError(f"{type(model).__name__} has no encoder or decoder stack to read")
    return stacks[-1]


def logit_lens(model: nn.Module, run: Callable[[nn.Module], Tensor], k: int = 3) -> Lens:
    """The logit lens of `model` on one sequence: `run(model)` runs the model's forward on it
    (for a GPT, `lambda m: m(idx)`, idx (1, T)); the stream its head stack keeps meanwhile is
    read through the stack's final norm and `model.logits`, the model's own head. The model
    runs in eval mode, as generate runs it (a model left in training mode drops nothing out),
    and is put back in its own mode afterwards. ValueError for a run on a batch of several
    sequences, or one that runs the model more than once (or not at all), and for a k that is
    no whole number from 1 (not 2.5, not True), before the model runs."""
    check_whole("logit_lens", 1, k=k)
    stack = head_stack(model)
    with inference(model), _recording(stack) as stream:
        run(model)
        states = list(stream)
        # One state after the embeddings and one after each layer, if the run ran the stack
        # once: each further run (generate runs it at every step) would add rows.
        runs = len(states) // (len(stack.layers) + 1)
        if runs != 1:
            raise ValueError(f"logit_lens: the run ran the model {runs} times; run its forward "
                             f"once, as lambda m: m(idx) does (generate runs it at every step)")
        if states[0].shape[0] != 1:                 # (B, T, C): a lens is of one sequence
            raise ValueError(f"logit_lens: the run gave a batch of {states[0].shape[0]} "
                             f"sequences; run the model on one, (1, T)")
        rows, top_ids, top_probs = [], [], []
        for i, state in enumerate(states):
            h = state if stack.final_norm is None else stack.final_norm(state)
            logits = model.logits(h)                                        # (1, T, V)
            probs = unrounded_probabilities(logits.softmax(axis=-1).data[0],  # (T, V)
                                            logits.data[0] > -np.inf)
            # Ranked by the logits, in the order of the probabilities they give: tokens whose
            # probabilities float32 rounds to 0 alike (104 behind the first) are still apart.
            order = likeliest(logits.data[0], k)                            # (T, k)
            rows.append("embed" if i == 0 else f"layer {i}")
            top_ids.append(order)
            top_probs.append(np.take_along_axis(probs, order, axis=-1))
    return Lens(rows, np.stack(top_ids), np.stack(top_probs))


# Up to this many ids a row, one pass over the row for each; more, one sort of the row.
FEW = 16


def likeliest(probs: np.ndarray, k: int) -> np.ndarray:
    """The ids of the k largest probabilities of each row of `probs` (T, V) (or of the
    logits they come from, which rank alike), largest first and, of equal ones, the lowest id
    first (a stable sort's order): (T, min(k, V)).

    A lens keeps a few of each row (3). Sorting all of GPT-2's 50,257 to keep them took five
    times as long as the head's product that computed them, two thirds of its lens of a long
    prompt; instead a pass of argmax (which gives the first of equal maxima) finds each, and
    rules it out of the next pass. A row of a model that diverged is NaN throughout, and gives
    0, 1, 2, ... as the sort does."""
    if k > FEW:
        return np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    probs = probs.copy()                        # (the caller's are left as they are)
    # A score of -inf (a logit that rules its token out) is put above the -inf that rules a
    # taken id out of the next pass, which would otherwise take the first id again.
    probs[probs == -np.inf] = np.finfo(probs.dtype).min
    rows = np.arange(len(probs))
    ids = []
    for _ in range(min(k, probs.shape[-1])):
        best = probs.argmax(axis=-1)                                        # (T,)
        ids.append(best)
        probs[rows, best] = -np.inf
    return np.stack(ids, axis=-1)
