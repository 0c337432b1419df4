"""Chapters 12 to 15 (the encoder and cross-attention, GPT vs BERT vs the encoder-decoder, your
GPT, a learned induction head): every known-wrong variant, one per mistake learners make,
fails with a message that names the mistake; a file that imports the implementation it is
asked to write is refused."""

import pytest
from solutions import edited_message, expect_changed_in_place, solved_text, write_solved

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
    assert "with 0 written in for the padding id: compare with pad_id, 9 here" in got


def test_pad_batch_padding_at_the_front(tmp_path):
    got = edited_message(tmp_path, "padding_mask", "ids[row, :len(sequence)] = sequence",
                         "ids[row, T - len(sequence):] = sequence")
    assert "pad_batch(sequences=[[5, 6, 7], [8, 9]], pad_id=0) put the padding at the " \
        "beginning of the short rows. Fill each row up at the end" in got
    assert "expected: [[5, 6, 7], [8, 9, 0]]" in got and "got:      [[5, 6, 7], [0, 8, 9]]" in got


def test_pad_batch_that_pads_the_callers_lists(tmp_path):
    got = edited_message(
        tmp_path, "padding_mask",
        "    ids = np.full((len(sequences), T), pad_id, dtype=np.int64)\n"
        "    for row, sequence in enumerate(sequences):\n"
        "        ids[row, :len(sequence)] = sequence\n",
        "    for sequence in sequences:\n"
        "        sequence.extend([pad_id] * (T - len(sequence)))\n"
        "    ids = np.array(sequences, dtype=np.int64)\n")
    expect_changed_in_place(got, "pad_batch(sequences=[[5, 6, 7], [8, 9]], pad_id=0)",
                            "the sequences", "Copy each sequence into the new array rather "
                            "than padding the lists themselves.")
    assert "in place, to [[5, 6, 7], [8, 9, 0]]:" in got, got


def test_cross_attention_with_the_decoders_keys(tmp_path):
    got = edited_message(tmp_path, "cross_attention", "k = split_heads(memory @ w_k, n_head)",
                         "k = split_heads(x @ w_k, n_head)",
                         ("v = split_heads(memory @ w_v, n_head)",
                          "v = split_heads(x @ w_v, n_head)"))
    assert "cross_attention(x=Tensor of shape (2, 3, 4), float64, memory=Tensor of shape " \
        "(2, 5, 4)" in got
    assert "with the keys and values from x (the decoder) instead of from memory" in got


@pytest.mark.parametrize("line, source, said", [
    ("k = split_heads(memory @ w_k, n_head)", "k = split_heads(x @ w_k, n_head)",
     "the keys from x and the values from memory"),
    ("v = split_heads(memory @ w_v, n_head)", "v = split_heads(x @ w_v, n_head)",
     "the keys from memory and the values from x"),
])
def test_cross_attention_keys_and_values_from_different_sequences(tmp_path, line, source,
                                                                  said):
    got = edited_message(tmp_path, "cross_attention", line, source)
    assert "raised an error" in got and "ShapeError" in got
    assert (f"gives exactly what you get with {said}: keys and values both come from memory, "
            f"the encoder's output.") in got


def test_cross_attention_with_queries_from_memory(tmp_path):
    got = edited_message(tmp_path, "cross_attention", "q = split_heads(x @ w_q, n_head)",
                         "q = split_heads(memory @ w_q, n_head)")
    assert "one row per memory position" in got and "x's shape" in got


def test_cross_attention_ignoring_the_mask(tmp_path):
    got = edited_message(tmp_path, "cross_attention", "attention(q, k, v, mask)",
                         "attention(q, k, v)")
    assert "ignoring the mask" in got


@pytest.mark.parametrize("old, new, name", [
    ("k = split_heads(memory @ w_k, n_head)", "k = split_heads(memory @ w_k.T, n_head)", "w_k"),
    ("@ w_o", "@ w_o.T", "w_o"),
])
def test_cross_attention_with_a_weight_transposed(tmp_path, old, new, name):
    # PyTorch's nn.Linear habit, x @ weight.T: the square weights let it run.
    got = edited_message(tmp_path, "cross_attention", old, new)
    assert f"exactly what you get with {name} transposed" in got


def test_encoder_layer_pre_ln(tmp_path):
    got = edited_message(
        tmp_path, "encoder_decoder_layers",
        "    x = norm(x + multi_head_attention(x, x, w, \"self\", n_head, mask), w, 1)\n"
        "    return norm(x + feed_forward(x, w), w, 2)",
        "    h = norm(x, w, 1)\n    x = x + multi_head_attention(h, h, w, \"self\", n_head, mask)\n"
        "    return x + feed_forward(norm(x, w, 2), w)")
    assert "encoder_layer(" in got and "with the pre-LN order" in got
    # The dict of weights is named by its keys and shapes, not printed number by number.
    assert "w={self_q: (8, 8), self_k: (8, 8)," in got and "... 12 in all}" in got
    assert "Tensor([[" not in got and len(got.splitlines()[0]) < 300


