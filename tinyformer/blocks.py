"""The Transformer's layers and the two stacks every model is built from.

An encoder layer and a decoder layer are each a few sub-layers (attention, feed-forward), each
wrapped in a residual connection and a layer norm. `Encoder` and `Decoder` stack N of them; GPT,
BERT and the encoder-decoder Transformer are these stacks between embeddings and a head.

"Attention Is All You Need" (section 3.1) puts the norm after the residual addition:

    post-norm:  x = LayerNorm(x + Dropout(Sublayer(x)))

GPT-2 and most models since put it before the sub-layer, which leaves the residual stream
untouched from input to output and trains deep stacks without a warmup:

    pre-norm:   x = x + Dropout(Sublayer(LayerNorm(x)))

Both are one function here, `residual`, so the difference is exactly one line.

Every model names the parts alike, so that a tool can find them without asking which model
it is: in a layer, `attn` (self-attention) and `attn_norm`, `cross_attn` and `cross_norm` (a
decoder reading an encoder only), `ffn` and `ffn_norm`, `drop`; in a stack, `layers` and
`final_norm` (pre-norm only).
"""

from __future__ import annotations

from typing import Callable

from tinyautograd import Tensor, nn

from .attention import KVCache, Mask, MultiHeadAttention
from .layers import FeedForward, RotaryPositions

NORM_PLACEMENTS = ("pre", "post")


def residual(x: Tensor, sublayer: Callable[[Tensor], Tensor], norm: nn.LayerNorm,
             dropout: nn.Dropout, placement: str) -> Tensor:
    """One sub-layer with its residual connection and layer norm, placed 'pre' or 'post'."""
    if placement == "pre":
        return x + dropout(sublayer(norm(x)))
    return norm(x + dropout(sublayer(x)))


def _check_placement(norm):
    if norm not in NORM_PLACEMENTS:
        raise ValueError(f"unknown norm placement {norm!r}; choose 'pre' or 'post'")
    return norm


class EncoderLayer(nn.Module):
    """Self-attention over the whole sequence, then the feed-forward network (section 3.1):

        x = residual(x, SelfAttention)      every position attends to every (unpadded) one
        x = residual(x, FeedForward)

    `rotary` (a RotaryPositions, or None) rotates the self-attention's queries and keys.
    """

    def __init__(self, d_model: int, n_head: int, d_ff: int, dropout: float = 0.0,
                 norm: str = "post", activation: str = "relu",
                 rotary: RotaryPositions | None = None) -> None:
        self.norm_placement = _check_placement(norm)
        self.attn = MultiHeadAttention(d_model, n_head, dropout, rotary=rotary)
        self.attn_norm = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ff, activation, dropout)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Mask | None = None) -> Tensor:
        """x (B, T, C) -> (B, T, C); `mask` (True = may attend) hides padded keys."""
        x = residual(x, lambda h: self.attn(h, mask=mask), self.attn_norm, self.drop,
                     self.norm_placement)
        return residual(x, self.ffn, self.ffn_norm, self.drop, self.norm_placement)


class DecoderLayer(nn.Module):
    """Masked self-attention, then cross-attention on the encoder's output, then the
    feed-forward network (section 3.1):

        x = residual(x, MaskedSelfAttention)    position t sees positions <= t only
        x = residual(x, CrossAttention(memory)) queries from x, keys and values from the encoder
        x = residual(x, FeedForward)

    With `cross_attention=False` there is no encoder to attend to, and no `cross_attn` or
    `cross_norm`: that is GPT's block. `rotary` rotates the self-attention's queries and keys
    (never cross-attention's: a source and a target position are not on one axis).
    """

    def __init__(self, d_model: int, n_head: int, d_ff: int, dropout: float = 0.0,
                 norm: str = "post", activation: str = "relu", cross_attention: bool = True,
                 rotary: RotaryPositions | None = None) -> None:
        self.norm_placement = _check_placement(norm)
        self.cross_attention = cross_attention
        self.attn = MultiHeadAttention(d_model, n_head, dropout, rotary=rotary)
        self.attn_norm = nn.LayerNorm(d_model)
        if cross_attention:
            self.cross_attn = MultiHeadAttention(d_model, n_head, dropout)
            self.cross_norm = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ff, activation, dropout)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Mask | None = None, memory: Tensor | None = None,
                memory_mask: Mask | None = None, cache: KVCache | None = None) -> Tensor:
        """x (B, T, C) -> (B, T, C). `mask` is the look-ahead mask (with target padding);
        `memory` (B, S, C) is the encoder's output and `memory_mask` hides its padding;
        `cache` (a KVCache) holds the self-attention keys and values of earlier tokens."""
        x = residual(x, lambda h: self.attn(h, mask=mask, cache=cache), self.attn_norm,
                     self.drop, self.norm_placement)
        if self.cross_attention:
            if memory is None:
                raise ValueError("DecoderLayer: cross-attention needs the encoder's output "
                                 "(memory=...)")
            x = residual(x, lambda h: self.cross_attn(h, context=memory, mask=memory_mask),
                         self.cross_norm, self.drop, self.norm_placement)
        return residual(x, self.ffn, self.ffn_norm, self.drop, self.norm_placement)


