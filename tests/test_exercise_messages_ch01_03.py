"""What the checkers of chapters 1-3 say to realistic wrong answers: each message must name the
function and say what differs."""

import re

import pytest
from solutions import edited_message, expect_changed_in_place, write_solved

from tinyformer.exercises import find, run_check


# --- chapter 1 ------------------------------------------------------------------------------

def test_one_hot_off_by_one(tmp_path):
    message = edited_message(tmp_path, "one_hot", "ids] = 1.0", "ids - 1] = 1.0")
    assert "one_hot(ids=[2, 0, 3], vocab_size=4)" in message and "at [" in message


@pytest.mark.parametrize("line, changed, given", [
    ("dtype=np.float32", "dtype=int", "an array of dtype int64"),
    ("return out", "return out.tolist()", "a list"),
])
def test_one_hot_of_another_type_than_its_docstring_says(tmp_path, line, changed, given):
    message = edited_message(tmp_path, "one_hot", line, changed)
    assert message.startswith("one_hot(ids=[2, 0, 3], vocab_size=4) returned " + given)
    assert "dtype float32, as the docstring says" in message


def test_one_hot_with_a_breakpoint_is_told_why_the_debugger_quit(tmp_path):
    # breakpoint() in a check reads its commands from an empty stdin and quits with BdbQuit,
    # whose message is empty: raising it stands for that here, where pytest holds stdin.
    message = edited_message(tmp_path, "one_hot", "return out",
                             "import bdb\n    raise bdb.BdbQuit")
    assert "BdbQuit" in message and "python -i one_hot.py" in message


def test_dot_adds_instead_of_multiplying(tmp_path):
    message = edited_message(tmp_path, "dot_and_matmul", "x * y", "x + y")
    assert "dot(a=[1., 2., 3.], b=[4., 5., 6.])" in message and "expected 32" in message


def test_matmul_takes_a_row_of_b_for_a_column(tmp_path):
    message = edited_message(tmp_path, "dot_and_matmul", "B[:, j]", "B[j, :]")
    assert message.startswith("matmul(") and "at [1, 0]: expected 43, got 39" in message


@pytest.mark.parametrize("old, new, call, used, instead", [
    ("    C = np.zeros((A.shape[0], B.shape[1]))", "    return A @ B", "matmul(A=[[1., 2.]",
     "(`@`)", "fill C[i, j] with your `dot`"),
    ("    C = np.zeros((A.shape[0], B.shape[1]))", "    return np.einsum('ik,kj->ij', A, B)",
     "matmul(A=[[1., 2.]", "(np.einsum)", "fill C[i, j] with your `dot`"),
    ("    total = 0.0", "    return np.dot(a, b)", "dot(a=[1., 2., 3.]", "(np.dot)",
     "add up a[k] * b[k] in a loop"),
    ("    total = 0.0", "    return a.dot(b)", "dot(a=[1., 2., 3.]", "(np.dot)",
     "add up a[k] * b[k] in a loop"),
    ("    total = 0.0", "    return a @ b", "dot(a=[1., 2., 3.]", "(`@`)",
     "add up a[k] * b[k] in a loop"),
])
def test_dot_and_matmul_by_numpys_own_product_are_refused(tmp_path, old, new, call, used,
                                                         instead):
    # The values are numpy's own, right to the last bit: only the product used tells.
    message = edited_message(tmp_path, "dot_and_matmul", old, new)
    assert message.startswith(call) and f"uses numpy's own product {used}" in message
    assert instead in message


def test_dot_and_matmul_by_hand_in_other_ways_pass(tmp_path):
    # A product written by hand, without the reference's loops, is not refused.
    ex = find("dot_and_matmul")
    other = ("def dot(a, b):\n    return float(np.sum(a * b))\n\n"
             "def matmul(A, B):\n    return np.array([[sum(A[i, k] * B[k, j] for k in "
             "range(A.shape[1])) for j in range(B.shape[1])] for i in range(A.shape[0])])\n")
    assert run_check(ex, write_solved(ex, tmp_path / "dot_and_matmul.py", other)) is None


def test_matmul_into_an_array_of_integers_says_so(tmp_path):
    message = edited_message(tmp_path, "dot_and_matmul", "C = np.zeros((A.shape[0], B.shape[1]))",
                             "C = np.zeros((A.shape[0], B.shape[1]), dtype=int)")
    assert message.startswith("matmul(") and "an array of integers (int64)" in message