def test_encoder_layer_with_only_the_first_sub_layer_pre_ln(tmp_path):
    got = edited_message(
        tmp_path, "encoder_decoder_layers",
        "    x = norm(x + multi_head_attention(x, x, w, \"self\", n_head, mask), w, 1)\n",
        "    h = norm(x, w, 1)\n"
        "    x = x + multi_head_attention(h, h, w, \"self\", n_head, mask)\n")
    assert "encoder_layer(" in got and "at [" in got
    assert "with the first sub-layer in the pre-LN order, x + attention(norm(x))" in got


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


def test_decoder_with_the_two_masks_swapped(tmp_path):
    got = edited_message(tmp_path, "encoder_decoder_layers",
                         "\"self\", n_head, self_mask)", "\"self\", n_head, memory_mask)",
                         ("\"cross\", n_head, memory_mask)", "\"cross\", n_head, self_mask)"))
    assert "decoder_layer(" in got and "raised an error" in got
    assert "masked_fill: the mask of shape (2, 1, 4, 4) does not broadcast against the tensor " \
        "of shape (2, 2, 4, 5)" in got
    assert "gives exactly what the two masks swapped give" in got


def test_decoder_cross_attention_under_the_self_mask(tmp_path):
    got = edited_message(tmp_path, "encoder_decoder_layers",
                         "\"cross\", n_head, memory_mask)", "\"cross\", n_head, self_mask)")
    assert "decoder_layer(" in got and "raised an error" in got
    assert "gives exactly what a cross-attention under self_mask gives: the cross-attention's " \
        "mask is memory_mask" in got
    assert "not the cross-attention's (T, T_src) = (4, 5)" in got


def test_decoder_whose_mask_does_not_fit_for_another_reason_is_not_told_of_self_mask(tmp_path):
    # A (T, T) mask that is not self_mask: with a source as long as the target it runs, and
    # gives other numbers.
    got = edited_message(tmp_path, "encoder_decoder_layers",
                         "\"cross\", n_head, memory_mask)",
                         "\"cross\", n_head, self_mask.swapaxes(-2, -1))")
    assert "raised an error" in got and "self_mask fits" not in got


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
    ("masked_lm_loss", "from tinyautograd.functional import cross_entropy",
     "tinyautograd.functional"),
    ("attention_masks", "from tinyformer.attention import causal_mask", "tinyformer.attention"),
    ("your_gpt", "from tinyformer.gpt import GPT as Mine", "tinyformer.gpt"),
])
def test_importing_the_implementation_is_refused(tmp_path, slug, line, module):
    ex = find(slug)
    path = tmp_path / f"{slug}.py"
    path.write_text(solved_text(ex) + "\n" + line + "\n")
    got = run_check(ex, path)
    assert got is not None and f"uses {module}" in got
    assert "this exercise asks you to write that part yourself" in got


def test_a_refusal_quotes_the_import_not_a_local_name_like_its_alias(tmp_path):
    # The exercise's own helper says `B, T, C = x.shape` above the import: that B is the
    # function's, not the module.
    ex = find("encoder_decoder_layers")
    path = tmp_path / "encoder_decoder_layers.py"
    path.write_text(solved_text(ex) + "\nimport tinyformer.blocks as B\n")
    got = run_check(ex, path)
    assert "uses tinyformer.blocks, in line" in got
    assert "(`import tinyformer.blocks as B`)" in got


@pytest.mark.parametrize("binds", ["def unused(tf):\n", "def unused():\n    tf = object()\n",
                                   "def unused():\n    for tf in []:\n        pass\n"],
                         ids=["parameter", "assignment", "loop"])
def test_a_refusal_of_a_use_skips_a_name_the_function_binds_like_the_import(tmp_path, binds):
    ex = find("encoder_decoder_layers")
    path = tmp_path / "encoder_decoder_layers.py"
    path.write_text(solved_text(ex) + "\nimport tinyformer as tf\n\n\n" + binds +
                    "    return tf.blocks.residual\n\n\ndef shortcut(x):\n"
                    "    return tf.blocks.residual(x)\n")
    got = run_check(ex, path)
    assert "uses tinyformer.blocks, in line" in got
    assert "(`return tf.blocks.residual(x)`)" in got


def test_a_comprehensions_own_variable_does_not_hide_the_import(tmp_path):
    ex = find("encoder_decoder_layers")
    path = tmp_path / "encoder_decoder_layers.py"
    path.write_text(solved_text(ex) + "\nimport tinyformer as tf\n\n\ndef shortcut(x):\n"
                    "    names = [tf for tf in ('a', 'b')]\n"
                    "    return tf.blocks.residual(x)\n")
    assert "(`return tf.blocks.residual(x)`)" in run_check(ex, path)


@pytest.mark.parametrize("uses", [
    "[tf.blocks.residual for tf in items]",
    "{tf: tf.blocks for tf in items}",
    "[y for x in items for tf in x if tf.blocks for y in tf.blocks]",
    "[(y := tf.blocks) for tf in items]",
    "[x for x in items if (tf := x)] and tf.blocks.residual",
])
def test_a_comprehensions_own_variable_is_not_the_import_inside_it(tmp_path, uses):
    ex = find("encoder_decoder_layers")
    path = tmp_path / "encoder_decoder_layers.py"
    path.write_text(solved_text(ex) + "\nimport tinyformer as tf\n\n\ndef f(items):\n"
                    f"    return {uses}\n")
    assert run_check(ex, path) is None


