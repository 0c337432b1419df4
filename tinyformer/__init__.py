"""tinyformer: the Transformer family built on tinyautograd's public API.

Tokenizers, attention, the encoder and decoder, GPT, BERT and the original encoder-decoder,
training and generation arrive here with the issues that build them.
"""

__version__ = "0.1.0"
