"""GPT: a decoder-only Transformer that predicts the next token (Radford et al. 2018, 2019).

    x = embed(idx)             TokenEmbedding(idx) + Positions, dropout      (B, T, C)
    x = decoder(x)             n_layer DecoderLayers: masked self-attention + feed-forward, no
                               cross-attention (nothing to encode); with pre-norm, a final
                               norm at the top (of the `normalization` chosen)
    logits = x @ E^T           (B, T, vocab), the head tied to the token embedding E

GPT-2's choices are the defaults: pre-norm blocks with a final layer norm, learned positions,
GELU, tied embeddings, and its initialisation (below). The modern block's switches turn it into
Llama's (positions="rope", normalization="rmsnorm", activation="swiglu", n_kv_head, bias=False),
Qwen3's (with qk_norm=True) or nanochat's (rmsnorm_affine=False, activation="relu2", qk_norm,
logit_softcap); see blocks.py.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Callable, Sequence, TypeVar

import numpy as np

from tinyautograd import Tensor, nn

from .attention import KVCache, causal_mask
from .blocks import Decoder
from .decoding import DecoderOnlySession, check_eos_id, fill_after_end, generate
from .layers import (Embeddings, Tokens, check_key_value_heads, check_logit_softcap, check_sizes,
                     check_switches, check_switches_apply, built_with, default_d_ff, head_width,
                     kept_for_logits, modules_of_your_own, soft_capped, switches_set, token_array)
from .pretrained import PretrainedError, load_pretrained_gpt, save_pretrained_gpt
from .schema import check_whole

if TYPE_CHECKING:                   # resources reads the checkpoint format, which names GPT
    from .resources import AdaptiveThreads, FixedThreads


GPTT = TypeVar("GPTT", bound="GPT")      # from_pretrained of a subclass of GPT gives one


class GPT(nn.Module):
    """`GPT(vocab_size, context, n_layer, n_head, d_model)`; `model(idx)` gives logits
    (B, T, vocab_size) for integer tokens idx (B, T), T <= context.

    GPT-2's choices are the defaults: `positions` 'learned' ('sinusoidal', 'rope' or 'none'
    otherwise), `norm` 'pre' (pre-norm blocks and a final norm; 'post' for the paper's),
    GELU, and `tie_weights`: the logits are x @ E^T, E the token embedding (False: a head
    of its own, `head`, (d_model, vocab) with no bias, as GPT-2's). `dropout` (0 by default)
    drops the embeddings, the attention weights, the feed-forward's hidden activations and
    each sub-layer's output, while training.

    The modern block's switches: `normalization` ('layernorm' or 'rmsnorm', with
    `rmsnorm_affine`), `activation` ('gelu', 'relu', 'swiglu', 'relu2'; d_ff defaults to
    4 d_model, or about 8/3 d_model for SwiGLU), `n_kv_head` (grouped-query attention),
    `qk_norm`, `logit_softcap` (cap * tanh(logits / cap) on the output), `bias` (False: no
    biases in linear layers and norms), `rope_theta` (RoPE's base). `rope_theta` without
    positions='rope', and rmsnorm_affine=False without RMS norms, would change nothing and
    are refused. `d_head` sets the width of a head when it is not d_model / n_head (as in
    some Qwen3 checkpoints).

    The sizes: `n_layer` blocks of `n_head` heads, width `d_model` (C), feed-forward width
    `d_ff`; small by default (4 layers of 128), GPT-2 small is 12 layers of 768, 12 heads,
    context 1024. ValueError, one line, for a size or switch out of range.

        text = builtin_corpus()                               # tinyformer.data: any str
        tok = BPETokenizer.train(text, vocab_size=300)       # tinyformer.tokenizers
        model = GPT(tok.vocab_size, context=64, n_layer=2, n_head=2, d_model=32)
        idx = np.array([tok.encode("the cat")])               # (B, T) = (1, T)
        logits = model(idx)                                   # (1, T, 300)
        out = model.generate(idx, max_new_tokens=20)          # (1, T + 20) token ids
        print(tok.decode(out[0]))
    """

    def __init__(self, vocab_size: int, context: int, n_layer: int = 4, n_head: int = 4,
                 d_model: int = 128, d_ff: int | None = None, dropout: float = 0.0,
                 positions: str = "learned", norm: str = "pre", activation: str = "gelu",
                 tie_weights: bool = True, normalization: str = "layernorm",
                 rmsnorm_affine: bool = True, n_kv_head: int | None = None,
                 qk_norm: bool = False, logit_softcap: float | None = None, bias: bool = True,
                 rope_theta: float = 10000.0, d_head: int | None = None) -> None:
        check_sizes("GPT", vocab_size=vocab_size, context=context, n_layer=n_layer,
                    n_head=n_head, d_model=d_model, d_ff=d_ff, d_head=d_head)
        check_switches("GPT", dropout=dropout, rope_theta=rope_theta, n_kv_head=n_kv_head,
                       bias=bias, qk_norm=qk_norm, rmsnorm_affine=rmsnorm_affine,
                       tie_weights=tie_weights)
        check_switches_apply("GPT", positions, normalization, rope_theta, rmsnorm_affine)
        check_key_value_heads("GPT", n_head, n_kv_head)
        d_ff = default_d_ff(d_model, activation) if d_ff is None else d_ff
        self.config = built_with(vocab_size=vocab_size, context=context, n_layer=n_layer,
                                 n_head=n_head, d_model=d_model, d_ff=d_ff, dropout=dropout,
                                 positions=positions, norm=norm, activation=activation,
                                 tie_weights=tie_weights, normalization=normalization,
                                 rmsnorm_affine=rmsnorm_affine, n_kv_head=n_kv_head,
                                 qk_norm=qk_norm, logit_softcap=logit_softcap, bias=bias,
                                 rope_theta=rope_theta, d_head=d_head)
        self.context = context
        self.logit_softcap = check_logit_softcap(logit_softcap)
        self.embed = Embeddings(vocab_size, d_model, context, positions, dropout,
                                d_head=head_width("GPT", d_model, n_head, d_head, positions),
                                rope_theta=rope_theta)
        self.decoder = Decoder(n_layer, d_model, n_head, d_ff, dropout, norm, activation,
                               rotary=self.embed.rotary, cross_attention=False,
                               normalization=normalization, rmsnorm_affine=rmsnorm_affine,
                               n_kv_head=n_kv_head, qk_norm=qk_norm, bias=bias, d_head=d_head)
        # Tied (None): the logits come from the token embedding, embed.tok.unembed. Untied, no
        # bias, as GPT-2's, Llama's and Qwen3's heads have none: save_pretrained writes it as
        # theirs. (The encoder-decoder Transformer's head has one: see transformer.py.)
        self.head = None if tie_weights else nn.Linear(d_model, vocab_size, bias=False)
        self._init_weights(n_layer)

    @classmethod
    def from_pretrained(cls: type[GPTT], directory: str | os.PathLike) -> GPTT:
        """A GPT, in eval mode, from a Hugging Face checkpoint: a directory holding
        config.json and model.safetensors, as transformers' save_pretrained writes them or a
        model page offers them, of model type gpt2, llama (SmolLM, Llama) or qwen3. ValueError,
        one line, for anything it cannot load exactly. See tinyformer/pretrained.py."""
        return load_pretrained_gpt(directory, cls)

    def save_pretrained(self, directory: str | os.PathLike, bos_token_id: int | None = None,
                        eos_token_id: int | Sequence[int] | None = None) -> None:
        """Write this GPT into `directory` as a Hugging Face checkpoint (config.json,
        model.safetensors, and generation_config.json over any older one there, as transformers'
        save_pretrained writes it) that transformers' AutoModelForCausalLM.from_pretrained loads:
        GPT-2's format for GPT-2's block (with its GELU, or ReLU or relu2: GPT-2's config names the
        activation), Llama's for the modern block as Llama has it (positions="rope",
        normalization="rmsnorm", activation="swiglu", any n_kv_head, d_head, rope_theta and bias),
        Qwen3's for that block with qk_norm=True and bias=False. The token ids (`bos_token_id`,
        `eos_token_id`, null where not given), if the tokenizer has such tokens, are for
        transformers' generate and ours (eos_token_id may be a list of ids, as a chat model's:
        load_model's config["eos_ids"]). ValueError, one line, for a setting no format expresses
        (positions "sinusoidal" or "none", post-norm, rmsnorm_affine=False, logit_softcap, or a mix
        of GPT-2's block and the modern one: GPT-2's with bias=False, n_kv_head or d_head, the
        modern one with relu2, say). A BPE tokenizer goes beside it with
        tinyformer.pretrained.save_gpt2_tokenizer. A module of your own in place of one GPT builds
        (a layer's ffn, say) is refused too: no format knows it."""
        own = modules_of_your_own(self)
        if own:
            raise PretrainedError(f"save_pretrained: no Hugging Face format expresses "
                                  f"{', '.join(own)}, in place of what GPT builds; save the "
                                  f"weights with np.savez(path, **model.state_dict())")
        save_pretrained_gpt(self, directory, bos_token_id, eos_token_id)

    def _init_weights(self, n_layer):
        """GPT-2's initialisation: weights N(0, 0.02), biases 0; the two projections that
        write into the residual stream (attention output, second feed-forward layer) get
        0.02 / sqrt(2 n_layer), so that the stream's variance does not grow with depth. The
        token embedding's own N(0, 1/d_model) (TokenEmbedding) is replaced too, as GPT-2's."""
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif name.endswith(("attn.out.weight", "ffn.fc2.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layer))
            elif "norm" not in name:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx: Tokens, cache: KVCache | None = None, *,
                logits_to_keep: int = 0) -> Tensor:
        """Logits (B, T, vocab) for tokens idx (B, T). With a KVCache, idx holds only the tokens
        that follow those already in the cache (generation feeds one at a time).
        `logits_to_keep` n > 0 gives the logits of the last n positions only, (B, n, vocab), as
        transformers' keyword: decoding asks for 1, and the head then computes one row instead
        of T (for a long prompt, the largest product of the step)."""
        check_whole("GPT", 0, logits_to_keep=logits_to_keep)    # before the model's work
        idx = token_array(idx, vocab_size=self.config["vocab_size"])             # (B, T)
        start = 0 if cache is None else cache.length            # position of idx's first token
        x = self.embed(idx, start)                               # (B, T, C)
        T = x.shape[1]
        # (T, start + T): t sees <= t. One new query (generation) sees every key: no mask.
        mask = causal_mask(T, start) if T > 1 else None
        x = self.decoder(x, mask=mask, cache=cache)              # (B, T, C)
        x = kept_for_logits(x, logits_to_keep)                   # (B, n, C)
        return self.logits(x)                                    # (B, n, vocab)

    def logits(self, x: Tensor) -> Tensor:
        """The head: logits (B, T, vocab) from the top of the stack x (B, T, C), soft-capped
        with logit_softcap."""
        logits = self.embed.tok.unembed(x) if self.head is None else self.head(x)
        return soft_capped(logits, self.logit_softcap)

    def extra_repr(self) -> str:
        return switches_set(logit_softcap=self.logit_softcap)     # the rest shows in the tree

    def start_decoding(self, prompt: Tokens, use_cache: bool = True) -> DecoderOnlySession:
        """A decoding session (tinyformer.decoding) continuing each row of `prompt` (B, T):
        what generate and beam search write with. `use_cache` as generate's."""
        return DecoderOnlySession(self, prompt, use_cache)

    def generate(self, idx: Tokens, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None,
                 eos_id: int | Sequence[int] | None = None,
                 generator: np.random.Generator | None = None, use_cache: bool = True,
                 streamer: Callable[[np.ndarray], None] | None = None,
                 threads: AdaptiveThreads | FixedThreads | None = None) -> np.ndarray:
        """Continue each row of idx (B, T) by up to `max_new_tokens` tokens; returns the whole
        (B, T + new) array. The rows are prompts of one length, T: a GPT has no padding mask, so
        a shorter prompt padded would have its pad tokens read as part of its text. Prompts of
        different lengths take one call per length. `temperature` 0 is greedy; otherwise each
        token is drawn from softmax(logits / temperature), among the `top_k` likeliest tokens
        and the fewest likeliest whose probability reaches `top_p` (nucleus sampling), where
        given (tinyformer.sampling.sample_next). The model sees the last `context` tokens at
        each step (with rotary positions, transformers' generate reads every token of a Llama or
        Qwen3 past its max_position_embeddings instead: the texts part at the first token read
        past `context`). Stops early once every row has produced `eos_id`, or one of several ids
        (as transformers' eos_token_id, a list for a chat model); a row that has ended before
        the others is filled with eos_id, the first of several (as transformers fills it with
        pad_token_id, which is eos for GPT-2; a GPT has no padding token). `generator` (a numpy
        Generator, np.random.default_rng(seed)) makes sampling repeatable; by default the
        engine's seeded one is used. Each step draws one number per row, in row order: a row's
        tokens never depend on what the other rows hold, but do on how many rows share the
        generator (a prompt alone and first in a batch of three draw the same first token, then
        differ), as in transformers; for a row's sample alone, give it a generator of its own,
        one call per row. `streamer`, if given, is called with each step's new tokens
        (B,) as soon as they are chosen (as transformers' streamer=): `tinyformer generate`
        prints text with it. Dropout is off while it writes, whatever the model's mode (left as
        it was).

        With `use_cache` (the default), a KVCache makes each new token cost one position's
        work; the logits are the same as recomputing everything (tinyformer/decoding.py). Once
        the text outgrows `context`, every position shifts at each step: the step reruns the
        whole window, with or without the cache, so the cache speeds up `context` tokens only.
        `threads` (an entered resources.step_threads) runs the steps on the BLAS threads given,
        or times them to choose, as training does."""
        # Before fill_after_end reads it: a set, say, has no first id to fill with.
        check_eos_id("generate", eos_id, self.config["vocab_size"])
        return generate(self.start_decoding(idx, use_cache), max_new_tokens, temperature, top_k,
                        top_p, eos_id, generator, streamer, fill_after_eos=fill_after_end(eos_id),
                        threads=threads)