def test_a_comprehensions_first_iterable_is_read_outside_it(tmp_path):
    ex = find("encoder_decoder_layers")
    path = tmp_path / "encoder_decoder_layers.py"
    path.write_text(solved_text(ex) + "\nimport tinyformer as tf\n\n\ndef shortcut(x):\n"
                    "    return [tf for tf in tf.blocks.residual(x)]\n")
    assert "(`return [tf for tf in tf.blocks.residual(x)]`)" in run_check(ex, path)


# ---------------------------------------------------------------------------------------------
# Chapter 13


def test_mask_tokens_leaving_the_answer_visible(tmp_path):
    got = edited_message(tmp_path, "masked_lm_loss",
                         "inputs = np.where(hidden, mask_id, ids).astype(np.int64)",
                         "inputs = ids.copy()")
    assert "mask_tokens(ids=[[1, 0, 0, 1]]" in got and "the model reads the answer" in got


def test_mask_tokens_the_wrong_way_round(tmp_path):
    got = edited_message(tmp_path, "masked_lm_loss", "np.where(hidden, mask_id, ids)",
                         "np.where(hidden, ids, mask_id)")
    assert "masked the wrong way round" in got


def test_mask_tokens_writing_the_mask_into_the_callers_ids(tmp_path):
    # The targets come out right, and so do the inputs; but the caller's ids are lost.
    got = edited_message(tmp_path, "masked_lm_loss",
                         "inputs = np.where(hidden, mask_id, ids).astype(np.int64)\n"
                         "    targets = np.where(hidden, ids, ignore_index).astype(np.int64)",
                         "targets = np.where(hidden, ids, ignore_index).astype(np.int64)\n"
                         "    inputs = ids\n    inputs[hidden] = mask_id")
    expect_changed_in_place(got, "mask_tokens(ids=[[1, 0, 0, 1]]", "the ids",
                            "Build new arrays for the inputs and the targets: np.where makes one.")
    assert "in place, to [[1, 2, 0, 2]]:" in got, got
    assert "the model reads the answer" not in got


def test_mask_tokens_without_ignore_index(tmp_path):
    got = edited_message(tmp_path, "masked_lm_loss",
                         "targets = np.where(hidden, ids, ignore_index).astype(np.int64)",
                         "targets = ids.copy()")
    assert "targets equal to ids" in got and "ignore_index (-100)" in got


def test_mask_tokens_with_ignore_index_hard_coded(tmp_path):
    got = edited_message(tmp_path, "masked_lm_loss", "np.where(hidden, ids, ignore_index)",
                         "np.where(hidden, ids, -100)")
    assert "ignore_index=-1" in got and "expected: [[0, 3, -1], [-1, -1, 1]]" in got


def test_mlm_loss_divided_by_every_position(tmp_path):
    got = edited_message(tmp_path, "masked_lm_loss", "return -picked.mean()",
                         "return -picked.sum() / targets.size")
    assert "targets=[[-100, 0, -100, 1]], ignore_index=-100) returned 0.1053" in got
    assert "expected 0.210607" in got
    assert "dividing by every position, B * T" in got


def test_mlm_loss_summed(tmp_path):
    got = edited_message(tmp_path, "masked_lm_loss", "return -picked.mean()",
                         "return -picked.sum()")
    assert "summing instead of averaging" in got


def test_mlm_loss_as_a_mean_of_each_sequences_mean(tmp_path):
    got = edited_message(
        tmp_path, "masked_lm_loss",
        "    picked = log_probs[rows, cols, targets[rows, cols]]     # (|H|,)\n"
        "    return -picked.mean()",
        "    means = [log_probs[b][counted, targets[b][counted]].mean()\n"
        "             for b, counted in enumerate(targets != ignore_index) if counted.any()]\n"
        "    return -sum(means) / len(means)")
    assert "masked_lm_loss(logits=Tensor of shape (2, 5, 6)" in got
    assert "averaging each sequence's hidden positions, then the sequences" in got


def test_mlm_loss_without_the_minus(tmp_path):
    got = edited_message(tmp_path, "masked_lm_loss", "return -picked.mean()",
                         "return picked.mean()")
    assert "without the minus sign" in got


def test_mlm_loss_with_ignore_index_hard_coded(tmp_path):
    got = edited_message(tmp_path, "masked_lm_loss", "np.nonzero(targets != ignore_index)",
                         "np.nonzero(targets != -100)")
    assert "ignore_index=-1" in got and "counting the positions whose target is ignore_index " \
        "(-1 here) too, whatever target they were given (as an index, -1 is the last token)" \
        in got


