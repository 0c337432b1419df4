"""Checkers for chapter 8: an AdamW step, the warmup-cosine schedule, the training loop.

Each is compared with tinyautograd's own optimizer and schedule (`optim.AdamW`,
`optim.WarmupCosine`), and the training loop with the same loop run beside it.
"""

from __future__ import annotations

import math

import numpy as np

import tinyautograd
from tinyautograd import Tensor, functional, nn, optim

from ..catalogue import Question, exercise
from ..checking import CheckFailure, Learner, as_array, describe, expect, expect_array, on_copies

# The chapter's "predict, then run" question (`tinyformer exercises predict 8`).
QUESTION = Question(code="""\
# Gradient descent on loss = w ** 2 (its minimum is at w = 0), at two learning rates.
for lr in [0.1, 1.1]:
    w = 1.0
    for step in range(5):
        grad = 2 * w                   # d loss / d w
        w = w - lr * grad
    print(lr, round(w, 4))
""", output="""\
0.1 0.3277
1.1 -2.4883
""", why=(
    'Each step multiplies w by (1 - 2 lr): by 0.8 at lr 0.1, which shrinks w towards the minimum, '
    'and by -1.2 at lr 1.1, which overshoots it further every step. Too large a learning rate '
    'diverges; warmup starts small for this reason.'))


def _expect_numpy(got, expected, call, what="returned", mistakes=(), atol=1e-5):
    """expect_array(tensor=False), naming the mistake a wrong answer matches, if any."""
    try:
        expect_array(got, expected, call, what=what, tensor=False, atol=atol)
    except CheckFailure as failure:
        try:
            data = np.asarray(got, dtype=np.float64)
        except (TypeError, ValueError):
            raise failure from None
        def close(a, b):
            return np.shape(a) == np.shape(b) and np.allclose(a, b, atol=atol, rtol=1e-4,
                                                              equal_nan=True)
        for description, wrong in mistakes:
            # Not a mistake that gives the right answer on these inputs (L2 decay at
            # weight_decay 0): the failure is another (a Tensor where an array was due).
            if close(data, wrong) and not close(wrong, expected):
                raise CheckFailure(f"{failure}\n    That is exactly what you get "
                                   f"{description}.") from None
        raise


# ---------------------------------------------------------------------------------------------
# 1. One step of AdamW


def _adam(param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay, variant=None):
    """AdamW in numpy, with knobs for the usual mistakes."""
    if variant == "l2":                       # Adam's decay, through the gradient
        grad = grad + weight_decay * param
    if variant in ("l2", "no decay"):
        weight_decay = 0.0
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    with np.errstate(divide="ignore", invalid="ignore"):
        if variant == "no correction":
            m_hat, v_hat = m, v
        elif variant == "t from 0":
            m_hat, v_hat = m / (1 - beta1 ** (t - 1)), v / (1 - beta2 ** (t - 1))
        elif variant == "t plus 1":
            m_hat, v_hat = m / (1 - beta1 ** (t + 1)), v / (1 - beta2 ** (t + 1))
        else:
            m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
        if variant == "decay after":
            new = (param - lr * m_hat / (np.sqrt(v_hat) + eps)) * (1 - lr * weight_decay)
        elif variant == "decay without lr":
            new = param * (1 - weight_decay) - lr * m_hat / (np.sqrt(v_hat) + eps)
        elif variant == "eps inside":
            new = param * (1 - lr * weight_decay) - lr * m_hat / np.sqrt(v_hat + eps)
        else:
            new = param * (1 - lr * weight_decay) - lr * m_hat / (np.sqrt(v_hat) + eps)
    return new, m, v


