"""Chapters 12 to 15 (the encoder and cross-attention, GPT vs BERT vs the encoder-decoder, your
GPT, a learned induction head): every known-wrong variant, one per mistake learners make,
fails with a message that names the mistake; a file that imports the implementation it is
asked to write is refused."""

import pytest
from solutions import edited_message, solved_text

from tinyformer.exercises import find, run_check

# ---------------------------------------------------------------------------------------------
# Chapter 12


def test_padding_mask_the_wrong_way_round(tmp_path):
    got = edited_message(tmp_path, "padding_mask", "is_token = ids != pad_id",
                         "is_token = ids == pad_id")
    assert "padding_mask(ids=[[5, 6, 7], [8, 9, 0]], pad_id=0)" in got
    assert "the wrong way round: True must mark the real tokens" in got


def test_padding_mask_on_the_query_axis(tmp_path):
    got = edited_message(tmp_path, "padding_mask", "is_token[:, None, None, :]",
                         "is_token[:, None, :, None]")
    assert "with the tokens on the query axis, (B, 1, T, 1)" in got


def test_padding_mask_without_the_broadcast_axes(tmp_path):
    got = edited_message(tmp_path, "padding_mask", "return is_token[:, None, None, :]",
                         "return is_token")
    assert "without the two axes of size 1" in got


def test_padding_mask_that_assumes_pad_id_zero(tmp_path):
    got = edited_message(tmp_path, "padding_mask", "is_token = ids != pad_id",
                         "is_token = ids != 0")
    assert "pad_id=9" in got and "wrong mask" in got


def test_pad_batch_padding_at_the_front(tmp_path):
    got = edited_message(tmp_path, "padding_mask", "ids[row, :len(sequence)] = sequence",
                         "ids[row, T - len(sequence):] = sequence")
    assert "pad_batch(sequences=[[5, 6, 7], [8, 9]], pad_id=0)" in got
    assert "expected: [[5, 6, 7], [8, 9, 0]]" in got


def test_cross_attention_with_the_decoders_keys(tmp_path):
    got = edited_message(tmp_path, "cross_attention", "k = split_heads(memory @ w_k, n_head)",
                         "k = split_heads(x @ w_k, n_head)",
                         ("v = split_heads(memory @ w_v, n_head)",
                          "v = split_heads(x @ w_v, n_head)"))
    assert "cross_attention(x=Tensor array of shape (2, 3, 4), float64, memory=Tensor array of " \
        "shape (2, 5, 4)" in got
    assert "with the keys and values from x (the decoder) instead of from memory" in got


def test_cross_attention_with_queries_from_memory(tmp_path):
    got = edited_message(tmp_path, "cross_attention", "q = split_heads(x @ w_q, n_head)",
                         "q = split_heads(memory @ w_q, n_head)")
    assert "one row per memory position" in got and "x's shape" in got


def test_cross_attention_ignoring_the_mask(tmp_path):
    got = edited_message(tmp_path, "cross_attention", "attention(q, k, v, mask)",
                         "attention(q, k, v)")
    assert "ignoring the mask" in got


def test_encoder_layer_pre_ln(tmp_path):
    got = edited_message(
        tmp_path, "encoder_decoder_layers",
        "    x = norm(x + multi_head_attention(x, x, w, \"self\", n_head, mask), w, 1)\n"
        "    return norm(x + feed_forward(x, w), w, 2)",
        "    h = norm(x, w, 1)\n    x = x + multi_head_attention(h, h, w, \"self\", n_head, mask)\n"
        "    return x + feed_forward(norm(x, w, 2), w)")
    assert "encoder_layer(" in got and "with the pre-LN order" in got


def test_encoder_layer_with_a_causal_mask(tmp_path):
    got = edited_message(
        tmp_path, "encoder_decoder_layers",
        "multi_head_attention(x, x, w, \"self\", n_head, mask)",
        "multi_head_attention(x, x, w, \"self\", n_head, mask & np.tril(np.ones((x.shape[1],) * 2,"
        " dtype=bool)))", ("def encoder_layer(", "import numpy as np\n\n\ndef encoder_layer("))
    assert "encoder_layer(" in got and "with a causal mask: the encoder reads the whole" in got


def test_encoder_layer_ignoring_the_padding(tmp_path):
    got = edited_message(tmp_path, "encoder_decoder_layers",
                         "multi_head_attention(x, x, w, \"self\", n_head, mask)",
                         "multi_head_attention(x, x, w, \"self\", n_head)")
    assert "encoder_layer(" in got and "ignoring the padding mask" in got


def test_decoder_cross_attention_with_the_decoders_keys(tmp_path):
    got = edited_message(tmp_path, "encoder_decoder_layers",
                         "multi_head_attention(y, memory, w, \"cross\"",
                         "multi_head_attention(y, y, w, \"cross\"")
    assert "decoder_layer(" in got
    assert "with the cross-attention's keys and values from y" in got


def test_decoder_without_the_causal_mask(tmp_path):
    got = edited_message(tmp_path, "encoder_decoder_layers",
                         "multi_head_attention(y, y, w, \"self\", n_head, self_mask)",
                         "multi_head_attention(y, y, w, \"self\", n_head, None)")
    assert "without the causal mask in the self-attention" in got


def test_decoder_with_the_masks_swapped(tmp_path):
    got = edited_message(tmp_path, "encoder_decoder_layers",
                         "\"self\", n_head, self_mask)", "\"self\", n_head, memory_mask)")
    # Without source padding (memory_mask None) first: the self-attention then has no mask.
    assert "decoder_layer(" in got and "without the causal mask in the self-attention" in got


def test_decoder_cross_attention_first(tmp_path):
    self_line = "y = norm(y + multi_head_attention(y, y, w, \"self\", n_head, self_mask), w, "
    cross_line = ("y = norm(y + multi_head_attention(y, memory, w, \"cross\", n_head, "
                  "memory_mask), w, ")
    got = edited_message(tmp_path, "encoder_decoder_layers",
                         f"    {self_line}1)\n    {cross_line}2)",
                         f"    {cross_line}1)\n    {self_line}2)")
    assert "with the cross-attention first" in got


@pytest.mark.parametrize("slug, line, module", [
    ("padding_mask", "from tinyformer.attention import padding_mask as given",
     "tinyformer.attention"),
    ("cross_attention", "from tinyformer import MultiHeadAttention", "tinyformer.attention"),
    ("encoder_decoder_layers", "import tinyformer.blocks", "tinyformer.blocks"),
    ("encoder_decoder_layers", "import tinyformer\nLayer = tinyformer.blocks.EncoderLayer",
     "tinyformer.blocks"),
])
def test_importing_the_implementation_is_refused(tmp_path, slug, line, module):
    ex = find(slug)
    path = tmp_path / f"{slug}.py"
    path.write_text(solved_text(ex) + "\n" + line + "\n")
    got = run_check(ex, path)
    assert got is not None and f"uses {module}" in got
    assert "this exercise asks you to write that part yourself" in got