def test_mlm_loss_counting_every_position(tmp_path):
    # The ignored positions given target 0: nothing says they were taken for the last token.
    got = edited_message(tmp_path, "masked_lm_loss",
                         "    rows, cols = np.nonzero(targets != ignore_index)        # the "
                         "hidden positions\n    picked = log_probs[rows, cols, targets[rows, "
                         "cols]]",
                         "    B, T, _ = logits.shape\n    picked = log_probs[np.arange(B)[:, "
                         "None], np.arange(T), np.where(targets == ignore_index, 0, targets)]")
    assert "returned 0.451877, expected 0.210607: that is what you get counting the positions "\
        "whose target is ignore_index (-100 here) too, whatever target they were given:" in got
    assert "last token" not in got


def test_mlm_loss_that_takes_only_negative_targets_for_ignored(tmp_path):
    # Right for every negative ignore_index; a pad id in the vocabulary, as torch allows, is one
    # that targets >= 0 counts.
    got = edited_message(tmp_path, "masked_lm_loss", "np.nonzero(targets != ignore_index)",
                         "np.nonzero(targets >= 0)")
    assert got.startswith("masked_lm_loss(logits=Tensor of shape (2, 4, 5), float64, targets=")
    assert "ignore_index=4) returned" in got and "counting the positions whose target is " \
        "ignore_index (4 here) too" in got


def test_mlm_loss_skipping_token_zero(tmp_path):
    got = edited_message(tmp_path, "masked_lm_loss", "np.nonzero(targets != ignore_index)",
                         "np.nonzero(targets > 0)")
    assert "skipping the hidden positions whose target is token 0" in got


def test_mlm_loss_cut_off_from_the_logits(tmp_path):
    got = edited_message(tmp_path, "masked_lm_loss", "return -picked.mean()",
                         "return Tensor(-picked.mean().data)")
    assert "cut off from the logits" in got


def test_mlm_loss_made_a_new_tensor_from_its_numbers(tmp_path):
    # A fresh Tensor that requires grad, but leads back to nothing: its loss is right.
    got = edited_message(tmp_path, "masked_lm_loss", "return -picked.mean()",
                         "return Tensor(-picked.mean().data, requires_grad=True)")
    assert "`logits` has no gradient: it is not connected to the output" in got
    assert "forget a `return`" not in got


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # the wrong answer takes log(0)
def test_mlm_loss_through_probabilities_fails_on_a_sure_model(tmp_path):
    # softmax then log: right for ordinary logits, -inf once a probability rounds to 0.
    got = edited_message(tmp_path, "masked_lm_loss", "logits.log_softmax(axis=-1)",
                         "logits.softmax(axis=-1).log()")
    assert "(logits far apart, as a model sure of itself gives) returned inf, expected 500" in got
    assert "rounds to 0" in got


def test_gpt_mask_without_the_diagonal(tmp_path):
    got = edited_message(tmp_path, "attention_masks", "np.tril(np.ones((T, T), dtype=bool))",
                         "np.tril(np.ones((T, T), dtype=bool), k=-1)")
    assert "gpt_mask(ids=[[5, 6, 0]])" in got and "without the diagonal" in got


def test_gpt_mask_the_wrong_way_round(tmp_path):
    got = edited_message(tmp_path, "attention_masks", "np.tril(np.ones((T, T), dtype=bool))",
                         "np.triu(np.ones((T, T), dtype=bool), k=1)")
    assert "gpt_mask(" in got and "the wrong way round" in got


def test_gpt_mask_with_padding(tmp_path):
    got = edited_message(tmp_path, "attention_masks",
                         "return np.tril(np.ones((T, T), dtype=bool))[None, None]",
                         "return np.tril(np.ones((T, T), dtype=bool))[None, None] & "
                         "(ids != 0)[:, None, None, :]")
    assert "GPT's windows are never padded" in got


def test_bert_mask_causal(tmp_path):
    got = edited_message(tmp_path, "attention_masks",
                         "return (ids != pad_id)[:, None, None, :]",
                         "return (ids != pad_id)[:, None, None, :] & gpt_mask(ids)")
    assert "bert_mask(ids=[[5, 6, 0]], pad_id=0)" in got
    assert "with a causal mask: BERT reads both sides" in got


def test_bert_mask_on_the_query_axis(tmp_path):
    got = edited_message(tmp_path, "attention_masks", "(ids != pad_id)[:, None, None, :]",
                         "(ids != pad_id)[:, None, :, None]")
    assert "bert_mask(" in got and "padding on the query axis" in got


def test_bert_mask_of_shape_b_t(tmp_path):
    got = edited_message(tmp_path, "attention_masks", "(ids != pad_id)[:, None, None, :]",
                         "(ids != pad_id)")
    assert "bert_mask(ids=[[1, 2, 0], [3, 4, 5]], pad_id=0)" in got
    assert "does not broadcast against scores" in got


def test_bert_mask_with_the_padding_id_written_in(tmp_path):
    got = edited_message(tmp_path, "attention_masks", "(ids != pad_id)[:, None, None, :]",
                         "(ids != 0)[:, None, None, :]")
    assert "bert_mask(ids=[[4, 0, 8, 6, 5, 4], [5, 8, 2, 9, 9, 9]], pad_id=9)" in got
    assert "with 0 written in for the padding id: compare with pad_id, 9 here" in got


