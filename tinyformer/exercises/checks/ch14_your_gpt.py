"""Checker for chapter 14: your GPT, assembled and trained.

The model is judged by behaviour first, on a small one whose sizes all differ (so that a
shape tells which table it is): a later token never changes earlier logits; the same token at
two positions gives two different outputs; one (V, C) matrix both embeds and unembeds; the
stream the unembedding reads has been normalised; every parameter gets a gradient; the logits
are the equations' computed from the model's own parts; the first loss is near a uniform guess's.
Then it is trained with teacher forcing on the built-in stories, with the learner's own
batches, and must recall the colour of each held-out story clearly more often than the
counting model of chapter 2 (two words of context, so one guess among six colours) does.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from tinyautograd import ShapeError, Tensor, functional, manual_seed, nn, no_grad, optim
from tinyformer.data import builtin_corpus

from ..catalogue import Question, exercise
from ..checking import CheckFailure, Learner, describe, expect, expect_equal, on_copies

# The chapter's "predict, then run" question (`tinyformer exercises predict 14`).
QUESTION = Question(code="""\
import numpy as np

ids = np.arange(10, 20)              # a text of 10 tokens
context, start = 4, 3
x = ids[start:start + context]
y = ids[start + 1:start + 1 + context]
print(x, y)
print(len(y), "predictions are graded from this one window")
""", output="""\
[13 14 15 16] [14 15 16 17]
4 predictions are graded from this one window
""", why=(
    "The targets are the same window one token on: position 0 of x (13) must predict 14, "
    "positions 0 and 1 (13 14) must predict 15, and so on. One window grades as many predictions "
    'as it has tokens, in one forward pass, thanks to the causal mask.'))

# ---------------------------------------------------------------------------------------------
# Teacher forcing


def _check_batches(batch):
    # Ids as in a text, not consecutive: on 100, 101, ... the next token is also the id plus 1.
    ids = np.random.default_rng(0).integers(100, 140, size=30)
    starts, context = np.array([0, 5, 17]), 4
    got = on_copies(batch, ids, starts, context)
    call = batch.last_call
    expect(isinstance(got, tuple) and len(got) == 2,
           f"{call} returned {describe(got)}; return the pair (x, y).")
    x, y = got
    for name, value in (("x", x), ("y", y)):
        expect(isinstance(value, np.ndarray) and value.dtype.kind in "iu",
               f"{call} returned {name} = {describe(value)}; return integer numpy arrays "
               f"(dtype np.int64): they are token ids.")
    want_x = np.stack([ids[s:s + context] for s in starts])
    want_y = np.stack([ids[s + 1:s + context + 1] for s in starts])
    if y.shape == want_x.shape and np.array_equal(y, want_x) and np.array_equal(x, want_x):
        raise CheckFailure(f"{call} returned y equal to x: each target is the token AFTER its "
                           f"input, the window one token later.")
    if np.array_equal(x, want_y) and np.array_equal(y, want_x):
        raise CheckFailure(f"{call} returned x and y swapped: x is the window from s, y the "
                           f"one from s + 1 (y[t] is what comes after x[t]).")
    if np.array_equal(x, want_x) and np.array_equal(y, want_x + 1):
        raise CheckFailure(f"{call} returned y = x + 1: each target is the token that comes next "
                           f"in `ids`, not the id one higher; y is the window one token later, "
                           f"ids[s + 1 : s + context + 1].")
    expect_equal(x.tolist(), want_x.tolist(), call, what="returned x that is")
    expect_equal(y.tolist(), want_y.tolist(), call, what="returned y that is")


# ---------------------------------------------------------------------------------------------
# The model's behaviour, before training

# Every size different from the others (n_head included: with n_head = n_layer, a Block
# given the one in place of the other passes).
V, CONTEXT, C, LAYERS, HEADS = 11, 9, 8, 2, 4


def _logits(model, ids, call, learner):
    out = learner.call_method(model, "forward", ids)
    expect(isinstance(out, Tensor), f"{call}(ids) returned {describe(out)}; return the logits "
                                    f"as a Tensor (B, T, vocab_size).")
    expect(out.shape == ids.shape + (V,), f"{call} on ids of shape {ids.shape} returned "
                                          f"logits of shape {out.shape}; expected "
                                          f"{ids.shape + (V,)} (B, T, vocab_size).")
    return out


def _tables(model, call):
    """The parameters shaped like a (V, C) token table, or like its transpose."""
    params = list(model.parameters())
    expect(params, f"{call} has no parameters: store E and P as nn.Parameters on self, "
                   f"and the blocks and the norm too.")
    return [p for p in params if p.shape in ((V, C), (C, V))]


def _check_behaviour(learner):
    GPT = learner.function("GPT")
    manual_seed(0)
    model = GPT(V, CONTEXT, C, LAYERS, HEADS)
    call = f"GPT(vocab_size={V}, context={CONTEXT}, d_model={C}, n_layer={LAYERS}, " \
           f"n_head={HEADS})"
    rng = np.random.default_rng(0)
    ids = rng.integers(0, V, size=(2, 7))
    with no_grad():
        try:
            base = _logits(model, ids, call, learner).data
        except CheckFailure as failure:
            if not isinstance(failure.raised, ShapeError):
                raise
            raise CheckFailure(f"{failure}{_shape_slip(learner, GPT, model)}",
                               raised=failure.raised) from None
        for after, summed in (("a softmax", base), ("a log_softmax", np.exp(base))):
            expect(not np.allclose(summed.sum(axis=-1), 1.0),
                   f"{call}(ids) returned what {after} gives: at every position its "
                   f"{'exp ' if after == 'a log_softmax' else ''}values sum to 1. Return the "
                   f"logits themselves, norm(x) @ E^T: cross_entropy applies the softmax.")
        later = ids.copy()
        later[:, 5] = (later[:, 5] + 3) % V
        moved = _logits(model, later, call, learner).data
        expect(np.allclose(base[:, :5], moved[:, :5], atol=1e-6),
               f"{call}: changing the token at position 5 changed the logits at positions "
               f"0 to 4. A position must never read a later token: is the causal Block used "
               f"for every position, and E[ids] taken row by row?")
        same = _logits(model, np.full((1, CONTEXT), 3), call, learner).data[0]
        if np.allclose(same[0], same[-1], atol=1e-6):
            # A table of zeros added is no table added, as far as these logits tell.
            if any(p.shape == (CONTEXT, C) and not p.data.any() for p in model.parameters()):
                raise CheckFailure(
                    f"{call}: on ids [3 3 ... 3] position 0 and position {CONTEXT - 1} give "
                    f"the same logits, since the position table P ({CONTEXT}, {C}) starts as "
                    f"zeros: every position adds the same row. Draw it from N(0, 0.02^2), as "
                    f"E: nn.init.normal_(nn.Parameter(np.zeros(shape)), std=0.02).")
            raise CheckFailure(f"{call}: on ids [3 3 ... 3] position 0 and position "
                               f"{CONTEXT - 1} give the same logits: the model does not know "
                               f"where a token is. Add the position table's rows P[:T] to the "
                               f"token embeddings.")

    tables = _tables(model, call)
    expect(len(tables) < 2,
           f"{call} has {len(tables)} matrices shaped like the token table ({V}, {C}) or its "
           f"transpose: the unembedding is a second one. Tie it: logits = x @ E^T with the "
           f"same E that embeds.")
    expect(len(tables) == 1,
           f"{call} has no parameter of shape ({V}, {C}): the token table E is "
           f"(vocab_size, d_model).")
    E = tables[0]
    E_rows = E.data if E.shape == (V, C) else E.data.T
    present = np.array([[0, 1, 2, 3]])                 # token V - 1 is not among the inputs
    model.zero_grad()
    upstream = rng.standard_normal((1, 4, V))
    (_logits(model, present, call, learner) * Tensor(upstream)).sum().backward()
    absent_row = E.grad[V - 1] if E.shape == (V, C) else E.grad[:, V - 1]
    expect(E.grad is not None and np.abs(absent_row).max() > 0,
           f"{call}: the token table got no gradient in the row of a token that is not among "
           f"the inputs, so it does not make the logits: the unembedding must be E itself, "
           f"logits = norm(x) @ E^T.")

    # The stream the unembedding read: logits = n @ E^T, so n = logits @ E (E^T E)^-1.
    with no_grad():
        logits = _logits(model, ids, call, learner).data
    stream = logits @ E_rows @ np.linalg.inv(E_rows.T @ E_rows)
    mean, std = np.abs(stream.mean(axis=-1)).max(), stream.std(axis=-1)
    # 1 - 1e-5 / variance, rather than 1: layer norm's eps counts on a stream this small.
    expect(mean < 1e-3 and std.min() > 0.5 and std.max() < 1.001,
           f"{call}: the vectors the unembedding reads are not normalised (their mean over "
           f"d_model is up to {mean:.3g}, their standard deviation from {std.min():.3g} to "
           f"{std.max():.3g}; a freshly made layer norm gives 0 and about 1). Apply the final "
           f"nn.LayerNorm after the last block, before the unembedding.")

    # The gradients of the backward pass above: None where the logits never reached.
    unused = [name for name, parameter in model.named_parameters() if parameter.grad is None]
    expect(not unused,
           f"{call}: {len(unused)} of its parameters get no gradient from the logits "
           f"({', '.join(unused[:3])}{', ...' if len(unused) > 3 else ''}), so forward never "
           f"uses them. Run x through every block in turn (x = block(x) in the loop) and use "
           f"every part that __init__ makes.")

    Block = learner.attribute("Block")
    distinct = sum(isinstance(module, Block) for module in model.modules())   # each once
    expect(distinct in (0, LAYERS),
           f"{call} holds {distinct} distinct Block{'s' if distinct > 1 else ''}; n_layer = "
           f"{LAYERS} asks for {LAYERS}, each with its own weights. [Block(...)] * n_layer is "
           f"one Block n_layer times: make a new Block for each layer.")
    # The number of heads changes no parameter count, so only the attention layers tell it.
    Attention = learner.attribute("CausalSelfAttention")
    heads = sorted({module.n_head for module in model.modules()
                    if isinstance(module, Attention) and hasattr(module, "n_head")})
    built = " and ".join(f"{n} head{'s' if n != 1 else ''}" for n in heads)
    expect(heads in ([], [HEADS]),
           f"{call} builds Blocks of {built}; n_head = {HEADS} asks for {HEADS} in each: "
           f"pass n_head on, Block(d_model, n_head).")
    blocks = sum(Block(C, HEADS).num_parameters() for _ in range(LAYERS))
    expected = V * C + CONTEXT * C + blocks + 2 * C
    got = model.num_parameters()
    expect(got == expected,
           f"{call} has {got} parameters; E ({V} x {C}) + P ({CONTEXT} x {C}) + {LAYERS} "
           f"Blocks ({blocks}) + the final norm ({2 * C}) make {expected}, "
           f"{'fewer' if got > expected else 'more'}. The tied unembedding adds none.")
    _check_composition(learner, model, call, ids, logits, E_rows)
    first = functional.cross_entropy(Tensor(logits), rng.integers(0, V, size=ids.shape)).item()
    expect(first < math.log(V) + 1.0,
           f"{call}: its first loss on random tokens is {first:.2f}, far above the "
           f"ln {V} = {math.log(V):.2f} of a uniform guess: E and P start too large. Start "
           f"them at N(0, 0.02^2).")


def _composed(E_rows, P, blocks, norm, ids, add_block=False, norm_each=False,
              untransposed=False):
    """The logits of the equations from the model's own parts; `add_block` and `norm_each`
    give the usual wrong ways of chaining the blocks, `untransposed` the unembedding by E
    itself (which runs only where vocab_size == d_model)."""
    x = Tensor(E_rows[ids] + P.data[:ids.shape[1]])
    for block in blocks:
        x = x + block(x) if add_block else block(x)
        x = norm(x) if norm_each else x
    return (x if norm_each else norm(x)).data @ (E_rows if untransposed else E_rows.T)


def _parts(learner, model, vocab_size):
    """(E, P, Blocks, final norm) of a model built from the given parts, E and P as arrays
    (vocab_size, C) and (CONTEXT, C); None where it is built otherwise."""
    Block = learner.attribute("Block")
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    inside = {id(m) for block in blocks for m in block.modules()}
    inside_params = {id(p) for block in blocks for p in block.parameters()}
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm) and id(m) not in inside]
    outside = [p for p in model.parameters() if id(p) not in inside_params]
    tables = [p for p in outside if p.shape == (vocab_size, C)]
    positions = [p for p in outside if p.shape == (CONTEXT, C)]
    if len(blocks) != LAYERS or len(norms) != 1 or len(tables) != 1 or len(positions) != 1:
        return None
    return tables[0].data, positions[0], blocks, norms[0]


def _shape_slip(learner, GPT, model):
    """For a forward that raised a ShapeError on ids (2, 7): a line naming the slip, where a
    shape that lets it run shows which (or "" where none does). Ids (T, T) = (7, 7), B = T,
    hide a T taken from ids.shape[0]; a model with vocab_size = d_model hides a product with
    E in place of E^T. Each must then give exactly that slip's logits."""
    rng = np.random.default_rng(1)
    square = rng.integers(0, C, size=(7, 7))           # ids below C: a token of either model
    probes = [(model, V, False,
               "\n    On ids of shape (7, 7), where B = T, it runs and gives the equations' "
               "logits: P[:T] takes T from ids.shape[1], the length of each sequence; "
               "ids.shape[0] is the batch size B.")]
    manual_seed(0)
    try:
        probes.append((GPT(C, CONTEXT, C, LAYERS, HEADS), C, True,
                       f"\n    A model with vocab_size = d_model = {C} (on ids of shape (7, 7)) "
                       f"runs, and gives exactly norm(x) @ E: E is (vocab_size, d_model), so "
                       f"the logits are norm(x) @ E.T, (B, T, vocab_size)."))
    except Exception:       # the learner's __init__ refuses these sizes: no second probe
        pass
    for probe, vocab_size, untransposed, named in probes:
        parts = _parts(learner, probe, vocab_size)
        if parts is None:
            continue
        try:
            got = learner.call_method(probe, "forward", square)
        except CheckFailure:
            continue
        if isinstance(got, Tensor) and got.shape == (7, 7, vocab_size) and np.allclose(
                got.data, _composed(*parts, square, untransposed=untransposed), atol=1e-5,
                rtol=1e-4):
            return named
    return ""


