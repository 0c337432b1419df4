"""Reference solution: the backward of matrix multiplication."""

from tinyautograd import Function


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a @ b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.operands
        grad_a = grad @ b.swapaxes(-1, -2)       # (..., n, m) @ (..., m, k)
        grad_b = a.swapaxes(-1, -2) @ grad       # (..., k, n) @ (..., n, m)
        return grad_a, grad_b
