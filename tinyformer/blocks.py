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

The modern block (Llama, Qwen3, nanochat) is this one with a few switches turned, each a
keyword of every layer and stack here and of the models: `normalization` ('layernorm' or
'rmsnorm', for every norm; `rmsnorm_affine`), `activation` (the feed-forward's: 'relu', 'gelu',
'swiglu', 'relu2'), `n_kv_head` (grouped-query attention), `qk_norm`, and `bias` (False: no
biases in the linear layers and norms). See layers.py and attention.py for each.

Every model names the parts alike, so that a tool can find them without asking which model
it is: in a layer, `attn` (self-attention) and `attn_norm`, `cross_attn` and `cross_norm` (a
decoder reading an encoder only), `ffn` and `ffn_norm`, `drop`; in a stack, `layers` and
`final_norm` (pre-norm only).
"""

from __future__ import annotations

from typing import Callable

from tinyautograd import Tensor, nn

from .attention import KVCache, Mask, MultiHeadAttention
from .layers import FeedForward, Norm, RotaryPositions, norm_layer

NORM_PLACEMENTS = ("pre", "post")


def residual(x: Tensor, sublayer: Callable[[Tensor], Tensor], norm: Norm,
             dropout: nn.Dropout, placement: str) -> Tensor:
    """One sub-layer with its residual connection and norm, by `placement`:

        'pre':   x + dropout(sublayer(norm(x)))
        'post':  norm(x + dropout(sublayer(x)))

    x (B, T, C) -> (B, T, C); `sublayer` maps (B, T, C) to (B, T, C)."""
    if placement == "pre":
        return x + dropout(sublayer(norm(x)))
    return norm(x + dropout(sublayer(x)))


def _check_placement(norm):
    if norm not in NORM_PLACEMENTS:
        raise ValueError(f"unknown norm placement {norm!r}; choose 'pre' or 'post'")
    return norm


class DecoderLayer(nn.Module):
    """Masked self-attention, then cross-attention on the encoder's output, then the
    feed-forward network (section 3.1):

        x = residual(x, MaskedSelfAttention)    position t sees positions <= t only
        x = residual(x, CrossAttention(memory)) queries from x, keys and values from the encoder
        x = residual(x, FeedForward)

    `rotary` rotates the self-attention's queries and keys (never cross-attention's: a source
    and a target position are not on one axis). With `cross_attention=False` there is no
    encoder to attend to, and no `cross_attn` or `cross_norm`: that is GPT's block, and the
    encoder's (EncoderLayer). The arguments are in the Decoder's order: `d_model` (C), `n_head`,
    `d_ff` (the feed-forward's hidden width), `dropout` (on the attention weights, the
    feed-forward's hidden activations and each sub-layer's output, while training), `norm`
    ('post', the paper's, or 'pre'; see `residual`) and `activation` (the feed-forward's). The
    keywords after `cross_attention` are the modern block's switches (see the top of this
    file: `normalization`, `rmsnorm_affine`, `n_kv_head`, `qk_norm`, `bias`); `d_head` sets
    the width of a head when it is not d_model / n_head.
    """

    def __init__(self, d_model: int, n_head: int, d_ff: int, dropout: float = 0.0,
                 norm: str = "post", activation: str = "relu",
                 rotary: RotaryPositions | None = None, cross_attention: bool = True, *,
                 normalization: str = "layernorm",
                 rmsnorm_affine: bool = True, n_kv_head: int | None = None,
                 qk_norm: bool = False, bias: bool = True, d_head: int | None = None) -> None:
        self.norm_placement = _check_placement(norm)
        self.cross_attention = cross_attention
        norms = dict(normalization=normalization, rmsnorm_affine=rmsnorm_affine, bias=bias)
        heads = dict(n_kv_head=n_kv_head, qk_norm=qk_norm, d_head=d_head, **norms)
        self.attn = MultiHeadAttention(d_model, n_head, dropout, rotary=rotary, **heads)
        self.attn_norm = norm_layer(dim=d_model, **norms)
        if cross_attention:
            self.cross_attn = MultiHeadAttention(d_model, n_head, dropout, **heads)
            self.cross_norm = norm_layer(dim=d_model, **norms)
        self.ffn = FeedForward(d_model, d_ff, activation, dropout, bias)
        self.ffn_norm = norm_layer(dim=d_model, **norms)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Mask | None = None, memory: Tensor | None = None,
                memory_mask: Mask | None = None, cache: KVCache | None = None) -> Tensor:
        """x (B, T, C) -> (B, T, C). `mask` is the look-ahead mask;
        `memory` (B, S, C) is the encoder's output and `memory_mask` hides its padding;
        `cache` (a KVCache) holds the self-attention keys and values of earlier tokens, and
        the cross-attention's of `memory`, computed at the first step."""
        x = residual(x, lambda h: self.attn(h, mask=mask, cache=cache), self.attn_norm,
                     self.drop, self.norm_placement)
        if self.cross_attention:
            if memory is None:
                raise ValueError("DecoderLayer: cross-attention needs the encoder's output "
                                 "(memory=...)")
            x = residual(x, lambda h: self.cross_attn(h, context=memory, mask=memory_mask,
                                                      cache=cache),
                         self.cross_norm, self.drop, self.norm_placement)
        return residual(x, self.ffn, self.ffn_norm, self.drop, self.norm_placement)


