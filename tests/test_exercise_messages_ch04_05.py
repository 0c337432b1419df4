"""The checkers of chapters 4 (autograd by hand) and 5 (embeddings and positions) say what is
wrong: each test breaks a reference solution the way a learner might and reads the message."""

import numpy as np
import pytest
from solutions import edited_message



def test_scalar_engine_assigning_instead_of_adding(tmp_path):
    message = edited_message(tmp_path, "scalar_engine",
                             "self.grad += other.data * out.grad",
                             "self.grad = other.data * out.grad",
                             ("other.grad += self.data * out.grad",
                              "other.grad = self.data * out.grad"))
    assert "y = a * a" in message and "a.grad is 3" in message and "= 6" in message
    assert "+=" in message


def test_scalar_engine_no_topological_order(tmp_path):
    # Walking the graph depth-first and passing gradients on at once: a node that feeds two
    # operations passes its gradient on before it has received all of it.
    message = edited_message(
        tmp_path, "scalar_engine",
        "        visit(self)\n        self.grad = 1.0\n        for value in reversed(order):\n"
        "            value._backward()",
        "        self.grad = 1.0\n\n        def push(value):\n            value._backward()\n"
        "            for child in value._children:\n                push(child)\n\n"
        "        push(self)")
    assert "c = a * b" in message and "should be d y / d" in message
    assert "topological" in message


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


def test_softmax_backward_without_the_sum(tmp_path):
    message = edited_message(tmp_path, "softmax_cross_entropy_backward",
                             "return p * (g - (g * p).sum(axis=-1, keepdims=True))",
                             "return p * g")
    assert "Softmax.backward after softmax(z=" in message
    assert "gradient with respect to `z`" in message and "at [" in message


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


def test_layer_norm_backward_wrong_gamma(tmp_path):
    message = edited_message(tmp_path, "layer_norm_backward",
                             "d_gamma = (rows * x_hat.reshape(rows.shape)).sum(axis=0)",
                             "d_gamma = rows.sum(axis=0)")
    assert "gradient with respect to `gamma`" in message and "at [" in message


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


def test_embedding_fancy_index_plus_equals(tmp_path):
    message = edited_message(tmp_path, "embedding",
                             "np.add.at(table_grad, ctx.ids, grad)",
                             "table_grad[ctx.ids] += grad")
    assert "Embedding.backward after embed(table=" in message
    assert "gradient with respect to `table`" in message and "at [1, " in message
    assert "id 1 appears 3 times" in message and "np.add.at" in message


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
    assert "at [0, " in message and "sin if c is even" in message


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
