"""The bridge (chapter 3's last exercise): each known-wrong variant of the ReLU feature layer
fails with a message that names the mistake."""

from solutions import edited_message

from tinyformer.exercises import find, run_check


def test_bias_forgotten_is_named(tmp_path):
    got = edited_message(tmp_path, "pair_features", "return W, -np.ones(len(pairs))",
                         "return W, np.zeros(len(pairs))")
    assert "feature_weights(vocab_size=3, pairs=[(0, 2), (1, 2)])" in got
    assert "with a bias of 0: then a half match fires too" in got


def test_halves_swapped_are_named(tmp_path):
    got = edited_message(tmp_path, "pair_features", "W[a, p] = 1.0", "W[vocab_size + a, p] = 1.0",
                         ("W[vocab_size + b, p] = 1.0", "W[b, p] = 1.0"))
    assert "with the halves swapped" in got


def test_relu_forgotten_is_named(tmp_path):
    got = edited_message(tmp_path, "pair_features", "np.maximum(X @ W + bias, 0.0)", "X @ W + bias")
    assert "detect_pairs(ids=[2, 0, 2, 1, 2, 1, 1]" in got and "without the ReLU" in got


def test_relu_without_bias_in_detect_pairs_is_named(tmp_path):
    got = edited_message(tmp_path, "pair_features", "np.maximum(X @ W + bias, 0.0)",
                         "np.maximum(X @ W, 0.0)")
    assert "without the bias: a half match" in got


def test_inputs_with_the_current_word_first_are_named(tmp_path):
    got = edited_message(tmp_path, "pair_features",
                         "[one_hot(ids[:-1], vocab_size), one_hot(ids[1:], vocab_size)]",
                         "[one_hot(ids[1:], vocab_size), one_hot(ids[:-1], vocab_size)]")
    assert "pair_inputs(ids=[0, 2], vocab_size=3)" in got and "with the current word first" in got


def test_importing_the_feed_forward_network_is_refused(tmp_path):
    ex = find("pair_features")
    path = tmp_path / "pair_features.py"
    path.write_text(ex.source.read_text() + "\nfrom tinyformer.layers import FeedForward\n")
    got = run_check(ex, path)
    assert "uses tinyformer.layers" in got and "`from tinyformer.layers import FeedForward`" in got
    assert "asks you to write that part yourself" in got
