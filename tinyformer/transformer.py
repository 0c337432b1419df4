"""The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al. 2017).

    memory = encoder(src_embed(src))                         section 3.1, left half of Fig. 1
    logits = head(decoder(tgt_embed(tgt), memory))           section 3.1, right half of Fig. 1

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


from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tinyautograd import Tensor, nn

from .attention import KVCache, Mask, causal_mask, padding_mask
from .blocks import Decoder, Encoder
from .decoding import (EncoderDecoderSession, EosIds, check_eos_id, check_room,
                       fill_after_end, generate)
from .layers import (Embeddings, Tokens, built_with, check_key_value_heads, check_logit_softcap,
                     check_sizes, check_switches, check_switches_apply, default_d_ff, head_width,
                     kept_for_logits, padding_advice, soft_capped, switches_set, token_array)
from .schema import BadInput, Whole, check_whole

if TYPE_CHECKING:                   # resources reads the checkpoint format, which names the models
    from .resources import AdaptiveThreads, FixedThreads

__all__ = ["Transformer"]


def check_bos_id(where: str, bos_id: int, vocab_size: int) -> None:
    """BadInput, in one line starting with `where` (the function its caller called), unless
    `bos_id` is a target token id in [0, vocab_size): not 1.0, not True, not -1."""
    if Whole(0, vocab_size - 1).why(bos_id):
        raise BadInput(f"{where}: bos_id must be a token id in [0, {vocab_size}), got "
                       f"{bos_id!r}")


def _check_src_mask(src_mask: Mask | None, memory: Tensor) -> None:
    """ValueError, in one line, unless `src_mask` is None or (B, 1, 1, S) for `memory` (B, S,
    C), as `encode` returns it. A key-padding mask of torch's shape, (B, S), would broadcast
    its batch axis over the target positions instead: with as many rows as target tokens,
    each query read the padding of another row's source, without a word."""
    if src_mask is None:
        return
    shape = np.shape(src_mask.data if isinstance(src_mask, Tensor) else src_mask)
    want = (memory.shape[0], 1, 1, memory.shape[1])
    if shape != want:
        raise ValueError(f"Transformer: src_mask must be (B, 1, 1, S) = {want} for memory of "
                         f"shape {memory.shape}, as encode returns it, got shape {shape}; "
                         f"padding_mask(src != pad_id) makes one from (B, S)")


