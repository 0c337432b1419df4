"""Checkers for chapter 11: weights by hand.

The learner's `make_weights(vocab_size, context)` returns the weights of an attention-only
Transformer. The checker checks their names and shapes, then runs the model itself (with
tinyformer's own `attention_weights` and `causal_mask`, not the learner's copy of the model) on
random sequences and demands the algorithm's answer at every checked position. It checks
behaviour only: nothing here knows what the right weights are.
"""

from __future__ import annotations

import numpy as np

from tinyautograd import Tensor
from tinyformer.attention import attention_weights, causal_mask

from ..catalogue import Question, exercise
from ..checking import CheckFailure, Learner, a_kind, as_array, describe

# The chapter's "predict, then run" question (`tinyformer exercises predict 11`).
QUESTION = Question(code="""\
import numpy as np

for top in [2.0, 20.0]:
    scores = np.array([top, 0.0, 0.0, 0.0])        # one key scores `top`, three score 0
    weights = np.exp(scores) / np.exp(scores).sum()
    print(top, weights.round(3))
""", output="""\
2.0 [0.711 0.096 0.096 0.096]
20.0 [1. 0. 0. 0.]
""", why=(
    'Softmax turns a gap in scores into a ratio e^gap: with a gap of 2 each other key keeps e^-2 '
    "of the top one's weight (0.096 against 0.711); with a gap of 20, about 2e-9. Weights set by "
    'hand use large scores so that a head attends to exactly one position.'))

# ---------------------------------------------------------------------------------------------
# Weights: names and shapes
# ---------------------------------------------------------------------------------------------


def _layer_suffixes(layers):
    return [""] if layers == 1 else [str(layer) for layer in range(1, layers + 1)]


def _shape_spec(layers):
    """Every weight's name -> the names of its dimensions, in the order they are checked (so
    that W_emb fixes d_model, each W_Q its layer's d_head and each W_V its d_value)."""
    spec = {"W_emb": ("vocab_size", "d_model"), "W_pos": ("context", "d_model")}
    for suffix in _layer_suffixes(layers):
        d_head, d_value = "d_head" + suffix, "d_value" + suffix
        spec["W_Q" + suffix] = ("d_model", d_head)
        spec["W_K" + suffix] = ("d_model", d_head)
        spec["W_V" + suffix] = ("d_model", d_value)
        spec["W_O" + suffix] = (d_value, "d_model")
    spec["W_U"] = ("d_model", "vocab_size")
    return spec


def _names(names):
    return ", ".join(f"`{name}`" for name in names)


def _weights(make_weights, vocab_size, context, layers):
    """Call the learner's make_weights and return its weights as float64 arrays, after checking
    that every name is there and every shape fits; otherwise a CheckFailure saying which."""
    got = make_weights(vocab_size, context)
    call = make_weights.last_call
    spec = _shape_spec(layers)
    if got is None:
        raise CheckFailure(f"{call} returned None. Did you forget a `return`?")
    if not isinstance(got, dict):
        raise CheckFailure(f"{call} returned {a_kind(got)}; it should return a dict "
                           f"of weight arrays with the keys {_names(spec)}.")
    missing = [name for name in spec if name not in got]
    extra = [name for name in got if name not in spec]
    if missing or extra:
        parts = ([f"without {_names(missing)}"] if missing else []) + (
            [f"with {_names(extra)}, which the model does not use"] if extra else [])
        raise CheckFailure(f"{call} returned a dict {' and '.join(parts)}. The keys are "
                           f"{_names(spec)}, spelled exactly so (capital letters too).")
    sizes = {"vocab_size": vocab_size, "context": context}
    set_by = {}                                  # d_model -> "W_emb": where a size came from
    weights = {}
    for name, dims in spec.items():
        try:
            array = np.asarray(as_array(got[name]), dtype=np.float64)
        except (TypeError, ValueError):
            raise CheckFailure(f"{call}: weights['{name}'] is {describe(got[name])}, which is "
                               f"not an array of numbers.") from None
        if array.ndim == len(dims):
            for dim, size in zip(dims, array.shape):
                if dim not in sizes:             # the first weight with this dimension sets it
                    sizes[dim], set_by[dim] = size, name
        wanted = tuple(sizes.get(dim) for dim in dims)
        if array.shape != wanted:
            numbers = ", ".join(str(sizes.get(dim, dim)) for dim in dims)
            origins = [f"{dim} = {sizes[dim]} from the shape of {set_by[dim]}"
                       for dim in dims if set_by.get(dim, name) != name]
            origin = f" ({'; '.join(origins)})" if origins else ""
            raise CheckFailure(f"{call}: `{name}` has shape {array.shape}; it should be "
                               f"({', '.join(dims)}) = ({numbers}){origin}.")
        if not np.isfinite(array).all():
            raise CheckFailure(f"{call}: `{name}` holds inf or nan. Use large finite numbers "
                               f"instead: a score of 20 already gives softmax weights of "
                               f"e^20 : 1.")
        weights[name] = array
    return weights