@pytest.mark.parametrize("old, new, call, words", [
    ("return one_hot(ids, table.shape[0]) @ table", "return table[np.asarray(ids)]",
     "lookup_by_matmul(", "gives the right rows without a matrix product"),
    ("return table[np.asarray(ids)]", "return one_hot(ids, len(table)) @ table",
     "lookup_by_index(", "uses a matrix product (`@`)"),
])
def test_each_lookup_must_take_its_own_way(tmp_path, old, new, call, words):
    # Both give the same rows, which is the exercise's point: only the way differs.
    message = edited_message(tmp_path, "table_lookup", old, new)
    assert message.startswith(call) and words in message


def test_lookup_with_the_wrong_size_of_one_hot(tmp_path):
    message = edited_message(tmp_path, "table_lookup", "one_hot(ids, table.shape[0])",
                             "one_hot(ids, table.shape[1])")
    assert "lookup_by_matmul(ids=[2]" in message and "raised an error" in message


def test_lookup_by_index_not_written_says_which_line_to_replace(tmp_path):
    # One line that says what to do: it named the line that still raises, and left the
    # learner to guess that their code goes in its place.
    message = edited_message(tmp_path, "table_lookup", "return table[np.asarray(ids)]",
                             "raise NotImplementedError")
    assert re.fullmatch(r"`lookup_by_index` is not written yet: table_lookup\.py line \d+ "
                        r"still raises NotImplementedError; replace that line with your "
                        r"code\.", message), message


# --- chapter 2 ------------------------------------------------------------------------------

def test_transition_counts_transposed(tmp_path):
    message = edited_message(
        tmp_path, "markov_first_order",
        "counts[vocab.index(word), vocab.index(following)]",
        "counts[vocab.index(following), vocab.index(word)]")
    assert message.startswith("transition_counts(") and "at [" in message
    assert "exactly what you get counting [next word, word], the table transposed" in message


def test_transition_counts_as_a_list(tmp_path):
    # Right numbers, but normalise_rows(counts) would then fail on counts.sum(...).
    message = edited_message(tmp_path, "markov_first_order", "    return counts\n",
                             "    return counts.tolist()\n")
    assert message.startswith("transition_counts(") and "returned a list" in message
    assert "return a numpy array" in message


def test_transition_counts_off_by_one_says_which_words(tmp_path):
    message = edited_message(tmp_path, "markov_first_order",
                             "for word, following in zip(words, words[1:]):",
                             "for word, following in zip(words, words[2:]):")
    assert message.startswith("transition_counts(") and "right after" in message


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the wrong answer divides by zero
def test_normalise_divides_by_zero(tmp_path):
    message = edited_message(
        tmp_path, "markov_first_order",
        "np.divide(counts, sums, out=np.zeros_like(counts, dtype=float), where=sums > 0)",
        "counts / sums")
    assert "normalise_rows(" in message and "at [1, 0]: expected 0, got nan" in message
    assert "a row of zeros stays zeros" in message


def test_normalise_in_place_is_told_to_leave_the_counts_alone(tmp_path):
    # The right table, written over the caller's counts: the counts are lost.
    message = edited_message(
        tmp_path, "markov_first_order",
        "return np.divide(counts, sums, out=np.zeros_like(counts, dtype=float), where=sums > 0)",
        "np.divide(counts, np.where(sums > 0, sums, 1), out=counts)\n    return counts")
    expect_changed_in_place(
        message, "normalise_rows(counts=[[1., 3.], [0., 0.], [2., 2.]])", "the counts",
        "The counts must stay counts: divide into a new array and return that.")


@pytest.mark.parametrize("sums", ["counts.sum(axis=0, keepdims=True)",
                                  "counts.sum(axis=0)"])
def test_normalise_columns(tmp_path, sums):
    message = edited_message(tmp_path, "markov_first_order",
                             "sums = counts.sum(axis=1, keepdims=True)", f"sums = {sums}")
    assert "normalise_rows(" in message
    assert "exactly what you get normalising the columns: each ROW" in message


def test_predict_next_forgets_words_never_followed(tmp_path):
    message = edited_message(tmp_path, "markov_first_order", "if not row.any():", "if False:")
    assert "predict_next(word='please'" in message and "returned 'show'; expected None" in message


def test_pair_row_swapped(tmp_path):
    message = edited_message(
        tmp_path, "markov_second_order",
        "counts[vocab.index(first) * V + vocab.index(second), vocab.index(following)]",
        "counts[vocab.index(second) * V + vocab.index(first), vocab.index(following)]")
    assert message.startswith("pair_counts(")
    assert ("That is exactly what you get with the pair's two indices swapped: the pair (first, "
            "second) is row first * V + second") in message