def _check_composition(learner, model, call, ids, logits, E_rows):
    """The logits must be the equations' with the model's own E, P, Blocks and final norm:
    a stream that counts x twice, or is normalised between the blocks, passes every other
    check and trains."""
    Block = learner.attribute("Block")
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    inside = {id(m) for block in blocks for m in block.modules()}
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm) and id(m) not in inside]
    positions = [p for p in model.parameters() if p.shape == (CONTEXT, C)]
    if len(blocks) != LAYERS or len(norms) != 1 or len(positions) != 1:
        return              # not built from the given parts: the checks above judged it
    parts = (E_rows, positions[0], blocks, norms[0], ids)
    with no_grad():
        expected = _composed(*parts)
        if np.allclose(logits, expected, atol=1e-5, rtol=1e-4):
            return
        mistakes = [("x = x + block(x): a Block adds its input back itself (it returns x + "
                     "...), so the stream is counted twice",
                     _composed(*parts, add_block=True)),
                    ("the final norm after every block: it comes once, after the last one "
                     "(each pre-LN block normalises its own input)",
                     _composed(*parts, norm_each=True))]
    named = next((f"\n    That is exactly what you get with {description}."
                  for description, wrong in mistakes
                  if np.allclose(logits, wrong, atol=1e-5, rtol=1e-4)), "")
    raise CheckFailure(f"{call}(ids) returned logits other than the equations give with its "
                       f"own E, P, Blocks and final norm: x = E[ids] + P[:T], then x = "
                       f"block(x) for each block in turn, then norm(x) @ E^T.{named}")