_ADAM_MISTAKES = [
    ("no correction", "without the bias correction (divide m by 1 - beta1**step and v by "
                      "1 - beta2**step)"),
    ("t from 0", "counting steps from 0 in the bias correction: `step` is already 1 for the "
                 "first update"),
    ("t plus 1", "with step + 1 in the bias correction: `step` is already 1 for the first "
                 "update, so divide by 1 - beta1**step and 1 - beta2**step as they are"),
    ("l2", "with Adam's L2 decay through the gradient; AdamW decays the parameter directly, "
           "param * (1 - lr * weight_decay)"),
    ("decay after", "decaying after the Adam step; AdamW decays the parameter first"),
    ("decay without lr", "shrinking the parameter by weight_decay alone: the decay is "
                         "scaled by the learning rate, param * (1 - lr * weight_decay)"),
    ("no decay", "without the weight decay: param * (1 - lr * weight_decay), before the "
                 "Adam step"),
    ("eps inside", "with eps inside the square root: it goes after it, sqrt(v_hat) + eps"),
]


def _unpack3(result, call):
    if result is None:
        raise CheckFailure(f"{call} returned None. Did you forget a `return`?")
    expect(isinstance(result, (tuple, list)) and len(result) == 3,
           f"{call} returned {describe(result)}; return three arrays: "
           f"(new_param, new_m, new_v).")
    return result


def _check_adam_step(fn, param, grad, m, v, t, settings, expected):
    """Call the learner's adam_step once; compare m, v, then the parameter."""
    before = (param, grad, m, v)                 # on_copies gives the learner copies
    result = _unpack3(on_copies(fn, *before, t, **settings, advice=(
        "`{name} *= ...`, `{name} -= ...` and `{name}[...] = ...` write into the caller's array, "
        "and the docstring asks for new arrays: write `{name} = ...`, which makes a new one and "
        "leaves the argument as it was.")), fn.last_call)
    new_param, new_m, new_v = result
    l2 = _adam(*before, t, **settings, variant="l2")          # decay through the gradient
    l2_says = ("adding weight_decay * param to the gradient (Adam's L2 decay); AdamW leaves "
               "the gradient alone and shrinks the parameter itself")
    for name, got, want, wrong, beta in (
            ("new_m", new_m, expected[1], l2[1], settings["beta1"]),
            ("new_v", new_v, expected[2], l2[2], settings["beta2"])):
        hat = name[-1] + "_hat"
        mistakes = [(f"returning the bias-corrected {hat}: return {name[-1]} itself, the "
                     f"running average that the next step goes on from; {hat} is only for "
                     f"this step's update", want / (1 - beta ** t))]
        if settings["weight_decay"]:
            mistakes.append((l2_says, wrong))
        _expect_numpy(got, want, fn.last_call, what=f"returned, as {name},", mistakes=mistakes)
    try:
        values = None if new_param is None else np.asarray(new_param, dtype=np.float64)
    except (TypeError, ValueError):
        values = None                   # not numbers: the comparison below says what it is
    if values is not None and not np.isfinite(values).all():
        raise CheckFailure(f"{fn.last_call} returned, as new_param, "
                           f"{describe(np.asarray(new_param))}: not every value is a finite "
                           f"number. A division by zero? At the first update step is 1, so "
                           f"1 - beta1 ** step is 1 - beta1, not 0.")
    mistakes = [(description, _adam(*before, t, **settings, variant=variant)[0])
                for variant, description in _ADAM_MISTAKES]
    eps = _eps_used(before, t, settings, values)
    if eps is not None:
        said = (f"with eps = {eps:.3g} in place of the `eps` argument (here "
                f"eps={settings['eps']:g}): use the eps the step is given, not a number of "
                f"your own") if eps else ("without eps: add it after the square root, "
                                          "sqrt(v_hat) + eps")
        mistakes.append((said, _adam(*before, t, **{**settings, "eps": eps})[0]))
    _expect_numpy(new_param, expected[0], fn.last_call, what="returned, as new_param,",
                  mistakes=mistakes)
    return [np.asarray(a, dtype=np.float64) for a in result]


