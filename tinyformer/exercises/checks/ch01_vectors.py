"""Checkers for chapter 1: one-hot vectors, dot products, matrix multiplication as lookup."""

from __future__ import annotations

import numpy as np

from ..catalogue import Question, exercise
from ..checking import Call, CheckFailure, Learner, expect, expect_array, on_copies

# The chapter's "predict, then run" question (`tinyformer exercises predict 1`).
QUESTION = Question(code="""\
import numpy as np

table = np.array([[1, 2], [3, 4], [5, 6]])      # 3 rows, one per token
one_hot = np.array([[0, 0, 1],
                    [1, 0, 0]])                 # token 2, then token 0
print(one_hot @ table)
""", output="""\
[[5 6]
 [1 2]]
""", why=(
    "A one-hot row has a single 1, so multiplying it by a table picks one row: token 2 gives the "
    "table's row 2, [5 6]. That is why an embedding is a lookup (chapter 5), and why chapter 3 "
    'can look masks up with a product.'))


@exercise("one_hot", "One-hot vectors", hints=[
    "Make the result first: an array of zeros of shape (len(ids), vocab_size), dtype float32.",
    "Row i needs a 1.0 in column ids[i]. A loop `for i, token in enumerate(ids)` does it.",
    "Without a loop: numpy's integer-array indexing sets one element in each row at once, "
    "given one array of row numbers and one of column numbers, side by side. Which two arrays "
    "are those here?",
])
def check_one_hot(learner: Learner) -> None:
    one_hot = learner.function("one_hot")
    ids = np.array([2, 0, 3])
    got = on_copies(one_hot, ids, 4)
    try:
        expect_array(got, [[0., 0., 1., 0.], [1., 0., 0., 0.], [0., 0., 0., 1.]],
                     one_hot.last_call, tensor=False, dtype=np.float32)
    except CheckFailure as failure:
        # Ones at ids - 1, counted from 1: id 0's lands in column -1, the last.
        if isinstance(got, np.ndarray) and got.shape == (3, 4) and \
                np.array_equal(got, np.eye(4)[ids - 1]):
            raise CheckFailure(f"{failure}\n    Each 1 is one column left of where it belongs "
                               f"(id 0's wrapped round to the last column, as index -1 does): "
                               f"columns count from 0, as the ids do, so row i's 1 goes in "
                               f"column ids[i] itself.") from None
        raise
    expect_array(on_copies(one_hot, np.array([1, 1]), 2), [[0, 1], [0, 1]], one_hot.last_call)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, size=30)
    expect_array(on_copies(one_hot, ids, 50), np.eye(50)[ids], one_hot.last_call)


# What a product written with numpy's own is told to do instead.
LOOP = "add up a[k] * b[k] in a loop"
LOOPS = "fill C[i, j] with your `dot` of row i of A and column j of B, in two loops"


@exercise("dot_and_matmul", "Dot products and matrix multiplication", hints=[
    "dot: start a running total at 0.0 and add the product of each pair of elements, a[k] "
    "with b[k].",
    "matmul: the result has as many rows as A and as many columns as B. Make an array of "
    "zeros of that shape and fill it one element at a time, in two nested loops.",
    "Element [i, j] of a product pairs one row of A with one column of B: which ones, and "
    "what does your `dot` do with two vectors?",
])
def check_dot_and_matmul(learner: Learner) -> None:
    dot = learner.function("dot")
    for a, b, expected in [([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], 32.0),
                           ([0.0, 1.0, 0.0], [0.0, 0.0, 1.0], 0.0)]:
        expect_array(by_hand(dot, LOOP, np.array(a), np.array(b)), expected, dot.last_call)
    rng = np.random.default_rng(1)
    for n in (1, 5, 17):
        a, b = rng.normal(size=n), rng.normal(size=n)
        expect_array(by_hand(dot, LOOP, a, b), float(a @ b), dot.last_call)

    matmul = learner.function("matmul")
    A, B = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[5.0, 6.0], [7.0, 8.0]])
    expect_array(by_hand(matmul, LOOPS, A, B), [[19, 22], [43, 50]], matmul.last_call,
                 tensor=False)
    # Shapes where every size differs, so that a transposed answer shows up as a shape.
    for N, K, M in [(2, 3, 4), (1, 1, 1), (4, 1, 3), (3, 6, 1), (5, 4, 2)]:
        A, B = rng.normal(size=(N, K)), rng.normal(size=(K, M))
        expect_array(by_hand(matmul, LOOPS, A, B), A @ B, matmul.last_call, tensor=False)


