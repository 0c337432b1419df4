"""Checkers for chapter 5: embeddings and positions. The embedding's gradient is compared with
tinyautograd.functional.embedding's, and the positional table with tinyformer's own
(tinyformer/layers.py, SinusoidalPositions)."""

from __future__ import annotations

import numpy as np

from tinyautograd import Tensor, functional

from ..catalogue import Question, exercise
from ..checking import CheckFailure, Learner, describe, expect, expect_array
from .ch04_autograd import _Apply, _gradcheck, _returned_gradients, _tensor

# The chapter's "predict, then run" question (`tinyformer exercises predict 5`).
QUESTION = Question(code="""\
import numpy as np
from tinyautograd import Tensor

table = Tensor(np.zeros((3, 2)), requires_grad=True)    # 3 tokens, 2 features each
out = table[np.array([1, 1, 2])]                         # look up tokens 1, 1 and 2
out.sum().backward()
print(table.grad)
""", output="""\
[[0. 0.]
 [2. 2.]
 [1. 1.]]
""", why=(
    "Token 1 was looked up twice, so row 1 receives the gradient of both uses (2 in each column); "
    "row 2 was used once and row 0 never. An embedding's backward adds into the rows (np.add.at) "
    'rather than assigning.'))

# ---------------------------------------------------------------------------------------------
# 1. Embeddings
# ---------------------------------------------------------------------------------------------


def _repeated_row_note(ids, table_grad_expected, got):
    """A hint when the wrong rows are exactly the ids that repeat: the `+=` trap."""
    shape = np.shape(ids)
    ids = np.asarray(ids).reshape(-1)
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):     # not numbers at all (a dict, a text): said already
        return ""
    if got.shape != table_grad_expected.shape:
        return ""
    wrong_rows = np.unique(np.nonzero(~np.isclose(got, table_grad_expected, atol=1e-6))[0])
    counts = np.bincount(ids, minlength=len(got))
    if len(wrong_rows) and (counts[wrong_rows] > 1).all():
        row = int(wrong_rows[0])
        # A loop over 2-D ids takes a whole row of ids at a time: the same trap, in a loop.
        rows = (f" A loop over ids of shape {shape} takes a row of {shape[-1]} ids at a time, "
                f"so `table_grad[i] += g` inside it is that same indexing." if len(shape) > 1
                else "")
        return (f"\n    Only rows of ids that appear more than once are wrong (id {row} appears "
                f"{counts[row]} times): each appearance must add its gradient. "
                f"`table_grad[ids] += grad` keeps only one; use np.add.at.{rows}")
    return ""


@exercise("embedding", "Embeddings: a lookup table that learns", hints=[
    "forward is one line of numpy: integer-array indexing picks one row of the table per id.",
    "backward: start from zeros of the table's shape (ctx.inputs[0].shape); every position's "
    "gradient row goes into the row of its id, added, not assigned.",
    "`table_grad[ids] += grad` keeps only one of the rows of a repeated id, because numpy "
    "buffers the writes. np.add.at(array, indices, values) adds every one of them, repeats "
    "included.",
], forbid=["tinyautograd.functional", "tinyautograd.nn", "tinyautograd.ops", "tinyformer.layers"])
def check_embedding(learner: Learner) -> None:
    Embedding = learner.attribute("Embedding")
    embed = _Apply(learner, "embed")
    rng = np.random.default_rng(0)
    table = np.arange(10.0).reshape(5, 2)                                    # (5, 2)
    cases = [(table, np.array([1, 3, 1, 1]), np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0],
                                                       [1.0, 1.0]])),
             (rng.normal(size=(10, 4)), rng.integers(0, 10, size=(2, 6)), None),
             (rng.normal(size=(7, 3)), rng.integers(0, 7, size=(3, 5)), None)]
    for table, ids, grad in cases:
        out = embed(_tensor(table), ids)
        expect_array(out, table[ids], embed.last_call, tensor=True)
        grad = rng.normal(size=out.shape) if grad is None else grad
        call = f"{embed.last_call} with grad={describe(grad, limit=8)}"
        (got,) = _returned_gradients(learner, Embedding, out, grad, 1, call)
        expect(got is not None, f"Embedding.backward after {call} returned None.")
        reference = _tensor(table)
        functional.embedding(ids, reference).backward(Tensor(grad, dtype=np.float64))
        try:
            expect_array(got, reference.grad, f"Embedding.backward after {call}",
                         what="returns as the gradient with respect to `table`")
        except CheckFailure as failure:
            raise CheckFailure(str(failure) + _repeated_row_note(ids, reference.grad, got)) \
                from None
    ids = rng.integers(0, 6, size=(2, 5))
    raw = learner.attribute("embed")
    _gradcheck(learner, lambda t: raw(t, ids), {"table": rng.normal(size=(6, 3))},
               f"embed(table, ids) (table of shape (6, 3), ids={describe(ids)})")