def _eps_used(before, t, settings, new_param):
    """The eps that would give `new_param` from the right averages (a number written in where
    the `eps` argument belongs; 0 for none at all), or None. Only where the gradients differ
    in size: on equal ones any too-short step looks like some eps."""
    if new_param is None or new_param.shape != before[0].shape:
        return None
    param, grad, m, v = before
    _, m, v = _adam(param, grad, m, v, t, **{**settings, "eps": 0.0})
    m_hat, root = m / (1 - settings["beta1"] ** t), np.sqrt(v / (1 - settings["beta2"] ** t))
    moved = param * (1 - settings["lr"] * settings["weight_decay"]) - new_param
    usable = (m_hat != 0) & (moved != 0)
    if len(np.unique(root[usable])) < 2:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = float(np.median(settings["lr"] * m_hat[usable] / moved[usable] - root[usable]))
    rounding = 1e-9 * root[usable].min()       # an eps this small is no eps at all
    if not np.isfinite(eps) or eps < -rounding:
        return None
    return eps if eps > rounding else 0.0


def _reference_adamw(param, grads, settings):
    """tinyautograd's AdamW over `grads`, one step each: [(param, m, v) after each step]."""
    p = Tensor(param.copy(), requires_grad=True, dtype=np.float64)
    optimizer = optim.AdamW([p], lr=settings["lr"], betas=(settings["beta1"],
                            settings["beta2"]), eps=settings["eps"],
                            weight_decay=settings["weight_decay"])
    states = []
    for g in grads:
        p.grad = g.copy()
        optimizer.step()
        state = optimizer.state[id(p)]
        states.append((p.data.copy(), state["exp_avg"].copy(), state["exp_avg_sq"].copy()))
    return states


@exercise("adam_step", "One step of AdamW", hints=[
    "First the two running averages: m keeps beta1 of its old value and takes (1 - beta1) of "
    "the gradient; v does the same with beta2 and the squared gradient. Return these new m "
    "and v.",
    "Bias correction divides each average by (1 - beta ** step), with the step number as it "
    "is (1 for the first update): early on the averages are still close to their start at "
    "zero.",
    "The decay is decoupled: the parameter shrinks by the factor (1 - lr * weight_decay) "
    "first, on its own, and then the Adam step moves it by lr times m_hat over (sqrt(v_hat) + "
    "eps).",
], forbid=["tinyautograd.optim"])
def check_adam_step(learner: Learner) -> None:
    fn = learner.function("adam_step")
    # The worked example of the lesson, then the same with weight decay.
    for weight_decay in (0.0, 0.5):
        settings = dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=weight_decay)
        param, grad = np.array([1.0, -2.0]), np.array([0.5, 0.5])
        expected = _reference_adamw(param, [grad], settings)[0]
        _check_adam_step(fn, param, grad, np.zeros(2), np.zeros(2), 1, settings, expected)
    # Tiny gradients, where eps is not negligible next to sqrt(v_hat).
    settings = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.0)
    param, grad = np.array([1.0, 2.0, 3.0]), np.array([1e-4, -2e-4, 3e-5])
    expected = _reference_adamw(param, [grad], settings)[0]
    _check_adam_step(fn, param, grad, np.zeros(3), np.zeros(3), 1, settings, expected)
    # Again with another eps, larger than some of the gradients: an eps written in as a number
    # matches at most one of the two.
    settings = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-4, weight_decay=0.0)
    param, grad = np.array([0.5, -1.0, 2.0]), np.array([3e-4, -1e-4, 5e-5])
    expected = _reference_adamw(param, [grad], settings)[0]
    _check_adam_step(fn, param, grad, np.zeros(3), np.zeros(3), 1, settings, expected)

    # Several steps on random gradients, the learner's state fed back in each time.
    rng = np.random.default_rng(0)
    settings = dict(lr=0.05, beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.1)
    param = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) * scale for scale in (1.0, 0.1, 3.0, 1.0, 0.5, 2.0)]
    expected = _reference_adamw(param, grads, settings)
    # Two arrays: one passed as both would stay one in on_copies, and `m *= ...` change v too.
    m, v = np.zeros_like(param), np.zeros_like(param)
    for t, (grad, state) in enumerate(zip(grads, expected), start=1):
        param, m, v = _check_adam_step(fn, param, grad, m, v, t, settings, state)


# ---------------------------------------------------------------------------------------------
# 2. Warmup and cosine decay


