"""The primitive operations: each one's formula as its docstring, then its forward, then its
backward.

Reading guide: in `backward(ctx, grad)`, `grad` is dL/d(output), and the method returns
dL/d(input) for each input, by the chain rule: dL/dx = dL/dy * dy/dx. `ctx.operands` are the
inputs and `ctx.result` the output. Gradients may come back in the broadcast shape; the engine
sums them to each input's shape (`engine._sum_to`), so no op has to think about broadcasting.

A backward is written once, for numpy arrays (an ordinary backward pass) and for Tensors (under
create_graph, where it is recorded): with the operators and methods the two share. The few
functions they spell differently (`np.exp(a)` but `t.exp()`) are the small helpers just below.
"""

from __future__ import annotations

import math
from typing import Any, Sequence, Union

import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple
from numpy.typing import ArrayLike

from . import kernels
from .engine import DEFAULT_DTYPE, Function, ShapeError, Tensor

# ---------------------------------------------------------------------------- arrays or Tensors
# The same call for a numpy array and a Tensor; on Tensors it is recorded under create_graph.

Array = Union[np.ndarray, Tensor]


def exp(x: Array) -> Array:
    """e^x."""
    return x.exp() if isinstance(x, Tensor) else np.exp(x)


def log(x: Array) -> Array:
    """The natural logarithm."""
    return x.log() if isinstance(x, Tensor) else np.log(x)


def sqrt(x: Array) -> Array:
    """The square root."""
    return x.sqrt() if isinstance(x, Tensor) else np.sqrt(x)


def sigmoid(x: Array) -> Array:
    """1 / (1 + e^-x), by Sigmoid's formula, which never overflows."""
    return x.sigmoid() if isinstance(x, Tensor) else Sigmoid.forward(None, x)


def relu(x: Array) -> Array:
    """max(x, 0)."""
    return x.relu() if isinstance(x, Tensor) else np.maximum(x, 0)


def power(a: Array, b: Array) -> Array:
    """a ** b, by Pow's rule for a negative b (1 / a ** -b)."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return a ** b
    return Pow.forward(None, a, b)


def concat(xs: Sequence[Array], axis: int = 0) -> Array:
    """xs joined along `axis`; recorded when any of them is a Tensor."""
    if any(isinstance(x, Tensor) for x in xs):
        return Concat.apply(*xs, axis=axis)
    return np.concatenate(xs, axis=axis)


def broadcast_to(x: Array, shape: tuple[int, ...]) -> Array:
    """x repeated to `shape` (a view)."""
    return x.broadcast_to(shape) if isinstance(x, Tensor) else np.broadcast_to(x, shape)


def where(cond: ArrayLike, a: Array, b: Array) -> Array:
    """a where cond else b; cond is a constant (boolean array or Tensor)."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return Where.apply(cond, a, b)
    return np.where(cond, a, b)


def matmul(a: Array, b: Array) -> Array:
    """a @ b; on arrays, a batch times a matrix runs as one large product (`_matmul`)."""
    return a @ b if isinstance(a, Tensor) or isinstance(b, Tensor) else _matmul(a, b)


def index_add(x: Array, index: Any, shape: tuple[int, ...]) -> Array:
    """zeros(shape) with x added at [index], repeats accumulating (GetItem's backward)."""
    if isinstance(x, Tensor):
        return IndexAdd.apply(x, index=index, shape=shape)
    return _scatter_add(x, index, shape)


def _floating(x: np.ndarray) -> np.ndarray:
    """x, or an integer or boolean x as the default float: the ops whose results are fractions
    (`/`, exp, sigmoid, softmax...) give float32 from integers, as torch's do (numpy's float64)."""
    return x if x.dtype.kind in "fc" else x.astype(DEFAULT_DTYPE)


