"""The built-in corpus, language-model batches and the seq2seq tasks."""

import hashlib
import re
import signal
import time
from collections import Counter, defaultdict

import numpy as np
import pytest

from tinyformer import data
from tinyformer.data import (ASIDES, BOS, COLOURS, EOS, NAMES, PAD, TASKS, THINGS, Seq2SeqTask,
                             _source, builtin_corpus, lm_batch, solve)

STORY = re.compile(r"(\w+) has a (\w+) (\w+)\. .* the (\w+) of (\w+) is (\w+)\.")


def test_the_corpus_is_seeded_and_sized():
    text = builtin_corpus(20_000, seed=3)
    assert text == builtin_corpus(20_000, seed=3) != builtin_corpus(20_000, seed=4)
    # It stops at the story that reaches 20,000 characters: at most 90 and a newline beyond.
    assert 20_000 <= len(text) <= 20_000 + 90


def test_the_default_corpus_is_the_one_the_readme_s_figures_come_from():
    # The README's losses and samples of `tinyformer train` are this text's: a change in how
    # the stories are drawn (another order of draws, another way to pick a word) changes them.
    text = builtin_corpus()
    assert text.splitlines()[0] == "tom has a pink boat. it rained. the boat of tom is pink."
    assert hashlib.sha256(text.encode()).hexdigest()[:16] == "8411fe849d0afeb4"


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX interval timers")
def test_an_exception_a_signal_handler_raises_while_stories_are_made_is_never_lost():
    # `train` makes the corpus while Ctrl-C, SIGTERM or SIGHUP may come, and its handlers stop
    # it by raising. Fire a raising handler 50 times while stories are made: every raise must
    # reach us (numpy's rng.choice on a list of words dropped about a third of them).
    class Stop(Exception):
        pass

    fired = 0

    def handler(signum, frame):
        nonlocal fired
        fired += 1
        raise Stop

    rng, caught = np.random.default_rng(0), 0
    previous = signal.signal(signal.SIGALRM, handler)
    try:
        while caught < 50:
            deadline = time.monotonic() + 0.5
            try:
                # Once, a millisecond from now: set inside the try, which a busy machine may
                # take longer than that to enter.
                signal.setitimer(signal.ITIMER_REAL, 0.001)
                while time.monotonic() < deadline:           # a lost raise ends here instead
                    data.story(rng)
            except Stop:
                caught += 1
            else:
                break
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert caught == fired == 50


def test_the_recalled_colour_needs_the_first_sentence():
    stories = [STORY.fullmatch(line) for line in builtin_corpus(100_000).splitlines()]
    assert all(stories)
    # The last colour always repeats the first, 30 to 70 characters back: beyond the reach of
    # a Markov chain (benchmarks/corpus.py tries orders up to 10), yet a story is short enough
    # that a 128-character training window usually holds all of it ...
    assert all(s[2] == s[6] and s[3] == s[4] and s[1] == s[5] for s in stories)
    gaps = [s.start(6) - s.end(2) for s in stories]
    assert min(gaps) >= 30 and max(gaps) <= 70
    assert max(len(s[0]) for s in stories) <= 90
    # ... and nothing in between gives it away: the asides name no colour, thing or person.
    words = set(COLOURS + THINGS + NAMES)
    assert not words & {w.strip(".") for aside in ASIDES for w in aside.split()}
    # The words just before it ("the kite of eve is") predict it no better than chance: a
    # Markov chain on those words, fitted on one corpus and scored on another, guesses.
    counts = defaultdict(Counter)
    for s in stories:
        counts[(s[4], s[5])][s[6]] += 1
    held_out = [STORY.fullmatch(line) for line in builtin_corpus(100_000, seed=1).splitlines()]
    hits = sum(counts[(s[4], s[5])].most_common(1)[0][0] == s[6] for s in held_out)
    assert hits / len(held_out) < 1.5 / len(COLOURS)