class EncoderLayer(DecoderLayer):
    """Self-attention over the whole sequence, then the feed-forward network (section 3.1):

        x = residual(x, SelfAttention)      every position attends to every (unpadded) one
        x = residual(x, FeedForward)

    A DecoderLayer without cross-attention, GPT's block: the same sub-layers under the same
    names. What makes it an encoder's is the mask it is given, padding only and never the
    look-ahead mask, so that each position reads both sides of itself. The arguments are the
    DecoderLayer's but `cross_attention`: `d_model`, `n_head`, `d_ff`, `dropout`, `norm`,
    `activation`, `rotary`, and the modern block's switches (`normalization`,
    `rmsnorm_affine`, `n_kv_head`, `qk_norm`, `bias`) and `d_head`.
    """

    def __init__(self, d_model: int, n_head: int, d_ff: int, dropout: float = 0.0,
                 norm: str = "post", activation: str = "relu",
                 rotary: RotaryPositions | None = None, *, normalization: str = "layernorm",
                 rmsnorm_affine: bool = True, n_kv_head: int | None = None,
                 qk_norm: bool = False, bias: bool = True, d_head: int | None = None) -> None:
        super().__init__(d_model, n_head, d_ff, dropout, norm, activation,
                         cross_attention=False, rotary=rotary, normalization=normalization,
                         rmsnorm_affine=rmsnorm_affine, n_kv_head=n_kv_head, qk_norm=qk_norm,
                         bias=bias, d_head=d_head)

    def forward(self, x: Tensor, mask: Mask | None = None) -> Tensor:
        """x (B, T, C) -> (B, T, C); `mask` (True = may attend) hides padded keys."""
        return super().forward(x, mask)


# --------------------------------------------------------------------------------------------
# The stacks