def test_predict_after_pair_with_the_row_of_first_order(tmp_path):
    message = edited_message(tmp_path, "markov_second_order",
                             "probs[vocab.index(first) * len(vocab) + vocab.index(second)]",
                             "probs[vocab.index(second)]")
    assert "predict_after_pair(first='battery', second='ran'" in message
    assert "returned None; expected 'down'" in message


def test_skip_features_include_the_current_word(tmp_path):
    message = edited_message(tmp_path, "second_order_skips", "set(words[:t])",
                             "set(words[:t + 1])")
    assert message.startswith("skip_weights(") and "somewhere before it" in message


def test_vote_counts_a_repeated_word_twice(tmp_path):
    message = edited_message(tmp_path, "second_order_skips", "for w in set(context[:-1]):",
                             "for w in context[:-1]:")
    assert "vote(context=['check', 'the', 'the', 'battery']" in message
    assert "is the vote for" in message


def test_mistakes_start_at_one_word(tmp_path):
    message = edited_message(tmp_path, "second_order_skips", "range(2, len(words))",
                             "range(1, len(words))")
    assert message.startswith("mistakes(") and "entry 0 should be" in message


def test_mistakes_miss_the_last_position(tmp_path):
    message = edited_message(tmp_path, "second_order_skips", "range(2, len(words))",
                             "range(2, len(words) - 2)")
    assert "returned 2 mistakes; there are 3" in message and "Missing" in message


def test_mistakes_stop_one_word_early(tmp_path):
    # On the corpus the weights were counted from, no sentence's last word is mispredicted.
    message = edited_message(tmp_path, "second_order_skips", "range(2, len(words))",
                             "range(2, len(words) - 1)")
    assert message.startswith("mistakes(sentences=['check the server log and find out whether "
                              "it ran down']")
    assert "Missing:\n        ('check the server log and find out whether it ran', 'down', " \
        "'please')" in message


def test_mistakes_in_the_wrong_order(tmp_path):
    message = edited_message(tmp_path, "second_order_skips", "words[t], predicted)",
                             "predicted, words[t])")
    assert "entry 0 should be" in message and "('check the', 'program', 'server')" in message


# --- chapter 3 ------------------------------------------------------------------------------

def test_mask_table_not_transposed(tmp_path):
    message = edited_message(tmp_path, "selective_mask", ".astype(float).T", ".astype(float)")
    assert message.startswith("informative_mask(")
    assert "That is exactly what you get without the transpose (.T)" in message


def test_masked_vote_without_the_mask(tmp_path):
    message = edited_message(tmp_path, "selective_mask", "(earlier * mask_table[x])", "earlier")
    assert message.startswith("masked_vote(") and "is the vote for" in message


def test_scores_let_a_position_see_itself(tmp_path):
    message = edited_message(tmp_path, "attention_as_matmul", "k=-1", "k=0")
    assert message.startswith("attention_scores(") and "only earlier positions" in message


def test_queries_from_the_transposed_table(tmp_path):
    message = edited_message(tmp_path, "attention_as_matmul", "@ mask_table\n", "@ mask_table.T\n")
    assert message.startswith("lookup_masks(") and "at [" in message


def test_attention_as_matmul_that_zeroes_what_it_was_given_does_not_pass(tmp_path):
    # The expected answers are worked out from the checker's ids and table: zeroed by the
    # learner's function, they matched the zeros it returned.
    message = edited_message(tmp_path, "attention_as_matmul",
                             "    return one_hot(ids, mask_table.shape[0]) @ mask_table",
                             "    ids[...] = 0\n    mask_table[...] = 0\n"
                             "    return np.zeros((len(ids), len(mask_table)))")
    expect_changed_in_place(
        message, "lookup_masks(ids=[0, 1, 2, 2, 0], mask_table=[[0., 1., 0.]",
        "the ids and the mask_table")


@pytest.mark.parametrize("new, dtype, words", [
    ("(weights.max(axis=-1) == 1.0).T", "bool", "True and False into 1.0 and 0.0"),
    ("(weights.max(axis=-1) == 1.0).astype(int).T", "int64", "make its entries floats"),
])
def test_informative_mask_of_the_right_entries_but_not_floats(tmp_path, new, dtype, words):
    # Right entries, which numpy mostly reads as numbers, where the docstring promises floats.
    message = edited_message(tmp_path, "selective_mask",
                             "(weights.max(axis=-1) == 1.0).astype(float).T", new)
    assert message.startswith("informative_mask(") and f"array of dtype {dtype};" in message
    assert "float array of 0.0 and 1.0" in message and words in message


