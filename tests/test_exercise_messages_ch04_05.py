"""The checkers of chapters 4 (autograd by hand) and 5 (embeddings and positions) say what is
wrong: each test breaks a reference solution the way a learner might and reads the message."""

import numpy as np
import pytest
from solutions import edited_message, expect_changed_in_place



# -- the scalar engine: each slip is found by behaviour and named, with the op it is in ------

def scalar_engine_message(tmp_path, *edits):
    return edited_message(tmp_path, "scalar_engine", *edits[0], *edits[1:])


def op_probe_says(message, op, name="a"):
    """The message is about `op`'s _backward alone, probed with an upstream gradient that is
    not 1 and a share already in the input's gradient."""
    assert message.startswith(f"the `_backward` of `Value.{op}` is wrong.")
    assert "out.grad = 2.5" in message and f"{name}.grad = 0.5 before" in message


@pytest.mark.parametrize("op, edits", [
    ("__add__", [("            self.grad += out.grad\n            other.grad += out.grad",
                  "            self.grad = out.grad\n            other.grad = out.grad")]),
    ("__mul__", [("self.grad += other.data * out.grad", "self.grad = other.data * out.grad"),
                 ("other.grad += self.data * out.grad", "other.grad = self.data * out.grad")]),
    ("tanh", [("self.grad += (1 - out.data ** 2) * out.grad",
               "self.grad = (1 - out.data ** 2) * out.grad")]),
])
def test_scalar_engine_assigning_instead_of_adding_is_named_in_its_op(tmp_path, op, edits):
    message = scalar_engine_message(tmp_path, *edits)
    op_probe_says(message, op)
    assert "that share is gone" in message and "`=`" in message and "`+=`" in message
    assert "out.grad`" not in message.split("\n")[1]      # not blamed on the chain rule


@pytest.mark.parametrize("op, edits, expected", [
    ("__mul__", [("self.grad += other.data * out.grad", "self.grad += other.data"),
                 ("other.grad += self.data * out.grad", "other.grad += self.data")],
     "it should be 0.5 + b.data * out.grad = -7."),
    ("tanh", [("self.grad += (1 - out.data ** 2) * out.grad", "self.grad += 1 - out.data ** 2")],
     "it should be 0.5 + (1 - out.data ** 2) * out.grad = 2.46612."),
    ("exp", [("self.grad += out.data * out.grad", "self.grad += out.data")],
     "it should be 0.5 + out.data * out.grad = 5.53438."),
])
def test_scalar_engine_missing_upstream_gradient_is_named_in_its_op(tmp_path, op, edits,
                                                                    expected):
    message = scalar_engine_message(tmp_path, *edits)
    op_probe_says(message, op)
    assert expected in message
    assert "It leaves out `* out.grad`" in message and "+=" not in message


def test_scalar_engine_both_slips_at_once_are_both_named(tmp_path):
    message = scalar_engine_message(tmp_path, ("self.grad += other.data * out.grad",
                                               "self.grad = other.data"))
    op_probe_says(message, "__mul__")
    assert "`+=`" in message and "leaves out `* out.grad`" in message


@pytest.mark.parametrize("old, new, shown", [
    # __radd__ that calls itself: a recursion of one line...
    ("        return self + other\n\n    def __rmul__",
     "        return other + self\n\n    def __rmul__",
     ["scalar_engine.py line", "in __radd__: return other + self",
      "[the line above repeated"]),
    # ... and __neg__ by way of __rsub__, which calls __neg__: a recursion of two lines.
    ("return self * -1", "return 0 - self",
     ["in __neg__: return 0 - self", "in __rsub__: return other + (-self)",
      "[the 2 lines above repeated"]),
], ids=["__radd__ itself", "__neg__ and __rsub__"])
def test_scalar_engine_recursion_that_never_ends_is_shown_once(tmp_path, old, new, shown):
    # Python's own traceback folds the thousand identical calls; the check's must too, or the
    # RecursionError comes after a thousand lines.
    message = scalar_engine_message(tmp_path, (old, new))
    lines = message.splitlines()
    assert len(lines) < 12, message
    assert all(any(words in line for line in lines) for words in shown), message
    assert lines[-1].strip().startswith("RecursionError: maximum recursion depth exceeded")


def test_a_run_of_lines_is_folded_from_its_third_time_with_the_count_of_the_others():
    # As Python's traceback: a line that comes twice is shown twice; from three times it is
    # shown once, with how many more times it came.
    from tinyformer.exercises.checking import _fold_repeats
    assert _fold_repeats(["a", "a", "b"]) == ["a", "a", "b"]
    assert _fold_repeats(["a"] * 5 + ["b"]) == ["a", "    [the line above repeated 4 more times]",
                                                 "b"]
    assert _fold_repeats(["x"] + ["a", "b"] * 3) == [
        "x", "a", "b", "    [the 2 lines above repeated 2 more times]"]