class Encoder(nn.Module):
    """N encoder layers, one after another (section 3.1: N = 6 in the paper).

        x = EncoderLayer_N( ... EncoderLayer_1(x))      (B, S, C) -> (B, S, C)

    With pre-norm, each layer normalises only what goes into its sub-layers; the residual
    stream itself is never normalised, so a final norm does it once at the top. Post-norm
    layers already end in a norm and need none. `n_layer` is N; the other arguments are each
    EncoderLayer's, the same for every layer: `d_model`, `n_head`, `d_ff`, `dropout`, `norm`,
    `activation`, `rotary`, and after it the modern block's switches (`normalization`,
    `rmsnorm_affine`, `n_kv_head`, `qk_norm`, `bias`) and `d_head`.
    """

    def __init__(self, n_layer: int, d_model: int, n_head: int, d_ff: int, dropout: float = 0.0,
                 norm: str = "post", activation: str = "relu",
                 rotary: RotaryPositions | None = None, *, normalization: str = "layernorm",
                 rmsnorm_affine: bool = True, n_kv_head: int | None = None,
                 qk_norm: bool = False, bias: bool = True, d_head: int | None = None) -> None:
        norms = dict(normalization=normalization, rmsnorm_affine=rmsnorm_affine, bias=bias)
        self.layers = nn.ModuleList([
            EncoderLayer(d_model, n_head, d_ff, dropout, norm, activation, rotary=rotary,
                         n_kv_head=n_kv_head, qk_norm=qk_norm, d_head=d_head, **norms)
            for _ in range(n_layer)])
        self.final_norm = norm_layer(dim=d_model, **norms) if norm == "pre" else None

    stream: list[Tensor] | None = None    # while the logit lens reads the residual stream (lens.py)

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

    A final norm with pre-norm, for the same reason as in the Encoder. `n_layer` is N; the
    other arguments are each DecoderLayer's, the same for every layer: `d_model`, `n_head`,
    `d_ff`, `dropout`, `norm`, `activation`, `rotary`, `cross_attention`, and after it the
    modern block's switches (`normalization`, `rmsnorm_affine`, `n_kv_head`, `qk_norm`,
    `bias`) and `d_head`.
    """

    stream: list[Tensor] | None = None    # while the logit lens reads the residual stream (lens.py)

    def __init__(self, n_layer: int, d_model: int, n_head: int, d_ff: int, dropout: float = 0.0,
                 norm: str = "post", activation: str = "relu",
                 rotary: RotaryPositions | None = None, cross_attention: bool = True, *,
                 normalization: str = "layernorm", rmsnorm_affine: bool = True,
                 n_kv_head: int | None = None, qk_norm: bool = False, bias: bool = True,
                 d_head: int | None = None) -> None:
        norms = dict(normalization=normalization, rmsnorm_affine=rmsnorm_affine, bias=bias)
        self.layers = nn.ModuleList([
            DecoderLayer(d_model, n_head, d_ff, dropout, norm, activation,
                         cross_attention=cross_attention, rotary=rotary, n_kv_head=n_kv_head,
                         qk_norm=qk_norm, d_head=d_head, **norms)
            for _ in range(n_layer)])
        self.final_norm = norm_layer(dim=d_model, **norms) if norm == "pre" else None

    def forward(self, y: Tensor, memory: Tensor | None = None, mask: Mask | None = None,
                memory_mask: Mask | None = None, cache: KVCache | None = None) -> Tensor:
        """y (B, T, C), memory (B, S, C) or None -> (B, T, C). `mask` is the causal mask:
        (T, T), or (T, start + T) when a cache holds `start` earlier tokens (causal_mask(T,
        start); None for one new token, which may see them all). Targets are padded on the
        right, so it hides their padding from every real position. `memory_mask` (B, 1, 1, S)
        hides the source padding.

        With a KVCache, y holds the tokens after the `cache.length` already in it; each
        self-attention adds their keys and values, and the cache then counts them. Each
        cross-attention projects `memory` at the first step only and reads its keys and values
        from the cache after that: one cache decodes one memory. A step cut short (Ctrl-C, an
        error in a later layer) is all or nothing: the cache is rewound to where it started."""
        _keep(self.stream, y)
        start = None if cache is None else cache.length
        try:
            for layer in self.layers:
                y = _keep(self.stream, layer(y, mask=mask, memory=memory,
                                             memory_mask=memory_mask, cache=cache))
        except BaseException:                       # KeyboardInterrupt too
            if cache is not None:
                cache.rewind(start)
            raise
        if cache is not None:
            cache.length += y.shape[1]
        return y if self.final_norm is None else self.final_norm(y)


def _keep(stream, x):
    """Add x to `stream` (a list) when one is being recorded; x either way."""
    if stream is not None:
        stream.append(x)
    return x