def test_attention_scores_with_queries_and_keys_swapped_says_so(tmp_path):
    message = edited_message(tmp_path, "attention_as_matmul",
                             "(lookup_masks(ids, mask_table) @ keys.T)",
                             "(keys @ lookup_masks(ids, mask_table).T)")
    assert message.startswith("attention_scores(") and "at [1, 0]" in message
    assert "exactly what you get with the queries and the keys swapped" in message


@pytest.mark.parametrize("old, new, call, says", [
    ("-np.ones(len(pairs))", "-2 * np.ones(len(pairs))", "feature_weights(",
     "with a bias of -2: then even the full match"),
    ("one_hot(ids[1:], vocab_size)]", "one_hot(ids[:-1], vocab_size)]", "pair_inputs(",
     "with the previous word in both halves"),
    ("[one_hot(ids[:-1], vocab_size), ", "[one_hot(ids[1:], vocab_size), ", "pair_inputs(",
     "with the current word in both halves"),
])
def test_pair_features_names_the_bias_and_the_halves(tmp_path, old, new, call, says):
    message = edited_message(tmp_path, "pair_features", old, new)
    assert message.startswith(call) and f"That is exactly what you get {says}" in message


@pytest.mark.parametrize("slug", ["dot_and_matmul", "table_lookup", "markov_first_order",
                                  "markov_second_order", "second_order_skips",
                                  "selective_mask", "attention_as_matmul"])
def test_untouched_file_says_not_written(slug):
    message = run_check(find(slug), find(slug).source)
    assert "is not written yet" in message


# --- answers that spoil what they were given ------------------------------------------------
# A checker works out its expected answer from the arrays it gave the learner's function: one
# that zeroed them in place, and returned what the zeros give, matched an expected answer
# worked out from the zeros.

@pytest.mark.parametrize("slug, old, new, opening, changed", [
    ("one_hot", "    ids = np.asarray(ids)\n",
     "    ids = np.asarray(ids)\n    if len(ids) > 5:\n        ids[...] = 0\n",
     "one_hot(ids=array of shape (30,), int64, vocab_size=50)", "the ids"),
    ("dot_and_matmul", "    total = 0.0\n",
     "    if len(a) not in (2, 3):\n        a[...] = 0\n    total = 0.0\n",
     "dot(a=[0.3456], b=[0.8216])", "the a"),
    ("table_lookup", "    return table[np.asarray(ids)]",
     "    if len(ids) > 3:\n        table[...] = 0\n    return table[np.asarray(ids)]",
     "lookup_by_index(ids=[9, 2, 4, 8, 5, 6, 4, 8, 5, 6, 4, 4], table=array of shape (10, 3)",
     "the table"),
    ("second_order_skips", "    votes = np.zeros(len(vocab))\n",
     "    weights[...] = 0\n    votes = np.zeros(len(vocab))\n", "vote(context=", "the weights"),
    ("selective_mask", "    return (earlier * mask_table[x]) @ weights[:, x, :]",
     "    weights[...] = 0\n    return (earlier * mask_table[x]) @ weights[:, x, :]",
     "masked_vote(context=", "the weights"),
])
def test_answers_that_spoil_their_arguments_do_not_pass(tmp_path, slug, old, new, opening,
                                                        changed):
    expect_changed_in_place(edited_message(tmp_path, slug, old, new), opening, changed)


@pytest.mark.parametrize("new", ["    return {}", "    return {'show': {'me': 2}}"])
def test_a_table_counted_into_a_dict_is_told_to_be_an_array(tmp_path, new):
    message = edited_message(tmp_path, "markov_first_order", "    return counts", new)
    assert message.startswith("transition_counts(sentences=")
    assert "returned a dict; return a numpy array (start from np.zeros" in message


@pytest.mark.parametrize("old, new, says", [
    ("earlier[vocab.index(w)] = 1.0", "earlier[vocab.index(w)] += 1.0",
     "adding 1 for each time an earlier word appears: a word seen twice still votes once"),
    ("    for w in context[:-1]:", "    for w in context:",
     "letting the current word vote as an earlier word too"),
])
def test_selective_mask_vote_slips_are_named(tmp_path, old, new, says):
    message = edited_message(tmp_path, "selective_mask", old, new)
    assert message.startswith("masked_vote(context=") and f"exactly what you get {says}" in message


def test_one_hot_one_column_to_the_left_is_named(tmp_path):
    message = edited_message(tmp_path, "one_hot", "ids] = 1.0", "ids - 1] = 1.0")
    assert "Each 1 is one column left of where it belongs" in message
    assert "row i's 1 goes in column ids[i] itself" in message
