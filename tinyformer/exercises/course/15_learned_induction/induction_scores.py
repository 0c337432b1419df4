"""A learned induction head, and how to find it

In chapter 11 you set an induction head by hand: layer 1 attends to the previous token and
writes it into PREV; layer 2's query (this token) matches the keys whose PREV holds the same
token, i.e. the position just after the last time this token appeared, and copies what is
there. Now let training find the two attention patterns. The model below keeps chapter 11's
slots and its value, output and unembedding weights (WHAT each head carries where), and
learns only W_Q and W_K of each layer (WHERE each head looks), from small random values, on
sequences BOS + pattern + pattern with patterns of every length, graded on the second copy.

A trained model does not tell you which head does what; you measure it from the attention
patterns. For one sequence ids (T,) and one head's pattern A (T, T) (row t = query t, its
weights over the keys 0..t):

    previous-token score = mean over t = 1 .. T-1 of A[t, t - 1]
    induction score      = mean over the positions t whose token occurred before of
                           A[t, j + 1],  j = the LAST earlier position with ids[j] == ids[t]

A head that does its job scores near 1 on its own score; a head that looks everywhere alike
scores about the average of 1 / (t + 1). Anthropic's "In-context learning and induction
heads" (Olsson et al. 2022) finds induction heads in trained models with exactly such scores.

Worked example: ids = [0, 3, 1, 4, 3, 1, 4] and a head that leans towards recent keys,
A[t, k] = (k + 1) / (1 + 2 + ... + (t + 1)) for k <= t (row 2 is [1, 2, 3] / 6). Previous-token
score: A[t, t - 1] = t / (1 + ... + (t + 1)), so (1/3 + 2/6 + 3/10 + 4/15 + 5/21 + 6/28) / 6 =
0.2810. The tokens at positions 4, 5, 6 occurred before, at 1, 2, 3, so the induction score
reads A[4, 2], A[5, 3], A[6, 4]: (3/15 + 4/21 + 5/28) / 3 = 0.1897 (reading A[4, 1], A[5, 2],
A[6, 3], the earlier occurrences themselves, would give 0.1397). Positions 0 to 3 do not
count: nothing before them says what comes next. A sequence in which no token repeats has
no induction evidence at all: its induction score is 0.0.

The checker first compares your scores with the definitions on patterns made up for the
purpose, then trains the model (under a second) and asks your scores to find the heads:
layer 1 must come out as a previous-token head, layer 2 as an induction head.

Shapes
    pattern: (T, T) numpy array, rows summing to 1 over k <= t;  ids: (T,) int array
    previous_token_score(pattern) -> float;  induction_score(pattern, ids) -> float

Your task
    Write `previous_token_score` and `induction_score` (numpy). Then `python
    induction_scores.py` trains the model and prints both scores of both layers, before and
    after.

Check it with:  tinyformer exercises check induction_scores
"""

import math

import numpy as np

from tinyautograd import Tensor, functional, no_grad, optim

# ---- The model (given: the checker trains its own copy) ----

V, CONTEXT = 8, 16                                      # token 0 is BOS
D = 3 * V + CONTEXT
TOKEN, POS = slice(0, V), slice(V, V + CONTEXT)
PREV, OUT = slice(V + CONTEXT, 2 * V + CONTEXT), slice(2 * V + CONTEXT, D)


def fixed_weights():
    """Chapter 11's WHAT: embeddings into TOKEN and POS; layer 1 carries TOKEN into PREV,
    layer 2 TOKEN into OUT; the unembedding reads OUT (times 10, for confident logits)."""
    w = {name: np.zeros(shape) for name, shape in (
        ("W_emb", (V, D)), ("W_pos", (CONTEXT, D)), ("W_V1", (D, V)), ("W_O1", (V, D)),
        ("W_V2", (D, V)), ("W_O2", (V, D)), ("W_U", (D, V)))}
    w["W_emb"][:, TOKEN], w["W_pos"][:, POS] = np.eye(V), np.eye(CONTEXT)
    w["W_V1"][TOKEN], w["W_O1"][:, PREV] = np.eye(V), np.eye(V)
    w["W_V2"][TOKEN], w["W_O2"][:, OUT] = np.eye(V), np.eye(V)
    w["W_U"][OUT] = 10 * np.eye(V)
    return w