def _reference_schedule(base_lr, warmup_steps, total_steps, min_lr):
    """tinyautograd's WarmupCosine, on a throwaway optimizer: its lr_at(step)."""
    optimizer = optim.SGD([Tensor(np.zeros(1), requires_grad=True)], lr=base_lr)
    schedule = optim.WarmupCosine(optimizer, warmup_steps, total_steps, min_lr)
    return lambda step: schedule.lr_at(step)[0]


def _phase(step, warmup_steps, total_steps):
    if step < warmup_steps:
        return f"in the warmup (steps 0 to {warmup_steps - 1})"
    if step >= total_steps:
        return f"past the end (total_steps = {total_steps}), where the lr stays at min_lr"
    return f"in the cosine decay (steps {warmup_steps} to {total_steps - 1})"


def _schedule_mistakes(step, base_lr, warmup_steps, total_steps, min_lr):
    mistakes = []
    if step < warmup_steps:
        mistakes += [
            ("with base_lr * step / warmup_steps: here the ramp is base_lr * (step + 1) / "
             "(warmup_steps + 1), so the first update's lr is not 0",
             base_lr * step / warmup_steps),
            ("with base_lr * (step + 1) / warmup_steps: divide by warmup_steps + 1",
             base_lr * (step + 1) / warmup_steps)]
    elif step < total_steps:
        progress = (step - warmup_steps) / (total_steps - warmup_steps)
        cosine = (1 + math.cos(math.pi * progress)) / 2
        mistakes += [
            ("without min_lr: the cosine goes from base_lr down to min_lr, "
             "min_lr + (base_lr - min_lr) * ...", base_lr * cosine),
            ("with progress = step / total_steps: measure it from the end of the warmup, "
             "(step - warmup_steps) / (total_steps - warmup_steps)",
             min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * step / total_steps)) / 2),
            ("with cos(progress) instead of cos(pi * progress)",
             min_lr + (base_lr - min_lr) * (1 + math.cos(progress)) / 2),
            ("with cos(pi * progress / 2), a quarter of a cosine wave: here it is half of "
             "one, (1 + cos(pi * progress)) / 2",
             min_lr + (base_lr - min_lr) * math.cos(math.pi * progress / 2)),
        ]
    else:
        mistakes.append(("with 0 after the end: the lr stays at min_lr", 0.0))
    return mistakes


@exercise("warmup_schedule", "Learning-rate warmup and cosine decay", hints=[
    "Three cases, tested in order: step < warmup_steps (the ramp), step >= total_steps "
    "(min_lr), and the cosine for everything in between.",
    "The ramp is base_lr * (step + 1) / (warmup_steps + 1): at step 0 it is already above 0, "
    "and it would reach base_lr at step = warmup_steps, where the cosine takes over.",
    "In between, the progress runs from 0 at the end of the warmup to 1 at total_steps, and "
    "the rate follows half a cosine wave from base_lr down to min_lr: (1 + cos(pi * "
    "progress)) / 2 goes from 1 to 0.",
], forbid=["tinyautograd.optim", "tinyformer.train"])
def check_warmup_schedule(learner: Learner) -> None:
    fn = learner.function("warmup_schedule")
    cases = [
        ((1.0, 3, 9, 0.1), range(12)),                        # the lesson's worked example
        ((0.5, 0, 4, 0.0), range(6)),                         # no warmup at all
        ((1.0, 4, 4, 0.2), range(6)),                         # warmup straight into the end
        ((3e-4, 100, 1000, 3e-5), (0, 1, 50, 99, 100, 101, 350, 550, 999, 1000, 1001, 5000)),
    ]
    for (base_lr, warmup_steps, total_steps, min_lr), steps in cases:
        reference = _reference_schedule(base_lr, warmup_steps, total_steps, min_lr)
        for step in steps:
            try:
                got = fn(step, base_lr, warmup_steps, total_steps, min_lr)
            except CheckFailure as failure:
                if not (isinstance(failure.raised, ZeroDivisionError)
                        and warmup_steps == total_steps <= step):
                    raise
                # The cosine reached with no steps in it: its progress divides by 0.
                raise CheckFailure(
                    f"{failure}\n    Step {step} is past the end (step >= total_steps), where "
                    f"the lr is min_lr; here it reached the cosine, whose progress divides by "
                    f"total_steps - warmup_steps = 0. Test step >= total_steps (>=: step = "
                    f"total_steps is past the end already) before the cosine.",
                    raised=failure.raised) from None
            if isinstance(got, Tensor):
                raise CheckFailure(f"{fn.last_call} returned a Tensor; return a Python float.")
            try:
                _expect_numpy(got, reference(step), fn.last_call, atol=1e-9 * base_lr,
                              mistakes=_schedule_mistakes(step, base_lr, warmup_steps,
                                                          total_steps, min_lr))
            except CheckFailure as failure:
                raise CheckFailure(f"{failure}\n    (Step {step} is "
                                   f"{_phase(step, warmup_steps, total_steps)}.)") from None


