"""What the models accept, checked once for all of them: token arrays (forward and every
decoding loop go through one check), and the sizes and counts they are given, each refused in
one line that says what was wrong."""

import numpy as np
import pytest

import tinyautograd as ta
from tinyformer import BERT, GPT, Transformer
from tinyformer.decoding import beam_search

BOS, EOS = 1, 2


def tiny_models():
    ta.manual_seed(0)
    return (GPT(11, 8, n_layer=1, n_head=2, d_model=16).eval(),
            BERT(11, 8, n_layer=1, n_head=2, d_model=16).eval(),
            Transformer(11, 11, 8, n_layer=1, n_head=2, d_model=16).eval())


def every_use(tokens):
    """Each way a model takes a batch of tokens, as a call with `tokens` in it."""
    gpt, bert, seq2seq = tiny_models()
    fine = np.array([[3, 4, 5]])
    return {"gpt": lambda: gpt(tokens),
            "gpt.generate": lambda: gpt.generate(tokens, 2),
            "gpt beam_search": lambda: beam_search(gpt.start_decoding(tokens), max_len=2),
            "bert": lambda: bert(tokens),
            "transformer src": lambda: seq2seq(tokens, fine),
            "transformer tgt": lambda: seq2seq(fine, tokens),
            "greedy_decode": lambda: seq2seq.greedy_decode(tokens, 2, bos_id=BOS),
            "transformer beam_search": lambda: beam_search(seq2seq.start_decoding(tokens, BOS),
                                                           max_len=2)}


@pytest.mark.parametrize("use", every_use(None).keys())
def test_an_empty_sequence_is_refused_in_one_line(use):
    with pytest.raises(ValueError, match=r"^tokens must hold at least one token a row, got "
                                         r"shape \(1, 0\)$"):
        every_use(np.zeros((1, 0), dtype=np.int64))[use]()
