"""The Transformer's layers: an encoder layer and a decoder layer, each a stack of sub-layers
(attention, feed-forward) wrapped in a residual connection and a layer norm.

"Attention Is All You Need" (section 3.1) puts the norm after the residual addition:

    post-norm:  x = LayerNorm(x + Dropout(Sublayer(x)))

GPT-2 and most models since put it before the sub-layer, which leaves the residual stream
untouched from input to output and trains deep stacks without a warmup:

    pre-norm:   x = x + Dropout(Sublayer(LayerNorm(x)))

Both are one function here, `residual`, so the difference is exactly one line.
"""

from tinyautograd import nn

from .attention import MultiHeadAttention
from .layers import FeedForward

NORM_PLACEMENTS = ("pre", "post")


def residual(x, sublayer, norm, dropout, placement):
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
    """

    def __init__(self, d_model, n_head, d_ff, dropout=0.0, norm="post", activation="relu",
                 rotary=None):
        self.norm_placement = _check_placement(norm)
        self.attn = MultiHeadAttention(d_model, n_head, dropout, rotary=rotary)
        self.ffn = FeedForward(d_model, d_ff, activation, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        """x (B, T, C) -> (B, T, C); `mask` (True = may attend) hides padded keys."""
        x = residual(x, lambda h: self.attn(h, mask=mask), self.norm1, self.dropout,
                     self.norm_placement)
        return residual(x, self.ffn, self.norm2, self.dropout, self.norm_placement)


class DecoderLayer(nn.Module):
    """Masked self-attention, then cross-attention on the encoder's output, then the
    feed-forward network (section 3.1):

        x = residual(x, MaskedSelfAttention)    position t sees positions <= t only
        x = residual(x, CrossAttention(memory)) queries from x, keys and values from the encoder
        x = residual(x, FeedForward)

    With `cross_attention=False` there is no encoder to attend to: that is GPT's block.
    """

    def __init__(self, d_model, n_head, d_ff, dropout=0.0, norm="post", activation="relu",
                 cross_attention=True, rotary=None):
        self.norm_placement = _check_placement(norm)
        self.self_attn = MultiHeadAttention(d_model, n_head, dropout, rotary=rotary)
        self.norm1 = nn.LayerNorm(d_model)
        if cross_attention:
            self.cross_attn = MultiHeadAttention(d_model, n_head, dropout)
            self.norm2 = nn.LayerNorm(d_model)
        else:
            self.cross_attn = self.norm2 = None
        self.ffn = FeedForward(d_model, d_ff, activation, dropout)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None, memory=None, memory_mask=None, cache=None):
        """x (B, T, C) -> (B, T, C). `mask` is the look-ahead mask (with target padding);
        `memory` (B, S, C) is the encoder's output and `memory_mask` hides its padding;
        `cache` (a KVCache) holds the self-attention keys and values of earlier tokens."""
        x = residual(x, lambda h: self.self_attn(h, mask=mask, cache=cache), self.norm1,
                     self.dropout, self.norm_placement)
        if self.cross_attn is not None:
            if memory is None:
                raise ValueError("DecoderLayer: cross-attention needs the encoder's output "
                                 "(memory=...)")
            x = residual(x, lambda h: self.cross_attn(h, context=memory, mask=memory_mask),
                         self.norm2, self.dropout, self.norm_placement)
        return residual(x, self.ffn, self.norm3, self.dropout, self.norm_placement)