# ---------------------------------------------------------------------------------------------
# 3. The training loop


_TEXT = "the cat sat on the mat. the rat ate the hat. "     # the exercise file's TEXT
# Not train's defaults (60 steps, lr 0.05), so that a loop that ignores its arguments shows.
_STEPS, _LR, _GOOD_LOSS = 45, 0.06, 1.0


class _Bigram(nn.Module):
    """The exercise file's model, kept here so that the check does not depend on the file."""

    def __init__(self, vocab_size, d_model=16):
        self.embed = nn.Embedding(vocab_size, d_model)
        self.out = nn.Linear(d_model, vocab_size)

    def forward(self, ids):
        return self.out(self.embed(ids).gelu())

    def __repr__(self):
        return "Bigram(...)"                     # short, for the messages


def _reference_losses(model, inputs, targets, zero_grad=True, new_optimizer=False):
    """The reference loop's losses; zero_grad=False or new_optimizer=True (a new AdamW every
    step, its running averages lost) make the loop of a usual mistake."""
    optimizer = optim.AdamW(model.parameters(), lr=_LR, weight_decay=0.0)
    losses = []
    for _ in range(_STEPS):
        if new_optimizer:
            optimizer = optim.AdamW(model.parameters(), lr=_LR, weight_decay=0.0)
        loss = functional.cross_entropy(model(inputs), targets)
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return np.array(losses)


def _as_losses(result, call):
    """The learner's list of losses as floats, or a CheckFailure saying what it is."""
    if result is None:
        raise CheckFailure(f"{call} returned None. Did you forget `return losses`?")
    expect(isinstance(result, (list, tuple, np.ndarray)),
           f"{call} returned {describe(result)}; return the list of losses, one per step.")
    losses = []
    for i, loss in enumerate(result):
        expect(not isinstance(loss, Tensor),
               f"{call} returned a list whose item {i} is a Tensor, {describe(loss)}: append "
               f"loss.item(), the plain Python float the docstring asks for. The Tensor still "
               f"carries requires_grad and the node of the graph that made it.")
        try:
            losses.append(float(as_array(loss)))
        except (TypeError, ValueError):
            raise CheckFailure(f"{call} returned a list whose item {i} is {describe(loss)}, "
                               f"not a number: append loss.item().") from None
    expect(len(losses) == _STEPS, f"{call} returned {len(losses)} losses for {_STEPS} "
                                  f"steps: loop `steps` times (the argument), and record one "
                                  f"loss per step.")
    return np.array(losses)


def _differing(got, expected):
    """Where two lists of losses differ."""
    return ~np.isclose(got, expected, atol=1e-3, rtol=1e-3)


