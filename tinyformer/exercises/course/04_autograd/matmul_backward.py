"""The backward of matrix multiplication

Every linear layer and every attention head is a matrix product, so this backward runs more
than any other in a Transformer. For Y = A @ B with A (n, k) and B (k, m):

    Y[i, j] = sum_p A[i, p] * B[p, j]

A[i, p] appears in every Y[i, j] of row i, multiplied by B[p, j]. Adding up those uses (the
chain rule's "+=" again), with G = dL/dY of shape (n, m):

    dL/dA[i, p] = sum_j G[i, j] * B[p, j]     that is   dL/dA = G @ B^T     (n, m) @ (m, k)
    dL/dB[p, j] = sum_i A[i, p] * G[i, j]     that is   dL/dB = A^T @ G     (k, n) @ (n, m)

A quick way to remember it: each gradient must have its input's shape, and there is only one
way to multiply G with the other operand to get that shape.

Batches. tinyformer multiplies (B, T, C) activations by a (C, C') weight, and (B, H, T, d)
queries by (B, H, d, T) keys. numpy's @ multiplies the last two axes and broadcasts the rest,
so the same formulas hold with the last two axes swapped instead of a full transpose:
use `x.swapaxes(-1, -2)`, not `x.T` (which reverses every axis of a 3-D array). When the weight
(C, C') was broadcast over the batch, A^T @ G comes out (B, C, C'); the engine sums such a
gradient back to the input's shape for you (the unbroadcast of the previous exercise).

The engine's Function interface (see tinyautograd/engine.py, class Function):
    forward(ctx, a, b)   numpy arrays in, numpy array out (given)
    backward(ctx, grad)  grad = dL/dY; the inputs are `a, b = ctx.operands`: numpy arrays
                         in an ordinary backward, Tensors when the backward is itself
                         recorded (create_graph=True): write it with what both have (@,
                         swapaxes); return one gradient per input: `return grad_a, grad_b`

tinyautograd's own version is `MatMul` in tinyautograd/ops.py (it also handles 1-D operands).

Your task
    Write `MatMul.backward`. `matmul(a, b)` is given: it applies your Function.

Check it with:  tinyformer exercises check matmul_backward
"""

from tinyautograd import Function


class MatMul(Function):
    """Y = A @ B, for 2-D or batched operands."""

    @staticmethod
    def forward(ctx, a, b):
        return a @ b                              # (..., n, k) @ (..., k, m) -> (..., n, m)

    @staticmethod
    def backward(ctx, grad):
        """dL/dA and dL/dB from grad = dL/dY."""
        a, b = ctx.operands                       # (..., n, k) and (..., k, m)
        # TODO: grad_a = grad @ (b with its last two axes swapped)     (..., n, k)
        #       grad_b = (a with its last two axes swapped) @ grad     (..., k, m)
        #       return both.
        raise NotImplementedError


def matmul(a, b):
    """a @ b through your MatMul, so that its backward is used."""
    return MatMul.apply(a, b)