# ---------------------------------------------------------------------------------------------
# 2. Sinusoidal positions
# ---------------------------------------------------------------------------------------------

def _tinyformer_table(context, d_model):
    from tinyformer.layers import SinusoidalPositions
    return SinusoidalPositions(context, d_model).table


def _position_mistakes(context, d_model):
    """(description, table) of the usual wrong tables."""
    def table(start=0, step=2, interleave=True, first=np.sin, second=np.cos):
        pos = np.arange(start, start + context)[:, None]
        angle = pos / 10000 ** (np.arange(0, d_model, 2) * step / 2 / d_model)
        if not interleave:
            return np.concatenate([first(angle), second(angle)], axis=1)
        out = np.zeros((context, d_model))
        out[:, 0::2], out[:, 1::2] = first(angle), second(angle)
        return out
    return [("with the sines in the first half of the columns and the cosines in the second: "
             "they alternate, sin in the even columns and cos in the odd ones",
             table(interleave=False)),
            ("with cos in the even columns and sin in the odd ones: it is the other way round",
             table(first=np.cos, second=np.sin)),
            ("counting the positions from 1: the first row is position 0, all sines 0",
             table(start=1)),
            ("with i in place of 2i in the exponent: columns 2i and 2i + 1 use 2i / d_model",
             table(step=1))]


@exercise("sinusoidal_positions", "Sinusoidal positions", hints=[
    "Row pos, columns 2i and 2i+1 share one angle: pos / 10000 ** (2i / d_model). Column 0 "
    "and 1 use 2i = 0, so the angle is just pos.",
    "Build the angles for every position and every pair of columns at once: a column of "
    "positions, shape (context, 1), against a row of the even column numbers 2i, shape "
    "(d_model/2,), broadcasts to (context, d_model/2).",
    "Even columns get the sine of those angles and odd columns the cosine: slicing with a "
    "step of 2 (0::2 and 1::2) writes half the columns of a (context, d_model) table at a "
    "time.",
], forbid=["tinyformer.layers"])
def check_sinusoidal_positions(learner: Learner) -> None:
    positions = learner.function("sinusoidal_positions")
    rng = np.random.default_rng(0)
    sizes = [(2, 4), (3, 6), (50, 16)] + [(int(rng.integers(5, 40)), 2 * int(rng.integers(2, 20)))
                                          for _ in range(3)]
    for context, d_model in sizes:
        got = positions(context, d_model)
        expected = _tinyformer_table(context, d_model)
        try:
            expect_array(got, expected, positions.last_call, tensor=False, atol=1e-6,
                         rtol=1e-5)
        except CheckFailure as failure:
            same = [description for description, wrong in _position_mistakes(context, d_model)
                    if isinstance(got, np.ndarray) and got.shape == wrong.shape
                    and np.allclose(got, wrong, atol=1e-6)]
            why = (f"That is exactly what you get {same[0]}." if same else
                   "(row pos, column c: sin if c is even, cos if odd, of pos / 10000 ** "
                   "(2i / d_model) with 2i = c - c % 2)")
            raise CheckFailure(f"{failure}\n    {why}") from None
        expect_array(got, expected, positions.last_call, atol=1e-6, rtol=1e-5,
                     dtype=np.float64)      # the right numbers: is it the dtype?