def _explain_difference(got, expected, call, mistaken):
    """Say where the learner's losses part from the reference loop's, and the likely cause.
    `mistaken(**knobs)` gives the losses of _reference_losses's mistaken loops."""
    wrong = _differing(got, expected)
    if not wrong.any():
        return
    k = int(np.argmax(wrong))
    first = (f"{call} returned losses that differ from the reference loop's.\n"
             f"    at step {k}: expected {expected[k]:.6g}, got {got[k]:.6g}")
    if np.allclose(got[:-1], expected[1:], atol=1e-3, rtol=1e-3):
        why = ("Your losses are the reference's one step early: record the loss of the "
               "forward pass that comes before each update, not after it.")
    elif k == 0:
        why = ("The loss before any update already differs: it should be "
               "functional.cross_entropy(model(inputs), targets).")
    elif np.isclose(got[1], got[0]):
        why = ("The first update changed nothing. optimizer.step() must come after "
               "loss.backward(), and zero_grad() before backward, not between backward "
               "and step (it would throw the new gradients away).")
    elif k == 2 and not _differing(got, mistaken(zero_grad=False)).any():
        why = ("The first update was right and the second was not: without "
               "optimizer.zero_grad() in every step, backward adds each new gradient to the "
               "old ones.")
    elif k == 2 and not _differing(got, mistaken(new_optimizer=True)).any():
        why = ("The first update was right and the second was not: these are the losses of "
               "a new optimizer in every step, which forgets AdamW's running averages of the "
               "gradients. Make it once, before the loop, as the file does.")
    elif k == 1:
        why = ("The loss before any update is right, but the first update is not the "
               "reference's: use the optimizer made for you (AdamW with the lr given to "
               "train), and do forward, loss, zero_grad, backward, step once per step.")
    else:
        why = (f"Steps 0 to {k - 1} agree. Each step should be: forward, loss, zero_grad, "
               f"backward, step, in this order, once.")
    raise CheckFailure(f"{first}\n    {why}")


@exercise("training_loop", "The training loop", hints=[
    "Inside `for _ in range(steps):` write the five lines of the lesson, in order: forward, "
    "loss, zero_grad, backward, step.",
    "The model maps the inputs to (N, vocab_size) logits; functional.cross_entropy of the "
    "logits and the targets is the loss, one number in a Tensor. Record it as a plain float "
    "with .item().",
    "Gradients add up (+=) across backward calls, so clear them before each backward; and "
    "record the loss of the weights it was computed with, which is before the update.",
], forbid=["tinyformer.train", "tinyformer.jobs"])
def check_training_loop(learner: Learner) -> None:
    train = learner.function("train")
    vocab = sorted(set(_TEXT))
    ids = np.array([vocab.index(ch) for ch in _TEXT])
    inputs, targets = ids[:-1], ids[1:]

    tinyautograd.manual_seed(0)
    model = _Bigram(len(vocab))
    start = model.state_dict()
    reference = _Bigram(len(vocab))
    reference.load_state_dict(start)
    expected = _reference_losses(reference, inputs, targets)

    # Copies of the data: the mistaken loops and the final loss read it again afterwards.
    losses = _as_losses(train(model, inputs.copy(), targets.copy(), steps=_STEPS, lr=_LR),
                        train.last_call)
    changed = [name for name, array in model.state_dict().items()
               if not np.array_equal(array, start[name])]
    if not changed:
        # What the gradients were left as tells a step on cleared gradients from no step.
        cleared = all(p.grad is None or not np.any(p.grad)
                      for p in model.parameters())
        raise CheckFailure(
            f"{train.last_call}: no parameter of the model changed. optimizer.step() moves "
            f"them, and only after loss.backward() has filled their .grad."
            + (" Their .grad are empty after training: zero_grad() cleared the gradients "
               "before the step, or backward never ran. Each step: zero_grad(), "
               "loss.backward(), optimizer.step(), in this order." if cleared else ""))

    def mistaken(**knobs):
        copy = _Bigram(len(vocab))
        copy.load_state_dict(start)
        return _reference_losses(copy, inputs, targets, **knobs)

    _explain_difference(losses, expected, train.last_call, mistaken)
    final = functional.cross_entropy(model(inputs), targets).item()
    expect(final < _GOOD_LOSS, f"{train.last_call}: after training, the model's loss on the "
                               f"data is {final:.4g}; it should be below {_GOOD_LOSS}.")