def test_lm_batches_are_shifted_windows_and_work_on_a_memmap(tmp_path):
    tokens = np.arange(100, dtype=np.uint16)
    path = tmp_path / "tokens.bin"
    tokens.tofile(path)
    mapped = np.memmap(path, dtype=np.uint16, mode="r")
    x, y = lm_batch(mapped, 4, 8, np.random.default_rng(0))
    assert x.shape == y.shape == (4, 8) and x.dtype == np.int64
    np.testing.assert_array_equal(y, x + 1)
    # Exactly context + 1 tokens hold one window, which every row then is.
    x, y = lm_batch(mapped[:9], 4, 8, np.random.default_rng(0))
    np.testing.assert_array_equal(x, np.tile(tokens[:8], (4, 1)))
    np.testing.assert_array_equal(y, np.tile(tokens[1:9], (4, 1)))
    with pytest.raises(ValueError, match="fewer than context"):
        lm_batch(tokens[:8], 4, 8, np.random.default_rng(0))
    # Every window that fits is drawn, the last one (whose target ends the text) included,
    # and none that runs past the end.
    x, y = lm_batch(tokens[:20], 500, 8, np.random.default_rng(0))
    assert set(x[:, 0].tolist()) == set(range(12))
    np.testing.assert_array_equal(y, x + 1)


def test_a_batch_with_no_rows_or_no_tokens_is_refused():
    """A batch of size 0 trains on nothing (its mean loss is NaN): said at once, in the
    function's own words, for lm_batch and BERT's line_batch alike. numpy made a (4, 0) batch
    of a context of 0 or less, and said "need at least one array to stack" of a batch size 0."""
    tokens, rng = np.arange(100), np.random.default_rng(0)
    for batch_size, context, phrase in [(0, 8, "batch_size must be a whole number >= 1, got 0"),
                                        (4, 0, "context must be a whole number >= 1, got 0"),
                                        (4, -3, "context must be a whole number >= 1, got -3")]:
        with pytest.raises(ValueError, match=re.escape(phrase)):
            lm_batch(tokens, batch_size, context, rng)
        with pytest.raises(ValueError, match=re.escape(phrase)):
            data.line_batch(tokens, batch_size, context, 99, 0, rng)


def test_a_task_batch_with_no_pairs_is_refused_in_one_line():
    # A task's batch of size 0 or less failed in numpy's or Python's words: "max() arg is an
    # empty sequence", "negative dimensions are not allowed".
    t, rng = Seq2SeqTask("copy", 2, 3, n_train=100, n_val=10), np.random.default_rng(0)
    for batch_size in (0, -1):
        with pytest.raises(ValueError, match=f"^batch_size must be a whole number >= 1, got "
                                             f"{batch_size}$"):
            t.sample_batch(batch_size, rng)
    with pytest.raises(ValueError, match=r"^Seq2SeqTask.batch: no pairs to batch; give at "
                                         r"least one \(source, target\) pair$"):
        t.batch([])


@pytest.mark.parametrize("task", TASKS)
def test_tasks_solve_hold_out_and_batch(task):
    t = Seq2SeqTask(task, min_len=4, max_len=8, n_train=2000, n_val=200, seed=0)
    assert len(t.train) == 2000 and len(t.val) == 200
    assert not {s for s, _ in t.val} & {s for s, _ in t.train}
    for source, target in t.train[:50]:
        assert target == solve(task, source)
        assert 4 <= len(source.replace("+", "")) <= 8
        if task == "add":                            # two numbers, neither with a leading zero
            assert not any(number.startswith("0") for number in source.split("+"))
            # The first number has half the digits, rounded down: "12+345", never "123+45".
            first, second = source.split("+")
            assert len(first) == (len(first) + len(second)) // 2
    src, tgt_in, tgt_out = t.batch(t.val[:5])
    assert (tgt_in[:, 0] == BOS).all()
    for i, (source, target) in enumerate(t.val[:5]):
        assert t.decode(src[i]) == source and t.decode(tgt_out[i]) == target
        assert tgt_out[i, len(target)] == EOS and (tgt_out[i, len(target) + 1:] == PAD).all()
    # The context is the longest sequence the model sees: a source ("1234+5678" for add, one
    # longer than max_len), or a target with its <bos> or <eos>.
    pairs = t.train + t.val
    longest_source = max(len(source) for source, _ in pairs)
    assert t.context == max(longest_source, max(len(target) for _, target in pairs) + 1)
    if task == "add":                                         # numbers as written: no "07"
        assert not any(number.startswith("0") for source, _ in pairs
                       for number in source.split("+"))


