"""Reference solution: embeddings."""

import numpy as np

from tinyautograd import Function


class Embedding(Function):
    @staticmethod
    def forward(ctx, table, ids):
        ctx.ids = ids
        return table[ids]

    @staticmethod
    def backward(ctx, grad):
        table = ctx.inputs[0]
        table_grad = np.zeros(table.shape, dtype=grad.dtype)
        np.add.at(table_grad, ctx.ids, grad)      # repeated ids add up
        return table_grad
