"""Chapter 11 (weights by hand): a wrong set of weights gets a message that says what the model
did wrong, where, and what its attention looked at; a wrong dict says which weight is off."""

from solutions import edited_message

from tinyformer.exercises import find, run_check


def test_all_zero_weights_predict_nothing(tmp_path):
    zeros = "    W_emb[:] = 0\n    W_U[:] = 0\n    return dict(W_emb"
    got = edited_message(tmp_path, "attend_to_first", "    return dict(W_emb", zeros)
    assert "make_weights(vocab_size=6, context=8)" in got
    assert "on sequence [3 1 4 1 5] at position 0" in got
    assert "all 6 logits are equal" in got and "expected 3 (the first token)" in got


def test_unembedding_that_reads_the_token_slot_predicts_the_current_token(tmp_path):
    got = edited_message(tmp_path, "attend_to_first", "W_U[COPY, :]", "W_U[TOKEN, :]")
    assert "at position 1: predicted 1 (= the token at position 1 itself)" in got
    assert "expected 3 (the first token)" in got
    assert "attention at position 1: 1.00 on position 0" in got     # attention was fine
    assert "The attention looks where it should, so what it carries is wrong" in got


def test_positional_embedding_with_the_wrong_shape(tmp_path):
    got = edited_message(tmp_path, "attend_to_first", "W_pos = np.zeros((context, d_model))\n"
                         "    W_pos[:, POS] = np.eye(context)", "W_pos = np.zeros((V, d_model))")
    assert "`W_pos` has shape (6, 20)" in got
    assert "(context, d_model) = (8, 20)" in got and "from the shape of W_emb" in got


def test_key_shifted_the_wrong_way(tmp_path):
    got = edited_message(tmp_path, "previous_token", "np.eye(context, k=1)",
                         "np.eye(context, k=-1)")
    assert "on sequence [3 1 4 1 5] at position 1" in got
    assert "expected 3 (the previous token, at position 0)" in got
    assert "attention at position 1: 0.50 on position 0" in got


def test_softmax_not_sharp_enough_for_a_long_context(tmp_path):
    # 5 is sharp enough for the first short sequences but not once the context is 16 long:
    # the message must show the thin attention on the previous position.
    got = edited_message(tmp_path, "previous_token", "scale = 20.0 * np.sqrt(context)",
                         "scale = 5.0")
    assert "make_weights(vocab_size=10, context=16)" in got
    assert "(the previous token, at position" in got
    assert "attention at position" in got and "(the previous one)" in got


def test_attend_to_first_too_soft_for_one_repeated_token(tmp_path):
    # e^3 = 20 outweighs the other positions of every random sequence, which spread over
    # several tokens, but not 23 positions that all hold the same one.
    got = edited_message(tmp_path, "attend_to_first", "W_K[V + 0, 0] = 20.0",
                         "W_K[V + 0, 0] = 3.0")
    assert "on sequence [0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1] at position 21" in got
    assert "expected 0 (the first token)" in got
    assert "Every other position holds the same token here" in got
    assert "e^s must outweigh context - 1" in got


def test_previous_token_too_soft_for_one_repeated_token(tmp_path):
    # A score of 4 after the division by sqrt(d_head): e^4 = 55 < 63 others at context 64.
    got = edited_message(tmp_path, "previous_token", "scale = 20.0 * np.sqrt(context)",
                         "scale = 4.0 * np.sqrt(context)")
    assert "make_weights(vocab_size=5, context=64)" in got
    assert "1 1 1 0 1] at position 63" in got
    assert "expected 0 (the previous token, at position 62)" in got
    assert "Every other position holds the same token here" in got


def test_misspelled_weight_name(tmp_path):
    got = edited_message(tmp_path, "previous_token", "W_Q=W_Q,", "W_q=W_Q,")
    assert "without `W_Q` and with `W_q`" in got and "capital letters" in got


def test_induction_key_reading_the_token_instead_of_the_previous_token(tmp_path):
    got = edited_message(tmp_path, "induction_head", "W_K2[PREV, :]", "W_K2[TOKEN, :]")
    assert "on sequence [0 3 1 4 3 1 4] at position 4: predicted 3" in got
    assert "expected 1 (the token after the earlier 3 at position 1)" in got
    assert "layer 2 attention at position 4: 0.00 on position 2" in got
    assert "layer 1 attention at position 2: 1.00 on position 1" in got
    assert "looks where it should" not in got


def test_induction_value_reading_the_previous_token(tmp_path):
    # Both layers attend rightly; layer 2 fetches the wrong slot, and predicts the token itself.
    got = edited_message(tmp_path, "induction_head", "W_V2[TOKEN, :]", "W_V2[PREV, :]")
    assert "at position 4: predicted 3 (= the token at position 4 itself)" in got
    assert "layer 2 attention at position 4: 1.00 on position 2" in got
    assert "The attention looks where it should, so what it carries is wrong: the value and " \
        "output weights (W_V, W_O), or what W_U reads." in got


def test_induction_output_projection_of_the_wrong_shape(tmp_path):
    got = edited_message(tmp_path, "induction_head", "W_O2 = np.zeros((V, d_model))\n"
                         "    W_O2[:, OUT] = np.eye(V)", "W_O2 = np.zeros((context, d_model))\n"
                         "    W_O2[:V, OUT] = np.eye(V)")
    assert "`W_O2` has shape (8, 26)" in got
    assert "(d_value2, d_model) = (6, 26)" in got and "from the shape of W_V2" in got


def test_random_weights_fail_on_the_first_sequence(tmp_path):
    path = tmp_path / "induction_head.py"
    path.write_text(
        "import numpy as np\n\n"
        "def make_weights(vocab_size, context):\n"
        "    rng = np.random.default_rng(0)\n"
        "    d = 3 * vocab_size + context\n"
        "    shapes = dict(W_emb=(vocab_size, d), W_pos=(context, d), W_U=(d, vocab_size))\n"
        "    for layer in '12':\n"
        "        shapes.update({f'W_Q{layer}': (d, 4), f'W_K{layer}': (d, 4),\n"
        "                       f'W_V{layer}': (d, 4), f'W_O{layer}': (4, d)})\n"
        "    return {name: rng.normal(size=shape) for name, shape in shapes.items()}\n")
    got = run_check(find("induction_head"), path)
    assert got is not None and "on sequence [0 3 1 4 3 1 4] at position" in got
    assert "the token after the earlier" in got and "layer 2 attention" in got