@pytest.mark.parametrize("old, new, words", [
    ("exponent * self.data ** (exponent - 1) * out.grad",
     "exponent * self.data ** exponent * out.grad", "the power is the exponent minus one"),
    ("exponent * self.data ** (exponent - 1) * out.grad",
     "self.data ** (exponent - 1) * out.grad", "the exponent itself multiplies too"),
])
def test_scalar_engine_wrong_exponent_in_pow(tmp_path, old, new, words):
    message = scalar_engine_message(tmp_path, (old, new))
    op_probe_says(message, "__pow__")
    assert "out = a ** 3 with a = 2" in message and "= 30.5." in message and words in message


@pytest.mark.parametrize("new, shows", [
    ("exponent * out.data / self.data * out.grad", "ZeroDivisionError"),     # Python floats
    ("exponent * out.data / self.data * out.grad if self.data else float('nan')", "= nan"),
])
def test_scalar_engine_pow_that_divides_by_the_base(tmp_path, new, shows):
    # Right wherever a is not 0; at a = 0 the derivative is 0, the division no number.
    message = scalar_engine_message(tmp_path, (
        "exponent * self.data ** (exponent - 1) * out.grad", new))
    assert "`Value.__pow__`" in message and "out = a ** 2 with a = 0" in message
    assert shows in message
    assert "divides by a.data" in message and "exponent * a.data ** (exponent - 1)" in message


@pytest.mark.parametrize("op, old, new, words", [
    ("tanh", "(1 - out.data ** 2) * out.grad", "(1 - self.data ** 2) * out.grad",
     "not a's own data"),
    ("tanh", "(1 - out.data ** 2) * out.grad", "(1 - out.data) * out.grad",
     "out.data must be squared"),
    ("exp", "self.grad += out.data * out.grad", "self.grad += self.data * out.grad",
     "exp itself"),
    ("__mul__", "self.grad += other.data * out.grad", "self.grad += self.data * out.grad",
     "the other input's data"),
])
def test_scalar_engine_wrong_local_derivative(tmp_path, op, old, new, words):
    message = scalar_engine_message(tmp_path, (old, new))
    op_probe_says(message, op)
    assert words in message


@pytest.mark.parametrize("old, new, said", [
    ("self.grad += other.data * out.grad", "self.grad += self.data * out.grad",
     "Your d(a * b)/da used a.data; it is b.data: each input's gradient uses the other "
     "input's data."),
    ("other.grad += self.data * out.grad", "other.grad += other.data * out.grad",
     "Your d(a * b)/db used b.data; it is a.data"),
    ("exponent * self.data ** (exponent - 1) * out.grad",
     "exponent * self.data ** exponent * out.grad",
     "Your d(a ** 3)/da was 3 * a.data ** 3; it is 3 * a.data ** 2"),
    ("(1 - out.data ** 2) * out.grad", "(1 - self.data ** 2) * out.grad",
     "Your d(a.tanh())/da used 1 - a.data ** 2; it is 1 - out.data ** 2"),
])
def test_scalar_engine_slip_says_what_the_learner_wrote_then_the_rule(tmp_path, old, new, said):
    # The learner's own slip first, then the rule: not a sentence that reads as a description
    # of the learner's code while stating the rule.
    message = scalar_engine_message(tmp_path, (old, new))
    assert "\n    " + said in message
    assert "It looks as if" not in message


def test_scalar_engine_second_input_of_an_op_is_probed_too(tmp_path):
    message = scalar_engine_message(tmp_path, ("other.grad += self.data * out.grad",
                                               "other.grad += self.data"))
    op_probe_says(message, "__mul__", name="b")
    assert "left b.grad = 2.5; it should be 0.5 + a.data * out.grad = 5.5." in message


@pytest.mark.parametrize("old, new, op", [
    ("self.grad += other.data * out.grad", "self.grad += other * out.grad", "__mul__"),
    ("self.grad += (1 - out.data ** 2) * out.grad", "self.grad += (1 - out ** 2) * out.grad",
     "tanh"),
])
def test_scalar_engine_a_value_in_a_gradient(tmp_path, old, new, op):
    message = scalar_engine_message(tmp_path, (old, new))
    assert message.startswith(f"after the `_backward` of `Value.{op}`")
    assert "it should be a number. A Value got into it" in message and ".data`" in message


ORDER = "y.backward() on c = a * b; d = c + a; y = d * c with a = 1.5, b = -2"
VISIT = ("                visited.add(value)\n                for child in value._children:\n"
         "                    visit(child)\n                order.append(value)")