class Transformer(nn.Module):
    """The encoder-decoder Transformer: `model(src, tgt)` gives logits (B, T, tgt_vocab_size).

    src (B, S) and tgt (B, T) are integer token arrays, padded on the right with `pad_id`: no
    source padding is attended to, and the causal mask keeps target padding from every real
    target position. Logits at target position t depend on tgt[:, :t+1] and the whole source.
    With pad_id None (the default) every source token is attended to, as torch's
    nn.Transformer given no key padding mask: id 0 is a real token to a tokenizer with no
    padding (give its <pad> id to hide padding).

    - `src_vocab_size`, `tgt_vocab_size`: the source and target vocabularies.
    - `context`: the longest source or target sequence the model accepts.
    - `n_layer` encoder layers and as many decoder layers, of `n_head` heads, width `d_model`
      (2 layers of 64 by default; the paper's base model 6 of 512, with 8 heads).
    - `d_ff`: the feed-forward width, 4 * d_model by default (2048 for 512 in the paper;
      about 8/3 d_model for SwiGLU, as in GPT).
    - `positions`: 'sinusoidal' (the paper's, section 3.5), 'learned', 'rope' or 'none'.
      Source and target each get their own encoding (their own table, when learned, unless
      they share their embeddings); RoPE rotates the queries and keys of the self-attentions
      instead, and leaves cross-attention alone, since a source position and a target
      position are not on one axis.
    - `norm`: 'post' (the paper's) or 'pre'; see blocks.py.
    - `dropout`: as GPT's, in the encoder and the decoder alike (0 by default; the paper's
      0.1, section 5.4).
    - `share_embeddings`: source and target share one embeddings module (section 3.4 shares
      the token table, having a joint byte-pair vocabulary): one token table, and one position
      table when the positions are learned; needs equal vocabulary sizes.
    - `tie_weights`: the output projection is the target embedding transposed (section 3.4);
      otherwise a Linear head of its own, with a bias (unless `bias` is False), as the
      Annotated Transformer's generator has it. (GPT's head has none, as GPT-2's.)
    - `activation`: the feed-forward's, 'relu' by default (the paper's), or 'gelu',
      'swiglu', 'relu2'.
    - the modern block's switches, as GPT's: `normalization` (with `rmsnorm_affine`), `n_kv_head`
      (for self- and cross-attention), `qk_norm`, `logit_softcap`, `bias`, `rope_theta`, and
      `d_head` (every attention's head width).

    `encode` and `decode` are the two halves of `forward`, so that a decoding loop runs the
    encoder once and the decoder at every step.
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, context: int, n_layer: int = 2,
                 n_head: int = 4, d_model: int = 64, d_ff: int | None = None,
                 dropout: float = 0.0, positions: str = "sinusoidal", norm: str = "post",
                 activation: str = "relu", share_embeddings: bool = False,
                 tie_weights: bool = True, pad_id: int | None = None,
                 normalization: str = "layernorm", rmsnorm_affine: bool = True,
                 n_kv_head: int | None = None,
                 qk_norm: bool = False, logit_softcap: float | None = None, bias: bool = True,
                 rope_theta: float = 10000.0, d_head: int | None = None) -> None:
        check_sizes("Transformer", src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size,
                    context=context, n_layer=n_layer, n_head=n_head, d_model=d_model, d_ff=d_ff,
                    d_head=d_head)
        check_switches("Transformer", dropout=dropout, rope_theta=rope_theta, n_kv_head=n_kv_head,
                       bias=bias, qk_norm=qk_norm, rmsnorm_affine=rmsnorm_affine,
                       tie_weights=tie_weights, share_embeddings=share_embeddings)
        check_switches_apply("Transformer", positions, normalization, rope_theta, rmsnorm_affine)
        check_key_value_heads("Transformer", n_head, n_kv_head)
        if pad_id is not None:
            check_whole("Transformer", 0, pad_id=pad_id)
            # Padding hides source tokens and fills the targets written after eos: both
            # vocabularies must hold it (the target embedding reads the fill back).
            if pad_id >= min(src_vocab_size, tgt_vocab_size):
                raise ValueError(f"Transformer: pad_id {pad_id} is not a token id of both "
                                 f"vocabularies: src has ids 0 to {src_vocab_size - 1}, tgt "
                                 f"0 to {tgt_vocab_size - 1}")
        # The arguments, to rebuild the same model from a checkpoint: Transformer(**config).
        self.config = built_with(
            src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, context=context,
            n_layer=n_layer, n_head=n_head, d_model=d_model, d_ff=d_ff, dropout=dropout,
            positions=positions, norm=norm, activation=activation,
            share_embeddings=share_embeddings, tie_weights=tie_weights, pad_id=pad_id,
            normalization=normalization, rmsnorm_affine=rmsnorm_affine, n_kv_head=n_kv_head,
            qk_norm=qk_norm, logit_softcap=logit_softcap, bias=bias, rope_theta=rope_theta,
            d_head=d_head)
        if share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError(f"Transformer: share_embeddings needs one vocabulary, got "
                             f"src_vocab_size {src_vocab_size} and tgt_vocab_size "
                             f"{tgt_vocab_size}")
        d_ff = default_d_ff(d_model, activation) if d_ff is None else d_ff
        self.context, self.pad_id = context, pad_id
        self.logit_softcap = check_logit_softcap(logit_softcap)
        norms = dict(normalization=normalization, rmsnorm_affine=rmsnorm_affine, bias=bias)
        switches = dict(n_kv_head=n_kv_head, qk_norm=qk_norm, d_head=d_head, **norms)

        # Section 3.4: embeddings multiplied by sqrt(d_model); section 5.4: dropout on the sums
        # of the embeddings and the positional encodings.
        width = head_width("Transformer", d_model, n_head, d_head, positions)   # RoPE's
        self.src_embed = Embeddings(src_vocab_size, d_model, context, positions, dropout,
                                    scale=True, d_head=width, rope_theta=rope_theta)
        self.tgt_embed = (self.src_embed if share_embeddings else
                          Embeddings(tgt_vocab_size, d_model, context, positions, dropout,
                                     scale=True, d_head=width, rope_theta=rope_theta))
        self.encoder = Encoder(n_layer, d_model, n_head, d_ff, dropout, norm, activation,
                               rotary=self.src_embed.rotary, **switches)
        self.decoder = Decoder(n_layer, d_model, n_head, d_ff, dropout, norm, activation,
                               rotary=self.tgt_embed.rotary, cross_attention=True, **switches)
        # Tied (None): the logits come from the target embedding, tgt_embed.tok.unembed.
        # Untied, a Linear whose bias (kept unless bias=False) is a learned score per target
        # token: the paper says only "the usual learned linear transformation", and the
        # Annotated Transformer's generator, torch's translation tutorial and Marian's
        # translation models have one. GPT's head has none, as GPT-2's and Llama's, so that it
        # saves in their formats; this model has no such format to keep to.
        self.head = None if tie_weights else nn.Linear(d_model, tgt_vocab_size, bias)

    def forward(self, src: Tokens, tgt: Tokens, *, logits_to_keep: int = 0) -> Tensor:
        """src (B, S), tgt (B, T) integer tokens -> logits (B, T, tgt_vocab_size); those of the
        last `logits_to_keep` target positions only, (B, n, V), when it is n > 0 (as for
        `decode`)."""
        memory, src_mask = self.encode(src)
        return self.decode(tgt, memory, src_mask, logits_to_keep=logits_to_keep)

    def encode(self, src: Tokens) -> tuple[Tensor, np.ndarray | None]:
        """Run the encoder: src (B, S) -> (memory (B, S, C), src_mask (B, 1, 1, S)).

        src_mask is True on real source tokens; the decoder's cross-attention needs it too.
        It is None when the model has no pad_id: every source token is real.
        """
        src = token_array(src, padding_advice(self.pad_id),                          # (B, S)
                          vocab_size=self.config["src_vocab_size"], name="src")
        src_mask = (None if self.pad_id is None                      # (B, 1, 1, S)
                    else padding_mask(src != self.pad_id))
        x = self.src_embed(src, name="src")                          # (B, S, C)
        return self.encoder(x, src_mask), src_mask

    def decode(self, tgt: Tokens, memory: Tensor, src_mask: Mask | None,
               cache: KVCache | None = None, *, logits_to_keep: int = 0) -> Tensor:
        """Run the decoder on the encoder's output: tgt (B, T) -> logits (B, T, V), given
        `memory` (B, S, C) and `src_mask` (B, 1, 1, S) or None, as `encode` returns them.

        Target position t may attend to target positions <= t (the look-ahead mask of section
        3.2.3), and to every unpadded source position. The causal mask is all the target needs:
        targets are padded on the right, so no real position ever sees a padding key (and the
        loss ignores the padding's own positions), while a pad_id that decoding writes stays a
        token like any other, with the cache and without it. With a KVCache, tgt holds only
        the tokens after those already cached (decoding feeds one at a time), and the
        cross-attention keys and values of `memory` are computed at the first call and read
        from the cache at the later ones: keep giving that cache the same memory.
        `logits_to_keep` n > 0 gives the logits of the last n target positions only, (B, n, V),
        as GPT's forward does: decoding asks for 1, the only row it reads.
        """
        check_whole("Transformer", 0, logits_to_keep=logits_to_keep)   # before the work
        tgt = token_array(tgt, vocab_size=self.config["tgt_vocab_size"], name="tgt")  # (B, T)
        if memory.shape[0] != tgt.shape[0]:      # torch refuses too; numpy would broadcast 1
            raise ValueError(f"Transformer: src and tgt batches differ, {memory.shape[0]} and "
                             f"{tgt.shape[0]}: give one target row per source row")
        _check_src_mask(src_mask, memory)
        T = tgt.shape[1]
        start = 0 if cache is None else cache.length                   # position of tgt[:, 0]
        y = self.tgt_embed(tgt, start, name="tgt")                      # (B, T, C)
        # (T, start + T): t sees <= t. One new query (generation) sees every key: no mask.
        tgt_mask = causal_mask(T, start) if T > 1 else None
        y = self.decoder(y, memory, tgt_mask, src_mask, cache)          # (B, T, C)
        y = kept_for_logits(y, logits_to_keep)                          # (B, n, C)
        return self.logits(y)                                           # (B, n, V)

    def logits(self, y: Tensor) -> Tensor:
        """The head: logits (B, T, V) from the top of the decoder y (B, T, C); y @ E^T when
        tied to the target embedding E. Soft-capped with logit_softcap."""
        logits = self.tgt_embed.tok.unembed(y) if self.head is None else self.head(y)
        return soft_capped(logits, self.logit_softcap)

    def start_decoding(self, src: Tokens, bos_id: int,
                       use_cache: bool = True) -> EncoderDecoderSession:
        """A decoding session (tinyformer.decoding) writing a target for each row of src
        (B, S) from `bos_id`: what greedy_decode and beam search write with. `use_cache`
        as generate's (a KVCache: the same logits, one position's work per step)."""
        check_bos_id("start_decoding", bos_id, self.config["tgt_vocab_size"])
        return EncoderDecoderSession(self, src, bos_id, use_cache)

    def greedy_decode(self, src: Tokens, max_len: int, bos_id: int, eos_id: EosIds = None,
                      use_cache: bool = True,
                      threads: AdaptiveThreads | FixedThreads | None = None) -> np.ndarray:
        """Translate src (B, S) by taking the most likely token at every step.

        Returns (B, 1 + n) integer tokens: bos_id, then n <= max_len generated tokens, and
        max_len <= context (the last token written reads the context's worth before it). A
        sequence that has produced eos_id (or one of several ids, as for GPT.generate) is
        finished; its later tokens are pad_id (eos_id, the first of several, when the model has
        no pad_id, as transformers pads with eos), and the loop stops once every sequence is
        finished. The encoder runs once; with `use_cache` (the
        default) a KVCache lets the decoder work on the newest token only, its cross-attention
        projecting the encoder's output once, otherwise it reruns on the whole prefix at each
        step, projecting it again (same tokens, quadratic work). Dropout is off while it
        decodes, whatever the model's mode (left as it was). `threads`: as for GPT.generate.
        """
        # As the caller calls it, and the ids before the encoder runs.
        check_whole("greedy_decode", 0, max_len=max_len)
        check_bos_id("greedy_decode", bos_id, self.config["tgt_vocab_size"])
        check_eos_id("greedy_decode", eos_id, self.config["tgt_vocab_size"])
        # The room of a session at <bos> (EncoderDecoderSession.room), before the encoder runs.
        check_room(self.context, "greedy_decode", max_len=max_len)
        session = self.start_decoding(src, bos_id, use_cache)
        return generate(session, max_len, temperature=0, eos_id=eos_id,
                        fill_after_eos=fill_after_end(eos_id, self.pad_id), threads=threads,
                        where="greedy_decode")

    def __getattr__(self, name: str) -> Any:
        # Runs only when normal lookup fails. A user who comes from GPT (or from transformers'
        # encoder-decoders) calls generate: say how this model writes instead of "no attribute".
        if name == "generate":
            raise AttributeError("'Transformer' object has no attribute 'generate': an "
                                 "encoder-decoder writes a target for a source, from its "
                                 "<bos>: model.greedy_decode(src, max_len, bos_id, eos_id), or "
                                 "beam_search(model.start_decoding(src[:1], bos_id), "
                                 "beam_size, max_len, eos_id) (tinyformer.decoding.generate "
                                 "samples from such a session)", name=name, obj=self)
        return super().__getattr__(name)

    def extra_repr(self) -> str:
        c = self.config
        switches = switches_set(pad_id=self.pad_id, logit_softcap=self.logit_softcap)
        return (f"n_layer={c['n_layer']}, n_head={c['n_head']}, d_model={c['d_model']}, "
                f"positions={c['positions']!r}, norm={c['norm']!r}"
                + (f", {switches}" if switches else ""))
