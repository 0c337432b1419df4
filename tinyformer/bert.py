"""BERT: an encoder-only Transformer trained to fill in masked tokens (Devlin et al. 2019).

    x = embed(idx)         LayerNorm(TokenEmbedding(idx) + Positions), dropout     (B, T, C)
    x = encoder(x)         n_layer EncoderLayers: every token attends to every real one
    logits = head(x)       MLMHead: (B, T, vocab), a guess at every position

Unlike GPT, each position sees the whole sentence, both sides of it; so the training task
cannot be "predict the next token" (the answer would be in view). Instead some tokens are
hidden and the model guesses them: the masked-language-model task, `mask_tokens` below.
The original's second task (next-sentence prediction) and its segment embeddings are left out,
as RoBERTa showed they are not needed.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
from numpy.typing import ArrayLike

import tinyautograd as ta
from tinyautograd import Tensor, nn

from .attention import padding_mask
from .blocks import Encoder
from .layers import (Embeddings, TokenEmbedding, Tokens, built_with, check_key_value_heads,
                     check_logit_softcap, check_sizes, check_switches, check_switches_apply,
                     default_d_ff, head_width, norm_layer, padding_advice, soft_capped,
                     switches_set, token_array)
from .sampling import check_generator
from .schema import Number, Whole, check_settings, check_whole

IGNORE = -1     # the target of a position that was not masked: cross_entropy(ignore_index=-1)
# What a token is to a word, for whole-word masking (mask_tokens' `in_word`): letters only, as
# "r" and "een" of " g" "r" "een", continue the word before them; a space then letters begins one.
CONTINUES, BEGINS = 1, 2


class MLMHead(nn.Module):
    """The masked-language-model head: a dense layer with GELU and a layer norm, then the
    output embedding plus a per-token bias: logits = LayerNorm(gelu(x W + b)) E^T + c.
    The norm is of the model's kind (`normalization`, with `rmsnorm_affine`); with
    `bias=False`, no b and no c. x (B, T, `d_model`) -> logits (B, T, vocab), the vocabulary
    being the `embedding`'s.

    With `tie_weights` (the original's choice) E is the token embedding itself, shared;
    otherwise the head has an output weight of its own, `out` (d_model, vocab), as GPT's
    untied head."""

    def __init__(self, embedding: TokenEmbedding, d_model: int,
                 normalization: str = "layernorm", rmsnorm_affine: bool = True,
                 bias: bool = True, tie_weights: bool = True) -> None:
        vocab_size = embedding.num_embeddings
        self.dense = nn.Linear(d_model, d_model, bias)
        self.norm = norm_layer(normalization, d_model, rmsnorm_affine, bias)
        self.embedding = embedding if tie_weights else None     # the token embedding, shared
        self.out = None if tie_weights else nn.Linear(d_model, vocab_size, bias=False)
        self.bias = nn.Parameter(np.zeros(vocab_size)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(self.dense(x).gelu())                             # (B, T, C)
        logits = self.embedding.unembed(h) if self.out is None else self.out(h)
        return logits if self.bias is None else logits + self.bias


class BERT(nn.Module):
    """`BERT(vocab_size, context, ...)`; `model(idx)` gives MLM logits (B, T, vocab_size)
    for integer tokens idx (B, T), T <= context. The sizes: `n_layer` encoder layers,
    `n_head` heads, width `d_model`, feed-forward width `d_ff` (4 d_model by default, or
    about 8/3 d_model for SwiGLU); small by default (2 layers of 64), the original's base
    is 12 layers of 768 with 12 heads. Positions holding `pad_id` are hidden from attention; with
    None (the default) every token is read, as a Hugging Face model given no attention mask reads
    them all: id 0 is a real token to a tokenizer with no padding (give its <pad> id to hide
    padding). Post-norm (`norm`), learned `positions`, GELU and the head tied to the token embedding
    (`tie_weights`) by default, as in the original; `dropout` as GPT's, 0 by default (the original's
    0.1). The modern block's switches are GPT's (normalization, rmsnorm_affine, activation,
    n_kv_head, qk_norm, logit_softcap, bias, rope_theta), and so is `d_head`."""

    def __init__(self, vocab_size: int, context: int, n_layer: int = 2, n_head: int = 4,
                 d_model: int = 64, d_ff: int | None = None, dropout: float = 0.0,
                 positions: str = "learned", norm: str = "post", activation: str = "gelu",
                 pad_id: int | None = None, normalization: str = "layernorm",
                 rmsnorm_affine: bool = True, n_kv_head: int | None = None, qk_norm: bool = False,
                 logit_softcap: float | None = None, bias: bool = True,
                 rope_theta: float = 10000.0, tie_weights: bool = True,
                 d_head: int | None = None) -> None:
        check_sizes("BERT", vocab_size=vocab_size, context=context, n_layer=n_layer,
                    n_head=n_head, d_model=d_model, d_ff=d_ff, d_head=d_head)
        check_switches("BERT", dropout=dropout, rope_theta=rope_theta, n_kv_head=n_kv_head,
                       bias=bias, qk_norm=qk_norm, rmsnorm_affine=rmsnorm_affine,
                       tie_weights=tie_weights)
        check_switches_apply("BERT", positions, normalization, rope_theta, rmsnorm_affine)
        check_key_value_heads("BERT", n_head, n_kv_head)
        if pad_id is not None:
            check_whole("BERT", 0, pad_id=pad_id)
            if pad_id >= vocab_size:     # no token could be padding: nothing would be hidden
                raise ValueError(f"BERT: pad_id {pad_id} is not a token id: the vocabulary has "
                                 f"ids 0 to {vocab_size - 1}")
        d_ff = default_d_ff(d_model, activation) if d_ff is None else d_ff
        self.config = built_with(vocab_size=vocab_size, context=context, n_layer=n_layer,
                                 n_head=n_head, d_model=d_model, d_ff=d_ff, dropout=dropout,
                                 positions=positions, norm=norm, activation=activation,
                                 pad_id=pad_id, normalization=normalization,
                                 rmsnorm_affine=rmsnorm_affine, n_kv_head=n_kv_head,
                                 qk_norm=qk_norm, logit_softcap=logit_softcap, bias=bias,
                                 rope_theta=rope_theta, tie_weights=tie_weights, d_head=d_head)
        self.context, self.pad_id = context, pad_id
        self.logit_softcap = check_logit_softcap(logit_softcap)
        norms = dict(normalization=normalization, rmsnorm_affine=rmsnorm_affine, bias=bias)
        self.embed = Embeddings(vocab_size, d_model, context, positions, dropout, norm=True,
                                d_head=head_width("BERT", d_model, n_head, d_head, positions),
                                rope_theta=rope_theta, **norms)
        self.encoder = Encoder(n_layer, d_model, n_head, d_ff, dropout, norm, activation,
                               rotary=self.embed.rotary, n_kv_head=n_kv_head, qk_norm=qk_norm,
                               d_head=d_head, **norms)
        self.head = MLMHead(self.embed.tok, d_model, tie_weights=tie_weights, **norms)

    def forward(self, idx: Tokens) -> Tensor:
        """MLM logits (B, T, vocab) for integer tokens idx (B, T), T <= context; positions
        holding pad_id, if the model has one, hidden from attention."""
        idx = token_array(idx, padding_advice(self.pad_id),                      # (B, T)
                          vocab_size=self.config["vocab_size"])
        mask = (None if self.pad_id is None                      # (B, 1, 1, T): real keys
                else padding_mask(idx != self.pad_id))
        x = self.embed(idx)                                      # (B, T, C)
        x = self.encoder(x, mask)                                # (B, T, C)
        return self.logits(x)                                    # (B, T, vocab)

    def logits(self, x: Tensor) -> Tensor:
        """The head: logits (B, T, vocab) from the top of the encoder x (B, T, C), soft-capped
        with logit_softcap."""
        return soft_capped(self.head(x), self.logit_softcap)

    def extra_repr(self) -> str:
        return switches_set(pad_id=self.pad_id, logit_softcap=self.logit_softcap)

    def __getattr__(self, name: str) -> Any:
        # Runs only when normal lookup fails. A user who comes from GPT calls generate (or
        # start_decoding, for beam_search): say what BERT does instead of "no attribute".
        if name in ("generate", "start_decoding"):
            raise AttributeError(f"'BERT' object has no attribute {name!r}: BERT does not "
                                 f"write left to right, as GPT and the encoder-decoder do; "
                                 f"it fills in its input's <mask> tokens in one step: "
                                 f"model(idx) guesses every position, and tinyformer.prompts."
                                 f"likeliest_ordinary(logits.data, tokenizer) picks the "
                                 f"likeliest ordinary tokens, as `tinyformer generate` does "
                                 f"with a bert checkpoint", name=name, obj=self)
        return super().__getattr__(name)


def mask_tokens(idx: ArrayLike, mask_id: int, vocab_size: int, special_ids: Iterable[int] = (),
                rate: float = 0.15, rng: np.random.Generator | None = None,
                in_word: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking recipe. Choose `rate` of the ordinary tokens (never a special one such as
    padding); of those, replace 80% by `mask_id`, 10% by a random ordinary token (neither
    `mask_id` nor a special one: a <pad> put in would be hidden from attention) and leave 10%
    as they are, so that the model cannot rely on seeing [MASK] where it must guess, and must
    keep a good representation of every token. Returns (inputs, targets): inputs of idx's dtype
    (or the narrowest wider one that holds every id of the vocabulary, where idx's cannot: the
    uint8 bytes of a byte-level text whose <mask> is 256 give uint16); targets (int64, as
    PyTorch's class targets) hold the original token where one was chosen and IGNORE elsewhere,
    for cross_entropy(ignore_index=IGNORE).

    Whole-word masking: `in_word`, one per id of the vocabulary, says what each token is to a
    word: CONTINUES (letters only: a character tokenizer's letters, a BPE's "een"), BEGINS (a
    space, then letters: a BPE's " g", which starts a word, never continues one) or 0 (not
    part of a word; a boolean array reads as CONTINUES and 0). A word, chosen or left whole
    so that a hidden word cannot be spelled from its own visible pieces, is a token of either
    kind and the CONTINUES tokens right after it; any other token is chosen alone. Each word
    is chosen with probability `rate`, so each token still is too, and its 80/10/10 is one roll
    for all of it (the original's whole-word masking, and transformers'
    DataCollatorForWholeWordMask, roll for each token: a word then half hidden, half shown).

    Two more differences from transformers' DataCollatorForLanguageModeling, which this
    otherwise follows (a draw for every token; the original picks a fixed count of each
    sequence's tokens): its random token may be any id, [MASK] and [PAD] included; and where
    nothing is chosen the loss has no target (`tinyformer train` draws such a batch again).

    `idx` holds integer tokens, (B, T) or any shape; `vocab_size` is the model's (the random
    tokens' ids are below it); `special_ids` (padding, [MASK], [CLS]...) are never chosen nor
    put in; `rng` (a numpy Generator) makes the draws repeatable, the engine's seeded one by
    default.

    Every call checks every argument. To mask batch after batch with the same settings, make a
    `TokenMasker` once and call it with each batch: it checks the settings, and makes its
    tables of the vocabulary, once."""
    return TokenMasker(mask_id, vocab_size, special_ids, rate, in_word)(idx, rng)


