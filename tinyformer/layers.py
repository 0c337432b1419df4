"""The layers a Transformer is assembled from, apart from attention: token embeddings, the
positional encodings, the embeddings module that puts them together (with the context check),
the norms, the positions the head reads, the soft-capped logits and the position-wise
feed-forward network; and the checks of the sizes and switches every model is built with.

Each follows the paper that introduced it; the docstrings give the equations, the comments the
shapes. B is the batch, T the sequence length, C = d_model the width of the residual stream.
Everything is built from tinyautograd's public API, so the gradients come from the engine.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Union

import numpy as np
from numpy.typing import ArrayLike

from tinyautograd import Tensor, nn, stack
from tinyautograd import functional as F

from .schema import (BadInput, Number, Optional, Rule, Whole, check_settings,
                     check_whole, is_finite_number)

# A batch of token ids (B, T): an integer array, nested lists of ints, or a Tensor holding them.
Tokens = Union[Tensor, ArrayLike]
# What `positional_encoding` makes: each is called as pos(x, start) on the token embeddings.
Positions = Union["SinusoidalPositions", "LearnedPositions", "RotaryPositions", "NoPositions"]

# --------------------------------------------------------------------------------------------
# Token embeddings


class TokenEmbedding(nn.Embedding):
    """A learned vector for each token of the vocabulary: E, of shape (vocab_size, d_model).

        embed(idx) = E[idx] * sqrt(d_model)   with scale=True ("Attention Is All You Need", 3.4)
        embed(idx) = E[idx]                   with scale=False (GPT-2)
        unembed(x) = x @ E^T                  logits over the vocabulary

    `unembed` ties the output projection to the embedding (Press & Wolf 2017, used in the paper):
    a model computes its logits with the same matrix that embedded its input, so the one weight
    learns from both ends and the vocabulary costs its parameters once.

    Initialised N(0, 1/d_model): each row then has a norm near 1, and with scale=True each entry
    is near N(0, 1), the size of the sinusoidal encoding added to it (the reason for the scale).
    """

    def __init__(self, vocab_size: int, d_model: int, scale: bool = False) -> None:
        super().__init__(vocab_size, d_model)
        nn.init.normal_(self.weight, std=d_model ** -0.5)
        self.scale = scale

    def forward(self, idx: ArrayLike | Tensor) -> Tensor:
        x = super().forward(idx)                         # (B, T) integers -> (B, T, C)
        return x * math.sqrt(self.embedding_dim) if self.scale else x

    def unembed(self, x: Tensor) -> Tensor:
        """Logits for the next token: x (B, T, C) @ E^T (C, vocab) -> (B, T, vocab)."""
        return x @ self.weight.T

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale}"


# --------------------------------------------------------------------------------------------
# Positional encodings
#
# Attention treats its input as a set: permute the tokens and the outputs permute the same way.
# The order of the tokens has to be written into the vectors themselves. Each encoding below
# has the same interface, `forward(x, start=0)` on the token embeddings x (B, T, C), so a model
# can take any of them; `start` is the position of x's first token, which is not 0 when earlier
# tokens sit in a key-value cache during generation. Each is sized by the model's context;
# `Embeddings` below checks once, for all of them, that a sequence fits in it.


def _check_fits_table(name: str, context: int, start: int, T: int) -> None:
    """ValueError, in one line, unless positions start .. start + T - 1 are in a table of
    `context`: a table used on its own, outside Embeddings. Past its end numpy's slice comes
    back short, and a token at position `context` got an empty (B, 0, C) without a word."""
    if start + T > context:
        raise ValueError(f"{name}: positions {start} to {start + T - 1} are past the table of "
                         f"{context} positions; make it with context >= {start + T}")


class SinusoidalPositions(nn.Module):
    """The fixed encoding of "Attention Is All You Need" (section 3.5), added to the embeddings:

        PE(pos, 2i)   = sin(pos / 10000^(2i/d_model))
        PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model))

    Each pair of features is a clock turning at its own speed, from one turn every 2 pi positions
    (i = 0) down to one every 2 pi 10000^((d_model-2)/d_model), near 2 pi 10000 when d_model is
    wide. PE(pos + k) is a rotation of PE(pos) that depends only on k, which lets attention
    find relative offsets with a linear map.

    The table, of `context` positions by `d_model` features, is computed once and is not learned: a
    plain numpy array, so it is neither a parameter nor in the state_dict. It is kept in float64 and
    takes the dtype of x when added.
    """

    def __init__(self, context: int, d_model: int) -> None:
        self.context, self.d_model = context, d_model
        pos = np.arange(context)[:, None]                          # (context, 1)
        two_i = np.arange(0, d_model, 2)                           # (ceil(C/2),) the even features
        angle = pos / 10000 ** (two_i / d_model)                   # (context, ceil(C/2))
        self.table = np.zeros((context, d_model))                  # (context, C)
        self.table[:, 0::2] = np.sin(angle)
        self.table[:, 1::2] = np.cos(angle[:, : d_model // 2])     # an odd C has one cos fewer

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        T = x.shape[1]                                             # x: (B, T, C)
        _check_fits_table("SinusoidalPositions", self.context, start, T)
        return x + self.table[start:start + T]                     # (T, C) broadcasts over B

    def extra_repr(self) -> str:
        return f"context={self.context}, d_model={self.d_model}"


class LearnedPositions(nn.Module):
    """A learned vector for each position, added to the embeddings (BERT, GPT-2):

        x'[b, t] = x[b, t] + P[start + t],    P of shape (context, d_model)

    The paper found it as good as the sinusoids; the price is that it cannot say anything about
    positions beyond the context it was trained on. Initialised N(0, 0.02^2), as nanoGPT and
    Hugging Face's GPT-2 are (OpenAI's GPT-2 code drew this table with 0.01).
    """

    def __init__(self, context: int, d_model: int) -> None:
        self.context, self.d_model = context, d_model
        self.embedding = nn.Embedding(context, d_model)
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        T = x.shape[1]                                             # x: (B, T, C)
        # As the other tables: the embedding's IndexError named a row, not the positions.
        _check_fits_table("LearnedPositions", self.context, start, T)
        return x + self.embedding(np.arange(start, start + T))     # (T, C) broadcasts over B

    def extra_repr(self) -> str:
        return f"context={self.context}, d_model={self.d_model}"


class RotaryPositions(nn.Module):
    """Rotary position embedding, RoPE (Su et al. 2021, "RoFormer"). Nothing is added to the
    embeddings; instead attention rotates its queries and keys, in each head:

        q, k = rope.rotate(q), rope.rotate(k)        # (B, n_head, T, d_head), before q @ k^T

    Features are rotated in pairs (2i, 2i+1), the paper's convention and Meta's Llama code's
    (GPT-NeoX, and Hugging Face's Llama and Qwen3 code, pair feature i with i + d/2 instead;
    the two differ only by a fixed permutation of the features, which is how Hugging Face
    converted Meta's weights and how tinyformer/pretrained.py loads theirs). The pair i of the
    vector at position m turns by the angle m * theta_i, with `base` = 10000 in the paper:

        theta_i = base^(-2i/d_head),   i = 0 .. d_head/2 - 1
        rotate(x)[m, 2i]   = x[m, 2i] cos(m theta_i) - x[m, 2i+1] sin(m theta_i)
        rotate(x)[m, 2i+1] = x[m, 2i] sin(m theta_i) + x[m, 2i+1] cos(m theta_i)

    Rotations preserve length, and the product of two rotated vectors depends on their angles'
    difference only: <rotate(q)[m], rotate(k)[n]> is a function of q, k and m - n. So the
    attention scores see relative positions, and no position is ever added to the values.

    The slowest pair turns once every 2 pi base^((d_head-2)/d_head) positions (near 2 pi base
    for wide heads): a larger base (Llama 3's 500000, `rope_theta` in the models) keeps
    distant positions apart for long contexts.

    `forward` is the identity, so that a model can apply any positional encoding to its token
    embeddings in the same way; the work happens in `rotate`. Its tables of cos and sin hold
    `context` positions, for heads of `d_head` features (even).
    """

    def __init__(self, context: int, d_head: int, base: float = 10000.0) -> None:
        if d_head % 2:
            raise ValueError(f"RotaryPositions: d_head must be even (features turn in pairs), "
                             f"got {d_head}")
        check_switches("RotaryPositions", rope_theta=base)
        self.context, self.d_head, self.base = context, d_head, base
        theta = float(base) ** (-np.arange(0, d_head, 2) / d_head)    # (d_head/2,)
        angle = np.arange(context)[:, None] * theta                # (context, d_head/2): m theta_i
        self.cos, self.sin = np.cos(angle), np.sin(angle)          # constants, float64, as above

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        return x                                                   # x: (B, T, C), unchanged

    def rotate(self, x: Tensor, start: int = 0) -> Tensor:
        """Rotate queries or keys x (B, n_head, T, d_head) whose first token is at `start`."""
        T = x.shape[-2]
        _check_fits_table("RotaryPositions", self.context, start, T)
        # (T, d_head/2) each, in x's dtype; named, so that a graph's picture says what they are
        cos = Tensor(self.cos[start:start + T], dtype=x.dtype)
        sin = Tensor(self.sin[start:start + T], dtype=x.dtype)
        cos.name, sin.name = "rope cos", "rope sin"
        even, odd = x[..., 0::2], x[..., 1::2]                     # (B, H, T, d_head/2) each
        rotated = stack([even * cos - odd * sin,                   # each pair turned by m theta_i
                         even * sin + odd * cos], axis=-1)         # (B, H, T, d_head/2, 2)
        return rotated.reshape(x.shape)                            # interleave back: 2i, 2i+1

    def extra_repr(self) -> str:
        return f"context={self.context}, d_head={self.d_head}, base={self.base:g}"


class NoPositions(nn.Module):
    """No positional information at all: the identity. A decoder with a causal mask can still
    infer positions (each token sees a different number of predecessors); an encoder cannot."""

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        return x


def positional_encoding(kind: str, context: int, d_model: int, d_head: int | None = None,
                        rope_theta: float = 10000.0) -> Positions:
    """The positional encoding named `kind`: 'sinusoidal', 'learned', 'rope' or 'none'.

    RoPE rotates the queries and keys of each head, so it is sized by `d_head` (d_model //
    n_head); without it, d_model is used, as for a single head. `rope_theta` is its base.
    """
    check_rope_theta_applies(kind, rope_theta)         # where a model has not said it first
    if kind == "sinusoidal":
        return SinusoidalPositions(context, d_model)
    if kind == "learned":
        return LearnedPositions(context, d_model)
    if kind == "rope":
        # Said here in the caller's terms, the argument that sized it: its user made no
        # RotaryPositions. (A model's head_width says it first, of d_model and n_head.)
        given, width = ("d_model", d_model) if d_head is None else ("d_head", d_head)
        if width % 2:
            raise ValueError(f"positions='rope' needs an even head width (features turn in "
                             f"pairs), got {given} {width}; give an even {given}")
        return RotaryPositions(context, width, rope_theta)
    if kind == "none":
        return NoPositions()
    raise ValueError(f"unknown positional encoding {kind!r}; choose one of 'sinusoidal', "
                     f"'learned', 'rope', 'none'")


# --------------------------------------------------------------------------------------------
# The sizes a model is built with


def check_sizes(model: str, **sizes: int | None) -> None:
    """ValueError, in one line, unless every size is a whole number >= 1: a true integer, not
    2.0 or True (schema.check_whole); d_ff and d_head left None take their defaults (no other
    size has one: GPT(None, 8) is refused here). GPT, BERT and the Transformer check theirs
    here first, before any arithmetic on them (d_model // n_head) could fail less clearly."""
    check_whole(model, 1, **{name: size for name, size in sizes.items()
                             if size is not None or name not in ("d_ff", "d_head")})


class OnOff(Rule):
    """True or False (numpy's too, which built_with makes Python's): not the text "false",
    which Python takes for true, nor 0 or 1, which a config.json would keep as numbers."""

    def why(self, value: Any, spell: Callable[[Any], str] = repr) -> str | None:
        ok = isinstance(value, (bool, np.bool_))
        return None if ok else f"must be {spell(True)} or {spell(False)}, got {spell(value)}"


# The rules of the settings that are not sizes, the ones a run's settings follow (train_config
# takes its rules for these from here): GPT(dropout="0.1") is refused in one line, as
# --dropout abc is, not by a failed comparison; GPT(tie_weights="false") too, where Python
# would read the text as true and tie the weights.
SWITCHES = {"dropout": Number(0, high=1),                # 1 drops everything, as torch allows
            "rope_theta": Number(above=1),               # a base <= 1 turns nothing apart
            "n_kv_head": Optional(Whole(1, 4_096)),      # None: one per query head
            **dict.fromkeys(("bias", "qk_norm", "rmsnorm_affine", "tie_weights",
                             "share_embeddings"), OnOff())}


def built_with(**settings: Any) -> dict[str, Any]:
    """A model's `config`, the arguments it was built with, which config.json keeps: numpy's
    numbers among them (a vocab_size of tokens.max() + 1) become Python's, which json writes
    and which compare and print as the numbers they are."""
    return {name: value.item() if isinstance(value, np.generic) else value
            for name, value in settings.items()}


def check_switches(model: str, **switches: object) -> None:
    """ValueError, in one line naming `model`, for the first of `switches` (dropout,
    rope_theta, n_kv_head, and the on-off ones: bias, qk_norm, ...) that breaks its rule in
    SWITCHES."""
    check_settings(switches, SWITCHES, name=lambda key: f"{model}: {key}")


DEFAULT_ROPE_THETA = 10000.0          # the RoPE paper's base, every model's default


def check_switches_apply(model: str, positions: str, normalization: str, rope_theta: float,
                         rmsnorm_affine: bool) -> None:
    """ValueError, in one line naming `model`, for a switch set where it changes nothing:
    `rope_theta` other than its default without positions='rope', `rmsnorm_affine=False`
    without normalization='rmsnorm'. A sweep over either would otherwise train one model
    again and again; `tinyformer train` refuses them alike. (The parts that take them refuse
    them too, unnamed: positional_encoding, norm_layer, MultiHeadAttention.)"""
    check_rope_theta_applies(positions, rope_theta, model)
    check_rmsnorm_affine_applies(normalization, rmsnorm_affine, model)


def check_rope_theta_applies(positions: str, rope_theta: float, model: str | None = None
                             ) -> None:
    """BadInput, in one line (naming `model` where given), for a `rope_theta` other than its
    default with `positions` other than 'rope': check_switches_apply's first rule."""
    if positions != "rope" and rope_theta != DEFAULT_ROPE_THETA:
        raise BadInput(f"{model + ': ' if model else ''}rope_theta {rope_theta!r} is the base "
                       f"of RoPE's rotations, and positions={positions!r} has none; give "
                       f"positions='rope', or leave rope_theta out")


def check_rmsnorm_affine_applies(normalization: str, rmsnorm_affine: bool,
                                 model: str | None = None) -> None:
    """BadInput, in one line (naming `model` where given), for `rmsnorm_affine=False` with a
    `normalization` other than 'rmsnorm': check_switches_apply's second rule."""
    if normalization != "rmsnorm" and not rmsnorm_affine:
        raise BadInput(f"{model + ': ' if model else ''}rmsnorm_affine=False drops RMS norms' "
                       f"weight, and normalization={normalization!r} has none; give "
                       f"normalization='rmsnorm', or leave rmsnorm_affine out")


def check_key_value_heads(model: str, n_head: int, n_kv_head: int | None) -> None:
    """ValueError, in one line naming `model`, unless `n_kv_head` (None: one per query head)
    divides `n_head`: each key-value head serves a whole group of query heads. The models ask
    here before their attention does, so that the error names the model built."""
    if n_kv_head is not None and n_head % n_kv_head:
        divisors = [n for n in range(1, n_head + 1) if n_head % n == 0]
        raise ValueError(f"{model}: n_kv_head {n_kv_head} does not divide n_head {n_head}: "
                         f"each key-value head serves a whole group of query heads; give one "
                         f"of {', '.join(map(str, divisors))}")


def head_width(model: str, d_model: int, n_head: int, d_head: int | None = None,
               positions: str | None = None) -> int:
    """The width of an attention head: `d_head` when given, else d_model / n_head, which
    must then be whole; ValueError, in one line, naming `model`, when it is not, or when it is
    odd with `positions` 'rope' (its features turn in pairs): said of the d_head given, or of
    d_model and n_head. Every model and every attention asks here, so a model sized wrong is
    told the cause before any part built from the width (RoPE's table) can fail on a
    consequence."""
    if d_head is None and d_model % n_head:
        raise ValueError(f"{model}: n_head {n_head} does not divide d_model {d_model}; choose "
                         f"an n_head that does, or give d_head")
    width = d_model // n_head if d_head is None else d_head
    if positions == "rope" and width % 2:
        needs = f"{model}: positions='rope' needs an even head width (features turn in pairs)"
        if d_head is not None:
            raise ValueError(f"{needs}, got d_head {d_head}; give an even d_head, such as "
                             f"{d_head + 1}")
        raise ValueError(f"{needs}, but d_model / n_head = {width}; choose d_model and n_head "
                         f"whose d_model / n_head is even, or give an even d_head")
    return width


def modules_of_your_own(model: nn.Module) -> list[str]:
    """'path (Class)' for each module of `model` (a GPT, BERT or Transformer) that its class,
    given `model.config`, does not build there: a layer's `ffn`, `attn` or norm replaced by
    one of the user's own (after building, or in a subclass's __init__), or one removed
    ('path (None)'); the topmost only, not the modules inside it. A parameter of your own
    outside them is named so too ('path (Parameter)', or 'path (None)' for one removed), and
    so is what a subclass of ours defines besides __init__ (a method, 'MyGPT.forward'): the
    config rebuilds neither. Empty for a model as its config builds it.

    What the config alone describes (summary's words, a Hugging Face export) is the model only
    when this is empty. It builds the model again to compare, its weights left zero
    (nn.skip_init): for GPT-2 small a few seconds, once."""
    # The model itself ('') may be a subclass of ours: what it holds is compared with what
    # our class builds, not its class.
    mro = type(model).__mro__
    ours = next((cls for cls in mro if cls.__module__.startswith("tinyformer.")), None)
    if ours is None or not isinstance(getattr(model, "config", None), dict):
        raise TypeError(f"model: a GPT, BERT or Transformer of tinyformer's (or a subclass of "
                        f"one) is needed, not {type(model).__name__}")
    # A subclass's __init__ builds modules and parameters, compared below; anything else it
    # writes (a forward, a head's logits) computes what the config does not say.
    methods = [f"{cls.__name__}.{name}" for cls in mro[:mro.index(ours)]
               for name in vars(cls) if name not in _CLASS_BOOKKEEPING]

    def parts(module):                    # {path: class} of its modules and parameters
        return {path: type(part) for path, part in [*module.named_modules(),
                                                    *module.named_parameters()] if path}
    built, have = parts(nn.skip_init(ours, **model.config)), parts(model)
    differ = ([path for path in have if built.get(path) is not have[path]]
              + [path for path in built if path not in have])
    return methods + [f"{path} ({have[path].__name__ if path in have else 'None'})"
                      for path in differ
                      if not any(path.startswith(f"{other}.") for other in differ)]


# What every class body holds (its docstring, its module's name, ...) and __init__, which
# modules_of_your_own reads through what it builds: no method of a subclass's own.
_CLASS_BOOKKEEPING = {*vars(type("Empty", (), {})), "__init__", "__annotations__",
                      "__firstlineno__", "__static_attributes__"}


# --------------------------------------------------------------------------------------------
# Embeddings: tokens in, vectors out


def token_array(idx: Tokens, ragged: str = "pad the shorter rows",
                vocab_size: int | None = None, name: str = "tokens") -> np.ndarray:
    """The (B, T) integer array of a batch of tokens given as an array, a nested list or a
    Tensor; TypeError, in one line, for anything else. Every model's input and every decoding
    loop's prompt pass through here: the one check of a batch of tokens. `ragged` says what to
    do with rows of different lengths, for a caller that must not pad them.

    ValueError for rows of no tokens (T = 0): there is nothing to attend to, and nothing to
    continue. Given the model's `vocab_size`, IndexError (as torch's embedding raises) for an
    id outside it, naming the input (`name`: an encoder-decoder's src or tgt, each of its own
    vocabulary), which the embedding's own error cannot."""
    given = idx
    try:
        idx = np.asarray(idx.data if isinstance(idx, Tensor) else idx)
    except ValueError:                          # numpy's words for lists of different lengths
        raise TypeError(f"tokens must be a (B, T) integer array with rows of one length; "
                        f"{ragged}") from None
    if idx.dtype.kind in "US":                  # a common slip: the text itself
        raise TypeError("tokens must be token ids, not text; encode it with the tokenizer "
                        "first (tokenizer.encode)")
    # Before the dtype: numpy makes [[]] float64, and rows of no tokens are what is wrong.
    if idx.ndim == 2 and idx.shape[1] == 0:
        raise ValueError(f"tokens must hold at least one token a row, got shape {idx.shape}")
    if idx.ndim != 2 or idx.dtype.kind not in "iu":
        raise TypeError(f"tokens must be a (B, T) integer array, got {idx.dtype} of shape "
                        f"{idx.shape}{_what_to_pass(given, idx)}")
    if vocab_size is not None and idx.size and (idx.min() < 0 or idx.max() >= vocab_size):
        outside = idx.min() if idx.min() < 0 else idx.max()
        raise IndexError(f"{name}: token id {outside} is outside the model's vocabulary "
                         f"({vocab_size} ids, 0 to {vocab_size - 1}); give ids of the "
                         f"model's own tokenizer")
    return idx


def padding_advice(pad_id: int | None) -> str:
    """What to do with rows of different lengths, for token_array's `ragged`, to a model that
    hides the padding it is given with `pad_id` (BERT's tokens, an encoder-decoder's source):
    pad at the end with that id; a model without one reads padding as tokens."""
    if pad_id is None:
        return ("this model has no pad_id, so it would read padding as tokens: build it with "
                "pad_id=<your tokenizer's padding id>, or give each row alone")
    return f"pad the shorter rows at the end with the model's pad_id {pad_id}"


def _what_to_pass(given, idx):
    """For token_array's error: what to pass instead, where it is plain: one sequence made a
    batch of one, ids held as floats (whole numbers) made integers."""
    is_list = isinstance(given, (list, tuple))
    fixes = []
    if idx.ndim == 1:
        fixes.append(f"{'[ids]' if is_list else 'ids[None]'} for one sequence")
    if (idx.dtype.kind == "f" and idx.ndim in (1, 2) and np.isfinite(idx).all()
            and (idx == np.round(idx)).all()):
        fixes.append(f"{'np.asarray(ids, np.int64)' if is_list else 'ids.astype(np.int64)'} "
                     f"for ids held as floats")
    return "; pass " + ", ".join(fixes) if fixes else ""


class Embeddings(nn.Module):
    """The bottom of every model: token ids (B, T), each below `vocab_size`, -> vectors
    (B, T, C), C = `d_model`.

        x = Dropout(Norm(TokenEmbedding(idx) + Positions))

    - `positions`: 'sinusoidal', 'learned', 'rope' or 'none' (see positional_encoding). RoPE
      adds nothing here; it is handed to attention as `rotary`, which rotates queries and keys.
      `d_head` sizes it (d_model // n_head); the other encodings ignore it.
    - `scale`: multiply the token embeddings by sqrt(d_model) ("Attention Is All You Need").
    - `norm`: a norm on the sum (BERT's), of the kind `normalization` names (with
      `rmsnorm_affine` and `bias`; see `norm_layer`); without it, `norm` is None.
    - `dropout`: on the result ("Attention Is All You Need", section 5.4).
    - `rope_theta`: RoPE's base, with positions='rope'.

    Every positional encoding is a table of `context` positions, so this is where a model
    checks that a sequence fits: the one place, for every model.
    """

    def __init__(self, vocab_size: int, d_model: int, context: int, positions: str,
                 dropout: float, scale: bool = False, norm: bool = False,
                 d_head: int | None = None, rope_theta: float = 10000.0,
                 normalization: str = "layernorm", rmsnorm_affine: bool = True,
                 bias: bool = True) -> None:
        self.context = context
        self.tok = TokenEmbedding(vocab_size, d_model, scale=scale)
        self.pos = positional_encoding(positions, context, d_model, d_head, rope_theta)
        self.norm = norm_layer(normalization, d_model, rmsnorm_affine, bias) if norm else None
        self.drop = nn.Dropout(dropout)

    @property
    def rotary(self) -> RotaryPositions | None:
        """The RotaryPositions that attention rotates its queries and keys with, or None."""
        return self.pos if isinstance(self.pos, RotaryPositions) else None

    def forward(self, idx: Tokens, start: int = 0, name: str = "tokens") -> Tensor:
        """Tokens idx (B, T), the first at position `start` (earlier ones in a KV cache), ->
        (B, T, C). A sequence longer than the context is a ValueError naming the input
        (`name`: an encoder-decoder's src or tgt, whose embeddings may be one module), as
        `token_array`'s errors do."""
        idx = token_array(idx, name=name)
        end = start + idx.shape[1]                         # one past the last position
        if end > self.context:
            raise ValueError(f"{name}: sequence of {end} tokens exceeds the context of "
                             f"{self.context}; give at most {self.context}")
        x = self.pos(self.tok(idx), start=start)           # (B, T, C)
        if self.norm is not None:
            x = self.norm(x)
        return self.drop(x)


# --------------------------------------------------------------------------------------------
# Norms
#
# Every norm of a model (around its sub-layers, at the top of a pre-norm stack, on BERT's
# embeddings, on the queries and keys with qk_norm) is of one kind, chosen by `normalization`:
#
#     layernorm   (x - mean) / sqrt(var + eps) * weight + bias      the 2017 Transformer, GPT-2
#     rmsnorm     x / sqrt(mean(x^2) + eps) * weight                Llama, nanochat
#                                                     (Gemma scales by 1 + weight)
#
# RMSNorm drops the centring and the shift: one statistic instead of two, and the models
# trained with it do as well. `bias=False` drops LayerNorm's shift too; `rmsnorm_affine=False`
# drops RMSNorm's weight, leaving nothing to learn (nanochat's choice).

NORMALIZATIONS = ("layernorm", "rmsnorm")
Norm = Union[nn.LayerNorm, nn.RMSNorm]


def norm_layer(normalization: str, dim: int, rmsnorm_affine: bool = True,
               bias: bool = True) -> Norm:
    """A norm of the kind `normalization` names ('layernorm' or 'rmsnorm') over `dim`."""
    if normalization == "layernorm":
        check_rmsnorm_affine_applies(normalization, rmsnorm_affine)   # where no model has
        return nn.LayerNorm(dim, bias=bias)
    if normalization == "rmsnorm":
        return nn.RMSNorm(dim, elementwise_affine=rmsnorm_affine)
    raise ValueError(f"unknown normalization {normalization!r}; choose 'layernorm' or "
                     f"'rmsnorm'")


# --------------------------------------------------------------------------------------------
# The head's input: the positions that get logits


def kept_for_logits(x: Tensor, logits_to_keep: int) -> Tensor:
    """The positions of x (B, T, C) whose logits the head computes: the last `logits_to_keep`,
    (B, n, C) (all T when n > T), or all of them when it is 0 (transformers' keyword, the same
    meaning). Decoding reads the logits of the last position only, and the head's product
    (B, T, vocab) is the largest of a step: 200 MB of float32 for a 1000-token prompt and
    GPT-2's 50257 tokens, all but one row of it thrown away. A position's logits are its own
    row of x times the head's weight, so the rows kept are the rows all positions would give
    (to BLAS's rounding: one row alone may go through another of its kernels). The models check
    `logits_to_keep` before their work, with check_whole."""
    return x if logits_to_keep == 0 else x[:, -logits_to_keep:]


# --------------------------------------------------------------------------------------------
# Logit soft-capping


def check_logit_softcap(cap: float | None) -> float | None:
    """`cap` if it is None or a finite number > 0; ValueError, in one line, otherwise."""
    if cap is None or (is_finite_number(cap) and cap > 0):
        return cap
    raise ValueError(f"logit_softcap must be a number > 0 (or None for no cap), got {cap!r}")


def switches_set(**switches: Any) -> str:
    """The model switches that are on, `name=value` each, for a model's extra_repr: those whose
    module shows no trace of them in the tree (the head's soft cap, the padding id hidden from
    attention), left out where None (off), as torch shows padding_idx only where it is set."""
    return ", ".join(f"{name}={value!r}" for name, value in switches.items()
                     if value is not None)


def soft_capped(logits: Tensor, cap: float | None) -> Tensor:
    """The head's logits squashed into (-cap, cap), cap * tanh(logits / cap) (Gemma 2,
    nanochat); as they are when cap is None. Near zero it is the identity: only logits that
    grow towards the cap are held back, so no token's probability can run away."""
    return logits if cap is None else F.softcap(logits, cap)


# --------------------------------------------------------------------------------------------
# Feed-forward network


class SwiGLU(nn.Module):
    """silu(a) * b, where the input holds a and b side by side, (..., 2 d_ff) -> (..., d_ff):
    a gate, computed from the input, that scales each feature of b (Shazeer 2020)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.swiglu(x)


class ReLUSquared(nn.Module):
    """max(x, 0)^2 (So et al. 2021, "Primer"; nanochat)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu_squared(x)


ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "swiglu": SwiGLU, "relu2": ReLUSquared}


# The largest size (context, d_model, vocabulary, ...) a model of ours is built with: far
# beyond what trains here, and small enough that a size edited into a config.json by mistake
# is refused in one line instead of allocating tables of gigabytes.
MAX_SIZE = 1 << 22


def default_d_ff(d_model: int, activation: str) -> int:
    """The feed-forward width when none is given: 4 d_model (the paper's 2048 for 512); for
    SwiGLU, two thirds of that, rounded up to a multiple of 8 (Llama's rule, with 8 for its
    256): its first layer has two matrices instead of one, so the layer keeps about the
    parameters and FLOPs of the 4 d_model one."""
    if activation == "swiglu":
        two_thirds = math.ceil(8 * d_model / 3)                    # 2/3 of 4 d_model
        return math.ceil(two_thirds / 8) * 8
    return 4 * d_model


def least_parameters(model_config: dict) -> int:
    """A lower bound on the parameters a model of this config has: its embeddings and its
    blocks' weight matrices (attention's four, the key and value ones narrower with fewer
    key-value heads; the feed-forward network's two, three with SwiGLU; an encoder-decoder's
    decoder has cross-attention's four more), and a learned position table, context x d_model
    (GPT's and BERT's default; the Transformer's is sinusoidal, computed). Biases and norms are
    left out, so a model never has fewer."""
    c = model_config
    d = c["d_model"]
    activation = c.get("activation", "gelu")
    d_ff = c.get("d_ff") or default_d_ff(d, activation)
    d_head = c.get("d_head") or d // c["n_head"]
    n_kv_head = c.get("n_kv_head") or c["n_head"]
    attention = 2 * d * c["n_head"] * d_head + 2 * d * n_kv_head * d_head
    block = attention + (3 if activation == "swiglu" else 2) * d * d_ff
    encoder_decoder = "src_vocab_size" in c
    positions = c.get("positions") or ("sinusoidal" if encoder_decoder else "learned")
    table = c["context"] * d if positions == "learned" else 0
    if encoder_decoder:
        return max(c["src_vocab_size"], c["tgt_vocab_size"]) * d + table + c["n_layer"] * (
            2 * block + attention)
    return c["vocab_size"] * d + table + c["n_layer"] * block


class FeedForward(nn.Module):
    """The position-wise feed-forward network ("Attention Is All You Need", section 3.3): the
    same two-layer MLP applied to every position on its own,

        FFN(x) = act(x W1 + b1) W2 + b2,    W1 (d_model, d_ff), W2 (d_ff, d_model)

    with act = ReLU in the paper (d_ff = 4 d_model = 2048) and the tanh approximation of GELU in
    GPT-2 and BERT; ReLU squared in nanochat. Attention mixes information between positions;
    this is where each position computes on what it gathered.

    With SwiGLU (Llama), the first layer computes a gate beside the values, W1 = [W_gate, W_up]
    of shape (d_model, 2 d_ff), one matrix product for both:

        FFN(x) = (silu(x W_gate) * (x W_up)) W2

    `activation` is 'relu', 'gelu', 'swiglu' or 'relu2' (ReLU squared); x (B, T, d_model) -> (B, T,
    d_model). `bias=False` leaves out b1 and b2. Dropout, if any, is applied to the hidden
    activations, as in the Annotated Transformer; the dropout on the sub-layer's output before the
    residual addition belongs to the block.
    """

    def __init__(self, d_model: int, d_ff: int, activation: str = "relu",
                 dropout: float = 0.0, bias: bool = True) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"FeedForward: unknown activation {activation!r}; choose one of "
                             f"{', '.join(map(repr, ACTIVATIONS))}")
        gated = activation == "swiglu"
        self.fc1 = nn.Linear(d_model, 2 * d_ff if gated else d_ff, bias)
        self.act = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(d_ff, d_model, bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.dropout(self.act(self.fc1(x)))                    # (B, T, C) -> (B, T, d_ff)
        return self.fc2(h)                                         # (B, T, d_ff) -> (B, T, C)
