"""One-hot vectors

A model cannot do arithmetic on the letter "c". It needs numbers, and the plainest way to turn
one of V symbols into numbers is a one-hot vector: V zeros, with a single 1 at the symbol's
position. With the vocabulary ["a", "b", "c", "d"] (V = 4):

    "a" -> id 0 -> [1, 0, 0, 0]
    "c" -> id 2 -> [0, 0, 1, 0]

A sequence of N ids becomes a matrix of N rows, one one-hot vector per row:

    ids = [2, 0, 3]   ->   [[0, 0, 1, 0],
                            [1, 0, 0, 0],
                            [0, 0, 0, 1]]

Every one-hot vector has length 1 and is at right angles to every other: the encoding says
which symbol it is, and nothing else. In particular it says nothing about which symbols are
alike. Learned embeddings (chapter 5) are where that comes in.

Shapes
    ids:     (N,) integers in [0, vocab_size)
    returns: (N, vocab_size) float32, one 1.0 per row

Your task
    Write `one_hot`. Use numpy only (`import numpy as np` is done for you).

Check it with:  tinyformer exercises check one_hot
"""

import numpy as np


def one_hot(ids, vocab_size):
    """The one-hot matrix of `ids`: row i is all zeros except a 1.0 at column ids[i]."""
    # TODO: start from np.zeros((len(ids), vocab_size), dtype=np.float32), then set one
    #       element per row to 1.0.
    raise NotImplementedError