@pytest.mark.parametrize("task, min_len, max_len, n_sources", [
    ("copy", 4, 4, 10_000), ("add", 2, 3, 81 + 810), ("sort", 2, 2, 100)])
def test_lengths_with_too_few_sources_for_both_splits_hold_validation_out_first(
        task, min_len, max_len, n_sources, monkeypatch):
    drawn = Counter()
    def counted_source(*args):
        drawn["sources"] += 1
        return _source(*args)
    monkeypatch.setattr(data, "_source", counted_source)
    t = Seq2SeqTask(task, min_len, max_len, n_train=20_000, n_val=500, seed=0)
    assert t.n_sources == n_sources                        # counted, not drawn
    # Every source once, found without drawing at random again and again for the last few.
    assert drawn["sources"] <= n_sources
    sources = [source for source, _ in t.train + t.val]
    assert len(set(sources)) == len(sources) == n_sources
    assert all(target == solve(task, source) for source, target in t.train + t.val)
    # Validation first, a tenth at most; training the rest.
    assert len(t.val) == min(500, n_sources // 10)
    assert Seq2SeqTask(task, min_len, max_len, seed=0).val == t.val != \
        Seq2SeqTask(task, min_len, max_len, seed=1).val


@pytest.mark.parametrize("n_train, n_val", [(9900, 100), (9000, 1000), (5000, 5000)])
def test_lengths_with_barely_enough_sources_give_as_many_pairs_as_asked(n_train, n_val):
    # 10,000 sources, as many as asked for or not many more: drawn at random, the last few
    # were not found within the draws made, and validation came short (33 pairs of 100).
    t = Seq2SeqTask("copy", 4, 4, n_train=n_train, n_val=n_val, seed=0)
    assert (len(t.train), len(t.val)) == (n_train, n_val)
    sources = [source for source, _ in t.train + t.val]
    assert len(set(sources)) == len(sources)                # none twice, none in both
    assert Seq2SeqTask("copy", 4, 4, n_train=n_train, n_val=n_val, seed=0).val == t.val


def test_a_task_keeps_to_n_train_and_its_batches_draw_every_training_pair():
    # 100 sources, fewer than n_train + n_val: a tenth held out, then n_train of the rest.
    t = Seq2SeqTask("copy", 2, 2, n_train=50, n_val=100, seed=0)
    assert (len(t.val), len(t.train)) == (10, 50)
    src, _, _ = t.sample_batch(2000, np.random.default_rng(0))
    assert {t.decode(row) for row in src} == {source for source, _ in t.train}


def test_task_examples_and_errors():
    assert solve("reverse", "1234") == "4321"
    assert solve("sort", "3141") == "1134"
    assert solve("add", "57+68") == "125"
    with pytest.raises(ValueError, match="unknown task 'divide'; choose one of copy, reverse"):
        Seq2SeqTask("divide")
    with pytest.raises(ValueError, match="2 <= min_len <= max_len"):
        Seq2SeqTask("copy", min_len=5, max_len=3)
    with pytest.raises(ValueError, match="2 <= min_len <= max_len, got 1 and 3"):
        Seq2SeqTask("add", min_len=1, max_len=3)         # one digit: no room for a "+"
    # decode reads up to the first <eos>, dropping <pad> and <bos> on the way.
    assert Seq2SeqTask.decode([BOS, 5, PAD, 6, EOS, 7]) == "23"


@pytest.mark.parametrize("counts, message", [
    # n_val=-1 held out all but one pair (pairs[:-1]) and trained on that one, without a word
    (dict(n_val=-1), "n_val must be a whole number >= 0, got -1"),
    # and no training pairs failed at the first batch, in numpy's words: "high <= 0"
    (dict(n_train=0), "n_train must be a whole number >= 1, got 0"),
    (dict(n_train=2.5), "n_train must be a whole number >= 1, got 2.5")])
def test_a_task_refuses_counts_of_pairs_that_are_not_whole_numbers_in_one_line(counts, message):
    with pytest.raises(ValueError, match=f"^Seq2SeqTask: {re.escape(message)}$"):
        Seq2SeqTask("copy", 2, 4, **counts)
    assert len(Seq2SeqTask("copy", 2, 4, n_val=0).val) == 0         # no validation: allowed


@pytest.mark.parametrize("text, char, position", [("12a", "'a'", 2), ("1 2", "' '", 1),
                                                  ("<eos>", "'<'", 0)])
def test_encoding_a_character_that_is_no_symbol_of_the_tasks_says_which(text, char, position):
    # It said "'a' is not in list", from list.index, for a source or target of one's own pairs.
    with pytest.raises(ValueError, match=rf"^Seq2SeqTask.encode: {char} at position "
                                         rf"{position} of '{text}' is no symbol of the tasks: "
                                         r"they are written with the digits 0 to 9 and \+$"):
        Seq2SeqTask("copy", 2, 2, n_train=5, n_val=1).batch([("12", "12"), (text, "1")])
    assert Seq2SeqTask.encode("09+") == [3, 12, 13]


def test_recall_prompts_end_where_the_colour_is_recalled():
    from tinyformer.data import recall_prompts, recalled
    prompts = recall_prompts(20, seed=5, context=100)
    assert len(prompts) == 20
    for prompt, colour in prompts:
        assert len(prompt) == 100 and prompt.endswith(" is ") and colour in COLOURS
        # The colour is in the prompt: in its story's first sentence.
        story = prompt[prompt.rindex("\n") + 1:]
        assert f"has a {colour} " in story
    assert recalled("red. the", "red") and not recalled("re", "red")
    # Every prompt is `context` characters long, one a character short included: a context
    # one longer than where some story's prompt ends leaves that story out.
    for context in range(20, 90):
        assert all(len(prompt) == context for prompt, _ in recall_prompts(3, 5, context))
    assert not recalled("redd.", "red")


@pytest.mark.parametrize("context", [4096, 8192, 20_000])
def test_there_are_as_many_recall_prompts_as_asked_for_any_context(context):
    """A long context leaves out more stories at the start: as many are made after them. The
    held-out corpus is the same text for any length asked, so a short context's prompts are
    those they were."""
    from tinyformer.data import recall_prompts
    prompts = recall_prompts(100, seed=1000, context=context)
    assert len(prompts) == 100 and all(len(prompt) == context for prompt, _ in prompts)
    assert recall_prompts(5, seed=1000, context=64) == recall_prompts(100, 1000, 64)[:5]


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_source_a_task_makes_is_one_of_its_sources_and_other_forms_are_not(task):
    rng = np.random.default_rng(0)
    made = [data._source(task, length, rng) for length in range(2, 9) for _ in range(5)]
    assert all(data.is_source(task, source) for source in made)
    # An add source's numbers never start with 0 (nor are 0): "01+2" is a form never trained on.
    others = ["", "+", "12+", "+3", "1+2+3", "a1", "1 2", "١٢"] + (
        ["12", "01+2", "1+02", "0+5", "00+00"] if task == "add" else ["12+3"])
    assert not any(data.is_source(task, text) for text in others)
    assert task == "add" or data.is_source(task, "0012")       # digit strings: any digits


def test_add_sums_numbers_of_any_length_as_on_paper():
    """--task add --max-len 8601 makes numbers of 4,301 digits, which Python's int() refuses
    to read (more than 4,300: "Exceeds the limit ... sys.set_int_max_str_digits()")."""
    assert solve("add", "9" * 5000 + "+" + "1") == "1" + "0" * 5000
    assert solve("add", "1" + "+" + "9" * 4301) == "1" + "0" * 4301
    rng = np.random.default_rng(0)
    for a, b in rng.integers(1, 10 ** 12, (50, 2)).tolist():      # as int() adds them
        assert solve("add", f"{a}+{b}") == str(a + b)
    assert solve("add", "5+5") == "10" and solve("add", "10+90") == "100"


def test_check_whole_takes_counts_beyond_32_bits():
    # Its docstring promises any whole number from `low`: its upper bound only keeps a typo of
    # many digits from reaching numpy, where a count past 2 ** 31 is a count like any other.
    from tinyformer.schema import check_whole
    check_whole("f", 1, n=2 ** 40)
    with pytest.raises(ValueError, match=r"^f: n must be at most 4,611,686,018,427,387,904, "):
        check_whole("f", 1, n=2 ** 63)