# ---------------------------------------------------------------------------------------------
# Running the model and judging its predictions
# ---------------------------------------------------------------------------------------------


def _run(weights, ids, layers):
    """The model of the exercise files: logits (T, vocab_size) and each layer's pattern (T, T).
    The attention pattern comes from tinyformer.attention, the code the real models run."""
    T = len(ids)
    x = weights["W_emb"][ids] + weights["W_pos"][:T]                 # (T, d_model)
    patterns = []
    for suffix in _layer_suffixes(layers):
        W_Q, W_K, W_V, W_O = (weights[w + suffix] for w in ("W_Q", "W_K", "W_V", "W_O"))
        q, k, v = x @ W_Q, x @ W_K, x @ W_V                         # (T, d_head)
        pattern = attention_weights(Tensor(q), Tensor(k), causal_mask(T)).data  # (T, T)
        pattern = pattern.astype(np.float64)
        x = x + pattern @ v @ W_O                                   # the residual stream
        patterns.append(pattern)
    return x @ weights["W_U"], patterns                             # (T, vocab_size)


def _number(x):
    """A logit for a message: 3 significant digits, and 1e-9 shown as the 0 it nearly is."""
    return f"{round(float(x), 6) + 0.0:.3g}"


def _sequence(ids):
    return "[" + " ".join(str(int(i)) for i in ids) + "]"


def _attention_line(pattern, query, key, label, what):
    """`label at position 5: 0.97 on position 4 (what)`, and where the most went if elsewhere."""
    row = pattern[query, :query + 1]
    text = f"    {label} at position {query}: {row[key]:.2f} on position {key} ({what})"
    most = int(np.argmax(row))
    if most != key:
        text += f", the most ({row[most]:.2f}) on position {most}"
    return text


def _expect_predictions(call, weights, ids, targets, layers, explain, note=None):
    """Run the model on `ids`; at every (position, token, why) of `targets` the token must have
    the highest logit, strictly. The first position that fails is described: the prediction,
    the logits and the attention that led there: `explain(position, patterns)` gives each
    attention due, as _attention_line's arguments (pattern, query, key, label, what); `note`,
    a line on what makes this sequence hard, ends the message."""
    ids = np.asarray(ids)
    logits, patterns = _run(weights, ids, layers)
    if not np.isfinite(logits).all():
        raise CheckFailure(f"with the weights from {call} the model's logits on "
                           f"{_sequence(ids)} are inf or nan: some weights are far too large.")
    wrong = []
    for t, want, why in targets:
        row = logits[t]
        tolerance = 1e-6 * max(1.0, float(np.abs(row).max()))
        if not row[want] > np.delete(row, want).max() + tolerance:
            wrong.append((t, want, why))
    if not wrong:
        return
    t, want, why = wrong[0]
    row = logits[t]
    tolerance = 1e-6 * max(1.0, float(np.abs(row).max()))
    top = np.flatnonzero(row >= row.max() - tolerance)
    if len(top) == len(row):
        predicted = f"no token: all {len(row)} logits are equal ({_number(row.max())})"
    elif len(top) > 1:
        tied = ", ".join(str(int(token)) for token in top[:8]) + (" ..." if len(top) > 8 else "")
        predicted = (f"no single token: tokens {tied} tie for the highest logit "
                     f"({_number(row.max())})")
    else:
        predicted = f"predicted {int(top[0])}"
        if top[0] == ids[t]:
            predicted += f" (= the token at position {t} itself)"
    lines = [f"with the weights from {call} the model predicts wrongly.",
             f"    on sequence {_sequence(ids)} at position {t}: {predicted}; "
             f"expected {want} ({why})"]
    if len(top) < len(row):
        best = int(top[0]) if top[0] != want else int(top[-1])
        lines.append(f"    logits at position {t}: {_number(row[want])} for token {want} "
                     f"(expected), {_number(row[best])} for token {best}")
    due = explain(t, patterns)
    lines += [_attention_line(*attention) for attention in due]
    if all(pattern[query, key] > 0.5 for pattern, query, key, *_ in due):
        lines.append("    The attention looks where it should, so what it carries is wrong: the "
                     "value and output weights (W_V, W_O), or what W_U reads.")
    lines.append(f"    wrong at {len(wrong)} of the {len(targets)} positions checked on this "
                 f"sequence")
    if note is not None:
        lines.append(f"    {note}")
    raise CheckFailure("\n".join(lines))