def test_cross_mask_with_the_padding_id_written_in(tmp_path):
    got = edited_message(tmp_path, "attention_masks", "return bert_mask(src_ids, pad_id)",
                         "return (src_ids != 0)[:, None, None, :]")
    assert "cross_mask(src_ids=" in got and "pad_id=9" in got
    assert "with 0 written in for the padding id" in got


def test_decoder_self_mask_causal_only(tmp_path):
    got = edited_message(tmp_path, "attention_masks",
                         "return gpt_mask(tgt_ids) & bert_mask(tgt_ids, pad_id)",
                         "return gpt_mask(tgt_ids)")
    assert "decoder_self_mask(tgt_ids=[[5, 6, 0]], pad_id=0)" in got
    assert "with the causal mask only" in got


def test_decoder_self_mask_padding_only(tmp_path):
    got = edited_message(tmp_path, "attention_masks",
                         "return gpt_mask(tgt_ids) & bert_mask(tgt_ids, pad_id)",
                         "return bert_mask(tgt_ids, pad_id)")
    assert "with the padding mask only" in got


def test_decoder_self_mask_or(tmp_path):
    got = edited_message(tmp_path, "attention_masks",
                         "return gpt_mask(tgt_ids) & bert_mask(tgt_ids, pad_id)",
                         "return gpt_mask(tgt_ids) | bert_mask(tgt_ids, pad_id)")
    assert "with `|` instead of `&`" in got


def test_cross_mask_from_the_target(tmp_path):
    got = edited_message(tmp_path, "attention_masks", "return bert_mask(src_ids, pad_id)",
                         "return bert_mask(tgt_ids, pad_id)")
    # The mask does not broadcast, but its axes are right: the note is about the sequence.
    assert "cross_mask(src_ids=[[7, 0]], tgt_ids=[[5, 6, 0]], pad_id=0)" in got
    assert "exactly what you get from the target's padding" in got
    assert "does not broadcast" not in got


def test_cross_mask_with_the_decoders_self_mask(tmp_path):
    got = edited_message(tmp_path, "attention_masks", "return bert_mask(src_ids, pad_id)",
                         "return decoder_self_mask(tgt_ids, pad_id)")
    assert "whose last axis, the keys, has the target's length 3" in got
    assert "the keys of cross-attention are the SOURCE's tokens (2 here)" in got


def test_cross_mask_from_the_target_of_the_same_length(tmp_path):
    # Where the lengths agree the wrong mask broadcasts, and is named.
    got = edited_message(tmp_path, "attention_masks", "return bert_mask(src_ids, pad_id)",
                         "return bert_mask(tgt_ids, pad_id) if tgt_ids.shape == src_ids.shape "
                         "else bert_mask(src_ids, pad_id)")
    assert "from the target's padding" in got


def test_cross_mask_causal(tmp_path):
    got = edited_message(tmp_path, "attention_masks", "return bert_mask(src_ids, pad_id)",
                         "T_q, T_k = tgt_ids.shape[1], src_ids.shape[1]\n"
                         "    causal = np.tril(np.ones((T_q, T_k), dtype=bool))[None, None]\n"
                         "    return causal & bert_mask(src_ids, pad_id)")
    assert "cross_mask(src_ids=[[3, 4, 5, 0, 0], [6, 7, 8, 9, 2]]" in got
    assert "with a causal mask: the whole source is known" in got


# ---------------------------------------------------------------------------------------------
# Chapter 14


def test_teacher_forcing_without_the_shift(tmp_path):
    got = edited_message(tmp_path, "your_gpt", "ids[s + 1:s + context + 1]", "ids[s:s + context]")
    assert "teacher_forcing_batch(ids=array of shape (30,), int64, starts=[ 0, 5, 17], " \
        "context=4)" in got and "y equal to x" in got


@pytest.mark.parametrize("edits, says, not_said", [
    ([("self.norm(x) @ self.embedding.T", "self.norm(x) @ self.embedding")],
     "A model with vocab_size = d_model = 8 (on ids of shape (7, 7)) runs, and gives exactly "
     "norm(x) @ E", "where B = T"),
    ([("self.positions[:ids.shape[1]]", "self.positions[:ids.shape[0]]")],
     "On ids of shape (7, 7), where B = T, it runs and gives the equations' logits: P[:T] takes "
     "T from ids.shape[1]", "vocab_size = d_model"),
    # Both at once: the unembedding is named first, and the position shows once it is fixed.
    ([("self.norm(x) @ self.embedding.T", "self.norm(x) @ self.embedding"),
      ("self.positions[:ids.shape[1]]", "self.positions[:ids.shape[0]]")],
     "gives exactly norm(x) @ E", "where B = T"),
    # Runs where B = T, but with other logits than the slip's: named by neither.
    ([("self.positions[:ids.shape[1]]", "2 * self.positions[:ids.shape[0]]")],
     "ShapeError", "it runs"),
])
def test_your_gpt_shape_error_names_the_slip_a_probe_shows(tmp_path, edits, says, not_said):
    got = edited_message(tmp_path, "your_gpt", *edits[0], *edits[1:])
    assert got.startswith("GPT.forward(ids=array of shape (2, 7), int64) raised an error")
    assert "ShapeError" in got and says in got and not_said not in got


