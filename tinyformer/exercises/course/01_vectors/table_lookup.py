"""Matrix multiplication as table lookup

Put a one-hot row vector in front of a matrix and the product is one row of that matrix. With
a table of shape (V, d), V rows of d numbers each:

    one_hot(2) @ table = [0, 0, 1, 0] @ [[ 1.0,  2.0],     =  [5.0, 6.0]    (row 2)
                                         [ 3.0,  4.0],
                                         [ 5.0,  6.0],
                                         [ 7.0,  8.0]]

Why: element j of the product is dot(one_hot(2), column j), and in that dot product every
term is multiplied by 0 except the one for row 2. A whole sequence of ids works the same way,
one row per id:

    one_hot(ids) @ table  ==  table[ids]          # (N, V) @ (V, d) -> (N, d)

This is the embedding idea. A model keeps a table with one learned row (a vector of d numbers)
per token; "look up the token's row" and "multiply its one-hot vector by the table" are the
same thing. The multiplication is how to think about it: it makes the lookup an ordinary
linear layer, whose gradient is the ordinary one. The indexing is how to compute it: it does
no multiplications at all, where the product does N * V * d of them, nearly all by zero.
tinyautograd/nn.py's Embedding (and TokenEmbedding in tinyformer/layers.py, the first layer
of the GPT) index; a comment in nn.py says that the table is read as one_hot(index) @ table.

Shapes
    ids:    (N,) integers in [0, V)
    table:  (V, d) floats
    both functions return (N, d)

Your task
    Write `lookup_by_matmul` with the given `one_hot` and `@`, and `lookup_by_index` with
    numpy indexing. The checker makes sure that both give the same rows of the table, each
    its own way.

Check it with:  tinyformer exercises check table_lookup
"""

import numpy as np


def one_hot(ids, vocab_size):
    """The one-hot matrix of `ids` (N, vocab_size), as in the first exercise (given here)."""
    out = np.zeros((len(ids), vocab_size))
    out[np.arange(len(ids)), ids] = 1.0
    return out


def lookup_by_matmul(ids, table):
    """The rows of `table` picked by `ids`, computed as one_hot(ids) @ table."""
    # TODO: the number of rows of `table` is the vocabulary size V. Make the (N, V) one-hot
    #       matrix of ids and multiply it by the table.
    raise NotImplementedError


def lookup_by_index(ids, table):
    """The rows of `table` picked by `ids`, computed by indexing."""
    # TODO: numpy picks several rows at once when you index with an array of integers.
    raise NotImplementedError