@pytest.mark.parametrize("edits, words", [
    # Walking the graph and passing gradients on at once: c is reached twice.
    ([("        visit(self)\n        self.grad = 1.0\n        for value in reversed(order):\n"
       "            value._backward()",
       "        self.grad = 1.0\n\n        def push(value):\n            value._backward()\n"
       "            for child in value._children:\n                push(child)\n\n"
       "        push(self)")],
     "The _backward of c (= a * b) ran 2 times"),
    ([("for value in reversed(order):", "for value in order:")],
     "The _backward of d (= c + a) ran before that of y"),
    ([(VISIT, "                visited.add(value)\n                order.append(value)\n"
              "                for child in value._children:\n                    visit(child)")],
     "The _backward of d (= c + a) ran before that of y"),
    ([("            if value not in visited:\n" + VISIT,
       "            if True:\n" + VISIT.replace("visited.add(value)", "pass"))],
     "ran 2 times"),
    ([("        self.grad = 1.0\n", "")], "y.grad was 0.0 when y's _backward ran"),
])
def test_scalar_engine_visiting_order_is_diagnosed_from_what_ran(tmp_path, edits, words):
    message = scalar_engine_message(tmp_path, *edits)
    assert message.startswith(ORDER) and "should be d y / d a = 6" in message
    assert words in message
    if "ran" in words and "y.grad" not in words:
        assert "reverse topological order" in message


def test_scalar_engine_a_breadth_first_backward_is_told_to_build_the_order(tmp_path):
    """Breadth-first, each Value once, comes out right wherever every path to a Value has the
    same length; y = c + exp(exp(c)) reaches c directly and two steps later too."""
    message = scalar_engine_message(tmp_path, (
        "        visit(self)\n        self.grad = 1.0\n        for value in reversed(order):\n"
        "            value._backward()",
        "        self.grad = 1.0\n        queue, seen = [self], set()\n        while queue:\n"
        "            value = queue.pop(0)\n            if value not in seen:\n"
        "                seen.add(value)\n                value._backward()\n"
        "                queue.extend(value._children)"))
    assert message.startswith("y.backward() on c = a * b; e = c.exp(); f = e.exp(); y = c + f "
                              "with a = 0.5, b = -1.5 leaves a.grad = -1.5")
    assert "The _backward of c (= a * b) ran before that of e (= exp(c))" in message
    assert "paths of different lengths" in message and "topological order" in message


def test_scalar_engine_a_backward_that_calls_nothing(tmp_path):
    message = scalar_engine_message(tmp_path, ("            value._backward()", "            pass"))
    assert message.startswith(ORDER)
    assert "The _backward of y never ran" in message


def test_scalar_engine_todo_in_one_op_is_named(tmp_path):
    message = edited_message(tmp_path, "scalar_engine",
                             "            self.grad += (1 - out.data ** 2) * out.grad",
                             "            raise NotImplementedError")
    assert "the `_backward` inside `Value.tanh` is not written yet" in message
    assert "line" in message


def test_broadcast_gradients_forgetting_keepdims(tmp_path):
    message = edited_message(tmp_path, "broadcast_gradients",
                             "grad.sum(axis=stretched, keepdims=True)",
                             "grad.sum(axis=stretched)")
    assert message.startswith("unbroadcast(grad=")
    assert "shape (2,); expected shape (2, 1)" in message


def test_broadcast_gradients_mul_without_unbroadcast(tmp_path):
    message = edited_message(tmp_path, "broadcast_gradients",
                             "unbroadcast(grad * a, np.shape(b))",
                             "grad * a")
    assert "mul_backward(" in message and "gradient with respect to `b`" in message
    assert "shape" in message


@pytest.mark.parametrize("new, name, other", [
    ("unbroadcast(grad * a, np.shape(a)), unbroadcast(grad * b, np.shape(b))", "a", "b"),
    ("unbroadcast(grad * b, np.shape(a)), unbroadcast(grad * b, np.shape(b))", "b", "a"),
])
def test_broadcast_gradients_mul_by_the_input_itself(tmp_path, new, name, other):
    message = edited_message(tmp_path, "broadcast_gradients",
                             "unbroadcast(grad * b, np.shape(a)), unbroadcast(grad * a, "
                             "np.shape(b))", new)
    assert message.startswith("mul_backward(") and f"with respect to `{name}`" in message
    assert (f"That is grad times {name} itself: dL/d{name} is grad times the OTHER input, "
            f"{other}") in message


def test_matmul_backward_gradients_swapped(tmp_path):
    message = edited_message(tmp_path, "matmul_backward",
                             "return grad_a, grad_b",
                             "return grad_b, grad_a")
    assert "MatMul.backward after matmul(a=" in message
    assert "gradient with respect to `a`" in message and "expected shape (2, 3)" in message