class _Watched(np.ndarray):
    """An array that notes each of numpy's own products it takes part in (`@`, np.matmul,
    np.dot, a.dot, np.einsum, ...), in `used`, and otherwise behaves as any array: the
    checker compares with `@`, so only this tells a product written by hand from numpy's, or
    a lookup by indexing from one by a product. Rows and columns cut from it are watched too."""

    PRODUCTS = ("matmul", "vecdot", "dot", "vdot", "inner", "einsum", "tensordot", "multi_dot")
    used: list[str] = []

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: object,
                        **kwargs: object) -> object:
        if ufunc.__name__ in self.PRODUCTS:
            _Watched.used.append(ufunc.__name__)
        plain = [x.view(np.ndarray) if isinstance(x, _Watched) else x for x in inputs]
        return getattr(ufunc, method)(*plain, **kwargs)

    def __array_function__(self, func: object, types: object, args: object,
                           kwargs: object) -> object:
        name = getattr(func, "__name__", None)
        if name in self.PRODUCTS:
            _Watched.used.append(name)
        return super().__array_function__(func, types, args, kwargs)  # type: ignore[arg-type]

    def dot(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        return np.dot(self, *args, **kwargs)


def products_used(fn: Call, *arrays: np.ndarray) -> tuple[object, str | None]:
    """fn(*arrays) with copies of the arrays watched (the expected answer is worked out from
    the arrays themselves, so fn must leave them alone): what it returned, and the first of
    numpy's own products it used, as a learner writes it (`@`, np.dot, ...), or None."""
    _Watched.used = []
    got = on_copies(fn, *(np.asarray(a).view(_Watched) for a in arrays))
    if isinstance(got, _Watched):
        got = got.view(np.ndarray)
    used = _Watched.used[0] if _Watched.used else None
    return got, "`@`" if used == "matmul" else used and f"np.{used}"


def by_hand(fn: Call, instead: str, *arrays: np.ndarray) -> object:
    """fn(*arrays), which must not use numpy's own products: a CheckFailure if the learner's
    function (or the `dot` it calls) uses one, saying what to do `instead`."""
    got, used = products_used(fn, *arrays)
    if used:
        raise CheckFailure(f"{fn.last_call} uses numpy's own product ({used}), which does the "
                           f"whole job: this exercise asks you to write it, so {instead}. From "
                           f"the next exercise on, `@` is yours to use.")
    return got


@exercise("table_lookup", "Matrix multiplication as table lookup", hints=[
    "The vocabulary size is the number of rows of the table: table.shape[0].",
    "lookup_by_matmul: the one-hot matrix of the ids is (N, V) and the table (V, d); their "
    "product is (N, d), one row per id.",
    "lookup_by_index: numpy indexes an array with an array of ids too, one row per id, in "
    "order, repeats included. Both functions give the same rows: that is the point of the "
    "exercise.",
])
def check_table_lookup(learner: Learner) -> None:
    table = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])    # (V=4, d=2)
    rng = np.random.default_rng(2)
    big_table = rng.normal(size=(10, 3))                                  # V != d on purpose
    big_ids = rng.integers(0, 10, size=12)
    for name in ("lookup_by_matmul", "lookup_by_index"):
        lookup = learner.function(name)
        expect_array(on_copies(lookup, np.array([2]), table), [[5.0, 6.0]], lookup.last_call,
                     tensor=False)
        expect_array(on_copies(lookup, np.array([3, 0, 3]), table), [[7, 8], [1, 2], [7, 8]],
                     lookup.last_call, tensor=False)
        expect_array(on_copies(lookup, big_ids, big_table), big_table[big_ids], lookup.last_call,
                     tensor=False)
        # The same rows both ways is the point, so each function must take its own way.
        _, used = products_used(lookup, big_ids, big_table)
        if name == "lookup_by_matmul":
            expect(used, f"{lookup.last_call} gives the right rows without a matrix product: "
                         f"this one is the lookup written as a product of the one-hot matrix "
                         f"and the table (indexing is lookup_by_index's way).")
        else:
            expect(not used, f"{lookup.last_call} uses a matrix product ({used}): this one "
                             f"is the lookup by numpy indexing, with no product at all "
                             f"(lookup_by_matmul is the product's way).")