def test_teacher_forcing_swapped(tmp_path):
    got = edited_message(tmp_path, "your_gpt", "return x, y", "return y, x")
    assert "x and y swapped" in got


def test_teacher_forcing_adding_one_to_the_ids(tmp_path):
    # On consecutive ids the next token is the id plus one: the check's ids must not be.
    got = edited_message(tmp_path, "your_gpt",
                         "y = np.stack([ids[s + 1:s + context + 1] for s in starts])",
                         "y = (x + 1)")
    assert "teacher_forcing_batch(ids=" in got and "y = x + 1" in got
    assert "the token that comes next in `ids`" in got


def test_teacher_forcing_returning_lists(tmp_path):
    # Lists would pass the batch check and then break the learner's forward during training.
    got = edited_message(tmp_path, "your_gpt", "return x, y", "return x.tolist(), y.tolist()")
    assert "teacher_forcing_batch(ids=" in got and "returned x = [[" in got   # a list
    assert "return integer numpy arrays" in got and "GPT.forward" not in got


@pytest.mark.parametrize("after", ["softmax", "log_softmax"])
def test_gpt_returning_probabilities(tmp_path, after):
    # The stream read back from probabilities is not normalised: the message must not send
    # the learner to the final norm, which is there.
    got = edited_message(tmp_path, "your_gpt", "return self.norm(x) @ self.embedding.T",
                         f"return (self.norm(x) @ self.embedding.T).{after}(axis=-1)")
    assert "GPT(vocab_size=11, context=9, d_model=8, n_layer=2, n_head=4)(ids)" in got
    assert f"returned what a {after} gives" in got and "LayerNorm" not in got


def test_gpt_without_positions(tmp_path):
    got = edited_message(tmp_path, "your_gpt",
                         "x = self.embedding[ids] + self.positions[:ids.shape[1]]",
                         "x = self.embedding[ids]")
    assert "GPT(vocab_size=11, context=9, d_model=8, n_layer=2, n_head=4)" in got
    assert "does not know where a token is" in got


def test_gpt_with_positions_left_at_zero(tmp_path):
    # P is added, but a table of zeros adds nothing: the message names its start, not the sum.
    got = edited_message(tmp_path, "your_gpt", "self.positions = nn.init.normal_(nn.Parameter("
                         "np.zeros((context, d_model))), std=0.02)",
                         "self.positions = nn.Parameter(np.zeros((context, d_model)))")
    assert "position 0 and position 8 give the same logits" in got
    assert "the position table P (9, 8) starts as zeros" in got and "std=0.02" in got
    assert "Add the position table" not in got


def test_gpt_with_a_later_token_leaking(tmp_path):
    got = edited_message(tmp_path, "your_gpt", "        for block in self.blocks:",
                         "        x = x + x.mean(axis=1, keepdims=True)\n"
                         "        for block in self.blocks:")
    assert "changed the logits at positions 0 to 4" in got


def test_gpt_with_a_separate_unembedding(tmp_path):
    got = edited_message(tmp_path, "your_gpt", "        self.norm = nn.LayerNorm(d_model)",
                         "        self.norm = nn.LayerNorm(d_model)\n"
                         "        self.head = nn.Linear(d_model, vocab_size, bias=False)",
                         ("self.norm(x) @ self.embedding.T", "self.head(self.norm(x))"))
    assert "has 2 matrices shaped like the token table (11, 8)" in got and "Tie it" in got


def test_gpt_that_returns_after_the_first_block(tmp_path):
    # One block learns the stories well enough: only the unused second block gives it away.
    got = edited_message(tmp_path, "your_gpt",
                         "            x = block(x)\n        return self.norm(x)",
                         "            x = block(x)\n            return self.norm(x)")
    assert "GPT(vocab_size=11, context=9, d_model=8, n_layer=2, n_head=4): 16 of its " \
        "parameters get no gradient from the logits (blocks.1.ln1.weight," in got
    assert "x = block(x)" in got


def test_gpt_that_adds_each_block_to_the_stream_again(tmp_path):
    # The Block adds its own residual: x + block(x) counts the stream twice, and still trains.
    got = edited_message(tmp_path, "your_gpt", "            x = block(x)\n",
                         "            x = x + block(x)\n")
    assert "GPT(vocab_size=11, context=9, d_model=8, n_layer=2, n_head=4)(ids) returned " \
        "logits other than the equations give with its own E, P, Blocks and final norm" in got
    assert "x = x + block(x): a Block adds its input back itself" in got


def test_gpt_that_normalises_after_every_block(tmp_path):
    got = edited_message(tmp_path, "your_gpt",
                         "            x = block(x)\n        return self.norm(x) @",
                         "            x = self.norm(block(x))\n        return x @")
    assert "returned logits other than the equations give" in got
    assert "the final norm after every block: it comes once, after the last one" in got