class TokenMasker:
    """`mask_tokens` with its settings fixed: `TokenMasker(mask_id, vocab_size, special_ids=(),
    rate=0.15, in_word=None)`, then `masker(idx, rng=None)` gives (inputs, targets) for each
    batch, as transformers' DataCollatorForLanguageModeling is made once and called for each
    batch. The settings are checked here, once, each in one line, and so is `in_word`, whose
    check reads the whole vocabulary (a GPT-2-sized one took a fifth of a batch's masking);
    a batch's ids are checked at every call."""

    def __init__(self, mask_id: int, vocab_size: int, special_ids: Iterable[int] = (),
                 rate: float = 0.15, in_word: ArrayLike | None = None) -> None:
        special_ids = _check_masking(mask_id, vocab_size, special_ids, rate)
        self.mask_id, self.vocab_size, self.rate = mask_id, vocab_size, rate
        self.in_word = _check_in_word(in_word, vocab_size)        # (vocab_size,) int8, or None
        # Which ids may be chosen (vocab_size,): a special id may lie outside the vocabulary.
        specials_here = [i for i in special_ids if i < vocab_size]
        self.is_ordinary = np.ones(vocab_size, dtype=bool)
        self.is_ordinary[specials_here] = False
        # The ids a random swap puts in: neither mask_id nor a special one. np.delete, not
        # np.setdiff1d, which sorts a GPT-2-sized vocabulary anew (a hundred times slower).
        self.swaps = np.delete(np.arange(vocab_size), np.unique([mask_id, *specials_here]))

    def __call__(self, idx: ArrayLike,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets) for idx (..., T), as mask_tokens gives them, drawn with `rng`."""
        idx = _check_ids(idx, self.vocab_size)
        # A seed in its place failed at the first draw, deep inside; a seed of 0, being false,
        # was taken for None: draws of the engine's generator, not of the seed asked for.
        check_generator("mask_tokens", "rng", rng)
        rng = ta.random.default_generator() if rng is None else rng
        ordinary = self.is_ordinary[idx]
        draw = rng.random(idx.shape) < self.rate           # a draw for every token
        roll = rng.random(idx.shape)                       # and a roll of 80/10/10
        if self.in_word is not None:                       # a word's first token's, for all of it
            words = self.in_word[idx]
            draw, roll = spread_over_words(draw, words), spread_over_words(roll, words)
        chosen = ordinary & draw
        # The ids put in may not fit idx's type (a <mask> of 256 in uint8 bytes was an
        # OverflowError): then the narrowest wider type that holds them all.
        largest = self.vocab_size - 1
        dtype = (idx.dtype if largest <= np.iinfo(idx.dtype).max
                 else np.promote_types(idx.dtype, np.min_scalar_type(largest)))
        inputs = idx.astype(dtype)
        inputs[chosen & (roll < 0.8)] = self.mask_id
        random_swap = chosen & (roll >= 0.8) & (roll < 0.9)
        if random_swap.any():
            if not len(self.swaps):
                raise ValueError(f"mask_tokens: every id of the vocabulary of "
                                 f"{self.vocab_size} is special; a random swap needs an "
                                 f"ordinary token")
            inputs[random_swap] = self.swaps[rng.integers(0, len(self.swaps), random_swap.sum())]
        # Signed, whatever idx's type: in uint8 or uint16 ids (a token file's), IGNORE would
        # wrap to 255 or 65535, a target the loss then counts (or refuses) at every unchosen
        # position.
        targets = np.where(chosen, idx.astype(np.int64), IGNORE)
        return inputs, targets


def _check_masking(mask_id: int, vocab_size: int, special_ids: Iterable[int],
                   rate: float) -> list[int]:
    """The masking's settings, each refused in one line before numpy meets it; the special
    ids as a list."""
    check_whole("mask_tokens", 1, vocab_size=vocab_size)
    # NaN would compare False with every draw and hide nothing, without a word.
    check_settings({"rate": rate}, {"rate": Number(0, 1)}, name=lambda key: f"mask_tokens: {key}")
    if Whole(0, vocab_size - 1).why(mask_id):
        raise ValueError(f"mask_tokens: mask_id must be a token id in [0, {vocab_size}), got "
                         f"{mask_id!r}")
    if isinstance(special_ids, (str, bytes)) or not isinstance(special_ids, Iterable):
        raise TypeError(f"mask_tokens: special_ids must be a list of token ids, e.g. [0], got "
                        f"{type(special_ids).__name__}")
    special_ids = list(special_ids)
    for i in special_ids:
        if Whole(0, 2 ** 62).why(i):
            raise ValueError(f"mask_tokens: special_ids must be token ids (whole numbers >= 0), "
                             f"got {i!r}")
    return special_ids


def _check_ids(idx: ArrayLike, vocab_size: int) -> np.ndarray:
    """idx as an integer array of ids in the vocabulary, or a one-line error."""
    idx = np.asarray(idx)
    if idx.dtype.kind not in "iu":        # 1.5 would pass through as a target, 2.0 as a float
        raise TypeError(f"mask_tokens: idx must be integer token ids, got {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= vocab_size):
        bad = idx.min() if idx.min() < 0 else idx.max()
        raise ValueError(f"mask_tokens: idx holds id {bad}, outside the vocabulary [0, "
                         f"{vocab_size})")
    return idx


def _check_in_word(in_word: ArrayLike | None, vocab_size: int) -> np.ndarray | None:
    """mask_tokens' `in_word` as int8, or a one-line ValueError: one value per id of the
    vocabulary, each 0, CONTINUES or BEGINS (or a boolean). A shorter array failed deep in
    numpy's indexing, and a 0.5 was read as 0 (no word) without a word said."""
    if in_word is None:
        return None
    array = np.asarray(in_word)
    if array.shape != (vocab_size,):
        raise ValueError(f"mask_tokens: in_word must hold one value per token id, shape "
                         f"({vocab_size},), got shape {array.shape}")
    if array.dtype != bool and (array.dtype.kind not in "iu"
                                or not np.isin(array, (0, CONTINUES, BEGINS)).all()):
        raise ValueError(f"mask_tokens: in_word must hold 0, CONTINUES ({CONTINUES}) or BEGINS "
                         f"({BEGINS}) for each token id, or booleans, got "
                         f"{np.unique(array)[:5].tolist()}")
    return array.astype(np.int8)


def spread_over_words(values: np.ndarray, in_word: np.ndarray) -> np.ndarray:
    """Each token takes the value (B, T) of the first token of its word, so that a word's
    tokens are chosen, and treated, alike. in_word (B, T): what the token is to a word (see
    mask_tokens): a CONTINUES token continues the word of the token before it when that one is
    part of a word too; a BEGINS token always begins one; a word ends at the end of its row."""
    continues = np.zeros(values.shape, dtype=bool)
    continues[..., 1:] = (in_word[..., 1:] == CONTINUES) & (in_word[..., :-1] != 0)
    position = np.broadcast_to(np.arange(values.shape[-1]), values.shape)
    # The first token of each token's word: the last position at or before it that begins one.
    first = np.maximum.accumulate(np.where(continues, 0, position), axis=-1)   # (B, T)
    return np.take_along_axis(values, first, axis=-1)
