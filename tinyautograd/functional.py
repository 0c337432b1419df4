"""Functions of tensors, including the fused kernels that make training fast.

A fused kernel computes a whole formula in numpy in one forward and gives its gradient in one
backward, instead of recording a dozen small ops: that saves time and memory. Its backward is
written like every other op's (see `ops.py`), so it is twice differentiable too, and under
create_graph its formula is recorded step by step: a picture of the backward graph shows it.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import kernels, ops, random
from .engine import (DEFAULT_DTYPE, Function, ShapeError, Tensor, _brief, _check, _lift,
                     _numpy_keywords, _operands, _pointing_to_ours, _refuse_exact_gelu, where)
from .ops import exp, sqrt
# Half precision's policy (float16 computes in float32), for fused ops written outside the
# engine too, as tinyformer's attention.
from .ops import compute_dtype, widened  # noqa: F401

# ---------------------------------------------------------------------------- row sums

# Up to this many rows, row_sum keeps numpy's sum: at about 30 ns a row it costs no more than
# the product's own calls (a few us), where the two costs given below cross.
_FEW_ROWS = 64


def row_sum(x: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """x.sum(axis=-1, keepdims=True), for a numpy array or a Tensor (recorded, as the sum).

    It exists for speed: the fused kernels (layer norm here, tinyformer's attention) sum many
    short rows, forward and backward. On an array of many rows it is one matrix-vector product
    with a column of ones: numpy's reduction along a short last axis costs about 30 ns a row,
    the product a few us in all (12 against 4 us on (384, 128)). A few rows (generation) keep
    numpy's, where the product's own calls would cost more."""
    if isinstance(x, Tensor) or x.size <= _FEW_ROWS * x.shape[-1]:   # (an empty x as well)
        return x.sum(axis=-1, keepdims=True)
    rows = x.reshape(-1, x.shape[-1])
    return (rows @ np.ones((x.shape[-1], 1), x.dtype)).reshape(x.shape[:-1] + (1,))


# ---------------------------------------------------------------------------- cross-entropy


class CrossEntropy(Function):
    """Negative log-likelihood of integer targets under softmax(logits), classes on the last
    axis. With label smoothing eps and class weights w (torch's `weight`, constants; w = 1
    without), the target distribution is q_c = (1 - eps) w_t onehot_c + eps/V w_c:

        loss_i = -sum_c q_c log p_c,   p = softmax(logits_i)
        dloss_i/dlogits_i = (sum_c q_c) p - q          (p - q without weights: q sums to 1)

    An ignored row (its target equal to ignore_index) has loss 0 and gradient 0. Then the
    reduction: 'none' gives each row's loss_i, 'sum' their sum, 'mean' their sum divided by the
    rows that count, each counted as its target's weight w_t (1 without weights), as torch's.
    """

    @staticmethod
    def forward(ctx, logits, targets, ignore_index=None, label_smoothing=0.0, reduction="mean",
                class_weight=None):
        logits = ops._floating(logits)            # integer logits: a float32 loss, not a cut one
        # float16 computes in float32, as log_softmax (`ops.compute_dtype`): a row's sum of
        # e^(x - max) over 70,000 classes is inf in float16. The loss is rounded back.
        dtype, logits = logits.dtype, ops.widened(logits)
        ctx.reduction = reduction
        if logits.shape[-1] == 0:
            # No classes: cross_entropy lets through only targets that are all ignored, so
            # every row's loss is 0 and none counts (backward: an empty gradient).
            return _reduced_rows(np.zeros(targets.size), reduction, 0, targets.shape, dtype)
        rows = logits.reshape(-1, logits.shape[-1])                       # (N, V)
        row_targets, keep = _kept_targets(targets.reshape(-1), ignore_index)     # (N,) each
        # A row of -inf (every class masked out) or holding +inf is NaN, quietly, as Softmax's
        with np.errstate(invalid="ignore"):
            shifted = rows - rows.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        picked = (np.arange(len(row_targets)), row_targets)               # row i, class t_i
        nll = -log_probs[picked]                                          # (N,)
        target_weight = None
        if class_weight is not None:
            class_weight = class_weight.astype(log_probs.dtype)
            target_weight = class_weight[row_targets]                     # w_t: (N,)
            nll *= target_weight
        if label_smoothing:
            # -sum_c (eps/V) w_c log p_c: the mean of log p, weighted by w if there is one
            smooth = (log_probs.mean(axis=1) if class_weight is None
                      else log_probs @ class_weight / logits.shape[-1])
            nll = (1 - label_smoothing) * nll - label_smoothing * smooth
        if keep is not None:
            nll = np.where(keep, nll, 0)                                  # ignored: 0
        count = _mean_divisor(len(row_targets), keep, target_weight)
        # What backward needs: log p, and each row's weight in the reduction, a constant
        ctx.log_probs, ctx.picked, ctx.label_smoothing = log_probs, picked, label_smoothing
        ctx.class_weight = class_weight
        ctx.row_weight = _row_weights(reduction, count, keep).astype(logits.dtype)
        return _reduced_rows(nll, reduction, count, targets.shape, dtype)

    @staticmethod
    def backward(ctx, grad):
        logits, _ = ctx.operands
        # As forward: float16 in float32 (the engine gives the gradient the logits' dtype)
        logits, grad = ops.widened(logits), ops.widened(grad)
        n_class = logits.shape[-1]
        if n_class == 0:               # no classes (forward's nan): nothing to differentiate
            return logits * 0, None
        if ctx.create_graph:           # log p again, as a Tensor, for the second derivative
            log_probs = logits.reshape(-1, n_class).log_softmax(axis=-1)
        else:
            log_probs = ctx.log_probs
        if ctx.reduction == "none":    # one incoming gradient per row: a column (N, 1)
            grad = grad.reshape(-1, 1)
        q = _target_distribution(log_probs.shape, ctx.picked, ctx.label_smoothing,
                                 ctx.class_weight, ctx.log_probs.dtype)           # (N, V)
        if ctx.class_weight is None:
            d_rows = exp(log_probs) - q                                   # p - q
        else:
            d_rows = exp(log_probs) * q.sum(axis=1, keepdims=True) - q    # (sum q) p - q
        d_rows *= grad * ctx.row_weight                              # the reduction's weights
        return d_rows.reshape(logits.shape), None


def _kept_targets(row_targets, ignore_index):
    """CrossEntropy's targets (N,) with those equal to ignore_index made class 0 (any valid
    class: their rows are masked out), and which rows count: a boolean (N,), or None when
    every row does (no ignore_index), which saves the masking."""
    if ignore_index is None:
        return row_targets, None
    keep = row_targets != ignore_index
    return np.where(keep, row_targets, 0), keep


def _mean_divisor(n_rows, keep, target_weight):
    """What CrossEntropy's mean divides by: the rows that count, or with class weights the
    sum of their targets' weights w_t, as torch's."""
    if target_weight is None:
        return n_rows if keep is None else int(keep.sum())
    return (target_weight if keep is None else target_weight[keep]).sum()


def _row_weights(reduction, count, keep):
    """Each row's weight in CrossEntropy's reduction, for backward: 1 for 'sum' and 'none',
    1/count for 'mean', and 0 for an ignored row. With nothing to divide by, the mean is 0/0 =
    nan, as torch's; so is the gradient of the rows that count (their weights summed to 0),
    while that of an ignored row stays 0, as torch's."""
    scale = 1 if reduction != "mean" else 1 / count if count else np.nan
    if keep is None:               # every row counts alike: one number broadcasts
        return np.float64(scale)
    return np.where(keep, scale, 0)[:, None]   # a column (N, 1): the scale if kept, else 0