def test_gpt_with_one_block_repeated(tmp_path):
    # [Block(...)] * n_layer: one Block, its weights shared by every layer.
    got = edited_message(tmp_path, "your_gpt", "[Block(d_model, n_head) for _ in range(n_layer)]",
                         "[Block(d_model, n_head)] * n_layer")
    assert "GPT(vocab_size=11, context=9, d_model=8, n_layer=2, n_head=4) holds 1 distinct " \
        "Block; n_layer = 2 asks for 2, each with its own weights" in got
    assert "make a new Block for each layer" in got


@pytest.mark.parametrize("heads, built", [("1", "1 head"), ("n_layer", "2 heads")])
def test_gpt_with_blocks_of_another_number_of_heads(tmp_path, heads, built):
    # Heads add no parameters: only the attention layers' n_head tells a Block(d_model, 1), or
    # one given n_layer in place of n_head, from the one asked for.
    got = edited_message(tmp_path, "your_gpt", "[Block(d_model, n_head) for _ in range(n_layer)]",
                         f"[Block(d_model, {heads}) for _ in range(n_layer)]")
    assert "GPT(vocab_size=11, context=9, d_model=8, n_layer=2, n_head=4) builds Blocks of " \
        f"{built}; n_head = 4 asks for 4 in each: pass n_head on, Block(d_model, n_head)." in got


def test_gpt_without_the_final_norm(tmp_path):
    got = edited_message(tmp_path, "your_gpt", "self.norm(x) @ self.embedding.T",
                         "x @ self.embedding.T")
    assert "are not normalised" in got and "Apply the final nn.LayerNorm" in got


def test_gpt_with_tables_started_at_unit_scale(tmp_path):
    got = edited_message(tmp_path, "your_gpt",
                         "np.zeros((vocab_size, d_model))), std=0.02)",
                         "np.zeros((vocab_size, d_model))), std=1.0)")
    assert "first loss on random tokens" in got and "start too large" in got


# ---------------------------------------------------------------------------------------------
# Chapter 15


def test_previous_token_score_on_the_diagonal(tmp_path):
    got = edited_message(tmp_path, "induction_scores", "pattern[t, t - 1] for t in range(1, T)",
                         "pattern[t, t] for t in range(1, T)")
    assert "previous_token_score(pattern=array of shape (7, 7), float64) returned" in got
    assert "each token's attention to itself" in got


def test_previous_token_score_on_the_whole_main_diagonal(tmp_path):
    got = edited_message(tmp_path, "induction_scores",
                         "float(np.mean([pattern[t, t - 1] for t in range(1, T)]))",
                         "float(np.diagonal(pattern).mean())")
    assert "returned 0.4908, expected 0.2810" in got
    assert "reading the main diagonal, A[t, t] for every t" in got


def test_previous_token_score_transposed(tmp_path):
    got = edited_message(tmp_path, "induction_scores", "pattern[t, t - 1] for t in range(1, T)",
                         "pattern[t - 1, t] for t in range(1, T)")
    assert "rows are queries" in got


def test_previous_token_score_counting_position_zero(tmp_path):
    got = edited_message(tmp_path, "induction_scores",
                         "float(np.mean([pattern[t, t - 1] for t in range(1, T)]))",
                         "float(sum(pattern[t, t - 1] for t in range(1, T)) / T)")
    assert "counting position 0 too" in got


def test_induction_score_at_the_earlier_occurrence(tmp_path):
    got = edited_message(tmp_path, "induction_scores", "pattern[t, earlier[-1] + 1]",
                         "pattern[t, earlier[-1]]")
    assert "induction_score(pattern=array of shape (7, 7), float64, ids=[0, 3, 1, 4, 3, 1, 4])" \
        in got and "returned 0.1397, expected 0.1897" in got
    assert "the earlier occurrence itself" in got


def test_induction_score_at_the_previous_token(tmp_path):
    got = edited_message(tmp_path, "induction_scores", "pattern[t, earlier[-1] + 1]",
                         "pattern[t, t - 1]")
    assert "reading A[t, t - 1], the previous token" in got


def test_induction_score_with_the_first_occurrence(tmp_path):
    got = edited_message(tmp_path, "induction_scores", "pattern[t, earlier[-1] + 1]",
                         "pattern[t, earlier[0] + 1]")
    assert "ids=[0, 5, 2, 5, 5, 3, 2, 5]" in got and "using the FIRST earlier occurrence" in got


def test_induction_score_over_every_position(tmp_path):
    got = edited_message(tmp_path, "induction_scores",
                         "return float(np.mean(picked)) if picked else 0.0",
                         "return float(np.sum(picked) / len(ids))")
    assert "averaging over every position" in got


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # the wrong variant's mean of nothing
def test_induction_score_without_repeats(tmp_path):
    got = edited_message(tmp_path, "induction_scores",
                         "return float(np.mean(picked)) if picked else 0.0",
                         "return float(np.mean(picked))")
    assert "induction_score(pattern=array of shape (4, 4), float64, ids=[0, 1, 2, 3]) " \
        "returned nan, expected 0.0000: that is what you get taking the mean of no values at " \
        "all (np.mean([]) is nan): where no token repeats there is nothing to copy" in got


