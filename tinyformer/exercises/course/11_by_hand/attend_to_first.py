"""Weights by hand: attend to the first token

No training in this chapter: you choose every weight of a small Transformer yourself, so that
it carries out an algorithm exactly. Here the algorithm is "at every position, predict the
first token of the sequence":   ids [3, 1, 4, 1, 5]  ->  predictions [3, 3, 3, 3, 3].

The model (given below, in `run_model`) is the GPT skeleton with one attention head and nothing
else. Real models also have layer norm (it keeps the stream's scale steady while training) and
an MLP after each attention (a per-token function); we leave both out so that hand-set weights
do exactly, and only, what you designed. With x the residual stream, one row per position:

    x      = W_emb[ids] + W_pos[:T]                       # (T, d_model)
    q, k, v = x @ W_Q,  x @ W_K,  x @ W_V                 # (T, d_head) (T, d_head) (T, d_value)
    A      = softmax(q @ k.T / sqrt(d_head), causal)      # (T, T): row t attends to 0..t
    x      = x + A @ v @ W_O                              # attention ADDS to the stream
    logits = x @ W_U                                      # (T, vocab_size); argmax = prediction

The trick is to treat the d_model numbers of the stream as named slots. A good layout, with
V = vocab_size and d_model = 2V + context:

    x[:, 0:V]                       TOKEN  one-hot of the token here      (W_emb writes it)
    x[:, V:V+context]               POS    one-hot of the position        (W_pos writes it)
    x[:, V+context:2V+context]      COPY   the token that attention fetched (W_O writes it)

Then W_Q and W_K decide WHERE each position looks: here, every query must match the key of
position 0 far better than any other key. If position 0 scores s and the t others it can see
score 0, softmax gives it the weight e^s / (e^s + t): make s large (remember the division by
sqrt(d_head)), large enough for every t < context even when the t others all hold one token.
W_V and W_O decide WHAT comes back: position 0's TOKEN slot, written into COPY. W_U reads COPY
only; keep COPY apart from TOKEN, or the current token adds its own vote.

tinyformer/attention.py computes the same softmax(q k^T / sqrt(d)) with a causal mask, and the
checker runs your weights through that code; tinyformer/gpt.py builds its models the same way
(embeddings in, blocks adding to a residual stream, logits out).

Your task
    Write `make_weights(vocab_size, context)`: a dict of numpy arrays with the names and shapes
    of `run_model`'s comment (you choose d_model, d_head and d_value). Then try it out:
    `python attend_to_first.py` prints the predictions and the attention pattern.

Check it with:  tinyformer exercises check attend_to_first
"""

import numpy as np


# ---- The model (given: the checker runs its own copy, so edits here change nothing) ----

def softmax(scores):
    """Softmax along the last axis. Subtracting the row's max first keeps exp from overflowing."""
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention(x, W_Q, W_K, W_V, W_O):
    """One causal attention head: x (T, d_model) -> (what it adds (T, d_model), pattern (T, T))."""
    T, d_head = len(x), W_Q.shape[1]
    q, k, v = x @ W_Q, x @ W_K, x @ W_V               # (T, d_head), (T, d_head), (T, d_value)
    scores = q @ k.T / np.sqrt(d_head)                # (T, T): query t against key j
    later = np.triu(np.ones((T, T), dtype=bool), k=1)
    scores[later] = -np.inf                           # causal: position t never sees j > t
    pattern = softmax(scores)                         # (T, T), every row sums to 1
    return pattern @ v @ W_O, pattern


def run_model(weights, ids):
    """Logits (T, vocab_size) for token ids (T,), and the attention pattern (T, T).

    weights: W_emb (vocab_size, d_model)  W_pos (context, d_model)
             W_Q, W_K (d_model, d_head)  W_V (d_model, d_value)  W_O (d_value, d_model)
             W_U (d_model, vocab_size)
    """
    T = len(ids)
    x = weights["W_emb"][ids] + weights["W_pos"][:T]                # (T, d_model)
    added, pattern = attention(x, weights["W_Q"], weights["W_K"], weights["W_V"], weights["W_O"])
    x = x + added                                                   # the residual stream
    return x @ weights["W_U"], pattern                              # (T, vocab_size)


# ---- Your part ----

def make_weights(vocab_size, context):
    """The weights with which run_model predicts the sequence's first token at every position."""
    # TODO: d_model = 2 * vocab_size + context; name the three slots (TOKEN, POS, COPY) as
    #       slices, start every weight from np.zeros, then set:
    #       W_emb, W_pos: identity blocks into TOKEN and POS.
    #       W_Q, W_K (d_head = 1 is enough): every position's query is the same, and only
    #       position 0's key is large, e.g. 20.
    #       W_V, W_O: read TOKEN, write it into COPY.   W_U: read COPY.
    raise NotImplementedError


if __name__ == "__main__":
    ids = np.array([3, 1, 4, 1, 5])
    logits, pattern = run_model(make_weights(vocab_size=6, context=8), ids)
    print("ids:        ", ids)
    print("predictions:", logits.argmax(axis=-1), "(should be 3 3 3 3 3)")
    print("attention:\n", pattern.round(2))