def _reduced_rows(nll, reduction, count, shape, dtype):
    """CrossEntropy's rows' losses `nll` (N,) reduced, in `dtype`: each in `shape` ('none'),
    their sum, or their sum / count ('mean'; nan when count is 0, as torch's)."""
    if reduction == "none":
        return nll.reshape(shape).astype(dtype)
    if reduction == "sum":
        return np.asarray(nll.sum(), dtype=dtype)
    return np.asarray(nll.sum() / count if count else np.nan, dtype=dtype)


def _target_distribution(shape, picked, eps, class_weight, dtype):
    """CrossEntropy's target distribution q (N, V), a constant: q_c = (1 - eps) w_t onehot_c
    + eps/V w_c, row i's target t_i at `picked`. Without class weights w = 1 and q is in
    `dtype`; with them, in theirs."""
    n_class = shape[-1]
    if class_weight is None:
        q = np.full(shape, eps / n_class, dtype=dtype)
        q[picked] += 1 - eps
    else:
        q = np.tile(eps / n_class * class_weight, (shape[0], 1))
        q[picked] += (1 - eps) * class_weight[picked[1]]
    return q


def cross_entropy(logits: Tensor | ArrayLike, targets: Tensor | ArrayLike,
                  ignore_index: int | None = None, label_smoothing: float = 0.0, *,
                  reduction: str = "mean", weight: Tensor | ArrayLike | None = None) -> Tensor:
    """Cross-entropy of `logits` (..., V) against integer `targets` (...). Classes are on the
    last axis, which suits (B, T, V) language-model logits (torch puts them on axis 1).
    `label_smoothing` eps in [0, 1] trains towards (1 - eps) onehot + eps / V instead of the
    onehot, as torch's does. A target equal to `ignore_index` counts for nothing: its loss is
    0, and it is left out of the mean.

    `reduction`, as torch's: 'mean' (the default) averages the losses of the targets that
    count; 'sum' adds them; 'none' gives each target's loss, shape (...), 0 where ignored.
    With no target that counts (all ignored, or none) the mean is 0/0: the loss is NaN and
    the gradient 0, as torch's; a training step should skip such a batch.

    `weight` (keyword-only), torch's class weights: V numbers >= 0, constants (no gradient, as
    torch's); each target's loss is scaled by its class's weight, and the label-smoothing term
    by each class's, as torch's. 'mean' then divides by the sum of the counted targets' weights,
    not by how many there are: torch's weighted mean."""
    # torch's third positional is the class weights; a weights array passed here would be
    # taken for ignore_index, giving an unweighted loss or numpy's broadcast error.
    if ignore_index is not None and not isinstance(ignore_index, (int, np.integer)):
        if isinstance(ignore_index, Tensor) or np.ndim(ignore_index) > 0:
            raise TypeError("cross_entropy: ignore_index must be an int or None, got an array; "
                            "pass class weights by name, weight=...")
        raise TypeError(f"cross_entropy: ignore_index must be an int or None, got "
                        f"{ignore_index!r}")
    _check_reduction("cross_entropy", reduction)
    logits = logits if isinstance(logits, Tensor) else Tensor(logits)
    if logits.ndim == 0:
        raise ShapeError("cross_entropy: 0-d logits have no class axis; give logits of "
                         "shape (..., V), classes on the last axis")
    # The class indices become a constant of the graph, named (viz draws the name).
    name = (targets.name if isinstance(targets, Tensor) else None) or "targets"
    targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if targets.dtype.kind not in "iu":
        # torch also takes class probabilities, floats of the logits' shape: not offered here
        hint = (": class probabilities (as torch also takes) are not; for probabilities p, "
                "write -(p * logits.log_softmax(-1)).sum(-1).mean()"
                if targets.dtype.kind == "f" and targets.shape == logits.shape else "")
        raise TypeError(f"cross_entropy: targets must be integers (class indices), got "
                        f"{targets.dtype}{hint}")
    if targets.shape != logits.shape[:-1]:
        torch_layout = logits.ndim >= 3 and targets.shape == logits.shape[:1] + logits.shape[2:]
        hint = (" (classes are on the last axis; torch puts them on axis 1)" if torch_layout
                else "")
        raise ShapeError(f"cross_entropy: logits {logits.shape} need targets of shape "
                         f"{logits.shape[:-1]} (one class index per row), got "
                         f"{targets.shape}{hint}")
    n_class = logits.shape[-1]
    counted = targets if ignore_index is None else targets[targets != ignore_index]
    if counted.size and (counted.min() < 0 or counted.max() >= n_class):
        bad = counted[(counted < 0) | (counted >= n_class)][0]
        # -100 is torch's default ignore_index; ours is None, which ignores nothing
        hint = ("; torch's default ignore_index is -100: pass ignore_index=-100"
                if bad == -100 and ignore_index is None else "")
        raise IndexError(f"cross_entropy: target {bad} is out of range for {n_class} "
                         f"classes{hint}")
    _check_probability("cross_entropy", "label_smoothing", label_smoothing)
    class_weight = None if weight is None else _class_weight(weight, n_class)
    targets = Tensor(targets, dtype=targets.dtype)
    targets.name = name
    return CrossEntropy.apply(logits, targets, ignore_index=ignore_index,
                              label_smoothing=label_smoothing, reduction=reduction,
                              class_weight=class_weight)