def run_model(learned, ids):
    """Logits (B, T, V) and the two layers' patterns (B, T, T) for ids (B, T). `learned`
    holds W_Q1, W_K1, W_Q2, W_K2 (D, d_head) Tensors."""
    w = fixed_weights()
    T = ids.shape[1]
    x = Tensor(w["W_emb"][ids] + w["W_pos"][:T])
    later = np.triu(np.ones((T, T), dtype=bool), k=1)
    patterns = []
    for layer in (1, 2):
        q, k = x @ learned[f"W_Q{layer}"], x @ learned[f"W_K{layer}"]
        scores = q @ k.swapaxes(-2, -1) / math.sqrt(q.shape[-1])
        pattern = scores.masked_fill(later, -1e9).softmax(axis=-1)
        x = x + (pattern @ (x @ Tensor(w[f"W_V{layer}"]))) @ Tensor(w[f"W_O{layer}"])
        patterns.append(pattern)
    return x @ Tensor(w["W_U"]), patterns


def repeated_patterns(rng, batch):
    """ids (batch, 2n + 1): BOS, then n distinct tokens twice, n drawn afresh each call."""
    n = int(rng.integers(2, (CONTEXT - 1) // 2 + 1))
    halves = np.stack([rng.choice(np.arange(1, V), size=n, replace=False)
                       for _ in range(batch)])
    return np.concatenate([np.zeros((batch, 1), dtype=np.int64), halves, halves], axis=1)


def train(steps=300, seed=0):
    """Learn W_Q and W_K of both layers; returns them."""
    rng = np.random.default_rng(seed)
    learned = {f"W_{kind}{layer}": Tensor(0.1 * rng.standard_normal((D, V)),
                                          requires_grad=True)
               for layer in (1, 2) for kind in "QK"}
    optimiser = optim.Adam(list(learned.values()), lr=0.05)
    for _ in range(steps):
        ids = repeated_patterns(rng, 32)
        n = (ids.shape[1] - 1) // 2
        logits, _ = run_model(learned, ids)
        # Graded where the answer is in context: the second copy predicts its next token.
        loss = functional.cross_entropy(logits[:, n + 1:-1], ids[:, n + 2:])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return learned


# ---- Your part ----

def previous_token_score(pattern):
    """The mean attention of each position t >= 1 to position t - 1."""
    # TODO: T from the pattern's shape; one number A[t, t - 1] per position t >= 1; their
    #       mean, as a float.
    raise NotImplementedError


def induction_score(pattern, ids):
    """The mean attention of each position whose token occurred before to the position just
    after that token's last earlier occurrence; 0.0 when no token repeats."""
    # TODO: for each t, the earlier positions j < t with ids[j] == ids[t] (np.flatnonzero
    #       finds them); if there are any, the last one gives the key j + 1 to read in row t.
    raise NotImplementedError


if __name__ == "__main__":
    ids = np.array([0, 3, 1, 4, 3, 1, 4])
    recent = np.tril(np.arange(1, 8) * np.ones((7, 1)))
    recent /= recent.sum(axis=1, keepdims=True)          # A[t, k] = (k + 1) / (1 + ... + t + 1)
    print(f"worked example: {previous_token_score(recent):.4f} (0.2810), "
          f"{induction_score(recent, ids):.4f} (0.1897)")
    for steps in (0, 300):
        learned = train(steps)
        with no_grad():
            _, (first, second) = run_model(learned, ids[None])
        print(f"after {steps} steps:")
        for name, pattern in (("layer 1", first.data[0]), ("layer 2", second.data[0])):
            print(f"  {name}: previous-token {previous_token_score(pattern):.2f}, "
                  f"induction {induction_score(pattern, ids):.2f}")
        print(second.data[0].round(2))
