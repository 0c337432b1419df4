"""The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al. 2017).

    memory = Encoder(embed(src) + PE)                          section 3.1, left half of Fig. 1
    logits = Decoder(embed(tgt) + PE, memory) W_out            section 3.1, right half of Fig. 1

The encoder reads the whole source sentence at once: every source token attends to every other
one. The decoder writes the target one token at a time: target position t attends to the target
tokens before it (masked self-attention) and to all of the encoder's output `memory`
(cross-attention), and predicts token t + 1. Trained with teacher forcing, the decoder sees the
true target shifted right by one (it starts with a begin-of-sequence token `bos`), and all
positions are predicted in one pass; at inference the model feeds its own predictions back.

The paper's defaults are the defaults here: the layer norm after each residual addition
(post-norm), fixed sinusoidal positions, ReLU, embeddings scaled by sqrt(d_model), and the
output projection tied to the target embedding. Shapes: B batch, S source length, T target
length, C = d_model, V the target vocabulary.
"""

import numpy as np

from tinyautograd import Tensor, no_grad, nn

from .attention import KVCache, causal_mask, padding_mask
from .blocks import DecoderLayer, EncoderLayer
from .layers import TokenEmbedding, positional_encoding

__all__ = ["Encoder", "Decoder", "Transformer"]


class Encoder(nn.Module):
    """N encoder layers, one after another (section 3.1: N = 6 in the paper).

        x = EncoderLayer_N( ... EncoderLayer_1(x))      (B, S, C) -> (B, S, C)

    With pre-norm, each layer normalises only what goes into its sub-layers; the residual
    stream itself is never normalised, so a final LayerNorm does it once at the top. Post-norm
    layers already end in a LayerNorm and need none.
    """

    def __init__(self, n_layer, d_model, n_head, d_ff, dropout=0.0, norm="post",
                 activation="relu", rotary=None):
        self.layers = nn.ModuleList([
            EncoderLayer(d_model, n_head, d_ff, dropout, norm, activation, rotary=rotary)
            for _ in range(n_layer)])
        self.final_norm = nn.LayerNorm(d_model) if norm == "pre" else None

    def forward(self, x, mask=None):
        """x (B, S, C) -> (B, S, C); `mask` (B, 1, 1, S) hides the source padding."""
        for layer in self.layers:
            x = layer(x, mask)
        return x if self.final_norm is None else self.final_norm(x)


class Decoder(nn.Module):
    """N decoder layers, each attending to the same encoder output `memory` (section 3.1).

        y = DecoderLayer_N( ... DecoderLayer_1(y, memory), memory)    (B, T, C) -> (B, T, C)

    A final LayerNorm with pre-norm, for the same reason as in the Encoder.
    """

    def __init__(self, n_layer, d_model, n_head, d_ff, dropout=0.0, norm="post",
                 activation="relu", rotary=None):
        self.layers = nn.ModuleList([
            DecoderLayer(d_model, n_head, d_ff, dropout, norm, activation,
                         cross_attention=True, rotary=rotary)
            for _ in range(n_layer)])
        self.final_norm = nn.LayerNorm(d_model) if norm == "pre" else None

    def forward(self, y, memory, mask=None, memory_mask=None, cache=None):
        """y (B, T, C), memory (B, S, C) -> (B, T, C). `mask` (B, 1, T, T) is causal and hides
        the target padding; `memory_mask` (B, 1, 1, S) hides the source padding; `cache` (a
        KVCache) holds the self-attention keys and values of earlier target tokens."""
        for layer in self.layers:
            y = layer(y, mask=mask, memory=memory, memory_mask=memory_mask, cache=cache)
        return y if self.final_norm is None else self.final_norm(y)