def test_matmul_backward_full_transpose_fails_for_batches(tmp_path):
    message = edited_message(tmp_path, "matmul_backward", "grad @ b.swapaxes(-1, -2)",
                             "grad @ b.T")
    assert "(batched: a of shape (2, 3, 4)" in message and "raised an error" in message
    lines = (tmp_path / "matmul_backward.py").read_text().splitlines()
    line = 1 + next(i for i, text in enumerate(lines) if "grad_a = grad @ b.T" in text)
    assert f"matmul_backward.py line {line}, in backward: grad_a = grad @ b.T" in message
    assert ".T reverses every axis of a batched array" in message
    assert "swap only the last two: .swapaxes(-1, -2)." in message


def test_matmul_backward_full_transpose_of_a_fails_for_a_shared_weight(tmp_path):
    message = edited_message(tmp_path, "matmul_backward", "a.swapaxes(-1, -2) @ grad",
                             "a.T @ grad")
    assert "(a batch times a shared weight: a of shape (2, 3, 4)" in message
    assert ".T reverses every axis of a batched array" in message


@pytest.mark.parametrize("old, new", [
    ("grad @ b.swapaxes(-1, -2)", "grad @ b.transpose()"),
    ("a.swapaxes(-1, -2) @ grad", "np.transpose(a) @ grad"),
])
def test_matmul_backward_transposing_every_axis_is_said_however_it_is_written(tmp_path, old,
                                                                             new):
    message = edited_message(tmp_path, "matmul_backward", old, new,
                             ("from tinyautograd import Function",
                              "import numpy as np\nfrom tinyautograd import Function"))
    assert ".T reverses every axis of a batched array" in message


def test_matmul_backward_a_batched_error_without_a_transpose_is_not_blamed_on_one(tmp_path):
    message = edited_message(tmp_path, "matmul_backward", "grad @ b.swapaxes(-1, -2)",
                             "(grad @ b.swapaxes(-1, -2)).reshape(a.shape[-2:])")
    assert "a of shape (2, 3, 4)" in message and "ValueError: cannot reshape" in message
    assert "reverses every axis" not in message


def test_matmul_backward_with_a_numpy_function_fails_for_second_derivatives(tmp_path):
    # Right on arrays; under create_graph=True grad and the operands are Tensors.
    message = edited_message(tmp_path, "matmul_backward", "grad @ b.swapaxes(-1, -2)",
                             "np.matmul(grad, b.swapaxes(-1, -2))",
                             ("from tinyautograd import Function",
                              "import numpy as np\nfrom tinyautograd import Function"))
    assert message.startswith("gradgradcheck ran matmul(a, b)")
    assert "in backward: grad_a = np.matmul(grad, b.swapaxes(-1, -2))" in message
    assert "with @ and .swapaxes(-1, -2)" in message


def test_cross_entropy_backward_without_dividing_by_n(tmp_path):
    message = edited_message(tmp_path, "softmax_cross_entropy_backward",
                             "return d / n * grad", "return d * grad")
    assert message.startswith("SoftmaxCrossEntropy.backward after softmax_cross_entropy(")
    assert "N = 2 times too big" in message
    assert "The loss is a mean over the N rows, so divide by N." in message


def test_softmax_backward_without_the_sum(tmp_path):
    message = edited_message(tmp_path, "softmax_cross_entropy_backward",
                             "return p * (g - (g * p).sum(axis=-1, keepdims=True))",
                             "return p * g")
    assert "Softmax.backward after softmax(z=" in message
    assert "gradient with respect to `z`" in message and "at [" in message


def test_softmax_backward_from_the_diagonal_alone(tmp_path):
    message = edited_message(tmp_path, "softmax_cross_entropy_backward",
                             "return p * (g - (g * p).sum(axis=-1, keepdims=True))",
                             "return g * p * (1 - p)")
    assert message.startswith("Softmax.backward after softmax(z=")
    assert "from the diagonal of the Jacobian alone" in message


_ROW_SUM = "return p * (g - (g * p).sum(axis=-1, keepdims=True))"


@pytest.mark.parametrize("row_sum", ["(g * p).sum(-1)[:, None]", "(g * p).sum(-1).reshape(-1, 1)",
                                     "(g * p).sum(-1).reshape(len(p), 1)"])
def test_softmax_backward_whose_row_sum_fits_2d_arrays_only(tmp_path, row_sum):
    # Right for (N, V); a batch (B, T, V) then makes numpy raise, in the learner's own line.
    message = edited_message(tmp_path, "softmax_cross_entropy_backward", _ROW_SUM,
                             f"return p * (g - {row_sum})")
    assert message.startswith("Softmax.backward ran after softmax(z=Tensor([[[")
    assert "raised an error" in message and "ValueError" in message
    assert "works for z of shape (N, V) but not for a batch (B, T, V)" in message
    assert "axis=-1, and keep that axis with keepdims=True" in message