def _class_weight(weight, n_class):
    """cross_entropy's `weight` as a numpy array of V numbers >= 0, refused otherwise."""
    # (torch's raises only at backward: "the derivative for 'weight' is not implemented")
    weight = np.asarray(_constant_weight("cross_entropy", "weight", weight))
    if weight.dtype.kind not in "iuf":
        raise TypeError(f"cross_entropy: weight must be real numbers, one per class, got "
                        f"{weight.dtype}")
    if weight.shape != (n_class,):
        raise ShapeError(f"cross_entropy: weight must have shape ({n_class},), one number per "
                         f"class, got {weight.shape}")
    if not (weight >= 0).all():
        raise ValueError("cross_entropy: weight must be >= 0 for every class, got "
                         f"{weight.min()}")
    return weight


def _constant_weight(op, what, weight):
    """A loss's `weight` (or `pos_weight`) as given, or a Tensor's array: the loss weights are
    constants, as torch's; one that requires a gradient is refused, as it would get none."""
    if not isinstance(weight, Tensor):
        return weight
    if weight.requires_grad:
        raise ValueError(f"{op}: {what} is a constant, with no gradient (as torch's); pass "
                         f"{what}.detach()")
    return weight.data


def _check_probability(where, name, value):
    """Refuse a `value` outside [0, 1] (NaN too), in one line naming `where` and `name`; one
    that is no number at all ("0.1") is a TypeError, not `<=`'s between a float and a str.
    Every dropout calls it, at every step of generation too: a float or int passes the first
    test, as quick as a comparison, where numbers.Real's abstract check takes a microsecond."""
    if not isinstance(value, (float, int)) and not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{where}: {name} must be in [0, 1], got {value}")


# torch's reductions of a loss over its elements (or rows, for cross_entropy)
_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(where, reduction):
    """Refuse a `reduction` other than torch's three, in one line naming `where`."""
    if not (isinstance(reduction, str) and reduction in _REDUCTIONS):
        raise ValueError(f"{where}: reduction must be 'mean', 'sum' or 'none', got "
                         f"{_brief(reduction)}")


# ---------------------------------------------------------------------------- losses of ops
# Losses written with the engine's ops, elementwise: their gradients, first and second, are
# the ops' own, so they need no backward of their own.


def _loss_operands(op, input, target):
    """`input` and `target` as Tensors of one floating dtype (integers compute in float32, as
    the engine's ops with fractional results), refused unless their shapes are the same."""
    input, target = _operands(input, target, (f"{op}: input", f"{op}: target"))
    if input.shape != target.shape:
        # torch's mse_loss broadcasts them, with a warning: a target (N, 1) against an input
        # (N,) gives an (N, N) loss, rarely the one meant. Its BCE refuses, as here.
        raise ShapeError(f"{op}: input {input.shape} and target {target.shape} must have "
                         f"the same shape; broadcast one to the other's first if that is meant")
    if input.dtype.kind not in "fc":          # both, as _operands gave them one dtype
        input, target = input.astype(DEFAULT_DTYPE), target.astype(DEFAULT_DTYPE)
    return input, target


def _reduced(losses, reduction):
    """Elementwise losses reduced as torch's reduction says: their mean, their sum, or
    themselves ('none')."""
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def mse_loss(input: Tensor | ArrayLike, target: Tensor | ArrayLike, *,
             reduction: str = "mean") -> Tensor:
    """Squared error, elementwise, then reduced (torch's `reduction`: 'mean' over every
    element, the default, 'sum', or 'none' for the losses themselves, input's shape):

        loss_i = (x_i - y_i)^2,   dloss_i/dx_i = 2 (x_i - y_i) = -dloss_i/dy_i

    `input` x and `target` y must have the same shape (torch's broadcasts other shapes, with a
    warning); both get gradients, as in torch."""
    _check_reduction("mse_loss", reduction)
    x, y = _loss_operands("mse_loss", input, target)
    error = x - y
    return _reduced(error * error, reduction)


def binary_cross_entropy_with_logits(input: Tensor | ArrayLike, target: Tensor | ArrayLike, *,
                                     reduction: str = "mean",
                                     weight: Tensor | ArrayLike | None = None,
                                     pos_weight: Tensor | ArrayLike | None = None) -> Tensor:
    """Binary cross-entropy of the probabilities p = sigmoid(x) of logits `input` x against
    `target` y (labels 0 and 1, or soft ones in [0, 1]), elementwise, then reduced as
    mse_loss's `reduction`:

        loss = -(y log p + (1 - y) log(1 - p))
             = softplus(x) - x y  =  softplus(-x) + (1 - y) x       (log p = -softplus(-x))
        dloss/dx = sigmoid(x) - y,   dloss/dy = -x

    Computed from x without forming p, so nothing overflows or becomes log 0 (p = 1 in
    float32 from x = 17 on), with softplus, which is exact for every x. Of the two equal
    forms, each is taken where it adds numbers of one sign: the first for x < 0, the second
    for x >= 0. The other would subtract |x| from softplus(|x|), nearly equal, and lose the
    small loss of a confident right answer (x = 20, y = 1: 2e-9). `input` and `target` must
    have the same shape, as torch's; both get gradients.

    torch's `pos_weight` a scales the positive term, and `weight` w each element's loss,
    before the reduction (both broadcast to the input's shape; constants, as torch's):

        loss = -w (a y log p + (1 - y) log(1 - p))
             = w ((a y + 1 - y) softplus(x) - a y x)  =  w ((a y + 1 - y) softplus(-x) + (1 - y) x)

    a > 1 counts the positives for more (a = negatives / positives evens out a rare class)."""
    name = "binary_cross_entropy_with_logits"
    _check_reduction(name, reduction)
    x, y = _loss_operands(name, input, target)
    if pos_weight is None:
        losses = where(x.data >= 0, softplus(-x) + (1 - y) * x, softplus(x) - x * y)
    else:
        a = _elementwise_weight(name, "pos_weight", pos_weight, x)
        a_y = a * y
        scale = a_y + (1 - y)                        # of softplus, in both forms
        losses = where(x.data >= 0, scale * softplus(-x) + (1 - y) * x,
                       scale * softplus(x) - a_y * x)
    if weight is not None:
        losses = losses * _elementwise_weight(name, "weight", weight, x)
    return _reduced(losses, reduction)


