"""Gradients through broadcasting

numpy lets you add a bias of shape (C,) to activations of shape (B, T, C): it broadcasts the
bias, as if it were copied B * T times. Broadcasting follows two rules, applied from the right:
    - missing leading axes are added:          (C,)      is treated as (1, 1, C)
    - an axis of size 1 is stretched to match: (1, 1, C) is repeated to (B, T, C)

The backward pass must undo this. Each copy of a bias element received its own gradient, and
the element itself is the sum of what its copies received (the same "+=" as in the scalar
engine: one value used many times). So the gradient, which has the broadcast shape, is summed
    - over the leading axes that broadcasting added, and
    - over every axis where the input had size 1 (keeping that axis, with size 1),
until it has the input's shape again.

Example: x of shape (2, 1) was broadcast to (2, 3), and the gradient is
    grad = [[1, 2, 3],          unbroadcast(grad, (2, 1)) = [[ 6],
            [4, 5, 6]]                                      [15]]
    unbroadcast(grad, (3,)) = [5, 7, 9]      unbroadcast(grad, ()) = 21

Shapes
    grad:    the broadcast shape, e.g. (B, T, C)
    shape:   the input's shape, which broadcasts to grad.shape, e.g. (C,) or (B, 1, C) or ()
    returns: an array of exactly `shape`

With unbroadcast you can write the backward of any elementwise op. For c = a * b with
broadcasting, dc/da = b elementwise, so grad_a = unbroadcast(grad * b, a.shape).

tinyautograd does this for every op in one place: `_sum_to` in tinyautograd/engine.py, which
is why an op's backward there may return a gradient of the broadcast shape.

Your task
    Write `unbroadcast`, then `mul_backward` using it. grad, a and b are numpy arrays; their
    `.sum(axis=..., keepdims=...)` and `.shape` are all you need.

Check it with:  tinyformer exercises check broadcast_gradients
"""


def unbroadcast(grad, shape):
    """Sum `grad` back to `shape`, the shape of an input before numpy broadcast it."""
    # TODO: 1. sum over the leading axes: there are grad.ndim - len(shape) of them;
    #       2. then, for every axis i where shape[i] == 1 (and grad's is not), sum over it
    #          with keepdims=True so the axis stays, with size 1.
    raise NotImplementedError


def mul_backward(grad, a, b):
    """For c = a * b (broadcast) and grad = dL/dc: (dL/da, dL/db), in the shapes of a and b."""
    # TODO: dL/da = grad * b and dL/db = grad * a, each unbroadcast to its input's shape.
    raise NotImplementedError