class Transformer(nn.Module):
    """The encoder-decoder Transformer: `model(src, tgt)` gives logits (B, T, tgt_vocab_size).

    src (B, S) and tgt (B, T) are integer token arrays, padded with `pad_id`; padded tokens are
    never attended to. Logits at target position t depend on tgt[:, :t+1] and the whole source.

    - `context`: the longest source or target sequence the model accepts.
    - `d_ff`: the feed-forward width, 4 * d_model by default (2048 for 512 in the paper).
    - `positions`: 'sinusoidal' (the paper's, section 3.5), 'learned', 'rope' or 'none'.
      Source and target each get their own encoding (their own table, when learned); RoPE
      rotates the queries and keys of the self-attentions instead, and leaves cross-attention
      alone, since a source position and a target position are not on one axis.
    - `norm`: 'post' (the paper's) or 'pre'; see blocks.py.
    - `share_embeddings`: one embedding table for source and target (section 3.4 shares it,
      having a joint byte-pair vocabulary); needs equal vocabulary sizes.
    - `tie_weights`: the output projection is the target embedding transposed (section 3.4);
      otherwise a Linear head of its own.

    `encode` and `decode` are the two halves of `forward`, so that a decoding loop runs the
    encoder once and the decoder at every step.
    """

    def __init__(self, src_vocab_size, tgt_vocab_size, context, n_layer=2, n_head=4,
                 d_model=64, d_ff=None, dropout=0.0, positions="sinusoidal", norm="post",
                 activation="relu", share_embeddings=False, tie_weights=True, pad_id=0):
        # The arguments, to rebuild the same model from a checkpoint: Transformer(**config).
        self.config = dict(
            src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, context=context,
            n_layer=n_layer, n_head=n_head, d_model=d_model, d_ff=d_ff, dropout=dropout,
            positions=positions, norm=norm, activation=activation,
            share_embeddings=share_embeddings, tie_weights=tie_weights, pad_id=pad_id)
        if share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError(f"Transformer: share_embeddings needs one vocabulary, got "
                             f"src_vocab_size {src_vocab_size} and tgt_vocab_size "
                             f"{tgt_vocab_size}")
        d_ff = 4 * d_model if d_ff is None else d_ff
        self.context, self.pad_id = context, pad_id

        # Section 3.4: embeddings multiplied by sqrt(d_model).
        self.src_embedding = TokenEmbedding(src_vocab_size, d_model, scale=True)
        self.tgt_embedding = (self.src_embedding if share_embeddings
                              else TokenEmbedding(tgt_vocab_size, d_model, scale=True))
        d_head = d_model // n_head if d_model % n_head == 0 else None   # else MHA says why
        self.src_positions = positional_encoding(positions, context, d_model, d_head)
        self.tgt_positions = positional_encoding(positions, context, d_model, d_head)
        # Section 5.4: dropout on the sums of the embeddings and the positional encodings.
        self.dropout = nn.Dropout(dropout)

        rope = positions == "rope"
        self.encoder = Encoder(n_layer, d_model, n_head, d_ff, dropout, norm, activation,
                               rotary=self.src_positions if rope else None)
        self.decoder = Decoder(n_layer, d_model, n_head, d_ff, dropout, norm, activation,
                               rotary=self.tgt_positions if rope else None)
        self.head = None if tie_weights else nn.Linear(d_model, tgt_vocab_size)

    def forward(self, src, tgt):
        """src (B, S), tgt (B, T) integer tokens -> logits (B, T, tgt_vocab_size)."""
        memory, src_mask = self.encode(src)
        return self.decode(tgt, memory, src_mask)

    def encode(self, src):
        """Run the encoder: src (B, S) -> (memory (B, S, C), src_mask (B, 1, 1, S)).

        src_mask is True on real source tokens; the decoder's cross-attention needs it too.
        """
        src = self._tokens(src, "source")
        src_mask = padding_mask(src != self.pad_id)                  # (B, 1, 1, S)
        x = self.dropout(self.src_positions(self.src_embedding(src)))   # (B, S, C)
        return self.encoder(x, src_mask), src_mask

    def decode(self, tgt, memory, src_mask, cache=None):
        """Run the decoder on the encoder's output: tgt (B, T) -> logits (B, T, V).

        Target position t may attend to target positions <= t that are not padding (the
        look-ahead mask of section 3.2.3), and to every unpadded source position. With a
        KVCache, tgt holds only the tokens after those already cached (decoding feeds one at a
        time); it must then hold real tokens, since cached keys are not checked for padding.
        """
        tgt = self._tokens(tgt, "target")
        T = tgt.shape[1]
        start = 0 if cache is None else cache.length                   # position of tgt[:, 0]
        if start + T > self.context:
            raise ValueError(f"Transformer: target sequence of {start + T} tokens exceeds the "
                             f"context of {self.context}")
        if cache is None:
            tgt_mask = causal_mask(T) & padding_mask(tgt != self.pad_id)   # (B, 1, T, T)
        else:
            # (T, start + T); one new query (generation) sees every key: no mask
            tgt_mask = causal_mask(T, start) if T > 1 else None
        y = self.dropout(self.tgt_positions(self.tgt_embedding(tgt), start=start))  # (B, T, C)
        y = self.decoder(y, memory, tgt_mask, src_mask, cache)          # (B, T, C)
        if cache is not None:
            cache.length += T
        if self.head is None:
            return self.tgt_embedding.unembed(y)                        # (B, T, V), y @ E^T
        return self.head(y)                                             # (B, T, V)

    def greedy_decode(self, src, max_len, bos_id, eos_id=None, use_cache=True):
        """Translate src (B, S) by taking the most likely token at every step.

        Returns (B, 1 + n) integer tokens: bos_id, then n <= max_len generated tokens. A
        sequence that has produced eos_id is finished; its later tokens are pad_id, and the loop
        stops once every sequence is finished. The encoder runs once; with `use_cache` (the
        default) a KVCache lets the decoder work on the newest token only, otherwise it reruns
        on the whole prefix at each step (same tokens, quadratic work). Call `model.eval()`
        first if the model has dropout.
        """
        with no_grad():
            memory, src_mask = self.encode(src)                         # (B, S, C)
            B = memory.shape[0]
            tokens = np.full((B, 1), bos_id)                            # (B, 1)
            finished = np.zeros(B, dtype=bool)
            cache = KVCache() if use_cache else None
            for _ in range(max_len):
                new = tokens if cache is None else tokens[:, cache.length:]   # not yet decoded
                logits = self.decode(new, memory, src_mask, cache)      # (B, t or 1, V)
                next_token = logits.data[:, -1].argmax(axis=-1)         # (B,) the last position
                if eos_id is not None:
                    next_token = np.where(finished, self.pad_id, next_token)
                    finished |= next_token == eos_id
                tokens = np.concatenate([tokens, next_token[:, None]], axis=1)
                if finished.all():
                    break
        return tokens

    def _tokens(self, tokens, which):
        """The integer array (B, L) of a token batch, checked against the context."""
        tokens = np.asarray(tokens.data if isinstance(tokens, Tensor) else tokens)
        if tokens.ndim != 2 or tokens.dtype.kind not in "iu":
            raise TypeError(f"Transformer: the {which} must be a (B, L) integer array, got "
                            f"{tokens.dtype} of shape {tokens.shape}")
        if tokens.shape[1] > self.context:
            raise ValueError(f"Transformer: {which} sequence of {tokens.shape[1]} tokens "
                             f"exceeds the context of {self.context}")
        return tokens

    def extra_repr(self):
        c = self.config
        return (f"n_layer={c['n_layer']}, n_head={c['n_head']}, d_model={c['d_model']}, "
                f"positions={c['positions']!r}, norm={c['norm']!r}")