# ---------------------------------------------------------------------------------------------
# Training on the stories, and recall against the counting model

STEPS, EVERY, BATCH, WINDOW = 600, 50, 16, 80
MARGIN = 0.25           # how much more often than the counting model it must recall


def _held_out_prompts():
    """(prompt, colour) for 100 stories of another seed: the story up to "... is "."""
    stories = builtin_corpus(n_chars=12_000, seed=1).splitlines()[:100]
    return [(s[:s.rindex(" is ") + 4], s[s.rindex(" is ") + 4:].rstrip(".")) for s in stories]


def counting_model_recall(text: str, prompts: Sequence[tuple[str, str]]) -> float:
    """Chapter 2's second-order model, on words: the next word is the one that most often
    followed the last two in the training text. Its recall of the colours."""
    counts = defaultdict(Counter)
    for line in text.splitlines():
        words = line.replace(".", " .").split()          # "green." is the word "green"
        for a, b, c in zip(words, words[1:], words[2:]):
            counts[a, b][c] += 1
    hits = 0
    for prompt, colour in prompts:
        a, b = prompt.split()[-2:]
        guess = counts[a, b].most_common(1)[0][0] if counts[a, b] else None
        hits += guess == colour
    return hits / len(prompts)


def _recall(model, learner, vocab, prompts):
    """How often the model's most likely next character after "... is " begins the colour
    (the six colours begin with six different letters). Prompts of different lengths are
    padded at the end, which a causal model never reads."""
    longest = max(len(p) for p, _ in prompts)
    ids = np.zeros((len(prompts), longest), dtype=np.int64)
    for row, (prompt, _) in enumerate(prompts):
        ids[row, :len(prompt)] = [vocab.index(c) for c in prompt]
    with no_grad():
        logits = learner.call_method(model, "forward", ids).data
    return np.mean([vocab[int(logits[row, len(p) - 1].argmax())] == colour[0]
                    for row, (p, colour) in enumerate(prompts)])