# --------------------------------------------------------------------------------------------
# The stacks


class Encoder(nn.Module):
    """N encoder layers, one after another (section 3.1: N = 6 in the paper).

        x = EncoderLayer_N( ... EncoderLayer_1(x))      (B, S, C) -> (B, S, C)

    With pre-norm, each layer normalises only what goes into its sub-layers; the residual
    stream itself is never normalised, so a final LayerNorm does it once at the top. Post-norm
    layers already end in a LayerNorm and need none.
    """

    def __init__(self, n_layer: int, d_model: int, n_head: int, d_ff: int, dropout: float = 0.0,
                 norm: str = "post", activation: str = "relu",
                 rotary: RotaryPositions | None = None) -> None:
        self.layers = nn.ModuleList([
            EncoderLayer(d_model, n_head, d_ff, dropout, norm, activation, rotary=rotary)
            for _ in range(n_layer)])
        self.final_norm = nn.LayerNorm(d_model) if norm == "pre" else None

    stream = None     # a list, while the logit lens reads the residual stream (lens.py)

    def forward(self, x: Tensor, mask: Mask | None = None) -> Tensor:
        """x (B, S, C) -> (B, S, C); `mask` (B, 1, 1, S) hides the padding."""
        _keep(self.stream, x)
        for layer in self.layers:
            x = _keep(self.stream, layer(x, mask))
        return x if self.final_norm is None else self.final_norm(x)


class Decoder(nn.Module):
    """N decoder layers (section 3.1), each attending to the encoder's output `memory` when
    `cross_attention` is on (the encoder-decoder), to nothing else when it is off (GPT).

        y = DecoderLayer_N( ... DecoderLayer_1(y, memory), memory)    (B, T, C) -> (B, T, C)

    A final LayerNorm with pre-norm, for the same reason as in the Encoder.
    """

    stream = None     # a list, while the logit lens reads the residual stream (lens.py)

    def __init__(self, n_layer: int, d_model: int, n_head: int, d_ff: int, dropout: float = 0.0,
                 norm: str = "post", activation: str = "relu",
                 rotary: RotaryPositions | None = None, cross_attention: bool = True) -> None:
        self.layers = nn.ModuleList([
            DecoderLayer(d_model, n_head, d_ff, dropout, norm, activation,
                         cross_attention=cross_attention, rotary=rotary)
            for _ in range(n_layer)])
        self.final_norm = nn.LayerNorm(d_model) if norm == "pre" else None

    def forward(self, y: Tensor, memory: Tensor | None = None, mask: Mask | None = None,
                memory_mask: Mask | None = None, cache: KVCache | None = None) -> Tensor:
        """y (B, T, C), memory (B, S, C) or None -> (B, T, C). `mask` (B, 1, T, T) is causal
        and hides the target padding; `memory_mask` (B, 1, 1, S) hides the source padding.

        With a KVCache, y holds the tokens after the `cache.length` already in it; each
        self-attention adds their keys and values, and the cache then counts them."""
        _keep(self.stream, y)
        for layer in self.layers:
            y = _keep(self.stream, layer(y, mask=mask, memory=memory, memory_mask=memory_mask,
                                         cache=cache))
        if cache is not None:
            cache.length += y.shape[1]
        return y if self.final_norm is None else self.final_norm(y)


def _keep(stream, x):
    """Add x to `stream` (a list) when one is being recorded; x either way."""
    if stream is not None:
        stream.append(x)
    return x
