"""Choosing the next token from a model's logits: greedy, temperature, top-k and top-p.

All of it is numpy (and the engine's softmax) on the last position's logits (B, V); no gradients
are involved.
"""

from __future__ import annotations

from random import Random
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from tinyautograd import Tensor, random

from .schema import Number, Optional, Whole, check_settings


# The sampling settings' rules (schema.py), checked here for the library and by
# `tinyformer generate` for its options, before the model is loaded.
KEEP_ALL = "to keep every token, leave it unset"
# transformers' top_p=0 keeps the likeliest token alone: here that is temperature 0.
LIKELIEST = "for the likeliest token alone, give temperature 0; " + KEEP_ALL
SAMPLING_RULES = {"temperature": Number(0), "top_k": Optional(Whole(1, 2 ** 62), KEEP_ALL),
                  "top_p": Optional(Number(above=0, high=1), LIKELIEST)}


# What sample_next says of a row of logits that leaves no token to pick, at every temperature.
NO_DISTRIBUTION = ("sampling: logits holding NaN or +inf, or only -inf, give no probabilities "
                   "to draw from")


def check_sampling(temperature: float, top_k: int | None, top_p: float | None,
                   name: Callable[[str], str] = str) -> None:
    """Raise a clear ValueError for `temperature`, `top_k` or `top_p` (sample_next's) that
    cannot mean anything (NaN included: a NaN temperature would make every probability NaN).
    `name(key)` says how a setting is called to the caller's user: `top_k` in Python,
    `--top-k` on the command line."""
    check_settings({"temperature": temperature, "top_k": top_k, "top_p": top_p},
                   SAMPLING_RULES, name=name)


def check_generator(where: str, name: str, generator: object) -> None:
    """TypeError, in one line naming the function (`where`) and the argument (`name`),
    unless `generator` is None (the engine's seeded one) or a numpy
    Generator: a seed given in its place would fail at the first draw, deep inside. What the
    draws use is its `random(shape)`, so a stand-in with one (a test's) is taken too; Python's
    own `random.Random` has a `random()` that takes no shape, and is refused."""
    if generator is not None and (isinstance(generator, Random)
                                  or not callable(getattr(generator, "random", None))):
        raise TypeError(f"{where}: {name} must be a numpy Generator, as np.random.default_rng"
                        f"(seed) makes, or None for the engine's seeded one, got {generator!r}")


def sample_next(logits: ArrayLike, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """One token id per row of `logits` (B, V), an integer array (B,): the argmax when
    `temperature` is 0, otherwise a draw from softmax(logits / temperature), restricted to the
    k = `top_k` most likely tokens (top-k) and to the smallest set of most likely tokens whose
    probability adds up to p = `top_p` (top-p, "nucleus"); None keeps every token.
    As transformers' warpers, in that order: top-p measures what top-k left, renormalised;
    every token tied with the k-th stays. Among tokens tied at top-p's cut, the lower ids
    stay (which stay in transformers follows its sort, often the higher ids); as many stay.
    Logits (V,) give one token, as np.argmax does. Sampling refuses (ValueError) a row with
    NaN or +inf, or with only -inf, as torch.multinomial does; at temperature 0 too, where
    argmax would read NaN as the largest logit. `rng` (a numpy Generator)
    makes the draws repeatable; by default the engine's seeded one (tinyautograd.manual_seed)
    is used, as by generate.
    """
    check_sampling(temperature, top_k, top_p)
    check_generator("sample_next", "rng", rng)
    logits = np.asarray(logits)
    if logits.ndim not in (1, 2) or logits.shape[-1] == 0:
        raise ValueError(f"sample_next: logits must be (B, V) or (V,) with V >= 1, got shape "
                         f"{logits.shape}")
    if logits.ndim == 1:            # one row: its token, as a numpy integer
        return draw_next(logits[None], temperature, top_k, top_p, rng)[0]
    return draw_next(logits, temperature, top_k, top_p, rng)


def draw_next(logits: ArrayLike, temperature: float, top_k: int | None, top_p: float | None,
              rng: np.random.Generator | None = None) -> np.ndarray:
    """`sample_next` for settings already checked (`logits` (B, V), `temperature`, `top_k`,
    `top_p` and `rng` as there; ids (B,)): a decoding loop checks them once, not at every
    token."""
    logits = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        # The rows a draw refuses, greedy refuses too: argmax reads NaN as the largest logit
        # and a row of -inf as token 0, and would pick one without a word.
        if not np.isfinite(logits).all() and (
                np.isnan(logits).any() or (logits == np.inf).any()
                or (logits == -np.inf).all(axis=-1).any()):
            raise ValueError(NO_DISTRIBUTION)
        return logits.argmax(axis=-1)
    # The largest logit made 0 first (softmax does not change): then a tiny temperature sends
    # the others to -inf, probability 0, which is greedy, where dividing first overflowed
    # every logit to +-inf and gave NaN probabilities.
    with np.errstate(over="ignore", invalid="ignore"):     # invalid: NaN, refused below
        logits = (logits - logits.max(axis=-1, keepdims=True)) / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth_largest = np.sort(logits, axis=-1)[:, -top_k][:, None]     # (B, 1)
        logits = np.where(logits < kth_largest, -np.inf, logits)
    probs = Tensor(logits, dtype=np.float64).softmax(axis=-1).data      # the engine's, stable
    if np.isnan(probs).any():       # as torch.multinomial refuses them, rather than token 0
        raise ValueError(NO_DISTRIBUTION)
    if top_p is not None and top_p < 1:
        # Most likely first; among equal probabilities the lower id first (stable), so that
        # which of them make the nucleus is fixed, whatever the vocabulary's size.
        order = np.argsort(-probs, axis=-1, kind="stable")
        sorted_probs = np.take_along_axis(probs, order, axis=-1)
        # Drop a token when the tokens before it already reach p; the first always stays.
        drop_sorted = np.cumsum(sorted_probs, axis=-1) - sorted_probs >= top_p
        drop = np.zeros_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)
        probs = np.where(drop, 0.0, probs)
        probs /= probs.sum(axis=-1, keepdims=True)
    rng = rng if rng is not None else random.default_generator()     # as generate's default
    # Inverse-CDF sampling: the first token whose cumulative sum passes u, so a token of
    # probability 0 (its sum no larger than the one before) is never drawn, not even by u = 0.
    # u is taken as a fraction of the row's own total, which rounding leaves a little off 1: a
    # u above the total would pick the last id, even one that top-k, top-p or a -inf logit
    # ruled out.
    cumulative = np.cumsum(probs, axis=-1)                              # (B, V)
    u = rng.random((probs.shape[0], 1)) * cumulative[:, -1:]            # one uniform per row
    return (cumulative <= u).sum(axis=-1)