_HALF, _SINGLE = np.dtype(np.float16), np.dtype(np.float32)


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype that the reductions (mean, var), the fused ops (softmax, log_softmax, gelu,
    layer_norm, rms_norm, swiglu, softcap) and the elementwise formulas of more than one step
    (sigmoid, softplus, and tanh's backward) compute in for inputs of `dtype`: float16 in
    float32, the result rounded back to float16 once, as torch computes half precision.
    float16's largest number is 65504: a sum of 70,000 ones, the count 70,000 itself, or the
    sum of squares of a row of 768 values near 10 would be inf; and each step rounded to
    float16's 11 bits loses more of the last ones (1 - y^2 near y = 1). Any other dtype
    computes in itself. (The engine gives each gradient its input's dtype.)"""
    return _SINGLE if dtype == _HALF else dtype


def widened(x: Array) -> Array:
    """x (an array or a Tensor) in its `compute_dtype`: a float16 x as float32 (a Tensor's
    astype is recorded), any other x itself, not a copy."""
    wide = compute_dtype(x.dtype)
    return x if wide == x.dtype else x.astype(wide)

# ---------------------------------------------------------------------------- arithmetic


class Add(Function):
    """y = a + b;  dy/da = 1, dy/db = 1"""

    shape_errors = "broadcast"

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    """y = a - b;  dy/da = 1, dy/db = -1"""

    shape_errors = "broadcast"

    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, grad):
        return grad, -grad


class Neg(Function):
    """y = -x;  dy/dx = -1"""

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Mul(Function):
    """y = a * b;  dy/da = b, dy/db = a"""

    shape_errors = "broadcast"

    @staticmethod
    def forward(ctx, a, b):
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.operands
        # Skip the product nobody needs: multiplying by a constant is common (x * 0.5).
        grad_a = grad * b if ctx.needs_input_grad[0] else None
        grad_b = grad * a if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


class Div(Function):
    """y = a / b;  dy/da = 1/b, dy/db = -a/b^2 = -y/b"""

    shape_errors = "broadcast"

    @staticmethod
    def forward(ctx, a, b):
        return _floating(a) / _floating(b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.operands
        grad_a = grad / b if ctx.needs_input_grad[0] else None
        grad_b = -grad * ctx.result / b if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


class Remainder(Function):
    """y = a % b = a - b floor(a/b);  dy/da = 1, dy/db = -floor(a/b)

    numpy's remainder, torch's: the result takes the divisor's sign (-7 % 3 is 2, 7 % -3 is
    -2), so that a == (a // b) * b + a % b. floor(a/b) is a step, flat between its jumps: the
    backward reads it as a constant, so its own derivatives are 0, as torch's. (torch's
    number % tensor has no derivative for the tensor; this one is the formula above.)

    b = 0: NaN for floats, with numpy's warning, as torch's; integers are refused, as torch
    refuses them (`check_integer_division`)."""

    shape_errors = "broadcast"

    @staticmethod
    def forward(ctx, a, b):
        check_integer_division("%", a, b)
        return np.remainder(a, b)

    @staticmethod
    def backward(ctx, grad):
        grad_b = None
        if ctx.needs_input_grad[1]:
            quotient = np.floor_divide(ctx.array(0), ctx.array(1))         # a constant
            grad_b = -grad * quotient
        return grad, grad_b


def check_integer_division(symbol: str, a: np.ndarray, b: np.ndarray) -> None:
    """The refusals of `a // b` and `a % b` (and `//=`, `%=`) where both are integers or
    booleans, as torch's: a divisor that holds 0 raises Python's ZeroDivisionError (torch's is
    a RuntimeError that says "ZeroDivisionError"; numpy would give 0 there, with only a
    warning, a wrong number that looks right), and booleans have no division (numpy would
    make int8 of them). Floats divide by 0 as `/` does: inf or NaN."""
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return
    if a.dtype.kind == b.dtype.kind == "b":
        raise TypeError(f"{symbol} of two boolean tensors: convert them to integers first, "
                        f"x.astype(np.int64)")
    if not b.all():
        raise ZeroDivisionError(f"integer {symbol} by zero: the divisor holds 0; divide "
                                f"floats for inf and NaN, or replace the zeros first")


class Pow(Function):
    """y = a ** b;  dy/da = b * a^(b-1), dy/db = y * ln(a)

    At a = 0 and at a = NaN the formulas give no number: b a^(b-1) is 0 * inf and 0 * NaN
    where b = 0 (y = 1 is flat there), and at a = 0, y ln a is 0 * (-inf) where b > 0,
    1 * (-inf) where b = 0. Those derivatives are 0, as torch takes them.

    A negative power is the reciprocal of the positive one, y = 1 / a^-b, as torch computes
    x ** -0.5 (1 / sqrt(x)): NaN at a = -inf, as at every negative a, and -inf at -0.0, where
    C's pow (numpy's) gives 0 and +inf. numpy's x ** 0.5 is already sqrt(x), and so the
    gradient of x ** 0.5, 0.5 x^-0.5, is x.sqrt()'s: NaN at -inf and -inf at -0.0. (An
    exponent of one number is such a shortcut here also as a Tensor; torch's x ** tensor(0.5)
    and an exponent of several numbers, in both, follow C's pow.)"""

    shape_errors = "broadcast"

    @staticmethod
    def forward(ctx, a, b):
        # np.power, not **: numpy's ** takes a shortcut to np.square for the exponent 2, which
        # before numpy 2.3 made a bool base int8 (np.power, as torch, makes it int64).
        negative = np.less(b, 0)
        if np.result_type(a, b).kind != "f" or not negative.any():
            return np.power(a, b)      # (integers to a negative power: numpy refuses them)
        y = np.asarray(np.power(a, np.abs(b)))                  # a^|b|, a new array of ours
        return np.reciprocal(y, out=y, where=negative)          # 1 / a^-b where b < 0

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.operands
        base, exponent = ctx.array(0), ctx.array(1)                  # constants, for masks
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            flat = (exponent == 0) & ((base == 0) | np.isnan(base))
            grad_a = grad * b * power(_one_where(a, flat), b - 1)
        if ctx.needs_input_grad[1]:
            grad_b = grad * ctx.result * log(_one_where(a, (base == 0) & (exponent >= 0)))
        return grad_a, grad_b


def _one_where(a, mask):
    """a with 1 in place of the masked elements of Pow's base: then b 1^(b-1) = b = 0 and
    ln 1 = 0 there, the derivatives torch gives, and the derivatives of these, under
    create_graph, are finite too (a where() after the product would keep the NaN in them).
    Where nothing is masked, a itself: the usual graph is unchanged."""
    if not mask.any():
        return a
    return where(mask, np.ones((), a.dtype), a)


class MatMul(Function):
    """Y = A @ B, batched and broadcast as numpy does;  dL/dA = G @ B^T, dL/dB = A^T @ G"""

    @staticmethod
    def forward(ctx, a, b):
        try:
            return _matmul(a, b)
        except ValueError:      # the shapes are looked at only then: generation runs ~25 a token
            raise _matmul_shape_error(a, b) from None

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.operands
        return _matmul_grads(a, b, grad, ctx.needs_input_grad)


def _matmul_shape_error(a, b):
    """What is wrong with the shapes of a @ b, which numpy refused."""
    if a.ndim == 0 or b.ndim == 0:
        return ShapeError(f"matmul: {a.shape} @ {b.shape}: operands must have at least one "
                          f"axis; use * to multiply by a scalar")
    inner_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if a.shape[-1] != inner_b:
        return ShapeError(f"matmul: {a.shape} @ {b.shape}: inner sizes {a.shape[-1]} and "
                          f"{inner_b} differ")
    return ShapeError(f"matmul: {a.shape} @ {b.shape}: the batch axes "
                      f"{a.shape[:-2]} and {b.shape[:-2]} do not broadcast")


def _matmul(a, b):
    """a @ b. numpy multiplies (B, T, k) @ (k, m) by one GEMM per batch element; with a matrix
    on the right, fold the batch into the rows instead: one large GEMM, which BLAS does faster."""
    if b.ndim == 2 and a.ndim > 2:
        rows = a.reshape(math.prod(a.shape[:-1]), a.shape[-1])
        return (rows @ b).reshape(a.shape[:-1] + b.shape[-1:])
    return a @ b


def _matmul_grads(a, b, grad, needs_input_grad):
    """The gradients of a @ b, for numpy arrays and Tensors alike (MatMul's and Linear's)."""
    # numpy reads a 1-D left operand as a row vector and a 1-D right operand as a column,
    # then drops that axis from the result. Put the axes back, so one rule serves all cases.
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    # A matrix on the right (a Linear's weight) leaves a's batch axes as they are: numpy's
    # broadcast_shapes, which costs more than a small product, only where b has some.
    batch = (a2.shape[:-2] if b2.ndim == 2
             else np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]))
    grad = grad.reshape(batch + (a2.shape[-2], b2.shape[-1]))          # (..., n, m)
    grad_a = grad_b = None
    if needs_input_grad[0]:
        grad_a = matmul(grad, b2.swapaxes(-1, -2))                      # (..., n, k)
        if a.ndim == 1:
            grad_a = grad_a.reshape(grad_a.shape[:-2] + grad_a.shape[-1:])
    if needs_input_grad[1]:
        if b2.ndim == 2 and a2.ndim > 2:
            # A weight shared by every batch element: fold the batch into the rows and do
            # one large GEMM, instead of a GEMM per element and a sum over the batch.
            k, m = b2.shape
            rows = math.prod(a2.shape[:-1])            # (not -1: k or m may be 0)
            grad_b = matmul(a2.reshape(rows, k).T, grad.reshape(rows, m))  # (k, m)
        else:
            grad_b = matmul(a2.swapaxes(-1, -2), grad)                  # (..., k, m)
        if b.ndim == 1:
            grad_b = grad_b.reshape(grad_b.shape[:-1])
    return grad_a, grad_b


