"""A Function of your own that keeps an array on its ctx in the forward: torch's
save_for_backward written as an attribute. Under create_graph=True the recorded backward
read it as a constant and lost every second derivative through it, silently."""

import re

import numpy as np
import pytest

import tinyautograd as ta


class KeepsInput(ta.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return x * x

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad * ctx.x


class KeepsOutput(ta.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.y = np.exp(x)
        return ctx.y

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.y


class KeepsSeveral(ta.Function):
    """x * w, keeping both, as torch's ctx.save_for_backward(x, w) would."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.saved = (x, w)
        return x * w

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved
        return grad * w, grad * x


class ReadsOperands(ta.Function):
    """The way: inputs through ctx.operands; what is kept on ctx is no input's array (a scale
    computed in the forward, and a constant input's own array, which has no gradient)."""

    @staticmethod
    def forward(ctx, x, c):
        ctx.scale, ctx.c = np.full(x.shape, 2.0), c
        return x * x * c

    @staticmethod
    def backward(ctx, grad):
        x, _ = ctx.operands
        return ctx.scale * grad * x * ctx.c, None


def x64(*shape):
    return ta.Tensor(np.random.default_rng(0).normal(size=shape), requires_grad=True,
                     dtype=np.float64)


@pytest.mark.parametrize("apply, kept, read", [
    (KeepsInput.apply, "ctx.x holds input 0's array", "ctx.operands"),
    (KeepsOutput.apply, "ctx.y holds the output's array", "ctx.result"),
    (lambda x: KeepsSeveral.apply(x, x64(3) * 1), "ctx.saved holds input 0's array",
     "ctx.operands"),
])
def test_an_array_kept_on_ctx_is_refused_under_create_graph_saying_what_to_read(apply, kept,
                                                                                 read):
    x = x64(3)
    y = apply(x).sum()
    (g,) = ta.grad(y, [x], retain_graph=True)              # first order: as it always was
    assert g.shape == (3,)
    with pytest.raises(RuntimeError, match=re.escape(kept) + ".*second derivative.*"
                       + re.escape(read)):
        ta.grad(y, [x], create_graph=True)
    # where gradgradcheck's message was a wrong number ("analytic 0, numeric ...")
    with pytest.raises(RuntimeError, match="under create_graph=True: " + re.escape(kept)):
        ta.gradgradcheck(apply, x)


def test_what_is_no_differentiable_inputs_array_may_be_kept():
    x = x64(3, 2)
    c = ta.Tensor(np.random.default_rng(1).normal(size=(3, 2)), dtype=np.float64)
    assert ta.gradgradcheck(lambda t: ReadsOperands.apply(t, c), x)


class Flip(ta.Function):
    """A forward that hands back a view of its input, without saying views_input = True."""

    @staticmethod
    def forward(ctx, x):
        return x[::-1]

    @staticmethod
    def backward(ctx, grad):
        return grad[::-1]


class FlipSaid(Flip):
    views_input = True


@pytest.mark.parametrize("op", [Flip, FlipSaid])
def test_a_change_in_place_through_a_view_that_a_function_gave_is_caught(op):
    # Undeclared, the view did not share its input's stamp of changes: a change through it
    # went unseen, and the backward that read the input gave 22, 24, 26 where 2, 4, 6 is right.
    w = ta.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = w * 1.0
    loss = (h * h).sum()                     # its backward reads h
    with ta.no_grad():
        flipped = op.apply(h)
        flipped += 10                        # h's array too
    np.testing.assert_array_equal(h.data, [11.0, 12.0, 13.0])
    with pytest.raises(RuntimeError, match="backward of mul: its input 0 .* was changed in "
                                           "place after mul used it"):
        loss.backward()


def test_a_view_a_function_gave_is_writeable_as_its_input_and_its_gradient_flows():
    w = ta.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    flipped = Flip.apply(w * 1.0)
    assert flipped.data.flags.writeable
    (flipped * ta.Tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(w.grad, [3.0, 2.0, 1.0])


class Positive(ta.Function):
    """An integer result: outside the graph, as torch leaves a Function's integer outputs."""

    @staticmethod
    def forward(ctx, x):
        return (x > 0).astype(np.int64)

    @staticmethod
    def backward(ctx, grad):
        return grad


def test_backward_through_an_integer_result_says_that_integers_carry_no_gradient():
    # It said only "nothing it was computed from had requires_grad=True, or it was computed
    # under no_grad()": neither was so.
    x = ta.Tensor([1.0, -2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=re.escape(
            "or it was computed through integers or booleans (argmax, a comparison, "
            "astype(int), a Function's integer result), which carry no gradient")):
        (Positive.apply(x) * 1.0).sum().backward()


class ReLUKeepsInput(ta.Function):
    """torch's tutorial ReLU: the input kept, for a mask alone."""

    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return np.maximum(x, 0)

    @staticmethod
    def backward(ctx, grad):
        return grad * (ctx.x > 0)


class ReLUKeepsMask(ReLUKeepsInput):
    @staticmethod
    def forward(ctx, x):
        ctx.mask = x > 0
        return np.maximum(x, 0)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.mask


def test_an_input_kept_for_a_mask_is_refused_saying_to_keep_the_mask_which_works():
    # The refusal cannot tell a mask's use from a value's: it says the way that works here.
    x = x64(5)
    with pytest.raises(RuntimeError, match=re.escape(
            "(a mask made from it in forward, ctx.mask = x > 0, may be kept: a constant)")):
        ta.gradgradcheck(ReLUKeepsInput.apply, x)
    assert ta.gradgradcheck(ReLUKeepsMask.apply, x)