def _random_lengths(rng, context, count, shortest=1):
    """`count` sequence lengths in [shortest, context], the full context among them."""
    return [context] + [int(n) for n in rng.integers(shortest, context + 1, size=count - 1)]


# ---------------------------------------------------------------------------------------------
# The exercises
# ---------------------------------------------------------------------------------------------

# (vocab_size, context) for the random sequences: more tokens than positions, fewer, and a long
# context (where a softmax that is not sharp enough spreads its weight too thin).
SIZES = [(10, 16), (40, 24), (5, 64)]


def _one_token_everywhere_else(due, context):
    """A full-context sequence where every position but the one attention is `due` at holds
    the same token, 1 (the `due` one, a 0): random sequences spread the other positions over
    many tokens, so a softmax too soft to make every prediction still passes them."""
    ids = np.ones(context, dtype=np.int64)
    ids[due] = 0
    return ids


# What a sequence of _one_token_everywhere_else tells a softmax that fails it.
TOO_SOFT = ("Every other position holds the same token here, the hardest case: with a score s "
            "for the position due and 0 for the t others, that position gets e^s / (e^s + t) "
            "and the other token t / (e^s + t), so e^s must outweigh context - 1 (a score of "
            "20 after the division by sqrt(d_head) does).")


@exercise("attend_to_first", "Attend to the first token", hints=[
    "Give each kind of information its own slots in the stream: TOKEN = x[:, :V], POS = x[:, "
    "V:V+context], COPY = x[:, V+context:] (d_model = 2V + context). W_emb and W_pos are "
    "identity blocks (np.eye) into TOKEN and POS.",
    "The score of query t against key j is q_t . k_j / sqrt(d_head). With d_head = 1, let W_Q "
    "put 1.0 in column 0 for every POS row, and W_K a large number (say 20) in position 0's "
    "POS row only: the scores are then 20 for key 0 and 0 for every other key.",
    "The value reads the token slots and the output writes what it read into the copy slots, "
    "identity blocks both; the unembedding reads the copy slots only (reading the token slots "
    "too would add a vote for the current token).",
])
def check_attend_to_first(learner: Learner) -> None:
    make_weights = learner.function("make_weights")

    def check(vocab_size, context, sequences, note=None):
        weights = _weights(make_weights, vocab_size, context, layers=1)
        for ids in sequences:
            targets = [(t, int(ids[0]), "the first token") for t in range(len(ids))]

            def explain(t, patterns):
                return [(patterns[0], t, 0, "attention", "the first token")]
            _expect_predictions(make_weights.last_call, weights, ids, targets, 1, explain,
                                note)

    check(6, 8, [np.array([3, 1, 4, 1, 5])])
    rng = np.random.default_rng(11)
    for vocab_size, context in SIZES:
        check(vocab_size, context, [rng.integers(0, vocab_size, size=n)
                                    for n in _random_lengths(rng, context, 8)])
    for vocab_size, context in SIZES:
        check(vocab_size, context, [_one_token_everywhere_else(0, context)], TOO_SOFT)


