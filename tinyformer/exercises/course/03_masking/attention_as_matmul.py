"""Attention as matrix multiplication: looking up masks with Q K^T

In the last exercise the mask for the current word x was a row of a table, mask_table[x]. In
chapter 1 you saw that picking rows is a matrix multiplication: one_hot(x) @ mask_table. Do it
for every position of a sentence of T words (ids) at once, and you have the queries:

    Q = one_hot(ids) @ mask_table       # (T, V) @ (V, V) -> (T, V)
                                        # row t: which earlier words position t listens for

Each position also says which word it holds; that is its key:

    K = one_hot(ids)                    # (T, V)

The dot product of query t with key s is 1 when the word at s is one that t listens for, 0
otherwise; all of them at once are one more matrix multiplication:

    scores = Q @ K.T                    # (T, V) @ (V, T) -> (T, T)
    scores[t, s] = mask_table[ids[t], ids[s]]

Only earlier words count (the votes of chapter 2 came from words BEFORE the current one), so
keep scores[t, s] only where s < t and set the rest to zero: multiply by
np.tril(np.ones((T, T)), k=-1). Last, each position collects the values of the positions it
attends to. With the values one-hot too, row t of the output counts the informative words
that came before position t:

    values = one_hot(ids)               # (T, V)
    out = scores @ values               # (T, T) @ (T, V) -> (T, V)

In "check the battery log and find out whether it ran down please", at "ran" (t = 9) the
query listens for program, server and battery; only position 2 holds one of them, so out[9] is
the one-hot vector of "battery": the word that decides "down" has been fetched from 7 words
back, and nothing else has. That is what attention does.

Chapter 6 writes the same thing as tinyformer/attention.py does:

    softmax(Q K^T / sqrt(d_k)) V        with Q = x W_q, K = x W_k, V = x W_v

Our one_hot(ids) is x; mask_table plays W_q and the identity W_k and W_v. There the three
weights are learned, the scores are any real numbers, and softmax turns each row of scores
into weights that sum to 1 (a weighted average instead of our sum). tinyformer's causal_mask
also lets a position see itself (s <= t): there the current word is one of the values too.

Your task
    Write `lookup_masks`, `attention_scores` and `attend` with `one_hot`, `@` and np.tril.

Check it with:  tinyformer exercises check attention_as_matmul
"""

import numpy as np


def one_hot(ids, vocab_size):
    """The one-hot matrix of `ids` (T, vocab_size), as in chapter 1 (given)."""
    out = np.zeros((len(ids), vocab_size))
    out[np.arange(len(ids)), ids] = 1.0
    return out


def lookup_masks(ids, mask_table):
    """(T, V): the queries, row t = mask_table[ids[t]], computed as a matrix product."""
    # TODO: V is mask_table.shape[0]; return one_hot(ids, V) @ mask_table.
    raise NotImplementedError


def attention_scores(ids, mask_table):
    """(T, T): [t, s] = 1.0 when position t attends to the earlier position s, else 0.0."""
    # TODO: Q = lookup_masks(ids, mask_table), K = one_hot(ids, V); scores = Q @ K.T; then
    #       zero every s >= t by multiplying with np.tril(np.ones((T, T)), k=-1).
    raise NotImplementedError


def attend(ids, mask_table):
    """(T, V): row t counts the informative words before position t (values = one-hot)."""
    # TODO: attention_scores(ids, mask_table) @ one_hot(ids, V).
    raise NotImplementedError
