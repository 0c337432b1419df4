"""Weights by hand: an induction head

The capstone. Two attention layers, set by you, that continue a pattern they have seen once:
"the last time this token appeared, what came next? Predict that." Token 0 is a start marker
(BOS); after it comes a pattern of distinct tokens, then the same pattern again:

    ids          [0, 3, 1, 4, 3, 1, 4]      BOS, then the pattern 3 1 4 twice
    predictions  [., ., ., ., 1, 4, 3]      checked in the second copy (positions 4, 5, 6)

At position 4 the token is 3; the last 3 (position 1) was followed by 1, so predict 1. At
position 6 the token is 4; the last 4 (position 3) was followed by 3 (position 4).

Trained language models grow this circuit (Olsson et al. 2022, "In-context learning and
induction heads"): it is how they repeat names and phrases from earlier in the prompt. Layer
norm and MLPs are left out, as before, so the weights do exactly what you designed:

    x = W_emb[ids] + W_pos[:T]                            # (T, d_model)
    x = x + attention(x, W_Q1, W_K1, W_V1, W_O1)          # layer 1
    x = x + attention(x, W_Q2, W_K2, W_V2, W_O2)          # layer 2, reads what layer 1 wrote
    logits = x @ W_U                                      # (T, vocab_size)

Slots, with V = vocab_size and d_model = 3V + context:

    TOKEN  [0, V)            the token here              (W_emb)
    POS    [V, V+context)    the position                (W_pos)
    PREV   next V dims       the token just before here  (layer 1 writes it)
    OUT    last V dims       the predicted next token    (layer 2 writes it; W_U reads it)

Layer 1 is your previous_token head, writing into PREV instead. Layer 2 is the induction head:
its query at position t is t's TOKEN; the key of position j is j's PREV. They match (score s)
exactly where the token before j equals the token at t, i.e. at j = "just after the last time
this token appeared". The value there is j's TOKEN, which is the answer: write it into OUT.

Why BOS: position 0 has no previous token, so layer 1 there can only attend to itself and
writes position 0's own token into PREV. Were that a pattern token, layer 2 would find a false
match there. BOS (token 0) never appears in the pattern, so no query in the second copy can
match it. Make both softmaxes sharp (a large s).

tinyformer/attention.py computes each softmax(q k^T / sqrt(d)) with its causal_mask; the
checker runs your weights through that code, on random patterns of 2 and more tokens.

Your task
    Write `make_weights(vocab_size, context)`: a dict of numpy arrays named and shaped as in
    `run_model`'s comment (each layer has its own d_head and d_value). Then try it out:
    `python induction_head.py` prints the predictions and both attention patterns.

Check it with:  tinyformer exercises check induction_head
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
    """Logits (T, vocab_size) for token ids (T,), and the two attention patterns (T, T).

    weights: W_emb (vocab_size, d_model)  W_pos (context, d_model)  W_U (d_model, vocab_size)
             and for layer L = 1, 2:  W_QL, W_KL (d_model, d_headL)
                                      W_VL (d_model, d_valueL)  W_OL (d_valueL, d_model)
    """
    T = len(ids)
    x = weights["W_emb"][ids] + weights["W_pos"][:T]                # (T, d_model)
    patterns = []
    for layer in (1, 2):
        W_Q, W_K, W_V, W_O = (weights[f"{name}{layer}"] for name in ("W_Q", "W_K", "W_V", "W_O"))
        added, pattern = attention(x, W_Q, W_K, W_V, W_O)
        x = x + added                                               # the residual stream
        patterns.append(pattern)
    return x @ weights["W_U"], patterns                             # (T, vocab_size)


# ---- Your part ----

def make_weights(vocab_size, context):
    """The weights with which run_model predicts, in the second copy of a repeated pattern, the
    token that followed the current token's previous occurrence."""
    # TODO: four slots TOKEN, POS, PREV, OUT (d_model = 3 * vocab_size + context).
    # TODO: layer 1: a previous-token head (query = POS, key = POS shifted by one, scaled),
    #       its value carrying TOKEN into PREV.
    # TODO: layer 2: query reads TOKEN, key reads PREV (scaled), value carries TOKEN into OUT.
    # TODO: W_U reads OUT.
    raise NotImplementedError


if __name__ == "__main__":
    ids = np.array([0, 3, 1, 4, 3, 1, 4])
    logits, (pattern1, pattern2) = run_model(make_weights(vocab_size=6, context=8), ids)
    print("ids:        ", ids)
    print("predictions:", logits.argmax(axis=-1), "(positions 4, 5, 6 should be 1 4 3)")
    print("layer 1 attention:\n", pattern1.round(2))
    print("layer 2 attention:\n", pattern2.round(2))
