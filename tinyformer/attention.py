"""Attention, as "Attention Is All You Need" (Vaswani et al. 2017, section 3.2) defines it.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

Each query asks every key how well it matches (a dot product), softmax turns the matches into
weights that sum to 1, and the answer is the weighted average of the values. Dividing by
sqrt(d_k) keeps the dot products near unit size, so softmax does not saturate as d_k grows.

The models run it as one op, `Attention`: a numpy forward and a backward written once, for
arrays and Tensors alike, so that it is fast and still twice differentiable (its backward
graph can be drawn). `attention_readable` builds the same function from engine ops, one step
at a time: it is here to be read, and the tests check the op against it.

Masks are boolean and True means "may attend", the convention of torch's
`scaled_dot_product_attention` with a boolean `attn_mask` (torch's `nn.MultiheadAttention` uses
the opposite one: True there means "blocked"). A bias is numbers added to the scores after the
scaling, softmax(Q K^T / sqrt(d_k) + bias), what torch's float `attn_mask` is: ALiBi's slopes
times distances, T5's learned relative positions (a Tensor that requires a gradient gets one).
Shapes: B batch, H heads, T_q queries, T_k keys, d the width of a query or key, d_v the width
of a value.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Union

import numpy as np
from numpy.typing import ArrayLike

from tinyautograd import (Function, ShapeError, Tensor, concat, functional, kernels, no_grad,
                          nn)

from .layers import (SWITCHES, check_key_value_heads, check_rmsnorm_affine_applies, check_sizes,
                     check_switches, head_width, norm_layer)
from .schema import check_settings, check_whole, counted

if TYPE_CHECKING:
    from .layers import RotaryPositions

__all__ = ["scaled_dot_product_attention", "attention_readable", "attention_weights",
           "Attention", "causal_mask", "padding_mask", "KVCache", "MultiHeadAttention"]

# The score given to a blocked key (or added to it, which softmax cannot tell apart): -inf, as
# torch's, whose e^(-inf - max) is exactly 0 whatever the other scores. A finite one, -1e9, is
# 0 only beside scores well above it: added to a blocked key's 3e9 it left 2e9, and set in its
# place it was still more than an allowed key's -2e9; the blocked key took the weight (a
# causal model read a later token). A row whose keys are all blocked would compute -inf -
# (-inf) = NaN inside softmax: it keeps its scores (`_unblocked`), and its weights are set to 0
# after the softmax, so a query with nothing to attend to outputs zeros.
_BLOCKED = -np.inf

Mask = Union[Tensor, ArrayLike]     # boolean, True = may attend; a numpy array or a Tensor
Bias = Union[Tensor, ArrayLike]     # numbers added to the scores; a Tensor may require a grad


# --------------------------------------------------------------------------------------------
# Masks


def causal_mask(T: int, start: int = 0) -> np.ndarray:
    """(T, start + T) booleans: query i, at position start + i, may attend the keys at positions
    0 .. start + i, never a later one. This is how a decoder is kept from reading the tokens it
    must predict. With start = 0 it is the (T, T) lower triangle; with a KV cache holding
    `start` earlier tokens, the new queries see all of those too. Read-only: every mask is a
    view of one array (`mask.copy()` gives one to change).
    """
    # Checked before slicing: True would pass for 1, and a float or a list fail in numpy's words.
    check_whole("causal_mask", 1, T=T)
    check_whole("causal_mask", 0, start=start)
    n = start + T
    return _lower_triangle(n)[start:n, :n]     # query start + i sees keys 0 .. start + i


# The lower triangle (n, n) of the most keys asked for so far, read-only: every causal mask is
# a view of it, so that a mask costs no new array at every forward. One triangle rather than a
# cache of masks by (T, start): those kept an array of T * (start + T) for each length met (a
# notebook evaluating texts of many lengths on a model of context 1024 kept up to 64 MiB of
# masks for good), where the largest triangle holds every smaller mask.
_triangle = np.ones((0, 0), dtype=bool)


def _lower_triangle(n):
    """A read-only (m, m) lower triangle of booleans, m >= n."""
    global _triangle
    triangle = _triangle        # (read once: another thread may replace it meanwhile)
    if len(triangle) < n:
        triangle = np.tril(np.ones((n, n), dtype=bool))
        triangle.setflags(write=False)          # shared by every mask: none may change it
        _triangle = triangle
    return triangle


class KVCache:
    """The keys and values that decoding computes once and reads at every later step, for
    every attention layer.

    Self-attention: generating token t+1 needs the attention of token t over tokens 0..t.
    Their keys and values do not change once computed (a causal model never lets a token see
    later ones), so they are kept here and each step computes q, k, v for its new tokens only:
    linear work per token instead of quadratic. `length` counts the tokens stored; the model
    advances it once every layer has stored a step's (a layer run alone has its caller
    advance it), and each layer must hold exactly `length` tokens when the next step comes:
    one that holds more was run again without `length` advancing, and writing over its last
    step would silently forget it, so it is refused. A step cut short part way through the
    layers (Ctrl-C, an error in a later layer) is `rewind`-ed by the model's stack: the first
    layers forget what they stored, and running the step again stores it once.

    Cross-attention (an encoder-decoder's): its keys and values are projections of the
    encoder's output, which stays the same while a sequence is decoded. `cross` computes them
    at the first step and hands back the same ones at every later step (as transformers'
    EncoderDecoderCache and fairseq's static_kv do), so that a step projects its new tokens
    only, not the whole source again in every layer.

    Self-attention's are written into buffers that grow by doubling, as a Python list does
    (up to `context`, the most tokens the model reads, where it is given), and `extend`
    returns views of the filled part: a step copies only its own new keys and values, where
    concatenating would copy all the earlier ones again at every step. When a graph is being
    recorded (k or v requires a gradient), `extend` concatenates with engine ops instead, so
    that gradients reach the keys and values of every step.
    """

    def __init__(self, context: int | None = None) -> None:
        if context is not None:
            check_whole("KVCache", 1, context=context)
        self.length = 0
        self.context = context
        self._kv = {}            # attention module -> (keys, values), each (B, H, length, d)
        self._buffers = {}       # attention module -> (keys, values), (B, H, capacity, d) arrays
        self._cross = {}         # cross-attention module -> (keys, values), (B, H, S, d)
        self.memory = None       # the context (B, S, C) those came from: the encoder's output

    def extend(self, layer: MultiHeadAttention, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store this step's keys `k` and values `v` (B, H, T, d) for `layer` after the
        `length` tokens stored; return all of them, (B, H, length + T, d)."""
        old = self._kv.get(layer)
        if old is not None and old[0].shape[0] != k.shape[0]:
            # Else numpy's broadcast error, or one sequence's keys copied to every row.
            raise ValueError(f"KVCache: this step has {k.shape[0]} sequences, the cache holds "
                             f"{old[0].shape[0]}; a cache serves one batch (select(rows) keeps "
                             f"some of its rows): start a new KVCache for another batch")
        # The step's tokens go at `length`, after exactly that many. Fewer: a layer the earlier
        # steps did not run, whose buffer's unwritten part would be read as keys. More: a
        # layer run again without `length` advancing, whose last step would be overwritten.
        filled = self.length
        held = 0 if old is None else old[0].shape[2]
        if held < filled:
            raise ValueError(f"KVCache: this layer holds the keys of {counted(held, 'token')}, "
                             f"the cache counts {filled}; a cache serves the layers that ran "
                             f"every step since it was made: start a new KVCache")
        if held > filled:
            raise ValueError(f"KVCache: this layer holds the keys of {counted(held, 'token')}, "
                             f"the cache counts {filled}; after each step of a layer run alone, "
                             f"advance cache.length by the step's tokens (a model does it once "
                             f"all its layers ran), or cache.rewind(cache.length) to run a step "
                             f"again")
        end = filled + k.shape[2]
        if self.context is not None and end > self.context:
            raise ValueError(f"KVCache: {counted(end, 'token')} do not fit a cache of context "
                             f"{self.context}; make it KVCache(model.context), or None to grow")
        if k.requires_grad or v.requires_grad:
            if filled:
                k, v = concat([old[0], k], axis=2), concat([old[1], v], axis=2)
            self._kv[layer] = (k, v)
            self._buffers.pop(layer, None)          # the buffers no longer hold everything
            return k, v
        buffers = self._buffers.get(layer)
        if buffers is None or buffers[0].shape[2] < end:
            # Room for as many tokens again; never more than the model can read (the model
            # refuses tokens past its context before they reach the cache).
            capacity = 2 * end if self.context is None else min(2 * end, self.context)
            old_k, old_v = (None, None) if old is None else (old[0].data, old[1].data)
            buffers = self._buffers[layer] = (_grown(k.data, old_k, capacity),
                                              _grown(v.data, old_v, capacity))
        buffers[0][:, :, filled:end] = k.data
        buffers[1][:, :, filled:end] = v.data
        k, v = (Tensor(b[:, :, :end], dtype=b.dtype) for b in buffers)   # views, no copy
        self._kv[layer] = (k, v)
        return k, v

    def rewind(self, length: int) -> None:
        """Forget every token after the first `length`: `length` becomes it, and each layer
        keeps the keys and values of those tokens only (the next step writes after them). For
        a step cut short, which the model's stack rewinds to where it started. ValueError for
        a length the cache does not count (below 0, a slice would read it from the end; past
        `length`, no step stored those tokens)."""
        check_whole("KVCache.rewind", 0, length=length)
        if length > self.length:
            held = counted(self.length, "token")
            raise ValueError(f"KVCache.rewind: length {length} is past the {held} the cache "
                             f"counts; rewind to a length it has passed")
        self.length = length
        for layer, (k, v) in self._kv.items():
            if k.shape[2] > length:
                self._kv[layer] = (k[:, :, :length], v[:, :, :length])

    def cross(self, layer: MultiHeadAttention, context: Tensor,
              project: Callable[[Tensor], tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        """The keys and values (B, H, S, d) of `context` (B, S, C) for the cross-attention
        `layer`: `project(context)` at the first step, the stored ones after that.

        They are those of one context, the encoder's output for the sequences being decoded,
        kept as `memory`: another one would be given its keys without a word, so it is
        refused. A context of equal values is the same one (a caller that selected rows by
        itself holds a copy of them; a session gives `memory` back, which costs no comparison).
        """
        if self.memory is None:
            self.memory = context
        elif context is not self.memory and not np.array_equal(context.data, self.memory.data):
            raise ValueError("KVCache: this cache holds the cross-attention keys of another "
                             "context (encoder output); decode a new source with a new "
                             "KVCache")
        if layer not in self._cross:
            self._cross[layer] = project(context)
        return self._cross[layer]

    def select(self, rows: np.ndarray) -> None:
        """Keep these rows of the batch, in this order, repeats allowed (beam search copies
        and drops sequences); the cross-attention's keys and values, and the context they
        came from, follow the same rows. The kept self-attention keys and values are copied
        once, into new buffers of the same capacity, so that the next `extend` writes into
        them: without buffers it would grow new ones and copy everything a second time, at
        every step of a beam search. They keep their dtype (a Tensor made from a float64
        array would otherwise be float32)."""
        for layer, (k, v) in self._kv.items():
            buffers = self._buffers.get(layer)
            if buffers is None:                 # recorded: the keys and values of a graph
                self._kv[layer] = _rows(rows, k, v)
                continue
            filled = k.shape[2]
            kept = tuple(np.empty((len(rows),) + b.shape[1:], dtype=b.dtype) for b in buffers)
            for new, old in zip(kept, buffers):
                new[:, :, :filled] = old[rows, :, :filled]
            self._buffers[layer] = kept
            self._kv[layer] = tuple(Tensor(b[:, :, :filled], dtype=b.dtype) for b in kept)
        for layer, (k, v) in self._cross.items():
            self._cross[layer] = _rows(rows, k, v)
        if self.memory is not None:
            self.memory, = _rows(rows, self.memory)


def _rows(rows, *tensors):
    """These rows of each Tensor, as new Tensors of its dtype (outside any graph)."""
    return tuple(Tensor(t.data[rows], dtype=t.dtype) for t in tensors)


def _grown(new, old, capacity):
    """An empty (B, H, capacity, d) buffer shaped after `new`, holding `old` (or None) in front."""
    buffer = np.empty(new.shape[:2] + (capacity,) + new.shape[3:], dtype=new.dtype)
    if old is not None:
        buffer[:, :, :old.shape[2]] = old
    return buffer


def padding_mask(is_token: Tensor | ArrayLike) -> np.ndarray:
    """A key-padding mask (B, 1, 1, T_k) from `is_token` (B, T_k), True where the key is a real
    token and False where it is padding. The two axes of size 1 broadcast over the heads and the
    queries: no query of any head attends a padding key. Combine with a causal mask by
    broadcasting: `causal_mask(T) & padding_mask(is_token)` is (B, 1, T, T)."""
    is_token = np.asarray(is_token.data if isinstance(is_token, Tensor) else is_token)
    if is_token.dtype != bool or is_token.ndim != 2:
        raise TypeError(f"padding_mask: is_token must be a (B, T_k) boolean array, got "
                        f"{is_token.dtype} of shape {is_token.shape}")
    return is_token[:, None, None, :]


def _keep_mask(q, k, v, mask):
    """Check the shapes of an attention call; return its mask as a numpy boolean array (or
    None), which must broadcast to the scores' shape (..., T_q, T_k) without enlarging it.
    v may be None (only the weights are wanted)."""
    # A vector (d,) has no axis of queries or keys: the shapes below would fail on it in
    # Python's words ("tuple index out of range"), not saying which input (torch refuses too).
    if (q.ndim < 2 or k.ndim < 2 or (v is not None and v.ndim < 2)
            or q.shape[-1] != k.shape[-1] or (v is not None and k.shape[-2] != v.shape[-2])):
        v_shape = "none" if v is None else v.shape
        raise ShapeError(f"attention: q {q.shape}, k {k.shape}, v {v_shape} need q (..., T_q, "
                         f"d), k (..., T_k, d) and v (..., T_k, d_v)")
    if mask is None:
        return None
    keep = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
    if keep.dtype != bool:
        got = f"attention: the mask must be boolean (True = may attend), got {keep.dtype}"
        if keep.dtype.kind in "iuf" and np.isin(keep, (0, 1)).all():
            # np.tril(np.ones((n, n))): as a bias it would be added to the scores, blocking
            # nothing, where its 1s meant "may attend".
            raise TypeError(f"{got} of 0s and 1s; give mask.astype(bool) (its 1s may attend)")
        raise TypeError(f"{got}; numbers to add to the scores (torch's float attn_mask) go to "
                        f"bias=")
    _check_fits(keep, _scores_shape(q, k))
    return keep


def _checked_bias(q, k, bias):
    """The bias of an attention call, checked: numbers that broadcast to the scores' shape
    (..., T_q, T_k) without enlarging it. A Tensor stays one (its gradient is wanted); anything
    else becomes a numpy array."""
    values = bias.data if isinstance(bias, Tensor) else np.asarray(bias)
    if values.dtype.kind not in "iuf":
        got = (f"attention: the bias must hold real numbers to add to the scores, got "
               f"{values.dtype}")
        if values.dtype == bool:
            raise TypeError(f"{got}; a boolean mask (True = may attend) goes to mask=")
        raise TypeError(got)
    _check_fits(values, _scores_shape(q, k), "bias")
    return bias if isinstance(bias, Tensor) else values


def _scores_shape(q, k):
    """(..., T_q, T_k): the batch axes of q and k broadcast together."""
    return np.broadcast_shapes(q.shape[:-2], k.shape[:-2]) + (q.shape[-2], k.shape[-2])


def _check_fits(keep, scores_shape, what="mask"):
    """ShapeError unless the mask (or bias) `keep` broadcasts to `scores_shape` without
    enlarging it."""
    try:
        fits = np.broadcast_shapes(keep.shape, scores_shape) == scores_shape
    except ValueError:
        fits = False
    if not fits:
        raise ShapeError(f"attention: a {what} of shape {tuple(keep.shape)} does not broadcast "
                         f"to the scores' shape {scores_shape} (..., T_q, T_k)")


# --------------------------------------------------------------------------------------------
# Scaled dot-product attention


def _scale(q):
    """1/sqrt(d), for queries and keys of width d. Of width 0, every score is an empty sum, 0,
    whatever multiplies it: 1, where 1/sqrt(0) is a ZeroDivisionError. The weights are then
    even over the keys a query may attend, as torch's."""
    d = q.shape[-1]
    return 1 / math.sqrt(d) if d else 1.0


def attention_weights(q: Tensor, k: Tensor, mask: Mask | None = None, *,
                      bias: Bias | None = None) -> Tensor:
    """softmax(q k^T / sqrt(d) + bias + blocked): how much each query attends to each key.

    q (..., T_q, d), k (..., T_k, d) -> (..., T_q, T_k), each row summing to 1 (or all 0 where
    the mask blocks every key). One engine op per step, so it can be differentiated (twice),
    in the bias too where it is a Tensor. Numpy arrays are taken as constant Tensors, as
    `scaled_dot_product_attention` takes them.
    """
    q, k = _in_one_dtype(*_as_tensors(q, k))
    keep = _keep_mask(q, k, None, mask)
    # float16 computes in float32 and its weights are rounded back once, as in the Attention
    # op: q . k of 16 values near 100 is 160,000, inf in float16, and its softmax NaN.
    dtype, half = q.dtype, functional.compute_dtype(q.dtype) != q.dtype
    q, k = functional.widened(q), functional.widened(k)
    scores = q @ k.swapaxes(-2, -1) * _scale(q)                       # (..., T_q, T_k)
    if bias is not None:
        scores = scores + _checked_bias(q, k, bias)
    if keep is not None:
        scores = scores.masked_fill(~_unblocked(keep)[0], _BLOCKED)
    weights = scores.softmax(axis=-1)                                 # each row sums to 1
    if keep is not None:
        # Blocked keys already weigh exactly 0, unless a row blocks every key: it would spread
        # evenly over them. Zero it, so that such a query outputs 0 and passes no gradient.
        weights = weights.masked_fill(~keep, 0.0)
    return weights.astype(dtype) if half else weights


def attention_readable(q: Tensor, k: Tensor, v: Tensor, mask: Mask | None = None, *,
                       bias: Bias | None = None, dropout_p: float = 0.0,
                       training: bool | None = None) -> Tensor:
    """softmax(q k^T / sqrt(d) + bias + blocked) v, one engine op per step: attention as the
    paper writes it, to read and to check `Attention` against. The models run `Attention`.

    q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v) -> (..., T_q, d_v). `mask` (boolean,
    True = may attend) and `bias` (numbers added to the scores) broadcast to (..., T_q, T_k).
    Dropout, when training, zeroes attention weights: a query then ignores some keys at
    random. (The paper's section 5.4 drops sub-layer outputs and embedding sums; dropout on
    the weights is from its tensor2tensor code, which the Annotated Transformer follows.)
    The inputs and keywords are those of `scaled_dot_product_attention`, with its rules (numpy
    arrays taken as constant Tensors).
    """
    _check_dropout("attention_readable", dropout_p, training)
    q, k, v = _in_one_dtype(*_as_tensors(q, k, v))
    keep = _keep_mask(q, k, v, mask)
    # float16 computes in float32, the output rounded back once, as in attention_weights
    dtype, half = q.dtype, functional.compute_dtype(q.dtype) != q.dtype
    q, k, v = functional.widened(q), functional.widened(k), functional.widened(v)
    weights = attention_weights(q, k, keep, bias=bias)                # (..., T_q, T_k)
    weights = functional.dropout(weights, dropout_p, bool(training))
    out = weights @ v                                                 # (..., T_q, d_v)
    return out.astype(dtype) if half else out


def _as_tensors(*arrays):
    """Each of `arrays` as a Tensor, a numpy array as a constant one: what the Attention op's
    apply makes of them, so that the readable forms take (and give) what
    scaled_dot_product_attention does, where a numpy array has no masked_fill or softmax."""
    return tuple(x if isinstance(x, Tensor) else Tensor(x) for x in arrays)


def _in_one_dtype(*tensors):
    """q, k (and v) in one dtype: integers as float32, then the widest of theirs, as `@`
    combines them. Attention computes in q's dtype: a float16 q would otherwise round the
    result of float32 or float64 keys and values to float16."""
    tensors = [x if x.dtype.kind in "fc" else x.astype(np.float32) for x in tensors]
    dtype = np.result_type(*(x.dtype for x in tensors))
    return tuple(x if x.dtype == dtype else x.astype(dtype) for x in tensors)


def _check_dropout(where, dropout_p, training):
    """ValueError, in one line naming `where`, for a dropout_p out of [0, 1] or one > 0 with
    `training` unsaid."""
    # NaN or a negative dropout_p would drop nothing, without a word. (0, the default and
    # every call of inference, needs no check: this runs at every layer of every token.)
    if dropout_p == 0:
        return
    check_settings({"dropout_p": dropout_p}, {"dropout_p": SWITCHES["dropout"]},
                   name=lambda key: f"{where}: {key}")
    if training is None:
        raise ValueError(f"{where}: dropout_p={dropout_p} needs training=True or "
                         f"training=False (torch's drops whenever dropout_p > 0; ours only "
                         f"when training)")


class Attention(Function):
    """Attention in one op: the function of `attention_readable`.

    Forward, with s = 1/sqrt(d), the bias B (0 without one), blocked scores made -inf,
    and D the dropout mask (each weight kept with probability 1 - p and scaled by 1/(1 - p);
    all ones without dropout):

        S = Q K^T s + B,   P = softmax(S) (rows blocking every key set to 0),   O = (P * D) V

    Backward, from dO = dL/dO, through O = (P * D) V, then softmax, then S = Q K^T s + B:

        dV = (P * D)^T dO
        dP = (dO V^T) * D
        dS = P * (dP - rowsum(dP * P))        softmax's backward, row by row
        dQ = dS K s,   dK = dS^T Q s,   dB = dS (summed by the engine to B's shape)

    rowsum(dP * P) is computed as rowsum(dO * O), the same numbers (row i: sum_j P_ij D_ij
    dO_i.V_j = dO_i.(sum_j P_ij D_ij V_j) = dO_i.O_i, FlashAttention's trick): a dot product
    over d_v per query instead of a product array of (..., T_q, T_k) and a sum over T_k.

    P is the only (..., T_q, T_k) array kept for backward, the memory attention is known for
    (with dropout, the mask D as well); rowsum reads the output O, which is (..., T_q, d_v).
    Under create_graph it is computed again from Q, K and B, as Tensors.
    """

    # Tested as the engine's own ops are, and run at every layer of every token: without the
    # checks a user's Function gets (Function.guarded), which cost generation about 1%.
    guarded = False

    @staticmethod
    def forward(ctx, q, k, v, bias=None, keep=None, drop=None):
        dtype = q.dtype                  # k and v have q's: the model's dtype
        if functional.compute_dtype(dtype) != dtype:
            # float16 computes in float32, as torch's: a dot product of 16 values near 100 is
            # 160,000 before the scaling, inf in float16 (65504), and its softmax NaN. What
            # forward keeps for backward is then float32; backward widens as well.
            wide = Attention.forward(ctx, *map(functional.widened, (q, k, v)), bias, keep, drop)
            ctx.rounded = True
            return wide.astype(dtype)
        ctx.rounded = False              # the output as computed (backward reads it)
        # In place, in the one (..., T_q, T_k) array: it is the largest the model makes.
        scale = _scale(q)
        scores = q @ np.swapaxes(k, -2, -1)                           # (..., T_q, T_k)
        scores *= scale
        added, blind = _added_to_scores(keep, bias, scores.dtype)     # B, and -inf if blocked
        p = _softmax_rows(scores, added)                              # into scores
        if blind:
            # A row with nothing to attend to got the softmax of its scores, unblocked: all
            # zeros instead. (Other blocked entries are exp(-inf) = 0 already.)
            np.copyto(p, 0.0, where=~keep)
        ctx.p, ctx.scale, ctx.keep, ctx.drop = p, scale, keep, drop
        return (p if drop is None else p * drop) @ v                 # (..., T_q, d_v)

    @staticmethod
    def backward(ctx, grad):
        # As forward: float16 in float32 (the engine gives each gradient its input's dtype)
        q, k, v, *bias = map(functional.widened, ctx.operands)        # bias: [B] or []
        grad = functional.widened(grad)
        if ctx.create_graph:             # P again, as a Tensor, for the second derivative
            p = attention_weights(q, k, ctx.keep, bias=bias[0] if bias else None)
        else:
            p = ctx.p
        drop = ctx.drop
        d_v = (p if drop is None else p * drop).swapaxes(-2, -1) @ grad     # (..., T_k, d_v)
        d_s = grad @ v.swapaxes(-2, -1)                      # dO V^T: (..., T_q, T_k)
        if drop is not None:
            d_s *= drop                                      # dP = (dO V^T) * D
        if ctx.rounded:
            # O was rounded to float16: rowsum(dO * O) from it would carry float16's rounding
            # into every dS of the row, whose sum is then no longer 0, and dQ = dS K s of
            # keys alike would lose its digits to it. rowsum(dP * P), all in float32.
            row_sums = functional.row_sum(d_s * p)
        else:
            row_sums = functional.row_sum(grad * ctx.result)     # rowsum(dO * O) = rowsum(dP * P)
        # dB is dS unscaled: where it is wanted, s goes on dQ and dK after their products,
        # each (..., T, d), rather than on a second (..., T_q, T_k) array.
        d_bias = None
        wants_d_bias = bool(bias) and ctx.needs_input_grad[3]
        scale = 1.0 if wants_d_bias else ctx.scale
        d_s = _softmax_rows_backward(d_s, p, row_sums, scale)   # dS (times s): into d_s
        d_q = d_s @ k                                                 # (..., T_q, d)
        d_k = d_s.swapaxes(-2, -1) @ q                                # (..., T_k, d)
        if wants_d_bias:
            d_bias = d_s
            d_q *= ctx.scale
            d_k *= ctx.scale
        return (d_q, d_k, d_v, d_bias) if bias else (d_q, d_k, d_v)


def _added_to_scores(keep, bias, dtype):
    """What Attention's forward adds to the scores, in `dtype`: -inf where the mask `keep`
    blocks a key (0 elsewhere), plus the bias; None for neither. Also whether some rows block
    every key, which keep their scores (`_unblocked`)."""
    # Adding -inf blocks a score as setting it would (exp(-inf) = 0), and runs two to
    # three times faster than np.copyto(where=) with a mask that broadcasts.
    unblocked, blind = (None, False) if keep is None else _unblocked(keep)
    added = None if keep is None else np.where(unblocked, 0, _BLOCKED).astype(dtype)
    if bias is not None:             # the bias rides with the blocked scores: one addition
        added = np.ascontiguousarray(bias if added is None else added + bias, dtype)
    return added, blind


def _softmax_rows(scores, added):
    """softmax(scores + added) along the last axis, computed in place in the array `scores`
    and returned; `added` from `_added_to_scores`."""
    rows = _rows_added(added, scores) if kernels.usable(into=(scores,)) else None
    if rows is not None:
        # Row by row, compiled (tinyautograd.kernels); with TINYAUTOGRAD_KERNELS=numpy, the
        # lines below run as written (to try an edit).
        kernels.softmax_rows(scores, rows)
        return scores
    if added is not None:
        scores += added
    # `initial`: numpy's max along a last axis of 64 (the Shakespeare recipe's context) runs
    # 2.5 times faster with it, for the same result.
    scores -= scores.max(axis=-1, keepdims=True, initial=-np.inf)
    np.exp(scores, out=scores)
    scores /= functional.row_sum(scores)
    return scores


def _softmax_rows_backward(d_p, p, row_sums, scale):
    """softmax's backward along the last axis, times `scale`: P * (dP - row_sums) * s, in
    place in d_p where it is an array (under create_graph, Tensors: a new one), returned."""
    if kernels.usable(p, row_sums, into=(d_p,)):     # the three lines below, compiled
        kernels.softmax_rows_backward(d_p, p, row_sums, scale)
        return d_p
    d_p -= row_sums
    d_p *= p                               # in place on arrays, as forward
    d_p *= scale                           # once here, not on d_q and d_k each
    return d_p


def _unblocked(keep):
    """The scores that softmax is to weigh, from the mask `keep`: keep itself, and the rows
    that block every key, where -inf throughout would make softmax NaN: those keep their
    scores, and their weights are set to 0 after it. Also whether there are such rows."""
    blind = ~keep.any(axis=-1, keepdims=True)
    if blind.any():
        return keep | blind, True
    return keep, False


def _rows_added(added, scores):
    """What the compiled loop adds to the scores' rows, as (rows, T_k): row r of the scores,
    counted over all leading axes, takes row r % rows. Zeros where nothing is added; `added`
    where it repeats whole over the leading axes of the scores (its shape, less leading axes
    of size 1, is how theirs ends: (T_q, T_k) for every batch and head, (H, T_q, T_k) for
    every batch); None where it does not (a padding mask, one a batch), for numpy."""
    if added is None:
        return np.zeros((1, scores.shape[-1]), scores.dtype)
    shape = added.shape
    while len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    if not shape or shape != scores.shape[len(scores.shape) - len(shape):]:
        return None
    return added.reshape(math.prod(shape[:-1]), shape[-1])


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Mask | None = None, *,
                                 bias: Bias | None = None, dropout_p: float = 0.0,
                                 training: bool | None = None) -> Tensor:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d) + bias) V, with an optional mask, bias and
    dropout.

    q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v) -> (..., T_q, d_v). `mask` is a boolean
    array or Tensor that broadcasts to (..., T_q, T_k), True where a query may attend a key (as
    torch's boolean attn_mask). A query whose keys are all blocked outputs zeros. `bias` is an
    array or Tensor of numbers that broadcasts to (..., T_q, T_k), added to the scores after
    the scaling (as torch's float attn_mask; ALiBi's, T5's): a Tensor that requires a gradient
    gets one. With both, the mask blocks keys and the bias shifts the rest (a bias of -inf
    blocks a key too, but a row of -inf is NaN: block whole rows with the mask). Dropout
    (training=True with dropout_p > 0) zeroes attention weights at random, seeded by
    `tinyautograd.manual_seed`.

    dropout_p and training are keyword-only: torch's function takes is_causal sixth, and a
    True passed there would be taken for training, leaving the attention unmasked. A
    dropout_p > 0 needs training said, as torch's drops whenever dropout_p > 0.

    Integer or boolean q, k, v compute in float32, as the engine's ops whose results are
    fractions (softmax, `/`) do with them; q, k and v of different float dtypes compute in the
    widest, as `@` combines them (torch's refuses them).
    """
    _check_dropout("scaled_dot_product_attention", dropout_p, training)
    if not (q.dtype == k.dtype == v.dtype and q.dtype.kind == "f"):
        q, k, v = _in_one_dtype(*_as_tensors(q, k, v))
    keep = _keep_mask(q, k, v, mask)
    drop = None
    if training and dropout_p > 0:
        drop = functional.dropout_mask(_scores_shape(q, k), dropout_p, q.dtype)  # (.., T_q, T_k)
    if bias is None:
        return Attention.apply(q, k, v, keep=keep, drop=drop)
    bias = _checked_bias(q, k, bias)
    if not isinstance(bias, Tensor):
        # An array in the attention's dtype: apply would make it a float32 Tensor, and a
        # float64 attention would add its bias rounded to float32.
        bias = Tensor(bias, dtype=functional.compute_dtype(q.dtype))
    return Attention.apply(q, k, v, bias, keep=keep, drop=drop)


# --------------------------------------------------------------------------------------------
# Multi-head attention


class MultiHeadAttention(nn.Module):
    """Multi-head attention (section 3.2.2):

        MultiHead(X, Z) = Concat(head_1, ..., head_h) W_out
        head_i = Attention(X W_q^i, Z W_k^i, Z W_v^i)

    Z = X for self-attention; for cross-attention Z is the `context` (the encoder's output, in
    the encoder-decoder Transformer). Each of the h = n_head heads works in d_head =
    d_model / n_head dimensions, so all of them cost about what one full-width head would,
    while each can attend to different positions. The h projections of one kind are held as one
    (d_model, n_head * d_head) Linear, head i using columns i*d_head..(i+1)*d_head.

    The modern switches:

    - `n_kv_head` (grouped-query attention, Ainslie et al. 2023): fewer key and value heads
      than query heads, each shared by a group of n_head / n_kv_head query heads (query head
      i reads key-value head i // group). None means n_head (the paper's); 1 is multi-query
      attention (Shazeer 2019). The KV cache then holds n_kv_head heads: a fraction of the
      memory, which is what generation is short of. The shared heads are never copied: the
      queries are grouped, (B, n_kv_head, group, T, d_head), against keys (B, n_kv_head, 1, S,
      d_head), and the Attention op broadcasts over the group.
    - `qk_norm` (Qwen3, nanochat): each head's queries and keys are normalised (a norm over
      d_head, of the kind `normalization` names, its weight shared by the heads; OLMo 2
      normalises the whole projection, all heads together) before RoPE and the dot product,
      so the scores follow the directions of q and k, not their lengths, which training would
      otherwise grow until softmax saturates.
    - `bias=False`: no biases in the four projections (nor in the qk norms).
    - `d_head`: the width of a head, d_model / n_head unless given (Qwen3 gives it).

    The others: `dropout` on the attention weights while training; `rotary`, a
    RotaryPositions that rotates the queries and keys (RoPE), or None; `normalization` and
    `rmsnorm_affine` choose the qk norms' kind, as the blocks' do.

    To look at the attention weights (viz.attention draws them), set `record_weights = True`:
    each forward then also stores softmax(q k^T / sqrt(d) + bias), blocked keys 0 (and only
    they: a weight that float32 rounds to 0 is kept just above it, and one that it rounds to 1
    beside other open keys just below), before dropout, as a numpy
    array (B, n_head, T_q, T_k) in `last_weights`. The Attention op keeps
    its weights to itself, so they are computed a second time, by `attention_weights`: off by
    default.
    """

    record_weights = False     # set True on an instance to fill last_weights at each forward
    last_weights: np.ndarray | None = None

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0, bias: bool = True,
                 rotary: RotaryPositions | None = None, n_kv_head: int | None = None,
                 qk_norm: bool = False, normalization: str = "layernorm",
                 rmsnorm_affine: bool = True, d_head: int | None = None) -> None:
        check_sizes("MultiHeadAttention", d_model=d_model, n_head=n_head, d_head=d_head)
        d_head = head_width("MultiHeadAttention", d_model, n_head, d_head)
        check_switches("MultiHeadAttention", dropout=dropout, n_kv_head=n_kv_head, bias=bias,
                       qk_norm=qk_norm, rmsnorm_affine=rmsnorm_affine)
        check_key_value_heads("MultiHeadAttention", n_head, n_kv_head)
        # Unnamed: a block or a stack that builds this attention takes them too. (Refused
        # without qk_norm as well: a model passes them on whether or not its heads norm.)
        check_rmsnorm_affine_applies(normalization, rmsnorm_affine)
        n_kv_head = n_head if n_kv_head is None else n_kv_head
        self.d_model, self.n_head, self.n_kv_head = d_model, n_head, n_kv_head
        self.d_head = d_head
        self.dropout = dropout                     # applied to the attention weights
        # A table of another width would fail at the first forward, as a shape error deep in
        # the rotation: said here, with the width it needs.
        width = getattr(rotary, "d_head", d_head)
        if width != d_head:
            raise ValueError(f"MultiHeadAttention: rotary turns heads {width} wide, and this "
                             f"attention's heads are {d_head} wide; give it "
                             f"RotaryPositions(context, {d_head})")
        self.rotary = rotary                       # RotaryPositions: rotates q and k, or None
        d_q, d_kv = n_head * self.d_head, n_kv_head * self.d_head
        self.q = nn.Linear(d_model, d_q, bias)
        self.k = nn.Linear(d_model, d_kv, bias)
        self.v = nn.Linear(d_model, d_kv, bias)
        self.out = nn.Linear(d_q, d_model, bias)
        if qk_norm:
            self.q_norm = norm_layer(normalization, self.d_head, rmsnorm_affine, bias)
            self.k_norm = norm_layer(normalization, self.d_head, rmsnorm_affine, bias)
        else:
            self.q_norm = self.k_norm = None

    def forward(self, x: Tensor, context: Tensor | None = None, mask: Mask | None = None,
                cache: KVCache | None = None, *, bias: Bias | None = None) -> Tensor:
        """x (B, T, C) -> (B, T, C). Keys and values come from `context` (B, S, C), or from x
        when it is None. (Here `context` is a tensor, the encoder's output a decoder layer
        calls `memory`; not the models' `context`, their longest sequence.) `mask` (boolean, True =
        may attend) broadcasts to (B, n_head, T, S): `causal_mask(T)` for a decoder,
        `padding_mask(is_token)` for padded keys. `bias` (numbers added to the scores: ALiBi's,
        T5's) broadcasts to (B, n_head, T, S) too. With a `KVCache`, x holds only the new tokens:
        self-attention adds their keys and values to the earlier ones in the cache, and
        cross-attention computes the context's at its first step and takes them from the cache at
        every later one. S then counts every key, and the caller gives the mask and bias of the new
        queries only: rows start .. start + T - 1 of the whole sequence's, for every key (a step of
        one token gets the bias of its one row; a bias of the whole sequence is refused, as it does
        not fit). A layer run alone with a cache has its caller advance `cache.length += T`
        after each step, as a model's decoder does once all its layers ran: the next step's
        keys are written at `length`, and a layer that holds more is refused."""
        _check_rows(x, "x", self.d_model)
        if context is not None:
            _check_rows(context, "context", self.d_model)
            if context.shape[0] != x.shape[0]:     # torch refuses too; numpy would broadcast 1
                raise ValueError(f"MultiHeadAttention: x and context batches differ, "
                                 f"{x.shape[0]} and {context.shape[0]}: give one context row "
                                 f"per row of x")
        start = 0 if cache is None else cache.length   # position of x's first token
        q = self._split_heads(self.q(x), self.n_head)          # (B, n_head, T, d_head)
        if self.q_norm is not None:                # QK-norm: each head's q, over d_head
            q = self.q_norm(q)
        if self.rotary is not None:                # RoPE: positions enter through q and k only
            q = self.rotary.rotate(q, start)
        if context is None:                        # self-attention: x's own keys and values,
            k, v = self._keys_values(x, start)     # after the cached ones
            if cache is not None:                  # (B, n_kv_head, start + T, d_head)
                k, v = cache.extend(self, k, v)
        elif cache is None:                        # cross-attention: the context's,
            k, v = self._keys_values(context, 0)   # (B, n_kv_head, S, d_head)
        else:                                      # the same context at every step: once
            k, v = cache.cross(self, context, lambda c: self._keys_values(c, 0))
        B, _, T, _ = q.shape
        if self.n_kv_head != self.n_head:          # grouped: the group's queries share k, v
            group = self.n_head // self.n_kv_head
            q = q.reshape(B, self.n_kv_head, group, T, self.d_head)  # (B, n_kv, group, T, d)
            k = k.reshape(B, self.n_kv_head, 1, *k.shape[2:])        # (B, n_kv, 1, S, d)
            v = v.reshape(B, self.n_kv_head, 1, *v.shape[2:])
            scores_shape = (B, self.n_head, T, k.shape[-2])
            mask = _grouped(mask, scores_shape, self.n_kv_head)
            bias = _grouped(bias, scores_shape, self.n_kv_head, "bias")
        heads = scaled_dot_product_attention(q, k, v, mask, bias=bias, dropout_p=self.dropout,
                                             training=self.training)
        if self.record_weights:                    # a copy for viewing, outside any graph
            with no_grad():
                weights = _blocked_only_zero(attention_weights(q, k, mask, bias=bias).data,
                                             mask, bias)
                self.last_weights = weights.reshape(B, self.n_head, T, -1).copy()
        # Concat(head_1, ..., head_h): put the heads side by side again.
        # (B, n_head, T, d_head) -> (B, T, n_head, d_head) -> (B, T, n_head * d_head)
        d_q = self.n_head * self.d_head
        if T == 1:                                 # one token (generation): see _split_heads
            return self.out(heads.reshape(B, T, d_q))
        if self.n_kv_head != self.n_head:          # ungroup: (B, n_head, T, d_head)
            heads = heads.reshape(B, self.n_head, T, self.d_head)
        return self.out(heads.swapaxes(1, 2).reshape(B, T, d_q))

    def _keys_values(self, z, start):
        """The keys and values of z (B, S, C), its first token at position `start`: each
        (B, n_kv_head, S, d_head), the keys normalised and rotated as the queries are."""
        k = self._split_heads(self.k(z), self.n_kv_head)
        v = self._split_heads(self.v(z), self.n_kv_head)
        if self.k_norm is not None:
            k = self.k_norm(k)
        if self.rotary is not None:
            k = self.rotary.rotate(k, start)
        return k, v

    def _split_heads(self, x, heads):
        """A projection x (B, T, heads * d_head) as (B, heads, T, d_head): `heads` is n_head
        for the queries, n_kv_head for the keys and values."""
        B, T, _ = x.shape
        # (B, T, heads * d_head) -> (B, T, heads, d_head) -> (B, heads, T, d_head): each head
        # a batch entry. With one token, swapping the T axis (of size 1) moves no element: one
        # reshape does it, one engine op fewer per call where generation spends its time on
        # per-op overhead.
        if T == 1:
            return x.reshape(B, heads, T, self.d_head)
        return x.reshape(B, T, heads, self.d_head).swapaxes(1, 2)

    def extra_repr(self) -> str:
        # The switches only where they differ from their defaults, as LayerNorm shows
        # bias=False: d_head where it is not d_model / n_head (Qwen3's), and no biases.
        d_head = ("" if self.d_head * self.n_head == self.d_model
                  else f", d_head={self.d_head}")
        grouped = f", n_kv_head={self.n_kv_head}" if self.n_kv_head != self.n_head else ""
        qk_norm = ", qk_norm=True" if self.q_norm is not None else ""
        bias = "" if self.q.bias is not None else ", bias=False"
        return (f"d_model={self.d_model}, n_head={self.n_head}{d_head}{grouped}{qk_norm}, "
                f"dropout={self.dropout}{bias}")


def _blocked_only_zero(weights: np.ndarray, mask: Mask | None,
                       bias: Bias | None) -> np.ndarray:
    """Recorded `weights`, exactly 0 only where the key is blocked (by `mask`, or a bias of
    -inf), and 1 only where every other key is: the pictures leave a 0 blank and the page says
    the mask blocked it. A weight that float32 rounds to 0 (a score 104 or more below its
    row's highest: ALiBi's bias gives one to the far keys of a long prompt), or to 1, is kept
    short of it by `unrounded_probabilities`, as the logit lens keeps its probabilities."""
    open_keys = np.ones(weights.shape, dtype=bool)                 # (B, H, T_q, T_k)
    for given in (mask, bias):
        if given is not None:
            given = np.asarray(given.data if isinstance(given, Tensor) else given)
            open_keys &= given if given.dtype == bool else given > -np.inf
    return unrounded_probabilities(weights, open_keys)


def unrounded_probabilities(probs: np.ndarray, possible: np.ndarray) -> np.ndarray:
    """The rows of softmax probabilities `probs` (..., N), those that the softmax rounded to
    exactly 1 or 0 moved to the nearest number that is not: float32's softmax gives 1.0 to
    one once the others add up to less than 6e-8 (a lead of 17 in the scores), and 0.0 to one
    104 behind the first. Only a choice that is not `possible` (..., N) (a key the mask
    blocks, a logit of -inf) is kept at 0, and only the one possible choice of its row at 1:
    a picture or a table of them would read ruled out, or sure, where the model is not. For
    the recorded attention weights and the logit lens alike. NaN is kept."""
    one, zero = probs.dtype.type(1), probs.dtype.type(0)
    # More choices possible in the row than this one: something else has a chance too.
    others = possible.sum(axis=-1, keepdims=True) > possible            # (..., N)
    probs = np.where((probs == one) & others, np.nextafter(one, zero), probs)
    return np.where((probs == zero) & possible, np.finfo(probs.dtype).smallest_subnormal, probs)


def _check_rows(x: Tensor, name: str, d_model: int) -> None:
    """ShapeError unless x is a batch of sequences of vectors of the layer's width, (B, T,
    d_model): another width failed in the projection's matmul, naming neither the layer nor
    the width it takes."""
    if x.ndim != 3:
        raise ShapeError(f"MultiHeadAttention: {name} must be (B, T, d_model), got shape "
                         f"{tuple(x.shape)}; pass {name}[None] for one sequence")
    if x.shape[-1] != d_model:
        # torch's kdim and vdim let keys and values come from a context of another width
        other = (" (keys and values of another width, torch's kdim and vdim, are not "
                 "offered: project the context to d_model first)" if name == "context" else "")
        raise ShapeError(f"MultiHeadAttention: {name} has {x.shape[-1]} features a position, "
                         f"the layer's d_model is {d_model}: give (B, T, {d_model}){other}")


def _grouped(given: Mask | Bias | None, scores_shape: tuple[int, ...], n_kv_head: int,
             what: str = "mask") -> np.ndarray | Tensor | None:
    """`given`, a mask or a bias (`what` says which) made for the scores (B, n_head, T, S),
    fitted to the grouped scores (B, n_kv_head, group, T, S): a heads axis of size 1 gets a
    group axis of size 1 beside it, one of size n_head is split into (n_kv_head, group). One
    without a heads axis ((T, S), a causal mask) broadcasts as it is. It is checked against the
    ungrouped scores first, so that grouping accepts the masks and biases plain attention
    accepts and no others (a heads axis of n_kv_head would otherwise be split into groups of
    one). A bias that is a Tensor is reshaped as one, so that its gradient comes back through
    the reshape."""
    if given is None:
        return None
    if what == "mask" or not isinstance(given, Tensor):
        given = np.asarray(given.data if isinstance(given, Tensor) else given)
    _check_fits(given, scores_shape, what)
    if given.ndim < 3:
        return given
    heads = given.shape[-3]
    group = (1, 1) if heads == 1 else (n_kv_head, heads // n_kv_head)   # (..., 1, 1, T, S)
    return given.reshape(tuple(given.shape[:-3]) + group + tuple(given.shape[-2:]))
