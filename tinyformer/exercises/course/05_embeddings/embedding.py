"""Embeddings: a lookup table that learns

One-hot vectors (chapter 1) say which token it is and nothing else. An embedding gives every
token a learned vector of d_model numbers instead: a table E of shape (vocab_size, d_model),
and token id t is represented by row E[t]. Training moves the rows so that tokens used alike
end up with similar vectors.

Looking up is the same as multiplying a one-hot matrix by the table, onehot(ids) @ E, but
indexing costs nothing:

    forward:   out = E[ids]                 ids (B, T) integers -> out (B, T, d_model)

The backward follows from the matrix product (dE = onehot(ids)^T @ grad): row t of the
gradient is the sum of the incoming gradients at every position where token t appeared.
Tokens that did not appear get zero. A token that appears three times gets three gradients,
added up: the "+=" of the scalar engine again, since one row was used three times.

    table_grad = zeros like E;   for every position p:  table_grad[ids[p]] += grad[p]

Beware the tempting one-liner `table_grad[ids] += grad`. numpy evaluates it as
`table_grad[ids] = table_grad[ids] + grad`: it reads all the rows, adds, then writes them back
one by one, so when an id repeats, each later write overwrites the earlier one and only ONE of
its gradients survives. `np.add.at(table_grad, ids, grad)` is numpy's unbuffered version: it
really adds every one. Example with ids = [1, 3, 1] and each grad row [1, 1]:
    np.add.at gives row 1 = [2, 2]  (right);   table_grad[ids] += grad gives [1, 1]  (wrong)

Shapes
    table: (vocab_size, d_model);  ids: any shape (...), integers;  out: (..., d_model)

tinyformer's TokenEmbedding (tinyformer/layers.py) is nn.Embedding, which calls
tinyautograd.functional.embedding: indexing a Tensor, whose backward (GetItem in
tinyautograd/ops.py) scatters with np.add.at just like yours.

Your task
    Write `Embedding.forward` and `Embedding.backward`. `embed` (given) applies it.

Check it with:  tinyformer exercises check embedding
"""

import numpy as np

from tinyautograd import Function


class Embedding(Function):
    """Rows of `table` picked by integer `ids`; the ids are a setting, not differentiated."""

    @staticmethod
    def forward(ctx, table, ids):
        """table (vocab_size, d_model), ids (...) -> (..., d_model)."""
        ctx.ids = ids                            # the backward needs to know where rows went
        # TODO: pick the rows of `table` given by `ids` (plain numpy indexing).
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        """dL/dtable from grad = dL/dout (..., d_model)."""
        # TODO: make table_grad, zeros of the table's shape (the table is ctx.inputs[0]);
        #       then np.add.at(table_grad, ctx.ids, grad) and return table_grad.
        raise NotImplementedError


def embed(table, ids):
    """table[ids] through your Embedding."""
    return Embedding.apply(table, ids=np.asarray(ids))