@pytest.mark.parametrize("row_sum, said", [
    ("(g * p).sum(axis=1, keepdims=True)",
     "summing g * p along axis 1, which is the last axis of a 2-D z but not of a 3-D one"),
    ("(g * p).sum(axis=0, keepdims=True)", "summing g * p along axis 0, down the columns"),
    ("(g * p).sum(axis=0)", "summing g * p along axis 0, down the columns"),
    ("(g * p).sum()", "summing g * p over the whole array"),
    ("(g * p).sum(axis=-1)", "The row sum of g * p must keep its axis, shape (N, 1)"),
])
def test_softmax_backward_with_the_row_sum_along_another_axis_is_told_so(tmp_path, row_sum,
                                                                        said):
    message = edited_message(tmp_path, "softmax_cross_entropy_backward", _ROW_SUM,
                             f"return p * (g - {row_sum})")
    assert message.startswith("Softmax.backward ") and said in message


def test_cross_entropy_backward_that_subtracts_whole_columns(tmp_path):
    # d[:, targets] takes every row at each target column: 1 subtracted N times too often.
    message = edited_message(tmp_path, "softmax_cross_entropy_backward",
                             "d[np.arange(n), ctx.targets]", "d[:, ctx.targets]")
    assert message.startswith("SoftmaxCrossEntropy.backward after softmax_cross_entropy(")
    assert "subtracting 1 in every row at every target's column, as d[:, targets] does" in message
    assert "pick one element per row" in message


def test_cross_entropy_backward_that_indexes_rows_with_the_targets(tmp_path):
    # d[targets] takes the targets as row numbers: numpy refuses the target 2 of N = 2 rows.
    message = edited_message(tmp_path, "softmax_cross_entropy_backward",
                             "d[np.arange(n), ctx.targets]", "d[ctx.targets]")
    assert message.startswith("SoftmaxCrossEntropy.backward ran after softmax_cross_entropy(")
    assert "IndexError: index 2 is out of bounds for axis 0 with size 2" in message
    assert ("That is the error you get subtracting 1 from whole rows, as d[targets] does"
            in message)
    assert "pick one element per row" in message


def test_cross_entropy_backward_that_indexes_rows_with_targets_below_n(tmp_path, monkeypatch):
    # With every target below N, d[targets] raises nothing: it subtracts 1 from whole rows.
    from tinyformer.exercises.checks import ch04_autograd as checker
    monkeypatch.setattr(checker, "CROSS_ENTROPY_CASES", checker.CROSS_ENTROPY_CASES[1:])
    assert all(max(targets) < len(targets) for _, targets in checker.CROSS_ENTROPY_CASES)
    message = edited_message(tmp_path, "softmax_cross_entropy_backward",
                             "d[np.arange(n), ctx.targets]", "d[ctx.targets]")
    assert message.startswith("SoftmaxCrossEntropy.backward after softmax_cross_entropy(")
    assert ("That is exactly what you get subtracting 1 from whole rows, as d[targets] does"
            in message)
    assert "pick one element per row" in message


@pytest.mark.parametrize("old, new, start", [
    # The truth minus the prediction, in place of the prediction minus the truth.
    ("        d[np.arange(n), ctx.targets] -= 1.0          # p - onehot(t)\n",
     "        d = -d\n        d[np.arange(n), ctx.targets] += 1.0\n",
     "SoftmaxCrossEntropy.backward after softmax_cross_entropy("),
    ("return p * (g - (g * p).sum(axis=-1, keepdims=True))",
     "return p * ((g * p).sum(axis=-1, keepdims=True) - g)", "Softmax.backward after softmax("),
])
def test_a_backward_with_its_sign_flipped_is_told_so(tmp_path, old, new, start):
    # Every element is wrong, each by its sign alone: the worst one shown does not say that.
    message = edited_message(tmp_path, "softmax_cross_entropy_backward", old, new)
    assert message.startswith(start)
    assert "Every element is minus the expected one: a sign is flipped somewhere" in message


@pytest.mark.parametrize("old, new", [
    ("return d / n * grad", "return d / n"),             # the incoming gradient ignored
    ("return d / n * grad", "return d * grad"),          # the mean's 1/N forgotten
])
def test_cross_entropy_backward_mistakes(tmp_path, old, new):
    message = edited_message(tmp_path, "softmax_cross_entropy_backward", old, new)
    assert "SoftmaxCrossEntropy.backward after softmax_cross_entropy(logits=" in message
    assert "gradient with respect to `logits`" in message
    if "* grad" in new:
        assert "grad=1 returns" in message
    else:
        assert "grad=2.5 returns" in message


