"""tinyformer: the Transformer family built on tinyautograd's public API.

Read in this order: `attention.py` (scaled dot-product and multi-head attention), `layers.py`
(embeddings, positional encodings, feed-forward), `blocks.py` (encoder and decoder layers,
pre- or post-norm, and the Encoder and Decoder stacks), then the models, each embeddings, a
stack or two and a head: `gpt.py`, `bert.py`, `transformer.py`.
"""

from .attention import (KVCache, MultiHeadAttention, causal_mask, padding_mask,
                        scaled_dot_product_attention)
from .decoding import beam_search
from .bert import BERT, mask_tokens
from .blocks import Decoder, Encoder
from .gpt import GPT
from .summary import flops_per_token, summary
from .transformer import Transformer

__version__ = "0.1.0"

__all__ = ["GPT", "BERT", "Transformer", "Encoder", "Decoder", "MultiHeadAttention", "KVCache",
           "scaled_dot_product_attention", "causal_mask", "padding_mask", "mask_tokens",
           "beam_search", "summary", "flops_per_token"]