def _check_training(learner):
    GPT, batch = learner.function("GPT"), learner.function("teacher_forcing_batch")
    text = builtin_corpus(n_chars=20_000, seed=0)
    prompts = _held_out_prompts()
    vocab = sorted(set(text) | {c for p, colour in prompts for c in p + colour})
    ids = np.array([vocab.index(c) for c in text])
    starts = np.array([0] + [i + 1 for i, c in enumerate(text) if c == "\n"])
    starts = starts[starts + WINDOW + 1 <= len(ids)]      # windows that start a story
    baseline = counting_model_recall(text, prompts)
    needed = baseline + MARGIN

    manual_seed(0)
    model = GPT(len(vocab), WINDOW, 32, 2, 2)
    optimiser = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    rng = np.random.default_rng(0)
    losses, recalls = [], []
    with threadpool_limits(1):       # small matrices: one BLAS thread is fastest, and fair
        for step in range(1, STEPS + 1):
            x, y = batch(ids, rng.choice(starts, BATCH), WINDOW)
            loss = functional.cross_entropy(learner.call_method(model, "forward", x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            expect(np.isfinite(losses[-1]), f"training your GPT: the loss became "
                                            f"{losses[-1]} at step {step}.")
            if step % EVERY == 0:
                recalls.append(_recall(model, learner, vocab, prompts))
                fell = np.mean(losses[-EVERY:]) < 0.5 * losses[0]
                if fell and recalls[-1] >= needed:
                    return
    trace = ", ".join(f"{r:.0%}" for r in recalls)
    raise CheckFailure(
        f"after {STEPS} training steps your GPT's loss went from {losses[0]:.2f} to "
        f"{np.mean(losses[-EVERY:]):.2f} and it recalled the colour of "
        f"{recalls[-1]:.0%} of 100 held-out stories (every {EVERY} steps: {trace}). The "
        f"counting model of chapter 2 recalls {baseline:.0%}; yours must reach "
        f"{needed:.0%} with a loss below half its first.")


@exercise("your_gpt", "Your GPT: assemble it and train it", hints=[
    "teacher_forcing_batch: one slice ids[s:s + context] per start for x, the same one "
    "shifted by one for y; np.stack makes the rows a (B, context) array.",
    "__init__: two Parameters drawn from a normal of std 0.02 (nn.init.normal_): the "
    "(vocab_size, d_model) token table E and the (context, d_model) positions P; then an "
    "nn.ModuleList of n_layer Blocks, and an nn.LayerNorm(d_model).",
    "forward: E[ids] is (B, T, C) and P[:T] (T, C) broadcasts over the batch. Which one "
    "matrix turns the normalised stream (B, T, C) back into V scores per position?",
], forbid=["tinyformer.gpt", "tinyformer.blocks", "tinyformer.layers", "tinyformer.attention",
           "tinyformer.transformer", "tinyformer.bert", "tinyformer.pretrained"])
def check_your_gpt(learner: Learner) -> None:
    _check_batches(learner.function("teacher_forcing_batch"))
    _check_behaviour(learner)
    _check_training(learner)