def test_cross_entropy_backward_that_changes_the_saved_probabilities(tmp_path):
    # Right the first time, but a second backward (retain_graph=True) subtracts the 1 again.
    message = edited_message(tmp_path, "softmax_cross_entropy_backward", "d = ctx.p.copy()",
                             "d = ctx.p")
    assert message.startswith("SoftmaxCrossEntropy.backward after softmax_cross_entropy(")
    assert "a second time on the same forward pass" in message and "ctx.p.copy()" in message


@pytest.mark.parametrize("slug, old, start", [
    ("embedding", "return table_grad", "Embedding.backward after embed("),
    ("softmax_cross_entropy_backward", "return d / n * grad",
     "SoftmaxCrossEntropy.backward after softmax_cross_entropy("),
])
def test_a_backward_with_a_gradient_for_its_setting_too(tmp_path, slug, old, start):
    # torch's autograd.Function wants a None for every argument of forward; here the ids and
    # the targets are settings, not inputs.
    message = edited_message(tmp_path, slug, old, old + ", None")
    assert message.startswith(start) and "it should return one gradient, an array" in message
    assert "not an input and gets no gradient, not even None" in message


@pytest.mark.parametrize("slug, old, new, start", [
    ("layer_norm_backward", "d_xhat = g * gamma", "d_xhat = g\n        d_xhat *= gamma",
     "LayerNormFunction.backward after layer_norm("),
    ("softmax_cross_entropy_backward",
     "return p * (g - (g * p).sum(axis=-1, keepdims=True))",
     "g -= (g * p).sum(axis=-1, keepdims=True)\n        return p * g",
     "Softmax.backward after softmax("),
])
def test_a_backward_that_writes_into_the_incoming_gradient(tmp_path, slug, old, new, start):
    expect_changed_in_place(
        edited_message(tmp_path, slug, old, new), start, "the grad",
        "The engine may hand that same array to other nodes too (`g -= ...` and `g *= ...` "
        "write into it): make new arrays instead (`g = g - ...`).")


def test_layer_norm_backward_wrong_gamma(tmp_path):
    message = edited_message(tmp_path, "layer_norm_backward",
                             "d_gamma = (rows * x_hat.reshape(rows.shape)).sum(axis=0)",
                             "d_gamma = rows.sum(axis=0)")
    assert "gradient with respect to `gamma`" in message and "at [" in message


def test_layer_norm_backward_gradients_in_the_wrong_order(tmp_path):
    message = edited_message(tmp_path, "layer_norm_backward",
                             "return d_x, d_gamma, d_beta", "return d_x, d_beta, d_gamma")
    assert message.startswith("LayerNormFunction.backward after layer_norm(")
    assert "returns the gradients with respect to (x, beta, gamma), in that order" in message
    assert "in forward's order (x, gamma, beta)" in message


def test_layer_norm_backward_unsummed_beta(tmp_path):
    message = edited_message(tmp_path, "layer_norm_backward",
                             "d_beta = rows.sum(axis=0)",
                             "d_beta = g")
    assert "gradient with respect to `beta`" in message
    assert "shape (2, 4); expected shape (4,)" in message


def test_layer_norm_backward_mean_term_forgotten(tmp_path):
    message = edited_message(tmp_path, "layer_norm_backward",
                             "d_xhat - d_xhat.mean(axis=-1, keepdims=True)",
                             "d_xhat")
    assert "gradient with respect to `x`" in message


@pytest.mark.filterwarnings("ignore::RuntimeWarning")       # 0 * inf, on the way to nan
@pytest.mark.parametrize("old, new", [
    (" + eps)", ")"),                                               # no eps at all
    ("np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + eps)",
     "(np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True)) + eps)"),   # eps outside sqrt
])
def test_layer_norm_without_eps_under_the_root_fails_on_a_row_of_equal_numbers(tmp_path, old,
                                                                               new):
    message = edited_message(tmp_path, "layer_norm_backward", old, new)
    assert "a row of equal numbers: its variance is 0, so rstd is 1 / sqrt(eps)" in message
    assert "gradient with respect to `x`" in message


def test_embedding_fancy_index_plus_equals(tmp_path):
    message = edited_message(tmp_path, "embedding",
                             "np.add.at(table_grad, ctx.ids, grad)",
                             "table_grad[ctx.ids] += grad")
    assert "Embedding.backward after embed(table=" in message
    assert "gradient with respect to `table`" in message and "at [1, " in message
    assert "id 1 appears 3 times" in message and "np.add.at" in message