@exercise("previous_token", "A previous-token head", hints=[
    "Keep attend_to_first's slots (TOKEN, POS, COPY) and its W_emb, W_pos, W_V, W_O and W_U: "
    "the value still fetches a token into COPY. Only where each position looks changes, so "
    "only W_Q and W_K.",
    "Let d_head = context and make q_t the one-hot of t (an identity block on the POS rows). "
    "You want k_j to be the one-hot of j + 1, so that q_t . k_j is nonzero only for j = t - "
    "1.",
    "np.eye(context, k=1) has its ones at (j, j + 1). Scale the keys so that the score is "
    "still large after the model divides by sqrt(d_head) = sqrt(context): about 20, against 0 "
    "for every other position.",
])
def check_previous_token(learner: Learner) -> None:
    make_weights = learner.function("make_weights")

    def check(vocab_size, context, sequences, note=None):
        weights = _weights(make_weights, vocab_size, context, layers=1)
        for ids in sequences:
            targets = [(t, int(ids[t - 1]), f"the previous token, at position {t - 1}")
                       for t in range(1, len(ids))]

            def explain(t, patterns):
                return [(patterns[0], t, t - 1, "attention", "the previous one")]
            _expect_predictions(make_weights.last_call, weights, ids, targets, 1, explain,
                                note)

    check(6, 8, [np.array([3, 1, 4, 1, 5])])
    rng = np.random.default_rng(12)
    for vocab_size, context in SIZES:
        check(vocab_size, context, [rng.integers(0, vocab_size, size=n)
                                    for n in _random_lengths(rng, context, 8, shortest=2)])
    for vocab_size, context in SIZES:          # the last position's previous token is the 0
        check(vocab_size, context, [_one_token_everywhere_else(context - 2, context)], TOO_SOFT)


def _induction_targets(ids):
    """(position, token, why) for every position whose token occurred before: the answer is the
    token that followed its most recent earlier occurrence."""
    targets = []
    for t in range(1, len(ids)):
        earlier = np.flatnonzero(ids[:t] == ids[t])
        if len(earlier):
            j = int(earlier[-1])
            targets.append((t, int(ids[j + 1]), f"the token after the earlier {ids[t]} at "
                                                f"position {j}"))
    return targets


@exercise("induction_head", "An induction head", hints=[
    "Four slots: TOKEN, POS, PREV, OUT (d_model = 3V + context). W_emb and W_pos as before; "
    "W_U reads OUT only.",
    "Layer 1 is your previous_token head, with W_O1 writing into PREV instead of COPY. After "
    "it, row t of the stream holds token t in TOKEN and token t - 1 in PREV.",
    "Layer 2 with d_head2 = V: the query carries the current token (from TOKEN) and the key "
    "the token before (from PREV), so q_t . k_j is large exactly where the token before j is "
    "the token at t. Its value reads TOKEN and its output writes into OUT.",
    "Both softmaxes must be nearly one-hot after the division by sqrt(d_head): s = 20 * "
    "sqrt(d_head) works for either layer (d_head1 = context, d_head2 = vocab_size).",
])
def check_induction_head(learner: Learner) -> None:
    make_weights = learner.function("make_weights")

    def explain(ids):
        def due(t, patterns):
            j = int(np.flatnonzero(ids[:t] == ids[t])[-1])
            return [(patterns[1], t, j + 1, "layer 2 attention",
                     f"just after the earlier {ids[t]}"),
                    (patterns[0], j + 1, j, "layer 1 attention", "its previous token")]
        return due

    def check(vocab_size, context, sequences):
        weights = _weights(make_weights, vocab_size, context, layers=2)
        for ids in sequences:
            _expect_predictions(make_weights.last_call, weights, ids, _induction_targets(ids),
                                2, explain(ids))

    check(6, 8, [np.array([0, 3, 1, 4, 3, 1, 4])])
    rng = np.random.default_rng(13)
    for vocab_size, context in [(10, 16), (40, 33), (8, 64)]:
        longest = min(vocab_size - 1, (context - 1) // 2)          # distinct, and fits twice
        sequences = []
        for n in [longest] + [int(n) for n in rng.integers(2, longest + 1, size=7)]:
            pattern = rng.choice(np.arange(1, vocab_size), size=n, replace=False)
            sequences.append(np.concatenate([[0], pattern, pattern]))   # BOS, A, A
        check(vocab_size, context, sequences)