def _torch_weight_hint(x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> str:
    """For linear's shape errors: a weight in torch's layout (out, in), whose transpose would
    fit the input, is the likely mistake of code ported from torch's F.linear."""
    if len(w_shape) == 2 and x_shape[-1:] == w_shape[1:] and w_shape[0] != w_shape[1]:
        return " (torch's F.linear takes (out, in): pass weight.T)"
    return ""


class Linear(Function):
    """y = x @ W + b, one op instead of two (nn.Linear's);  the gradients are MatMul's for x
    and W, and for b the gradient itself, summed over every axis b was broadcast along.

    Fused so that the bias is added in place into the product, not into a second array of
    the output's size, and its gradient is one row sum instead of an Add node and a Sum."""

    @staticmethod
    def forward(ctx, x, w, b):
        if w.ndim != 2 or b.shape != w.shape[-1:]:
            hint = _torch_weight_hint(x.shape, w.shape) if b.shape == w.shape[:1] else ""
            raise ShapeError(f"linear: needs weight (in, out) and bias (out,), got {w.shape} "
                             f"and {b.shape}{hint}")
        y = MatMul.forward(ctx, x, w)          # checked and folded as MatMul does
        y += b                                 # y is new: add in place
        return y

    @staticmethod
    def backward(ctx, grad):
        x, w, _ = ctx.operands
        grad_x, grad_w = _matmul_grads(x, w, grad, ctx.needs_input_grad)
        return grad_x, grad_w, grad            # the engine sums grad back to b's shape


# ---------------------------------------------------------------------------- elementwise


class Exp(Function):
    """y = e^x;  dy/dx = y"""

    @staticmethod
    def forward(ctx, x):
        return np.exp(_floating(x))

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.result


class Log(Function):
    """y = ln x;  dy/dx = 1/x"""

    @staticmethod
    def forward(ctx, x):
        return np.log(_floating(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.operands
        return grad / x


class Sqrt(Function):
    """y = sqrt(x);  dy/dx = 1 / (2 y)"""

    @staticmethod
    def forward(ctx, x):
        return np.sqrt(_floating(x))

    @staticmethod
    def backward(ctx, grad):
        return grad / (2 * ctx.result)


class Tanh(Function):
    """y = tanh x;  dy/dx = 1 - y^2
    (float16's backward computes in float32, `compute_dtype`: 1 - y^2 rounded to float16
    first lost the last bits of the small slopes, 0.009766 where torch's is 0.00974 at x = 3)"""

    @staticmethod
    def forward(ctx, x):
        return np.tanh(_floating(x))

    @staticmethod
    def backward(ctx, grad):
        y, grad = widened(ctx.result), widened(grad)
        return grad * (1 - y * y)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x);  dy/dx = y (1 - y)
    (float16 computes in float32, forward and backward, and rounds once: `compute_dtype`)"""

    @staticmethod
    def forward(ctx, x):
        # Two branches so that e^(-x) never overflows: for x < 0 use e^x / (1 + e^x).
        x = _floating(x)
        dtype, x = x.dtype, widened(x)
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        y, grad = widened(ctx.result), widened(grad)
        return grad * y * (1 - y)


class Softplus(Function):
    """y = ln(1 + e^x);  dy/dx = e^x / (1 + e^x) = sigmoid(x)
    (float16 computes in float32, forward and backward, and rounds once: `compute_dtype`)"""

    @staticmethod
    def forward(ctx, x):
        # ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|): e^-|x| is at most 1, so nothing overflows
        # for large x, and log1p keeps the tiny values of large negative x.
        x = _floating(x)
        dtype, x = x.dtype, widened(x)
        return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, grad = widened(ctx.operands[0]), widened(grad)
        return grad * sigmoid(x)


class Relu(Function):
    """y = max(x, 0);  dy/dx = 0 where x <= 0, else 1 (at a NaN x too, as torch's: the NaN
    is blamed where it was made, not at each ReLU after it)"""

    @staticmethod
    def forward(ctx, x):
        return np.maximum(x, 0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.operands
        return grad * ~(x <= 0)       # a constant mask: the step has zero derivative


class Abs(Function):
    """y = |x|;  dy/dx = sign(x) (0 at 0, as numpy's sign and torch choose; 0 at NaN too, as
    torch's sign, where numpy's is NaN)"""

    @staticmethod
    def forward(ctx, x):
        return np.abs(x)

    @staticmethod
    def backward(ctx, grad):
        # a constant: the sign has zero derivative
        return grad * np.nan_to_num(np.sign(ctx.array(0)))


_GELU_C = math.sqrt(2 / math.pi)   # a Python float, so float32 stays float32
_GELU_CAP = 80.0    # the cap on -2u: e^80 is 5.5e34, below float32's largest, 3.4e38
# (computed in float32 for float16, whose largest is 65504: `compute_dtype`)
# Above x = 10, e^(-2u) is below 1.3e-38: y = x and dy/dx = 1 to the last bit in float32 and
# float64 alike (the slope's excess, 2 x du/dx h e, is below 3e-36), and they are taken so.
# The formula would give NaN there, from x^3 overflowing (float32 from x = 1.2e13, and +inf):
# inf * e = inf * 0.
_GELU_TOP = 10.0


class Gelu(Function):
    """The tanh approximation of GELU (GPT-2, BERT):
        y = x/2 (1 + tanh u),  u = sqrt(2/pi) (x + 0.044715 x^3)
        dy/dx = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) du/dx
        du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    Computed as (1 + tanh u)/2 = 1/(1 + e^(-2u)) = h, the same function: then
        y = x h,   dy/dx = h + 2 x h (1 - h) du/dx = h (1 + 2 x du/dx h e^(-2u))
    since 1 - h = h e^(-2u).
    """

    @staticmethod
    def forward(ctx, x):
        x = _floating(x)
        # float16 computes in float32 (`compute_dtype`): e^80 would overflow float16. Backward
        # then keeps float32's dy/dx; the engine gives the gradient x's dtype.
        dtype, x = x.dtype, widened(x)
        # kernels.py's loop computes the formulas; TINYAUTOGRAD_KERNELS=numpy runs them as
        # written in `_gelu_arrays` (to try an edit of them).
        gelu = kernels.gelu if kernels.usable(x) else _gelu_arrays
        y, ctx.derivative = gelu(x, slope=ctx.needs_input_grad[0])       # dy/dx: for backward
        return y.astype(dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        # Forward kept dy/dx. The first backward takes it and multiplies into it (a new array
        # of this size costs more in page faults than the product); a later one through a
        # kept graph computes it again from x, and so does one under create_graph, where the
        # kept array would be a constant and the second derivative would miss it.
        slope, ctx.derivative = ctx.derivative, None
        if slope is None or ctx.create_graph:
            slope = _gelu_slope(ctx.operands[0])
        slope *= grad
        return slope


def _gelu_arrays(x, slope=True):
    """Gelu's y for a float array x, and dy/dx (None without `slope`), by the class's
    formulas on numpy arrays: what `kernels.gelu` computes in a loop."""
    # Why e^(-2u): 1 - h no longer comes from subtracting tanh u from 1, which loses the small
    # values of the negative tail; and where numpy's float32 kernels are AVX2 ones, its exp
    # runs twice as fast as its tanh (the op: 15% faster). With AVX-512 kernels tanh was found
    # the faster (BENCHMARKS.md). The cube is never x ** 3 but x^2 (which serves u and du/dx
    # alike) times x: numpy raises float32 to a power through the general pow(), some hundred
    # times slower than a multiplication.
    #
    # In place, where a new array of this size would cost its page faults, more than the
    # arithmetic on it. With C = sqrt(2/pi) and a = 0.044715, factored:
    #     -2u = x (-2C - 2aC x^2),   2 du/dx = 2C + 6aC x^2,   e = e^(-2u)
    # x^2 serves both. The first buffer goes x^2 -> -2u -> e, then h (a second array, when
    # the gradient needs e as well) and y. The other, only when a gradient is wanted, holds
    # dy/dx for backward: computed here, while x is in the cache, backward's chain rule is
    # one product instead of the formula on arrays read back cold. -2u is capped at 80
    # (x below -9.67), so that e cannot overflow: products are taken as d h e, h e = 1 - h
    # <= 1, so that none overflows on the way either. Past the cap y and dy/dx are set to
    # 0: |y| is below 1.8e-34 there and falls as e^(-0.07 |x|^3), where x h(cap) would
    # grow with |x| (-18 at x = -1e36). Above x = 10 (`_GELU_TOP`) h is 1: y = x h is x,
    # and dy/dx is h with 2 x du/dx set to 0, which x^3 makes inf from x = 1.2e13.
    b = np.multiply(x, x, out=np.empty_like(x))       # out=: an array even when x is 0-d
    d = None
    if slope:
        # out=, as for b: on a 0-d b, `b * c` is a numpy scalar, which the copyto()s
        # of the tails below refuse
        d = np.multiply(b, 6 * 0.044715 * _GELU_C, out=np.empty_like(b))
        d += 2 * _GELU_C
        d *= x                                         # 2 x du/dx
        top = x > _GELU_TOP
        if top.any():            # there dy/dx = h = 1, where d = inf would make inf * e NaN
            np.copyto(d, 0, where=top)
    b *= -2 * 0.044715 * _GELU_C
    b += -2 * _GELU_C
    b *= x                                             # -2u
    # The cap by a masked copy: numpy's minimum of float32s and a number runs at a
    # quarter of a multiplication's speed (AVX2 builds), a comparison and copyto in a third
    # of its time, and only where some x is that far out. NaN stays NaN, as with minimum.
    tail = b > _GELU_CAP
    capped = tail.any()
    if capped:
        np.copyto(b, _GELU_CAP, where=tail)
    e = np.exp(b, out=b)
    h = np.add(e, 1, out=e if d is None else np.empty_like(e))   # (d needs e again)
    np.divide(1, h, out=h)                             # h = 1 / (1 + e)
    if d is not None:
        d *= h
        d *= e
        d += 1
        d *= h
        if capped:
            np.copyto(d, 0, where=tail)
    h *= x                                             # y
    if capped:
        np.copyto(h, 0, where=tail)
    return h, d


def _gelu_slope(x):
    """dy/dx of GELU for an array or a Tensor: forward's factored form, h (1 + 2 x du/dx h e),
    computed step for step in forward's order, so that on arrays it gives forward's bits.

    Past the cap the slope is 0, above x = 10 it is 1, and the formula is taken at x = 0 in
    both rather than at x: in float32 x^2 is inf from |x| = 2e19 on, and under create_graph the
    second derivative that flows back through those infs, though times 0, would be NaN
    (inf * 0). Both are constants there: the second derivative is 0."""
    x = widened(x)                                     # as forward: float16 in float32
    if kernels.usable(x):                              # forward's loops, for forward's bits
        return kernels.gelu(x)[1]
    a = x.data if isinstance(x, Tensor) else x         # (the tails are constant: not recorded)
    tail = (a * a * (-2 * 0.044715 * _GELU_C) + -2 * _GELU_C) * a > _GELU_CAP
    top = a > _GELU_TOP
    capped, topped = tail.any(), top.any()
    if capped or topped:
        x = where(tail | top, 0.0, x)
    x2 = x * x
    two_x_du_dx = (x2 * (6 * 0.044715 * _GELU_C) + 2 * _GELU_C) * x
    e = exp((x2 * (-2 * 0.044715 * _GELU_C) + -2 * _GELU_C) * x)     # e^(-2u), -2u <= cap
    h = 1 / (e + 1)
    slope = (two_x_du_dx * h * e + 1) * h
    if capped:
        slope = where(tail, 0.0, slope)                                # 0 past the cap
    if topped:
        slope = where(top, 1.0, slope)                                 # 1 above the top
    return slope


# ---------------------------------------------------------------------------- reductions


def _reduced_axes(shape, axis):
    """The axes that a reduction over `axis` combines, each counted from the start: all of
    them for None, else the one axis or those of the tuple (negative ones count from the end).
    An axis out of range is numpy's AxisError, a repeated one its ValueError. A 0-d x has no
    axis: numpy and torch take axis 0 or -1 as the whole of it, and keep it 0-d."""
    if axis is None:
        return tuple(range(len(shape)))
    if not shape:
        return ()
    return normalize_axis_tuple(axis, len(shape))


def _keepdims_shape(shape, axis):
    """The shape of a reduction's result with keepdims=True: reduced axes become 1."""
    axes = _reduced_axes(shape, axis)
    return tuple(1 if i in axes else size for i, size in enumerate(shape))


def _count(shape, axis):
    """How many elements a reduction over `axis` combines into each result (mean's, var's)."""
    return math.prod(shape[i] for i in _reduced_axes(shape, axis))


def _refuse_empty_reduction(op, x, axis):
    """numpy's error for the max of nothing names its ufunc, not the op or the axis: ours says
    which. (torch raises as well; along an axis that is not empty, an empty x is fine.)"""
    if x.size:
        return
    if axis is None:
        raise ValueError(f"{op}: the tensor of shape {x.shape} is empty, so it has no {op}; "
                         f"pass an axis whose size is not 0")
    given = axis if isinstance(axis, (tuple, list)) else (axis,)   # each named as given
    for a, i in zip(given, _reduced_axes(x.shape, axis)):
        if x.shape[i] == 0:
            raise ValueError(f"{op}: axis {a} of shape {x.shape} has size 0, so there is no "
                             f"{op} along it")


class Sum(Function):
    """y = sum of x over axis;  every summed element gets the gradient of its sum

    float16 accumulates in float32 and rounds the sum once, as torch's (`compute_dtype`):
    numpy's float16 sum along any axis but the last adds in float16, where a running sum
    stops growing at 2048 for ones, 256 for tenths. Integers and booleans sum to int64, as
    torch's (uint64 to uint64, which int64 cannot hold): numpy's sum of uint8, uint16 or
    uint32 is uint64, where a difference of two counts below 0 wraps round to 2^64 - 1."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axis = axis
        wide = compute_dtype(x.dtype)
        if wide != x.dtype:
            return x.sum(axis=axis, keepdims=keepdims, dtype=wide).astype(x.dtype)
        if x.dtype.kind == "u" and x.dtype.itemsize < 8:   # (signed ones: int64 already)
            return x.sum(axis=axis, keepdims=keepdims, dtype=np.int64)
        return x.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        shape = ctx.inputs[0].shape
        return broadcast_to(grad.reshape(_keepdims_shape(shape, ctx.axis)), shape)


def _mean_kept(x, axis):
    """x's mean over `axis`, the axis kept as 1 (an array's, or a Tensor's, recorded); of
    nothing NaN, as torch's, without numpy's warning (0 / nan is nan, quietly)."""
    return x.sum(axis=axis, keepdims=True) / (_count(x.shape, axis) or np.nan)


class Var(Function):
    """y = sum((x - mean)^2) / divisor over axis;  dy/dx = 2 (x - mean) / divisor

    The divisor is the count less ddof, Tensor.var's. The mean's own share of the gradient,
    -2 sum(x - mean) / divisor, is 0, as the sum is, and is left out: over a divisor of 0 it
    would be 0 * inf, NaN for every element.

    A divisor of 0 (ddof at or above the count) gives inf, or 0 / 0 = NaN where every element
    is the mean, and a gradient of +-inf, NaN where x is the mean, as numpy's and torch's:
    results Tensor.var documents, so numpy's divide-by-zero and invalid-value warnings are off
    for those divisions (torch gives the same values and prints nothing)."""

    @staticmethod
    def forward(ctx, x, divisor, axis=None, keepdims=False):
        # A Python float, weak in numpy 2: a count less a numpy ddof (np.int64(1)) would make
        # a float32 variance float64.
        ctx.axis, ctx.divisor = axis, float(divisor)
        x = _floating(x)
        centred = x - _mean_kept(x, axis)
        with np.errstate(divide="ignore", invalid="ignore"):     # a divisor of 0: see above
            return (centred * centred).sum(axis=axis, keepdims=keepdims) / ctx.divisor

    @staticmethod
    def backward(ctx, grad):
        x = ctx.operands[0]
        centred = x - _mean_kept(x, ctx.axis)
        with np.errstate(divide="ignore", invalid="ignore"):     # a divisor of 0: see above
            slope = centred * 2 / ctx.divisor
            return grad.reshape(_keepdims_shape(x.shape, ctx.axis)) * slope


class Max(Function):
    """y = max of x over axis;  the gradient goes to the maximal elements, shared equally
    between ties (as torch.amax does)"""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axis = axis
        _refuse_empty_reduction("max", x, axis)
        return x.max(axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        x = ctx.array(0)
        return _to_the_extremes(grad, x, x.max(axis=ctx.axis, keepdims=True), ctx.axis)


class Min(Function):
    """y = min of x over axis;  the gradient goes to the minimal elements, shared equally
    between ties (as torch.amin does)"""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axis = axis
        _refuse_empty_reduction("min", x, axis)
        return x.min(axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        x = ctx.array(0)
        return _to_the_extremes(grad, x, x.min(axis=ctx.axis, keepdims=True), ctx.axis)


def _to_the_extremes(grad, x, extreme, axis):
    """Max's and Min's gradient: to the elements of x equal to `extreme` (the max or the min,
    kept along `axis`), shared equally between ties."""
    is_extreme = x == extreme                       # a constant, like relu's mask
    # A slice holding NaN has a NaN extreme that no element equals: 0 / 0, a NaN gradient for
    # the whole slice, as torch.amax gives, without numpy's warning from inside the engine.
    with np.errstate(invalid="ignore"):
        share = is_extreme / is_extreme.sum(axis=axis, keepdims=True)
    return grad.reshape(_keepdims_shape(x.shape, axis)) * share.astype(x.dtype)


class Softmax(Function):
    """s = e^x / sum e^x along axis;  dL/dx = s * (g - sum(g * s))

    Subtracting the maximum first changes nothing mathematically and keeps e^x from overflowing.
    (Its `initial`: an axis of size 0 has no maximum, and gives an empty softmax, as torch's.)
    float16 computes in float32 (`compute_dtype`), backward too: a sum of e^x over more than
    65504 entries would be inf, and every s 0. (The engine gives each gradient its input's dtype.)
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        ctx.axis = axis
        x = _floating(x)
        dtype, x = x.dtype, widened(x)
        # A row of -inf (every entry masked out) or one holding +inf is NaN, as torch's, and
        # as quietly: numpy would warn of the inf - inf it computes.
        with np.errstate(invalid="ignore"):
            e = np.exp(x - x.max(axis=axis, keepdims=True, initial=-np.inf))
        return (e / e.sum(axis=axis, keepdims=True)).astype(dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        s, grad = widened(ctx.result), widened(grad)
        return s * (grad - (grad * s).sum(axis=ctx.axis, keepdims=True))


class LogSoftmax(Function):
    """y = x - log sum e^x along axis;  dL/dx = g - softmax(x) * sum(g)
    (float16 computes in float32, as Softmax)"""

    @staticmethod
    def forward(ctx, x, axis=-1):
        ctx.axis = axis
        x = _floating(x)
        dtype, x = x.dtype, widened(x)
        # log(0): only an empty axis sums to 0, and y is empty; inf - inf: as Softmax's
        with np.errstate(divide="ignore", invalid="ignore"):
            shifted = x - x.max(axis=axis, keepdims=True, initial=-np.inf)     # as Softmax's
            y = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        return y.astype(dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        y, grad = widened(ctx.result), widened(grad)
        return grad - exp(y) * grad.sum(axis=ctx.axis, keepdims=True)


# ---------------------------------------------------------------------------- shape


class Reshape(Function):
    """Same elements, new shape;  the gradient is reshaped back"""

    shape_errors = "shapes"
    views_input = True

    @staticmethod
    def forward(ctx, x, shape):
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.inputs[0].shape)


class Transpose(Function):
    """Permute axes;  the gradient is permuted back by the inverse permutation"""

    views_input = True

    @staticmethod
    def forward(ctx, x, axes=None):
        ctx.axes = axes
        return x.transpose(axes)

    @staticmethod
    def backward(ctx, grad):
        if ctx.axes is None:
            return grad.transpose()
        # The inverse permutation (numpy's argsort of the axes, in plain Python: on a tuple,
        # np.argsort takes longer than the transpose itself).
        return grad.transpose(sorted(range(len(ctx.axes)), key=ctx.axes.__getitem__))


class BroadcastTo(Function):
    """Repeat x along broadcast axes (a view, no copy);  the engine sums the gradient back"""

    shape_errors = "shapes"
    views_input = True

    @staticmethod
    def forward(ctx, x, shape):
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad):
        return grad


class AsType(Function):
    """y = x in another dtype;  the gradient is cast back to x's dtype"""

    @staticmethod
    def forward(ctx, x, dtype):
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.astype(ctx.inputs[0].dtype)


def _is_basic(index):
    """True for ints, slices, None and ..., which select each element at most once."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice))
               for p in parts)


class GetItem(Function):
    """y = x[index], basic, integer-array or boolean-mask indexing;  the gradient is scattered
    back into zeros, adding up where an index repeats"""

    views_input = True

    @staticmethod
    def forward(ctx, x, index):
        # The backward scatters by the index: when it will run, it keeps its own copy of the
        # index's arrays and lists, as torch copies a numpy index. The caller's array or list
        # (a batch buffer refilled, `picks[0] = 3`, an index Tensor's `ids += 1`) may change
        # before backward, and the gradient would land on other elements silently: unlike an
        # input, an index has no stamp of changes for the backward to check.
        ctx.index = _own_arrays(index) if True in ctx.needs_input_grad else index
        picked = x[index]
        if not isinstance(picked, np.ndarray):
            # One element (b[0], W[0, 1]): numpy hands back a scalar, a copy. With `...` added
            # it hands back the same element as a 0-d view, as torch's w[0] is, so a change
            # through it reaches x and x's changes are seen (`v = w[0]; v += 1` is refused).
            picked = x[(*index, ...) if isinstance(index, tuple) else (index, ...)]
        return picked

    @staticmethod
    def backward(ctx, grad):
        return index_add(grad, ctx.index, ctx.inputs[0].shape)


def _own_arrays(index):
    """`index` with a copy of each numpy array and list in it, and of a list's items (a list
    is an index array as numpy reads it, and as changeable); ints, slices, None and ... are
    kept."""
    if isinstance(index, tuple):
        return tuple(_own_copy(p) for p in index)
    return _own_copy(index)


def _own_copy(part):
    """One part of an index, an array or a list (nested, or holding arrays or Tensors, which
    numpy reads as their arrays) copied; any other part itself."""
    if isinstance(part, np.ndarray):
        return part.copy()
    if isinstance(part, Tensor):                # (inside a list: numpy reads its array)
        return part.data.copy()
    if isinstance(part, list):
        return [_own_copy(p) for p in part]
    return part


class IndexAdd(Function):
    """y = zeros(shape) with x added at [index] (repeats accumulate): GetItem's backward.
    Its own gradient is GetItem again, which makes indexing twice differentiable."""

    @staticmethod
    def forward(ctx, x, index, shape):
        ctx.index = index
        return _scatter_add(x, index, shape)

    @staticmethod
    def backward(ctx, grad):
        return grad[ctx.index]


def _scatter_add(x, index, shape):
    out = np.zeros(shape, dtype=x.dtype)
    if _is_basic(index):
        out[index] = x               # no element is selected twice: plain assignment
    elif _is_row_index(index, x):
        _add_rows(out, index, x)     # whole rows of a table (an embedding's gradient)
    else:
        np.add.at(out, index, x)     # unbuffered: repeated indices each add their share
    return out


def _is_row_index(index, x):
    """True when `index` is one non-empty integer array picking whole rows (along the first
    axis) and x holds one row per index, as in an embedding: table[ids] is (*ids.shape, dim)."""
    return (isinstance(index, np.ndarray) and index.dtype.kind in "iu" and index.size > 0
            and x.ndim > index.ndim and x.shape[:index.ndim] == index.shape)


def _add_rows(out, index, x):
    """np.add.at(out, index, x) where `index` picks whole rows of `out`: the same sums in the
    same order (so the same bits), several times faster. numpy's add.at has a fast loop only
    for a 1-D target with 1-D indices, so each picked row is spelled out as the positions of
    its elements in the flattened table."""
    row_size = math.prod(out.shape[1:])
    # In numpy's own integer type first: a uint8 or int8 index times row_size would wrap
    # around in its own dtype (row 90 of 8 columns landing on row 26), and a uint64 one
    # plus arange's int64 positions would turn float.
    rows = index.reshape(-1).astype(np.intp) % len(out)               # negative indices wrap
    positions = (rows[:, None] * row_size + np.arange(row_size)).reshape(-1)
    np.add.at(out.reshape(-1), positions, x.reshape(-1))


class Concat(Function):
    """Join along an existing axis;  each input gets back its slice of the gradient"""

    shape_errors = "shapes"

    @staticmethod
    def forward(ctx, *xs, axis=0):
        ctx.axis = axis
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        axis = ctx.axis % grad.ndim
        grads, start = [], 0
        for x in ctx.inputs:
            stop = start + x.shape[axis]
            grads.append(grad[(slice(None),) * axis + (slice(start, stop),)])
            start = stop
        return tuple(grads)


class Stack(Function):
    """Join along a new axis;  input i gets the gradient's slice i along that axis"""

    shape_errors = "shapes"

    @staticmethod
    def forward(ctx, *xs, axis=0):
        ctx.axis = axis
        return np.stack(xs, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        axis = ctx.axis % grad.ndim
        return tuple(grad[(slice(None),) * axis + (i,)] for i in range(len(ctx.inputs)))


class Where(Function):
    """y = a where cond else b;  the gradient flows only to the side that was chosen"""

    shape_errors = "broadcast"

    @staticmethod
    def forward(ctx, cond, a, b):
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, grad):
        cond = ctx.array(0)                       # a constant: no gradient of its own
        zero = np.zeros((), dtype=grad.dtype)
        grad_a = where(cond, grad, zero) if ctx.needs_input_grad[1] else None
        grad_b = where(cond, zero, grad) if ctx.needs_input_grad[2] else None
        return None, grad_a, grad_b