@pytest.mark.parametrize("old, new, given", [
    ("table = np.zeros((context, d_model))",
     "table = np.zeros((context, d_model), dtype=np.float32)", "an array of dtype float32"),
    ("return table", "return table.tolist()", "a list"),
])
def test_sinusoidal_positions_of_another_type_than_its_docstring_says(tmp_path, old, new,
                                                                       given):
    message = edited_message(tmp_path, "sinusoidal_positions", old, new)
    assert message.startswith(f"sinusoidal_positions(context=2, d_model=4) returned {given}")
    assert "dtype float64, as the docstring says" in message


def test_sinusoidal_positions_i_instead_of_2i(tmp_path):
    message = edited_message(tmp_path, "sinusoidal_positions",
                             "two_i = np.arange(0, d_model, 2)",
                             "two_i = np.arange(d_model // 2)")
    assert message.startswith("sinusoidal_positions(context=2, d_model=4)")
    assert "at [1, 2]" in message


def test_sinusoidal_positions_sin_and_cos_swapped(tmp_path):
    message = edited_message(tmp_path, "sinusoidal_positions",
                             "table[:, 0::2] = np.sin(angle)",
                             "table[:, 0::2] = np.cos(angle)",
                             ("table[:, 1::2] = np.cos(angle)", "table[:, 1::2] = np.sin(angle)"))
    assert "at [0, " in message and "with cos in the even columns and sin in the odd" in message


def test_a_gradient_only_gradcheck_catches_is_named_by_its_input(tmp_path):
    # The checkers compare with tinyautograd first; gradcheck is the last word. Its failure must
    # name the input by the learner's name for it, not report a crash.
    from tinyformer.exercises.checking import CheckFailure, load_learner_file
    from tinyformer.exercises.checks.ch04_autograd import _gradcheck
    path = tmp_path / "square.py"
    path.write_text("from tinyautograd import Function\n\n\n"
                    "class Square(Function):\n"
                    "    @staticmethod\n"
                    "    def forward(ctx, x):\n"
                    "        return x * x\n\n"
                    "    @staticmethod\n"
                    "    def backward(ctx, grad):\n"
                    "        (x,) = ctx.inputs\n"
                    "        return grad * x          # 2x is right\n")
    learner = load_learner_file(path)
    with pytest.raises(CheckFailure) as failure:
        _gradcheck(learner, learner.module.Square.apply, {"x": np.ones(3)}, "square(x)")
    message = str(failure.value)
    assert "gradcheck of square(x): the gradient with respect to `x` (shape (3,))" in message
    assert "raised an error" not in message


@pytest.mark.parametrize("old, new, name", [
    ("return unbroadcast(grad * b, np.shape(a)), unbroadcast(grad * a, np.shape(b))",
     "ga = unbroadcast(grad * b, np.shape(a))\n    grad *= a\n"
     "    return ga, unbroadcast(grad, np.shape(b))", "grad"),
    ("return unbroadcast(grad * b, np.shape(a)), unbroadcast(grad * a, np.shape(b))",
     "grad_a = unbroadcast(grad * b, np.shape(a))\n    grad_b = grad      # not a copy\n"
     "    grad_b *= a\n    return grad_a, unbroadcast(grad_b, np.shape(b))", "grad"),
])
def test_mul_backward_that_writes_into_what_it_was_given(tmp_path, old, new, name):
    # The right gradients, but the array handed in is spoilt for whoever reads it next.
    expect_changed_in_place(
        edited_message(tmp_path, "broadcast_gradients", old, new), "mul_backward(grad=",
        f"the {name}", f"A backward pass may read it again, for the other input's gradient, "
        f"say (`{name} *= ...` and `{name}[...] = ...` write into it). Make new arrays instead "
        f"(`{name} * ...`).")


@pytest.mark.parametrize("old, new, says", [
    ("    table[:, 0::2] = np.sin(angle)\n    table[:, 1::2] = np.cos(angle)\n",
     "    table = np.concatenate([np.sin(angle), np.cos(angle)], axis=1)\n",
     "with the sines in the first half of the columns"),
    ("    table[:, 0::2] = np.sin(angle)\n    table[:, 1::2] = np.cos(angle)\n",
     "    table[:, 0::2] = np.cos(angle)\n    table[:, 1::2] = np.sin(angle)\n",
     "with cos in the even columns"),
    ("np.arange(context)[:, None]", "np.arange(1, context + 1)[:, None]",
     "counting the positions from 1"),
    ("two_i = np.arange(0, d_model, 2)", "two_i = np.arange(d_model // 2)",
     "with i in place of 2i"),
])
def test_sinusoidal_positions_names_the_usual_wrong_tables(tmp_path, old, new, says):
    message = edited_message(tmp_path, "sinusoidal_positions", old, new)
    assert message.startswith("sinusoidal_positions(context=2, d_model=4) returned a wrong")
    assert f"That is exactly what you get {says}" in message