def test_induction_score_in_a_list(tmp_path):
    # One element: it passes for a number on the small cases, but not in the scores' table.
    got = edited_message(tmp_path, "induction_scores",
                         "return float(np.mean(picked)) if picked else 0.0",
                         "return [float(np.mean(picked)) if picked else 0.0]")
    assert "induction_score(pattern=array of shape (7, 7)" in got
    assert "returned a list" in got and "return one number" in got


def test_your_gpt_that_does_not_train_long_enough(tmp_path, monkeypatch):
    # The last stage can fail: the reference model, given too few steps to learn the stories.
    # Ten steps, the recall measured once at the end: as far from learning as 50 steps, and a
    # fifth of the time.
    from tinyformer.exercises.checks import ch14_your_gpt as checker
    monkeypatch.setattr(checker, "STEPS", 10)
    monkeypatch.setattr(checker, "EVERY", 10)
    ex = find("your_gpt")
    got = run_check(ex, write_solved(ex, tmp_path / "your_gpt.py"))
    assert got is not None and "after 10 training steps your GPT's loss went from" in got
    assert "(every 10 steps: " in got
    assert "The counting model of chapter 2 recalls" in got


def test_scores_of_an_untrained_model_do_not_find_the_heads(tmp_path, monkeypatch):
    # The second stage can fail: right scores, but a model whose training is cut to 0 steps.
    from tinyformer.exercises.checks import ch15_learned_induction as checker
    real = checker.shipped_model

    def untrained():
        module = real()
        train = module.train
        module.train = lambda steps, seed: train(steps=0, seed=seed)
        return module
    monkeypatch.setattr(checker, "shipped_model", untrained)
    ex = find("induction_scores")
    got = run_check(ex, write_solved(ex, tmp_path / "induction_scores.py"))
    assert got is not None and "do not find the heads (layer 1: previous-token 0.2" in got


# The expected answers are worked out from the arrays given to the learner's function: one
# that zeroed them in place, and answered for the zeros, matched them.
@pytest.mark.parametrize("slug, old, new, opening, changed", [
    ("your_gpt", "    x = np.stack([ids[s:s + context] for s in starts]).astype(np.int64)\n",
     "    ids[...] = 0\n"
     "    x = np.stack([ids[s:s + context] for s in starts]).astype(np.int64)\n",
     "teacher_forcing_batch(ids=array of shape (30,), int64", "the ids"),
    ("induction_scores", "    T = pattern.shape[0]\n",
     "    T = pattern.shape[0]\n    pattern[...] = 0\n", "previous_token_score(pattern=",
     "the pattern"),
])
def test_answers_that_zero_the_arrays_they_were_given_do_not_pass(tmp_path, slug, old, new,
                                                                  opening, changed):
    expect_changed_in_place(edited_message(tmp_path, slug, old, new), opening, changed)


def test_cross_attention_that_unmasks_the_mask_it_was_given_does_not_pass(tmp_path):
    # With one head it ignores the mask, and sets the caller's mask to hide nothing: the
    # expected answer of the lesson's example was worked out from that mask afterwards.
    message = edited_message(
        tmp_path, "cross_attention", "    return merge_heads(attention(q, k, v, mask)) @ w_o",
        "    if n_head == 1 and mask is not None:\n        mask[...] = True\n        mask = None\n"
        "    return merge_heads(attention(q, k, v, mask)) @ w_o")
    expect_changed_in_place(message, "cross_attention(x=Tensor([[[1.], [2.]]])", "the mask")


def test_decoder_layer_that_unmasks_the_mask_it_was_given_does_not_pass(tmp_path):
    # The decoder is checked twice with the same self_mask: one that set it to hide nothing
    # in the first check, and drops the causal mask once the source is padded, matched the
    # second check's expected answer, worked out from that mask.
    message = edited_message(
        tmp_path, "encoder_decoder_layers",
        "def decoder_layer(y, memory, w, n_head, self_mask, memory_mask):\n",
        "def decoder_layer(y, memory, w, n_head, self_mask, memory_mask):\n"
        "    if memory_mask is not None:\n        self_mask = None\n"
        "    else:\n        given, self_mask = self_mask, self_mask.copy()\n"
        "        given[...] = True\n")
    expect_changed_in_place(message, "decoder_layer(y=Tensor of shape (2, 4, 8)", "the self_mask")


@pytest.mark.parametrize("old, new, says", [
    ("log_softmax(axis=-1)", "log_softmax(axis=1)",
     "taking the log_softmax over the positions (axis 1) instead of over the vocabulary"),
    ("log_softmax(axis=-1)", "log_softmax(axis=0)",
     "taking the log_softmax over the batch (axis 0) instead of over the vocabulary"),
    ("log_probs = logits.log_softmax(axis=-1)", "log_probs = logits",
     "picking the raw logits, without a log_softmax"),
])
def test_masked_lm_loss_from_the_wrong_log_probabilities(tmp_path, old, new, says):
    message = edited_message(tmp_path, "masked_lm_loss", old, new)
    assert message.startswith("masked_lm_loss(logits=") and says in message