def _elementwise_weight(op, what, weight, x):
    """A loss's `weight` or `pos_weight` as a constant Tensor of x's dtype, refused unless its
    shape broadcasts to x's (a larger one would change the loss's shape)."""
    # (torch's refuses it too: "not differentiable with respect to argument 'weight'")
    weight = _constant_weight(op, what, weight)
    weight = Tensor._make(_lift(weight, x, f"{op}: {what}").data.astype(x.dtype, copy=False))
    try:
        fits = np.broadcast_shapes(weight.shape, x.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        raise ShapeError(f"{op}: {what} of shape {weight.shape} does not broadcast to the "
                         f"input's shape {x.shape}")
    return weight


# ---------------------------------------------------------------------------- layer norm


class LayerNorm(Function):
    """Normalise the last axis to zero mean and unit variance, then scale and shift:

        x_hat = (x - mean) / sqrt(var + eps),   y = x_hat * weight + bias

    Backward, with g = dL/dy and dx_hat = g * weight, averaging over the last axis:

        dL/dx = (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)) / sqrt(var + eps)
        dL/dweight = sum(g * x_hat),   dL/dbias = sum(g)     (sums over every other axis)

    A row whose squares overflow (|x - mean| from 1.8e19 on in float32) is normalised all the
    same, divided by its largest |x - mean| before it is squared: torch's layer norm gives NaN
    there.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps=1e-5):
        ctx.eps = eps
        if ops.compute_dtype(x.dtype) != x.dtype:
            # float16 computes in float32, as torch's: a row's sum of squares passes float16's
            # 65504 at 768 values near 10. What forward keeps for backward is then float32.
            wide = LayerNorm.forward(ctx, *map(ops.widened, (x, weight, bias)), eps)
            return wide.astype(x.dtype)
        # kernels.py's loops compute these formulas; TINYAUTOGRAD_KERNELS=numpy runs them as
        # written here (to try an edit of them).
        if kernels.usable(x, weight, bias):
            keep = True in ctx.needs_input_grad       # what backward reads, if it will run
            y, ctx.x_hat, ctx.rstd = kernels.layer_norm(x, weight, bias, eps, keep)
            return y
        x_hat, rstd = _normalised(x, eps)
        ctx.x_hat, ctx.rstd = x_hat, rstd
        y = x_hat * weight
        y += bias                              # y is new: add in place
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight, _ = ctx.operands
        # As forward: float16 in float32 (the engine gives each gradient its input's dtype)
        x, weight, grad = ops.widened(x), ops.widened(weight), ops.widened(grad)
        # Forward kept x_hat and rstd. The first backward takes x_hat and writes into it (a new
        # array of activations' size costs its page faults); a later one through a kept graph
        # computes both again from x, and so does one under create_graph, where kept arrays
        # would be constants and the second derivative would miss them.
        x_hat, ctx.x_hat = ctx.x_hat, None
        if x_hat is None or ctx.create_graph:
            x_hat, rstd = _normalised(x, ctx.eps)
        else:
            rstd = ctx.rstd
        if kernels.usable(grad, x_hat, rstd, weight):  # the formulas below, compiled
            return kernels.layer_norm_backward(grad, x_hat, rstd, weight)
        n = _row_size(x)
        d_weight = _column_dot(grad, x_hat)            # sum(g * x_hat) over all rows: (C,)
        d_x = grad * weight              # dL/dx_hat, made into dL/dx in place below
        # x_hat's own buffer, on purpose (on arrays; Tensors make new ones): x_hat is not read
        # after this line, and a new array of its size would cost its page faults.
        subtrahend = x_hat
        subtrahend *= _row_dot(d_x, x_hat) / n
        subtrahend += row_sum(d_x) / n
        d_x -= subtrahend
        d_x *= rstd
        return d_x, d_weight, grad       # grad: the engine sums it to bias's (C,)


def _normalised(x, eps):
    """x_hat = (x - mean) / sqrt(var + eps) over the last axis, and 1 / sqrt(var + eps).
    For arrays (in place, where a new array would cost its page faults) and Tensors alike."""
    if kernels.usable(x):                   # forward's loops, for forward's bits
        _, x_hat, rstd = kernels.layer_norm(x, np.ones(x.shape[-1], x.dtype),
                                            np.zeros(x.shape[-1], x.dtype), eps)
        return x_hat, rstd
    n = _row_size(x)
    x_hat = x - row_sum(x) / n                                        # centred, for now
    rstd = _inverse_rms(x_hat, eps)
    x_hat *= rstd                      # in place on an array; a new Tensor on a Tensor
    return x_hat, rstd


def _inverse_rms(c, eps):
    """1 / sqrt(mean(c^2) + eps) over the last axis, keepdims: layer norm's rstd of the centred
    x, RMS norm's of x itself. For arrays and Tensors alike.

    A row whose squares overflow (|c| from 1.8e19 on in float32) is divided by its largest
    |c|, m, first, and the same number computed where nothing overflows:

        1 / sqrt(mean(c^2) + eps) = 1 / (m sqrt(mean((c/m)^2) + eps/m^2))

    The sum of squares alone would be inf, and the row normalised to 0 without a word, its
    gradient 0 (torch's layer norm gives NaN there, its RMS norm 0)."""
    n = _row_size(c)
    squares = _row_dot(c, c)                 # recorded on a Tensor; unused where it overflowed
    values = c.data if isinstance(c, Tensor) else c
    overflowed = np.isinf(squares.data if isinstance(squares, Tensor) else squares)
    if not overflowed.any():
        return 1 / sqrt(squares / n + eps)
    # m = 1 on the other rows, which leaves their numbers as they were, and on a row holding
    # inf itself, whose norm stays what it was (RMS norm: 0, and NaN where x is inf, as torch's)
    largest = np.abs(values).max(axis=-1, keepdims=True)
    m = np.where(overflowed & np.isfinite(largest), largest, 1).astype(values.dtype)
    scaled = c / m
    return 1 / (m * sqrt(_row_dot(scaled, scaled) / n + eps / m / m))


def _row_size(x):
    """The count a row's mean divides by: its size, or 1 for rows of size 0, whose sums are 0
    and whose results are empty; 0/0 would only print numpy's warning."""
    return max(x.shape[-1], 1)


def _column_dot(a, b):
    """sum(a * b) over every axis but the last: (C,). On arrays one einsum over the rows,
    without the product as a temporary."""
    rows, n = math.prod(a.shape[:-1]), a.shape[-1]      # (not -1 rows: n may be 0)
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return (a * b).reshape(rows, n).sum(axis=0)
    return np.einsum("ni,ni->i", a.reshape(rows, n), b.reshape(rows, n))


def _row_dot(a, b):
    """sum(a * b) over the last axis, keepdims. On arrays, without the product as a temporary:
    a batch of (1, n) @ (n, 1) products, faster than np.einsum, whose parsing alone costs more
    than the sum on the short rows of generation, and on a training batch too."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return (a * b).sum(axis=-1, keepdims=True)
    return (a[..., None, :] @ b[..., :, None])[..., 0]


def _normalized_shape_hint(weight):
    """torch's layer_norm and rms_norm take normalized_shape before the weight; written here,
    (C,) lands on the weight and the shapes seem not to fit: say what happened."""
    if isinstance(weight, (tuple, list)) and all(isinstance(n, int) for n in weight):
        return (f"; {tuple(weight)} was taken as the weight: the norm is always over the last "
                f"axis, so there is no normalized_shape argument (torch's second)")
    return ""


def _norm_input(op, x):
    """x as a Tensor a norm takes, and the size of its last axis, the one normalised: an
    integer or boolean x as float32, as the engine's ops with fractional results take them
    (ops._floating), done once here so that neither the norm's forward nor its backward (nor
    its default weight, made in x's dtype) meets integers; a 0-d x has no axis to normalise."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    data = x.data                   # (read once: this runs at every norm of every token)
    if data.ndim == 0:
        raise ShapeError(f"{op}: a 0-d input has no axis to normalise (the norm is over the "
                         f"last axis): give it at least one, as x.reshape(1)")
    if data.dtype.kind not in "fc":
        x = x.astype(DEFAULT_DTYPE)
    return x, data.shape[-1]


def _checked_eps(op, eps):
    """A norm's eps, refused in one line unless a finite number, as the layers refuse it:
    "1e-5" would reach the compiled loop, whose ctypes call says only 'argument 6: wrong
    type'. A float that is finite, the usual eps, passes in one test: every norm of every
    generated token calls this."""
    if not (type(eps) is float and math.isfinite(eps)):
        _check(op, "a finite number", eps=eps)
    # A Python float, weak in numpy 2: a numpy float64 eps would make a float32 norm float64.
    return float(eps)


def _too_many_arguments(op, most, more, weight):
    """Python's error for positional arguments past the last, with the hint above where torch's
    normalized_shape came second (torch's call has one argument more than ours)."""
    return TypeError(f"{op} takes at most {most} positional arguments, got "
                     f"{most + len(more)}{_normalized_shape_hint(weight)}")


def layer_norm(x: Tensor | ArrayLike, weight: Tensor | ArrayLike | None = None,
               bias: Tensor | ArrayLike | None = None, eps: float = 1e-5,
               *more: Any) -> Tensor:
    """Layer normalisation of `x` over its last axis (of size C), with optional elementwise
    affine weight and bias (shape (C,)); `eps` is added to the variance, as in nn.LayerNorm.
    One fused kernel, forward and backward. (`more` only catches torch's call, with
    normalized_shape second, to say so.)"""
    if more:
        raise _too_many_arguments("layer_norm", 4, more, weight)
    x, size = _norm_input("layer_norm", x)
    hint = _normalized_shape_hint(weight)
    weight = (Tensor._make(np.ones(size, x.dtype)) if weight is None
              else _lift(weight, x, "layer_norm: weight"))
    bias = (Tensor._make(np.zeros(size, x.dtype)) if bias is None
            else _lift(bias, x, "layer_norm: bias"))
    if weight.shape != (size,) or bias.shape != (size,):
        raise ShapeError(f"layer_norm: input {x.shape} needs weight and bias of shape "
                         f"({size},), got {weight.shape} and {bias.shape}{hint}")
    eps = _checked_eps("layer_norm", eps)      # after the shapes, as rms_norm's
    return LayerNorm.apply(x, weight, bias, eps=eps)


# ---------------------------------------------------------------------------- RMS norm


class RMSNorm(Function):
    """Root-mean-square normalisation of the last axis, then a scale (Zhang & Sennrich 2019):
    layer norm without the centring and without the shift (Llama, nanochat; Gemma
    scales by 1 + weight, with weight starting at 0).

        r = 1 / sqrt(mean(x^2) + eps),   x_hat = x * r,   y = x_hat * weight

    Backward, with g = dL/dy and dx_hat = g * weight, averaging over the last axis:

        dL/dx = (dx_hat - x_hat * mean(dx_hat * x_hat)) * r
        dL/dweight = sum(g * x_hat)          (a sum over every other axis)

    (layer norm's formula less its mean(dx_hat) term, which came from subtracting the mean.)
    A row whose squares overflow (|x| from 1.8e19 on in float32) is normalised all the same,
    divided by its largest |x| before it is squared: torch's RMS norm gives 0 there,
    1 / sqrt(inf).
    """

    @staticmethod
    def forward(ctx, x, weight, eps=1e-6):
        if ops.compute_dtype(x.dtype) != x.dtype:      # float16 in float32, as LayerNorm
            return RMSNorm.forward(ctx, ops.widened(x), ops.widened(weight), eps).astype(x.dtype)
        y, rstd = _rms_normalised(x, eps)     # x_hat, a new array
        ctx.rstd, ctx.eps = rstd, eps
        y *= weight
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.operands
        x, weight, grad = ops.widened(x), ops.widened(weight), ops.widened(grad)
        # Forward kept only 1/rms, a column: x_hat = x * rstd is one product away. Under
        # create_graph both are computed again from x, as Tensors, for the second derivative.
        if ctx.create_graph:
            x_hat, rstd = _rms_normalised(x, ctx.eps)
        else:
            rstd = ctx.rstd
            x_hat = x * rstd
        d_weight = _column_dot(grad, x_hat) if ctx.needs_input_grad[1] else None    # (C,)
        d_x = grad * weight                            # dL/dx_hat, made into dL/dx below
        x_hat *= _row_dot(d_x, x_hat) / _row_size(x)      # in place on arrays: not read again
        d_x -= x_hat
        d_x *= rstd
        return d_x, d_weight


def _rms_normalised(x, eps):
    """x_hat = x / sqrt(mean(x^2) + eps) over the last axis, and 1 / sqrt(mean(x^2) + eps),
    for arrays and Tensors alike."""
    rstd = _inverse_rms(x, eps)                                            # (..., 1)
    return x * rstd, rstd


def rms_norm(x: Tensor | ArrayLike, weight: Tensor | ArrayLike | None = None,
             eps: float | None = 1e-6, *more: Any) -> Tensor:
    """RMS normalisation over the last axis, with an optional elementwise scale `weight` (C,).
    One fused kernel, forward and backward; torch.nn.functional.rms_norm computes the same
    given the same eps (its default is the dtype's machine epsilon; ours is 1e-6, Llama's).
    eps=None is torch's: the machine epsilon of x's dtype (float32's for integers, which
    compute in float32). (`more` only catches torch's call, with normalized_shape second, to
    say so.)"""
    if more:
        raise _too_many_arguments("rms_norm", 3, more, weight)
    x, size = _norm_input("rms_norm", x)
    hint = _normalized_shape_hint(weight)
    weight = (Tensor._make(np.ones(size, x.dtype)) if weight is None
              else _lift(weight, x, "rms_norm: weight"))
    if weight.shape != (size,):
        raise ShapeError(f"rms_norm: input {x.shape} needs a weight of shape ({size},), got "
                         f"{weight.shape}{hint}")
    # (after the shapes: torch's call, normalized_shape second, puts its weight here)
    eps = np.finfo(x.dtype).eps.item() if eps is None else _checked_eps("rms_norm", eps)
    return RMSNorm.apply(x, weight, eps=eps)


# ---------------------------------------------------------------------------- activations


class SwiGLU(Function):
    """The gated linear unit with a SiLU gate (Shazeer 2020, "GLU Variants Improve
    Transformer"; Llama's feed-forward). The last axis holds the gate's pre-activations a
    and the values b side by side, x = [a, b], each of size n:

        y = silu(a) * b,   silu(a) = a * s,   s = sigmoid(a)
        dL/da = g * b * silu'(a),   silu'(a) = s * (1 + a * (1 - s))
        dL/db = g * silu(a)

    One input, not two: the feed-forward layer computes [a, b] with one matrix product (its
    weight is the gate's and the up-projection's side by side), and this op splits it.
    float16 computes in float32, forward and backward, and rounds once (`compute_dtype`).
    """

    @staticmethod
    def forward(ctx, x):
        x = ops._floating(x)                          # integers: float32
        n = _half(x)
        dtype, x = x.dtype, ops.widened(x)
        a, b = x[..., :n], x[..., n:]                 # views
        # sigmoid(a) = (1 + tanh(a/2)) / 2: one tanh, in place in one new array, several times
        # faster than the two-branch exp of the Sigmoid op (whose care for tiny values is lost
        # here anyway: silu multiplies them by a).
        s = np.multiply(a, 0.5, out=np.empty_like(a))
        np.tanh(s, out=s)
        s *= 0.5
        s += 0.5
        if ctx.needs_input_grad[0]:
            ctx.s = s                                 # sigmoid(a), for backward
        y = a * s                                     # silu(a)
        y *= b
        return y.astype(dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, grad = ops.widened(ctx.operands[0]), ops.widened(grad)
        n = x.shape[-1] // 2
        a, b = x[..., :n], x[..., n:]
        # Forward kept s = sigmoid(a); under create_graph it is computed again from a, as a
        # Tensor, or the second derivative would miss it.
        s = ops.sigmoid(a) if ctx.create_graph else ctx.s
        silu = a * s
        d_a = (1 - s) * a
        d_a += 1
        d_a *= s                                      # silu'(a)
        d_a *= b
        d_a *= grad
        return ops.concat([d_a, grad * silu], axis=-1)    # (..., 2n), as x


def _half(x):
    if x.ndim == 0 or x.shape[-1] % 2:
        raise ShapeError(f"swiglu: the last axis holds the gate and the values side by side, "
                         f"so its size must be even; got shape {x.shape}")
    return x.shape[-1] // 2


def swiglu(x: Tensor) -> Tensor:
    """silu(a) * b for x = [a, b] split in half along the last axis: (..., 2n) -> (..., n)."""
    return SwiGLU.apply(x)


def silu(x: Tensor | ArrayLike) -> Tensor:
    """SiLU (swish), elementwise, as torch's F.silu; the gate of swiglu:

        y = x s,   s = sigmoid(x),   dy/dx = s (1 + x (1 - s))
    """
    x = x if isinstance(x, Tensor) else Tensor(x)
    return x * x.sigmoid()


class ReluSquared(Function):
    """The squared ReLU (So et al. 2021, "Primer"; nanochat's feed-forward):

        y = max(x, 0)^2,   dy/dx = 2 max(x, 0)
    """

    @staticmethod
    def forward(ctx, x):
        y = np.maximum(x, 0)
        y *= y
        return y

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.operands
        return grad * ops.relu(x) * 2


def relu_squared(x: Tensor) -> Tensor:
    """max(x, 0)^2, elementwise, in one op (Primer's squared ReLU)."""
    return ReluSquared.apply(x)


class SoftCap(Function):
    """Soft-capping (Gemma 2, nanochat): squash x smoothly into (-cap, cap), nearly the
    identity where |x| is well below cap:

        y = cap * tanh(x / cap),   dy/dx = 1 - tanh^2(x / cap) = 1 - (y / cap)^2

    float16 computes in float32, forward and backward, and rounds once (`compute_dtype`).
    """

    @staticmethod
    def forward(ctx, x, cap):
        x = ops._floating(x)                            # integers: float32
        dtype, x = x.dtype, ops.widened(x)
        ctx.cap = cap
        y = np.divide(x, cap, out=np.empty_like(x))     # one new array, then in place
        np.tanh(y, out=y)
        y *= cap
        return y.astype(dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        y, grad = ops.widened(ctx.result), ops.widened(grad)
        t = y / ctx.cap                 # tanh(x / cap); the output's own node under create_graph
        return grad * (1 - t * t)


def softcap(x: Tensor, cap: float) -> Tensor:
    """cap * tanh(x / cap), cap > 0: logits kept within (-cap, cap)."""
    if not (isinstance(cap, (int, float)) and not isinstance(cap, bool) and cap > 0
            and np.isfinite(cap)):
        raise ValueError(f"softcap: cap must be a finite number > 0, got {cap!r}")
    return SoftCap.apply(x, cap=float(cap))


# ---------------------------------------------------------------------------- linear


def linear(x: Tensor | ArrayLike, weight: Tensor | ArrayLike,
           bias: Tensor | ArrayLike | None = None) -> Tensor:
    """x @ weight + bias, weight (in, out), bias (out,) or None: one `ops.Linear` node (the
    product, with the bias added in place) rather than a MatMul and an Add. torch's F.linear
    takes its weight as (out, in): pass that one's `.T` (a square one would not fail)."""
    # Arrays become Tensors, as in every op (two arrays' `@` would be numpy's, an array); as
    # for x @ weight, an integer x computes in float32.
    x, weight = _operands(x, weight, ("linear: x", "linear: weight"))
    if bias is None:
        try:
            return x @ weight
        except ShapeError as error:
            hint = ops._torch_weight_hint(x.shape, weight.shape)
            if not hint:
                raise
            raise ShapeError(f"linear: {error}{hint}") from None
    return ops.Linear.apply(x, weight, bias)


# ---------------------------------------------------------------------------- the rest


def dropout(x: Tensor, p: float = 0.5, training: bool = True,
            generator: np.random.Generator | None = None) -> Tensor:
    """Zero each element of x with probability p and scale the survivors by 1/(1-p), so that
    the expected value is unchanged (p = 1: all zeros, as torch); x itself when not
    `training`. Any shape, kept.
    Seeded by `tinyautograd.manual_seed` or an explicit numpy `generator`."""
    _check_probability("dropout", "p", p)
    # Checked even where nothing is drawn (not training, p = 0): a seed given in its place is a
    # mistake all the same, found before the first step that trains.
    generator = random.generator_or_default(generator, "dropout")
    # An array becomes a Tensor as every op makes one (its floats float32), kept or dropped.
    x = x if isinstance(x, Tensor) else Tensor(x)
    if not training or p == 0.0:
        return x
    # The survivors' 1/(1-p) is a fraction: integers compute in float32, as for `/`.
    dtype = x.dtype if x.dtype.kind == "f" else np.float32
    return x * Tensor._make(dropout_mask(x.shape, p, dtype, generator))


def dropout_mask(shape: tuple[int, ...], p: float, dtype: DTypeLike = np.float32,
                 generator: np.random.Generator | None = None) -> np.ndarray:
    """The array dropout multiplies by, of `shape` and `dtype`: each element 0 with
    probability p, else 1/(1-p), drawn from `generator` (default: the engine's, seeded by
    `tinyautograd.manual_seed`).
    An op that drops inside itself (tinyformer's attention) draws its mask here too, so the
    same seed drops the same elements either way."""
    _check_probability("dropout", "p", p)
    keep = random.generator_or_default(generator, "dropout").random(shape) >= p  # none at p = 1
    return (keep / (1 - p) if p < 1 else keep).astype(dtype)


def embedding(indices: Tensor | ArrayLike, weight: Tensor | ArrayLike) -> Tensor:
    """Rows of `weight` (num, dim) picked by integer `indices` (any shape): (..., dim). The
    gradient adds up in the rows that were picked, once per pick. A numpy weight becomes a
    Tensor, as in every op."""
    idx = np.asarray(indices.data if isinstance(indices, Tensor) else indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got {idx.dtype}")
    # Indexed as it was, an array would give an array, outside any graph, and a weight of
    # one axis would give numbers rather than rows.
    weight = weight if isinstance(weight, Tensor) else Tensor(weight)
    if weight.ndim != 2:
        raise ShapeError(f"embedding: weight must be a table (num, dim) of 2 axes, got shape "
                         f"{weight.shape}")
    num = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= num):
        bad = idx[(idx < 0) | (idx >= num)].flat[0]
        raise IndexError(f"embedding: index {bad} is out of range for a table of {num} rows")
    return weight[idx]


def one_hot(tensor: Tensor | ArrayLike, num_classes: int = -1) -> Tensor:
    """Integer class indices `tensor` (...) as one-hot rows (..., num_classes): 1 at each
    index's class, 0 elsewhere, int64, as torch's. num_classes=-1 takes the largest index + 1. A
    constant, outside the graph (integers have no gradient): `.astype(np.float32)` for a float
    one."""
    indices = np.asarray(tensor.data if isinstance(tensor, Tensor) else tensor)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"one_hot: tensor must hold integers (class indices), got "
                        f"{indices.dtype}")
    if (isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral)
            or num_classes < -1):
        raise ValueError(f"one_hot: num_classes must be a whole number >= 0, or -1 for the "
                         f"largest index + 1, got {num_classes!r}")
    if indices.size and indices.min() < 0:
        raise ValueError(f"one_hot: class indices must be >= 0, got {indices.min()}")
    if num_classes == -1:
        if not indices.size:
            raise ValueError("one_hot: an empty tensor has no largest index to take "
                             "num_classes from; give num_classes")
        num_classes = int(indices.max()) + 1
    elif indices.size and indices.max() >= num_classes:
        raise ValueError(f"one_hot: class index {indices.max()} needs num_classes > "
                         f"{indices.max()}, got num_classes={num_classes}")
    return Tensor((indices[..., None] == np.arange(num_classes)).astype(np.int64))


@_numpy_keywords
def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """e^x / sum(e^x) along `axis` (the last by default): `x.softmax(axis)`."""
    return ops.Softmax.apply(x, axis=axis)


@_numpy_keywords
def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) along `axis`, computed as x - log(sum(e^x)): `x.log_softmax(axis)`."""
    return ops.LogSoftmax.apply(x, axis=axis)


def softplus(x: Tensor) -> Tensor:
    """ln(1 + e^x), elementwise: a smooth relu, computed without overflow for large x (torch's
    F.softplus with its default beta=1, but exact beyond its threshold of 20, where torch's is
    x itself)."""
    return ops.Softplus.apply(x)


def relu(x: Tensor) -> Tensor:
    """max(x, 0), elementwise: `x.relu()`."""
    return ops.Relu.apply(x)          # (the Function: an array becomes a Tensor, as for softmax)


def gelu(x: Tensor, approximate: str = "tanh") -> Tensor:
    """GELU in its tanh approximation (GPT-2's, torch's approximate='tanh'), not the exact erf
    form that is torch's default ('none', refused): `x.gelu()`."""
    if approximate != "tanh":
        _refuse_exact_gelu("gelu", approximate)
    return ops.Gelu.apply(x)


# ---------------------------------------------------------------------------- torch's others

# torch.nn.functional's names that are not here, with what to write instead, for the
# AttributeError (as tinyautograd's and nn's): F is tinyautograd.functional, ta tinyautograd,
# x the input, and axis -1 stands for torch's dim.
_TORCH_FUNCTIONAL_NAMES = {
    "nll_loss": ("cross_entropy(logits, targets), which is nll_loss(log_softmax(logits), "
                 "targets) in one op (classes on the last axis)"),
    "binary_cross_entropy": ("binary_cross_entropy_with_logits(logits, target), from the "
                             "logits, which never takes log 0; from probabilities p, "
                             "-(y * p.log() + (1 - y) * (1 - p).log()).mean()"),
    "l1_loss": "(input - target).abs().mean()",
    "smooth_l1_loss": ("ta.where(d.abs() < beta, 0.5 * d * d / beta, d.abs() - 0.5 * beta)"
                       ".mean() with d = input - target (torch's beta is 1.0)"),
    "huber_loss": ("ta.where(d.abs() < delta, 0.5 * d * d, delta * (d.abs() - 0.5 * delta))"
                   ".mean() with d = input - target (torch's delta is 1.0)"),
    "kl_div": ("(target * (target.log() - input)).sum() / len(input) for log-probabilities "
               "input and probabilities target (torch's reduction='batchmean')"),
    "sigmoid": "x.sigmoid()", "tanh": "x.tanh()",
    "logsigmoid": "-F.softplus(-x)",
    "softmin": "F.softmax(-x, axis)",
    "leaky_relu": "ta.where(x > 0, x, negative_slope * x) (torch's slope is 0.01)",
    "mish": "x * F.softplus(x).tanh()",
    # min(x, 0) inside the exp: a ta.where(x > 0, x, x.exp() - 1) overflows exp for a large
    # x, and the gradient of the branch not taken, 0 * inf, is NaN. Taken by where, not as
    # -(-x).relu(), whose gradient at 0 is relu's, 0: torch's elu has alpha there.
    "elu": ("x.relu() + alpha * (ta.where(x > 0, 0, x).exp() - 1), the where being min(x, 0) "
            "(torch's alpha is 1.0)"),
    **dict.fromkeys(("conv1d", "conv2d"), "none: there are no convolutions (the layers are a "
                    "Transformer's)"),
    "glu": ("a * b.sigmoid() with a, b = x[..., :n], x[..., n:], the halves of the last axis "
            "(F.swiglu computes F.silu(a) * b)"),
    "normalize": ("x / ((x * x).sum(axis=-1, keepdims=True) + eps * eps).sqrt(), rows of "
                  "2-norm 1 (torch divides by max(norm, eps): the same but for norms near eps)"),
    "cosine_similarity": ("(a * b).sum(axis=-1) / ((a * a).sum(axis=-1) * (b * b).sum(axis=-1)"
                          ").sqrt()"),
    "pad": ("ta.concat([x, ta.zeros(*x.shape[:-1], k, dtype=x.dtype)], axis=-1), k zeros "
            "after the last axis (before it: the zeros first)"),
    "scaled_dot_product_attention": (
        "tinyformer.attention.scaled_dot_product_attention(q, k, v, mask), a boolean mask "
        "True where a query may attend, as torch's boolean attn_mask (is_causal=True: "
        "tinyformer's causal_mask(T))"),
}

# Under `if not TYPE_CHECKING:`, as tinyautograd's: a type checker reading it would take any
# name for one of ours (`F.cross_entrpy`), and flag no misspelling.
if not TYPE_CHECKING:
    __getattr__ = _pointing_to_ours("module 'tinyautograd.functional'",
                                    _TORCH_FUNCTIONAL_NAMES)