def test_sinusoidal_positions_of_the_wrong_dtype_is_told_the_dtype_alone(tmp_path):
    message = edited_message(tmp_path, "sinusoidal_positions", "np.zeros((context, d_model))",
                             "np.zeros((context, d_model), dtype=np.float32)")
    assert "returned an array of dtype float32" in message and "10000" not in message


def test_embedding_backward_by_a_loop_that_works_for_1d_ids_only(tmp_path):
    # Right for ids of shape (N,); with (B, T) ids each turn of the loop takes a row of ids.
    message = edited_message(tmp_path, "embedding",
                             "        np.add.at(table_grad, ctx.ids, grad)",
                             "        for i, g in zip(ctx.ids, grad):\n"
                             "            table_grad[i] += g")
    assert message.startswith("Embedding.backward after embed(") and "ids=[[" in message
    assert "Only rows of ids that appear more than once are wrong" in message
    assert "A loop over ids of shape (2, 6) takes a row of 6 ids at a time" in message


def test_unbroadcast_that_zeroes_the_gradient_it_was_given_does_not_pass(tmp_path):
    # The expected sums are worked out from the checker's grad: zeroed by the learner's
    # function, they matched the zeros it returned.
    message = edited_message(tmp_path, "broadcast_gradients", "    grad = np.asarray(grad)\n",
                             "    grad = np.asarray(grad)\n    grad[...] = 0\n")
    expect_changed_in_place(
        message, "unbroadcast(grad=[[1., 2., 3.], [4., 5., 6.]], shape=(2, 1))", "the grad")


def test_scalar_engine_op_that_returns_nothing_is_told_to_return_out(tmp_path):
    add = "            other.grad += out.grad\n\n        out._backward = _backward"
    message = scalar_engine_message(tmp_path, (add + "\n        return out", add))
    assert message.startswith("computing out = a + b gave None")
    assert "`Value.__add__` must return the new Value, `out`" in message


# -- a gradient left unsummed over the axes its input was broadcast along is named ----------

@pytest.mark.parametrize("old, new, says", [
    ("    return grad.sum(axis=stretched, keepdims=True)     # size-1 axes stay, with size 1",
     "    return grad", "shape (2, 3); expected shape (2, 1).\n    Summed over axis 1 it is "
                        "exactly the expected value"),
    ("    grad = grad.sum(axis=tuple(range(added)))          # the leading axes broadcasting "
     "added", "    pass", "shape (2, 3); expected shape (3,).\n    Summed over axis 0 it is "
                          "exactly the expected value"),
    ("grad.sum(axis=tuple(range(added)))", "grad.sum(axis=tuple(range(added)), keepdims=True)",
     "shape (1, 3); expected shape (3,).\n    The numbers are right; only the axes of size 1 "
     "differ: drop the extra ones"),
    ("grad.sum(axis=stretched, keepdims=True)", "grad.sum(axis=stretched)",
     "shape (2,); expected shape (2, 1).\n    The numbers are right; only the axes of size 1 "
     "differ: a sum keeps its axis, with size 1, given keepdims=True."),
    ("unbroadcast(grad * a, np.shape(b))", "grad * a",
     "gradient with respect to `b` an array of shape (2, 3); expected shape (3,).\n    Summed "
     "over axis 0 it is exactly the expected value: a value broadcast along an axis"),
])
def test_broadcast_gradients_a_sum_left_out_is_named(tmp_path, old, new, says):
    assert says in edited_message(tmp_path, "broadcast_gradients", old, new)


@pytest.mark.parametrize("old, new, says", [
    ("d_beta = rows.sum(axis=0)", "d_beta = g",
     "`beta` an array of shape (2, 4); expected shape (4,).\n    Summed over axis 0"),
    ("d_beta = rows.sum(axis=0)", "d_beta = g.sum(axis=0)",      # 3-D x: one axis summed of two
     "`beta` an array of shape (3, 5); expected shape (5,).\n    Summed over axis 0"),
    ("d_gamma = (rows * x_hat.reshape(rows.shape)).sum(axis=0)", "d_gamma = g * x_hat",
     "`gamma` an array of shape (2, 4); expected shape (4,).\n    Summed over axis 0"),
])
def test_layer_norm_backward_unsummed_gamma_or_beta_is_told_to_sum(tmp_path, old, new, says):
    assert says in edited_message(tmp_path, "layer_norm_backward", old, new)


def test_embedding_backward_that_returns_no_array_is_told_so(tmp_path):
    message = edited_message(tmp_path, "embedding", "        return table_grad",
                             "        return {}")
    assert "returns as the gradient with respect to `table` {}, which is not an array of " \
           "numbers." in message
