"""The bridge: a second-order model as matrix products, with a ReLU feature layer

Chapter 2's second-order model looked up a row of a (V * V, V) table for the pair of the last
two words. This exercise computes the same predictions with two matrix products and a ReLU, the
shape every Transformer layer has (attention brings the earlier word to the current position;
the feed-forward network, a ReLU layer, combines the two).

Each position t >= 1 sees two words, the previous one a = ids[t - 1] and the current one
b = ids[t]. Put their one-hot vectors side by side, previous first:

    x_t = [one_hot(a), one_hot(b)]                          # (2V,)
    X   = all the x_t stacked, t = 1 .. T - 1               # (T - 1, 2V)

A FEATURE detects one word pair (a, b): a column of W with a 1 in row a (the previous-word
half) and a 1 in row V + b (the current-word half), and a bias of -1:

    H = relu(X @ W + bias)          # (T - 1, P): P features, one per pair in `pairs`
    scores = H @ W_out              # (T - 1, V): row p of W_out votes for what follows pair p

Why the bias and the ReLU? x_t . W[:, p] counts how many of the pair's two words are in place:
2 for the pair itself, 1 when only one word matches, 0 otherwise. Adding -1 gives 1, 0 or -1,
and the ReLU turns that into 1, 0, 0: an AND of the two words. Without the bias, a half match
would fire; without the ReLU, every unrelated pair would vote -1.

Worked example (V = 3, pairs = [(0, 2), (1, 2)], ids = [0, 2]): one position, x_1 =
[1, 0, 0, 0, 0, 1]. Feature (0, 2) has ones in rows 0 and 3 + 2 = 5: 1 + 1 - 1 = 1, it fires.
Feature (1, 2) has ones in rows 1 and 5: 0 + 1 - 1 = 0. So H = [[1, 0]], and scores is row 0 of
W_out: the votes of pair (0, 2).

With W_out[p] = the second-order table's row for pair p (chapter 2: probs[a * V + b]), the
scores are exactly chapter 2's predictions, with one feature per pair that occurs rather than
V * V rows. A trained network learns W, the bias and W_out instead of counting them; and a
Transformer's attention makes x_t hold whichever earlier words matter, not only the last two.
tinyformer/layers.py's FeedForward is relu(x W1 + b1) W2 + b2: this layer.

Shapes
    ids: (T,) ints;  pairs: list of P (a, b) id pairs;  probs: (V * V, V) table
    feature_weights -> W (2V, P), bias (P,);  pair_inputs -> X (T - 1, 2V)
    detect_pairs -> H (T - 1, P);  next_scores -> (T - 1, V)

Your task
    Write `feature_weights`, `pair_inputs`, `detect_pairs` and `next_scores` with numpy,
    matrix products and np.maximum (no loops over positions in the last three).

Check it with:  tinyformer exercises check pair_features
"""

import numpy as np


def one_hot(ids, vocab_size):
    """The one-hot matrix of `ids` (T, vocab_size), as in chapter 1 (given)."""
    out = np.zeros((len(ids), vocab_size))
    out[np.arange(len(ids)), ids] = 1.0
    return out


def feature_weights(vocab_size, pairs):
    """W (2V, P) and bias (P,): feature p fires (1.0) exactly when the previous word is
    pairs[p][0] and the current word is pairs[p][1]."""
    # TODO: W starts as zeros of shape (2V, P). Column p gets a 1 in the previous-word half,
    #       at the row of the pair's first word, and a 1 in the current-word half (rows V..2V-1),
    #       at the row of its second word. bias: -1 for every feature.
    raise NotImplementedError


def pair_inputs(ids, vocab_size):
    """X (T - 1, 2V): row t - 1 is [one_hot(ids[t - 1]), one_hot(ids[t])]."""
    # TODO: the one-hot matrices of the previous words and of the current words, (T - 1, V)
    #       each, side by side along the last axis.
    raise NotImplementedError


def detect_pairs(ids, W, bias):
    """H (T - 1, P): which pair feature fires at each position t = 1 .. T - 1."""
    # TODO: relu(X @ W + bias), with X from pair_inputs (V is W.shape[0] // 2).
    raise NotImplementedError


def next_scores(ids, W, bias, W_out):
    """(T - 1, V): the votes for the word after each position t = 1 .. T - 1."""
    # TODO: the features, then one more matrix product.
    raise NotImplementedError


if __name__ == "__main__":
    pairs = [(0, 2), (1, 2)]
    W, bias = feature_weights(3, pairs)
    print("W:\n", W, "\nbias:", bias)
    print("features on [0, 2, 1, 2]:\n", detect_pairs(np.array([0, 2, 1, 2]), W, bias))
