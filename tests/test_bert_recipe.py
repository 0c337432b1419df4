"""BERT's recipe for the built-in stories: whole-word masking, one story an example, the
colour-recall metric, and the defaults `tinyformer train --model bert` takes."""

import json
import os
import subprocess
import sys
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tinyautograd as ta
from cli import main
from tinyformer.bert import BEGINS, CONTINUES, IGNORE, mask_tokens
from tinyformer import data
from tinyformer.data import builtin_corpus, line_batch
from tinyformer.jobs import MaskedLM, word_tokens
from tinyformer.tokenizers import BPETokenizer, CharTokenizer
from tinyformer.train import TrainConfig, Trainer

PAD, MASK = 0, 1
TINY = dict(model="bert", n_layer=1, n_head=2, d_model=16, batch_size=4, eval_iters=1)


def quiet(*args):
    pass


# ------------------------------------------------------------------------- whole-word masking

# A vocabulary of 40: PAD, MASK, then ids 2-9 stand for spaces and full stops (not in words),
# and 10-39 for letters.
VOCAB = 40
IN_WORD = np.arange(VOCAB) >= 10


def words_of(row):
    """(start, end) of each run of letters in a row of ids."""
    letters = IN_WORD[row]
    edges = np.flatnonzero(np.diff(np.concatenate([[0], letters.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def sentences(n_rows, length, rng):
    """Rows of words of 1 to 7 letters, each followed by one or two non-word tokens."""
    rows = []
    for _ in range(n_rows):
        row = []
        while len(row) < length:
            row += list(rng.integers(10, VOCAB, rng.integers(1, 8)))
            row += list(rng.integers(2, 10, rng.integers(1, 3)))
        rows.append(row[:length])
    return np.array(rows)


def test_whole_word_masking_hides_each_word_whole_at_the_rate_asked():
    rng = np.random.default_rng(0)
    idx = sentences(400, 80, rng)                 # about 8,000 words and 13,000 other tokens
    idx[:, -6:] = PAD
    inputs, targets = mask_tokens(idx, MASK, VOCAB, special_ids=(PAD, MASK), rate=0.3, rng=rng,
                                  in_word=IN_WORD)
    chosen = targets != IGNORE
    np.testing.assert_array_equal(targets[chosen], idx[chosen])
    assert not chosen[idx == PAD].any()                       # padding is never chosen
    words = [(r, a, b) for r, row in enumerate(idx) for a, b in words_of(row)]
    picked = [chosen[r, a:b] for r, a, b in words]
    assert all(p.all() or not p.any() for p in picked)      # a word: all its letters, or none
    # Each word, each other token, and so each token: chosen with probability 0.3 (tolerances
    # of 4 standard deviations of a proportion).
    share_of_words = np.mean([p.all() for p in picked])
    assert abs(share_of_words - 0.3) < 4 * np.sqrt(0.21 / len(words))
    ordinary = idx != PAD
    assert abs(chosen[ordinary].mean() - 0.3) < 0.02
    others = ordinary & ~IN_WORD[idx]
    assert abs(chosen[others].mean() - 0.3) < 4 * np.sqrt(0.21 / others.sum())
    # A word and the token before it are chosen independently (not as one unit).
    before = np.array([chosen[r, a - 1] for r, a, b in words if a > 0])
    after = np.array([chosen[r, a] for r, a, b in words if a > 0])
    assert abs((before & after).mean() - 0.09) < 0.02


def test_a_chosen_word_is_replaced_whole_by_the_80_10_10_rule():
    rng = np.random.default_rng(1)
    idx = sentences(600, 80, rng)
    inputs, targets = mask_tokens(idx, MASK, VOCAB, special_ids=(PAD, MASK), rate=0.3, rng=rng,
                                  in_word=IN_WORD)
    chosen = targets != IGNORE
    kinds = Counter()
    for r, row in enumerate(idx):
        for a, b in words_of(row):
            if b - a < 3 or not chosen[r, a]:
                continue
            shown = inputs[r, a:b]
            kinds["masked" if (shown == MASK).all() else "kept" if (shown == row[a:b]).all()
                  else "swapped"] += 1
    n = sum(kinds.values())                        # about 2,800 chosen words of 3+ letters
    # Tolerances of 4 standard deviations.
    assert abs(kinds["masked"] / n - 0.8) < 0.03
    assert abs(kinds["kept"] / n - 0.1) < 0.023
    assert abs(kinds["swapped"] / n - 0.1) < 0.023


def test_a_random_swap_puts_in_only_ordinary_tokens():
    # PAD, MASK and two ordinary ids: a PAD put in would be hidden from attention (BERT's
    # padding mask is read from the ids), a MASK would be a mask, not a swap.
    idx = np.full((1000, 50), 2)
    inputs, targets = mask_tokens(idx, MASK, 4, special_ids=(PAD, MASK), rate=0.5,
                                  rng=np.random.default_rng(4))
    chosen = targets != IGNORE                       # about 25,000
    assert set(np.unique(inputs)) == {MASK, 2, 3}
    # A swap, one chosen token in 10, draws 2 or 3 alike (4 standard deviations).
    assert abs((inputs[chosen] == 3).mean() - 0.05) < 0.006
    # MASK left out of special_ids is an ordinary token to choose, but never one to swap in
    with pytest.raises(ValueError, match="every id of the vocabulary of 2 is special"):
        mask_tokens(np.full((100, 50), MASK), MASK, 2, special_ids=(PAD,), rate=0.5,
                    rng=np.random.default_rng(4))


def test_the_job_never_swaps_in_a_special_token_of_its_tokenizer():
    # A tokenizer file of `tinyformer tokenize train` has <bos> and <eos> too: the job passed
    # only <pad> and <mask> as special, and about one random swap in 150 put <bos> or <eos> in.
    tok = BPETokenizer.train(builtin_corpus(20_000), 300,
                             special_tokens=["<pad>", "<bos>", "<eos>", "<mask>"])
    config = TrainConfig(**TINY, iters=1).resolved()
    job = MaskedLM(config, tok)
    idx = np.array([tok.encode("eve has a red kite. it rained.")] * 5000)    # (5000, 14)
    inputs, targets = job.masker(idx, np.random.default_rng(0))
    swapped = (targets != IGNORE) & (inputs != idx) & (inputs != job.mask_id)
    # About 2,500 swaps: were <bos> and <eos> two of the 296 ids to swap in, some 17 of them
    # would be one, and none would be with odds of 1 in 20 million.
    assert swapped.sum() > 2000
    specials = [tok.special_id(s) for s in tok.special_tokens]
    assert not np.isin(inputs[swapped], specials).any()


def test_words_end_at_the_edge_of_a_row():
    # Every row one word of the same letters: rows are chosen independently, not as one word.
    idx = np.full((2000, 5), 20)
    _, targets = mask_tokens(idx, MASK, VOCAB, rate=0.3, rng=np.random.default_rng(2),
                             in_word=IN_WORD)
    chosen = targets != IGNORE
    assert (chosen.all(axis=1) | ~chosen.any(axis=1)).all()
    assert abs(chosen[:, 0].mean() - 0.3) < 0.04


def test_without_in_word_each_token_is_chosen_alone():
    rng = np.random.default_rng(3)
    idx = sentences(400, 80, rng)
    _, targets = mask_tokens(idx, MASK, VOCAB, special_ids=(PAD,), rate=0.3, rng=rng)
    chosen = targets != IGNORE
    whole = [chosen[r, a:b].all() or not chosen[r, a:b].any()
             for r, row in enumerate(idx) for a, b in words_of(row) if b - a >= 4]
    assert np.mean(whole) < 0.3                    # 0.3^4 + 0.7^4 = 0.25 for 4 letters


def test_word_tokens_are_letters_that_continue_a_word_and_a_space_then_letters_that_begin_one():
    tok = CharTokenizer(sorted(set("eve has a kite.\n")), ["<pad>", "<mask>"])
    in_word = word_tokens(tok)
    assert [tok.id_to_token(i) for i in np.flatnonzero(in_word)] == list("aehikstv")
    assert (in_word[np.flatnonzero(in_word)] == CONTINUES).all()
    bpe = BPETokenizer.train("the kite of eve is the kite " * 20, 270, ["<pad>", "<mask>"])
    in_word = word_tokens(bpe)
    pieces = {bpe.id_to_token(i): in_word[i] for i in range(bpe.vocab_size)}
    assert pieces["k"] == CONTINUES and pieces[" kite"] == BEGINS
    assert pieces[" "] == pieces["<mask>"] == 0


def test_a_letters_marks_continue_its_word_as_the_letters_do():
    # Hindi's vowel signs and virama are marks (Unicode's Mn, Mc), not letters to isalpha():
    # a word was masked in pieces, cut at each of them. A lone mark is no word at all.
    text = "हिंदी में लिखा है\n"
    tok = CharTokenizer.train(text, ["<pad>", "<mask>"])
    in_word = word_tokens(tok)
    for sign in "िंें":
        assert in_word[tok.token_to_id(sign)] == CONTINUES
    assert in_word[tok.token_to_id(" ")] == in_word[tok.token_to_id("\n")] == 0


def spans_of_words(tokenizer, row):
    """(start, end) of the tokens of each word (a run of letters) of a row of ids."""
    pieces = [tokenizer.decode([i]) for i in row]
    token_at = np.repeat(np.arange(len(row)), [len(piece) for piece in pieces])   # each letter's
    return [(token_at[m.start()], token_at[m.end() - 1] + 1)
            for m in re.finditer(r"[a-z]+", "".join(pieces))]


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_whole_word_masking_never_leaves_part_of_a_hidden_word_in_view(kind):
    text = builtin_corpus(20_000)
    tok = (CharTokenizer.train(text, ["<pad>", "<mask>"]) if kind == "char" else
           BPETokenizer.train(text, 300, special_tokens=["<pad>", "<mask>"]))
    rows = line_batch(np.array(tok.encode(text)), 400, 64, tok.encode("\n")[0],
                      tok.token_to_id("<pad>"), np.random.default_rng(0))
    _, targets = mask_tokens(rows, tok.token_to_id("<mask>"), tok.vocab_size,
                             [tok.token_to_id("<pad>"), tok.token_to_id("<mask>")], rate=0.3,
                             rng=np.random.default_rng(1), in_word=word_tokens(tok))
    chosen = targets != IGNORE
    pad = tok.token_to_id("<pad>")
    rows_of_words = [[chosen[r, a:b] for a, b in spans_of_words(tok, row[row != pad])]
                     for r, row in enumerate(rows)]                 # padding comes last
    words = [word for row in rows_of_words for word in row]
    assert sum(len(word) > 1 for word in words) > 1000        # words of several pieces
    assert all(word.all() or not word.any() for word in words)
    # Each word is chosen on its own: a piece that begins a word (" green") does not join the
    # word before it, so two words side by side are both chosen about 0.3 * 0.3 of the time.
    both = [a.any() and b.any() for row in rows_of_words for a, b in zip(row, row[1:])]
    assert abs(np.mean(both) - 0.09) < 0.03


# ---------------------------------------------------------------------------- one story a row

STORY = re.compile(r"\w+ has a \w+ \w+\. .* the \w+ of \w+ is \w+\.")


def test_a_batch_of_lines_holds_whole_stories_from_their_start():
    text = builtin_corpus(20_000)
    tok = CharTokenizer.train(text, ["<pad>", "<mask>"])
    tokens = np.array(tok.encode(text), dtype=np.uint16)
    batch = line_batch(tokens, 64, 128, tok.encode("\n")[0], PAD, np.random.default_rng(0))
    assert batch.dtype == np.int64 and batch.shape[0] == 64
    stories = [tok.decode(row[row != PAD]) for row in batch]
    assert all(STORY.fullmatch(story) for story in stories)
    lengths = [len(story) for story in stories]
    assert batch.shape[1] == max(lengths)                    # padded to the longest, no more
    assert (batch[:, -1] != PAD).any() and len(set(stories)) > 50


def test_a_line_is_cut_to_the_context_and_long_lines_give_windows():
    nl = 99
    tokens = np.array([5] * 30 + [nl] + [nl] + [6] * 40 + [nl] + [7] * 300)
    rng = np.random.default_rng(0)
    for _ in range(20):
        batch = line_batch(tokens, 8, 10, nl, PAD, rng)
        assert batch.shape == (8, 10) and not (batch == nl).any()
        assert (batch != PAD).all()              # every line here is longer than the context
        # Each row: a line from its start (after the empty line too) cut to 10, or a window.
        assert all(len(set(row)) == 1 for row in batch.tolist())
    # A short text: each of its lines, the first and the last, and no empty one.
    short = np.array([5, nl, 6, 6, nl, 7, nl, nl, 8, 8, 8, 8, 8, nl])
    batch = line_batch(short, 100, 10, nl, PAD, np.random.default_rng(0))
    assert {tuple(row[row != PAD]) for row in batch} == {(5,), (6, 6), (7,), (8,) * 5}
    # Exactly context + 1 tokens, no newline among them: one line, and a window of it.
    np.testing.assert_array_equal(line_batch(tokens[:11], 2, 10, nl, PAD, rng), [[5] * 10] * 2)
    with pytest.raises(ValueError, match="fewer than context"):
        line_batch(tokens[:10], 8, 10, nl, PAD, rng)


def test_every_line_is_drawn_as_often_whatever_the_length_of_the_line_before_it():
    """Each line is drawn with the same chance. The first line after a random position was
    drawn as often as the line before it was long: on a Shakespeare-like text "All:", which
    follows long speeches, filled 95 rows in 200, and the text's first line never came."""
    nl, n_lines = 99, 20
    # Lines 1 to 20, each of its own token: the odd ones 40 tokens long, the even ones 2.
    tokens = np.concatenate([[line] * (40 if line % 2 else 2) + [nl]
                             for line in range(1, n_lines + 1)])
    batch = line_batch(tokens, 4000, 64, nl, PAD, np.random.default_rng(0))
    drawn = Counter(int(row[0]) for row in batch)
    assert all(set(row[row != PAD].tolist()) == {row[0]} for row in batch)     # a line each
    assert sorted(drawn) == list(range(1, n_lines + 1))          # the first and last included
    # 200 each expected (a standard deviation of 14); the old draw gave about 430 to the even
    # lines (each after a long one), 30 to the odd ones, and none to the first or the last two.
    assert all(140 < count < 260 for count in drawn.values()), drawn
    # The same generator's seed, the same batch.
    np.testing.assert_array_equal(batch, line_batch(tokens, 4000, 64, nl, PAD,
                                                    np.random.default_rng(0)))


def test_a_line_longer_than_the_context_gives_windows_of_all_of_it():
    nl = 99
    one_line = np.arange(30)                        # no newline: one line of 30 tokens
    batch = line_batch(one_line, 500, 10, nl, PAD, np.random.default_rng(0))
    np.testing.assert_array_equal(batch, batch[:, :1] + np.arange(10))     # windows of it
    assert set(batch[:, 0].tolist()) == set(range(21))    # its start and its end included
    # A text of line breaks alone: its line breaks, as one line.
    batch = line_batch(np.full(30, nl), 3, 10, nl, PAD, np.random.default_rng(0))
    np.testing.assert_array_equal(batch, np.full((3, 10), nl))


def test_the_lines_of_a_text_are_found_once_and_forgotten_with_it(tmp_path):
    """Finding the lines reads the whole text: done once for an array (a memory map of the
    corpus, say), kept while the array lives and no longer."""
    nl = 99
    np.array([5, 5, nl, nl, 6, nl, 7, 7, 7], dtype=np.uint16).tofile(tmp_path / "tokens.bin")
    tokens = np.memmap(tmp_path / "tokens.bin", dtype=np.uint16, mode="r")
    lines = data.lines_of(tokens, nl)
    np.testing.assert_array_equal(lines, [[0, 2], [4, 5], [6, 9]])        # (begin, end)
    assert data.lines_of(tokens, nl) is lines
    assert data.lines_of(tokens, 5) is not lines                  # another newline, other lines
    batch = line_batch(tokens, 30, 4, nl, PAD, np.random.default_rng(0))
    assert {tuple(row[row != PAD]) for row in batch} == {(5, 5), (6,), (7, 7, 7)}
    held = len(data._LINES)
    del tokens
    assert len(data._LINES) == held - 2


def test_lines_found_a_block_at_a_time_are_those_of_the_whole(monkeypatch):
    # The text is looked through LINE_BLOCK tokens at a time: lines, and newlines, that a
    # block's edge cuts are found as in one pass.
    nl = 99
    tokens = np.array([5, 5, nl, nl, 6, nl, 7, 7, 7, nl, 8, 8, nl, 9])
    whole = data.lines_of(tokens, nl).tolist()
    assert whole == [[0, 2], [4, 5], [6, 9], [10, 12], [13, 14]]
    for block in (1, 2, 3, 4):
        monkeypatch.setattr(data, "LINE_BLOCK", block)
        assert data.lines_of(tokens.copy(), nl).tolist() == whole, block


def test_lines_are_never_kept_for_what_cannot_say_when_it_is_gone():
    # A list cannot be followed to its end: its lines were kept all the same (and the error
    # raised after), under an id that a later array could have, which would get them.
    text = [5, 99, 6]
    with pytest.raises(TypeError):
        data.lines_of(text, 99)
    assert (id(text), 99) not in data._LINES


# ---------------------------------------------------------------------------- the metric


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    config = TrainConfig(**TINY, iters=1).resolved()
    return Trainer.start(config, str(tmp_path_factory.mktemp("bert")), log=quiet).job


def shown(job, row):
    """A row of ids as text, <mask> shown as '?' and padding left out."""
    return "".join("?" if i == job.mask_id else job.tokenizer.decode([i])
                   for i in row if i != job.pad_id)


def answering(job, answer):
    """A "model" whose logits put the text `answer(story, n_hidden)` at the masked positions
    of each row (and the input token elsewhere); story is the row as `shown`."""
    vocab = job.tokenizer.vocab_size

    def model(inputs):
        guesses = inputs.copy()
        for row, guess in zip(inputs, guesses):
            hidden = np.flatnonzero(row == job.mask_id)
            guess[hidden] = job.tokenizer.encode(answer(shown(job, row), len(hidden)))
        return ta.Tensor(np.eye(vocab)[guesses])
    return model


def test_a_sample_shows_a_guessed_new_line_inside_its_brackets_on_one_line(job):
    # The guess was written as it is: a [ then a new line, the story going on indented below.
    newline = job.tokenizer.encode("\n")[0]

    def newlines_everywhere(inputs):
        return ta.Tensor(np.eye(job.tokenizer.vocab_size)[np.full(inputs.shape, newline)])
    story, note = job.sample(newlines_everywhere, np.random.default_rng(0)).split("\n")
    assert "[\\n]" in story and note == "(hidden tokens in [brackets], filled in by the model)"


def training_colours(job):
    """The colour of each training story, counted."""
    text = job.tokenizer.decode(np.asarray(job.data.train).tolist())
    return Counter(re.findall(r" is (\w+)\.", text))


@pytest.mark.parametrize("settings, rate, whole", [(dict(), 0.3, True),
                                                   (dict(mask_rate=0.15, whole_words=False),
                                                    0.15, False)])
def test_the_job_hides_what_its_settings_say(tmp_path, settings, rate, whole):
    config = TrainConfig(**TINY, **settings, iters=1).resolved()
    job = Trainer.start(config, str(tmp_path), log=quiet).job
    assert hides(job) == (pytest.approx(rate, abs=0.03), whole)


def test_a_run_saved_before_the_masking_settings_hides_as_it_did_then(tmp_path):
    # 15% of the tokens, one by one: what every BERT run did before they could be set.
    Trainer.start(TrainConfig(**TINY, iters=1).resolved(), str(tmp_path), log=quiet).train()
    config = json.loads((tmp_path / "config.json").read_text())
    del config["train"]["mask_rate"], config["train"]["whole_words"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert hides(Trainer.resume(str(tmp_path), log=quiet).job) == (pytest.approx(0.15, abs=0.03),
                                                                   False)


def hides(job):
    """(the share of real tokens a job's training batches hide, whether it hides each story's
    first word, its name of 3 letters, whole or not at all), over about 5,000 tokens."""
    inputs, targets = zip(*(job.train_batch(np.random.default_rng(i)) for i in range(20)))
    chosen = [t != IGNORE for t in targets]
    real = [i != job.pad_id for i in inputs]
    share = np.sum([c.sum() for c in chosen]) / np.sum([r.sum() for r in real])
    # Hidden letter by letter, a name is often hidden in part.
    name_whole = [(c[:, :3].all(axis=1) | ~c[:, :3].any(axis=1)).mean() for c in chosen]
    return share, bool(np.mean(name_whole) == 1.0)


def test_the_recall_of_a_reader_of_the_first_sentence_is_one(job):
    # A perfect BERT reads the colour from the first sentence.
    def reader(story, n_hidden):
        return re.match(r"\w+ has a (\w+) ", story)[1]
    assert job.recall(answering(job, reader)) == 1.0
    assert len(job.recall_prompts) == 100
    # One story wrong in 100 (a letter short of its colour) costs 0.01.
    first = shown(job, job.recall_inputs()[0][0])
    wrong_once = answering(job, lambda story, n: reader(story, n)[:-1] + "x"
                           if story == first else reader(story, n))
    assert job.recall(wrong_once) == 0.99


def test_the_recall_passes_over_a_special_token_ranked_first_as_generate_does(job):
    # A BERT that ranks <mask> first everywhere and the colour's letters next: generate fills
    # its masks with the colour (likeliest_ordinary: it writes no special token there), and
    # the training log's samples too; the recall counts what they show.
    reader = answering(job, lambda story, n: re.match(r"\w+ has a (\w+) ", story)[1])

    def mask_first(inputs):
        logits = reader(inputs).data.copy()                    # one-hot: 1 for the answer
        logits[..., job.mask_id] = 2.0
        return ta.Tensor(logits)
    assert job.recall(mask_first) == 1.0


def test_the_recall_of_a_guess_that_does_not_read_is_what_the_guess_earns(job):
    colours = [colour for _, colour in job.recall_prompts]
    # The unigram guess: the commonest training token, at every hidden position.
    commonest = Counter(np.asarray(job.data.train).tolist()).most_common(1)[0][0]
    letter = job.tokenizer.decode([commonest])
    assert letter == " "                    # so the unigram guess fills a colour with spaces
    assert job.recall(answering(job, lambda story, n: letter * n)) == 0.0
    # The best guess that does not read the story: the commonest training colour of as many
    # letters as are hidden.
    counts = training_colours(job)
    by_length = {}
    for colour, _ in counts.most_common():
        by_length.setdefault(len(colour), colour)
    share = np.mean([by_length[len(colour)] == colour for colour in colours])
    assert 0.5 < share < 0.8
    assert job.recall(answering(job, lambda story, n: by_length[n])) == share


def test_the_recall_hides_only_the_last_colour_of_a_story_read_alone(job):
    inputs, hidden, colours = job.recall_inputs()
    assert (inputs[hidden] == job.mask_id).all() and (inputs[~hidden] != job.mask_id).all()
    for row, row_hidden, colour in zip(inputs, hidden, colours):
        text = shown(job, row)
        assert row_hidden.sum() == len(colour)
        assert text.endswith(f" is {'?' * len(colour)}.") and "\n" not in text
        assert (row[len(text):] == job.pad_id).all()


# ----------------------------------------------------------------------- the defaults, a run


def test_bert_on_the_built_in_stories_takes_its_own_recipe():
    bert = TrainConfig(model="bert").resolved()
    assert (bert.lr, bert.batch_size, bert.iters, bert.mask_rate,
            bert.whole_words) == (1e-2, 32, 1000, 0.3, True)
    assert (bert.n_layer, bert.d_model, bert.context) == (2, 64, 128)
    # GPT's built-in recipe, and BERT's on a text, are as they were.
    gpt = TrainConfig().resolved()
    assert (gpt.norm, gpt.lr, gpt.batch_size, gpt.iters, gpt.mask_rate) == (None, 8e-3, 16,
                                                                             800, None)
    text = TrainConfig(model="bert", corpus="x.txt").resolved()
    assert (text.norm, text.lr, text.mask_rate, text.whole_words) == (None, 1e-3, 0.15, False)
    # What is given wins.
    mine = TrainConfig(model="bert", lr=3e-3, mask_rate=0.15, whole_words=False).resolved()
    assert (mine.lr, mine.mask_rate, mine.whole_words) == (3e-3, 0.15, False)


@pytest.mark.parametrize("settings, message", [
    (dict(mask_rate=0.0), "--mask-rate must be a finite number in (0, 1), got 0.0"),
    (dict(mask_rate=1), "--mask-rate must be a finite number in (0, 1), got 1"),
    (dict(whole_words="yes"), "--whole-words must be true or false, got 'yes'"),
    (dict(whole_words=1), "--whole-words must be true or false, got 1"),   # 1 == True
])
def test_bad_masking_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig(model="bert", **settings).resolved()


def test_tinyformer_train_model_bert_uses_the_recipe_and_reports_the_recall(tmp_path):
    out = tmp_path / "bert"
    result = CliRunner().invoke(main, ["train", "--model", "bert", "--n-layer", "1",
                                       "--d-model", "16", "--batch-size", "4", "--iters", "3",
                                       "--eval-every", "3", "--eval-iters", "1", "--out",
                                       str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "config.json").read_text())
    assert (saved["train"]["mask_rate"], saved["train"]["whole_words"],
            saved["train"]["lr"]) == (0.3, True, 1e-2)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "val_recall" in line] == [3]
    assert re.search(r"step 3 \(end of training\): val_loss \d\.\d+, val_recall [01]\.\d+",
                     result.output)
    # The sample is a held-out story with words hidden in brackets.
    assert re.search(r"\n    [a-z .]*\[[a-z .]\].*\n    \(hidden tokens in \[brackets\]",
                     result.output)


def test_the_same_seed_gives_the_same_bert_run(tmp_path):
    def losses(directory, seed):
        trainer = Trainer.start(TrainConfig(**TINY, iters=4, seed=seed), str(directory),
                                log=quiet)
        trainer.train()
        return [json.loads(line)["train_loss"]
                for line in open(directory / "metrics.jsonl")]
    first = losses(tmp_path / "a", 0)
    assert losses(tmp_path / "b", 0) == first != losses(tmp_path / "c", 1)


# ------------------------------------------------------- a batch in which nothing can be hidden
# A batch is drawn again until something is hidden; where nothing can be, it is refused. The
# code runs in a process of its own, under a timeout, so that drawing for ever fails the test.

ROOT = Path(__file__).resolve().parent.parent


def finishes(args, timeout=120):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_mask_rate_that_never_hides_stops_the_run_in_one_line(tmp_path):
    # Each token is drawn with a number below 1, and none falls below 1e-300.
    done = finishes(["cli.py", "train", "--model", "bert", "--mask-rate", "1e-300",
                     "--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context", "16",
                     "--batch-size", "4", "--iters", "2", "--out", tmp_path / "run"])
    assert done.returncode == 2, done.stderr
    assert "Error: --mask-rate 1e-300 hid none of a batch's" in done.stderr
    assert "raise --mask-rate" in done.stderr and "Traceback" not in done.stderr


def test_examples_of_special_tokens_alone_are_refused_in_one_line():
    # Through the Python API a text may hold the special tokens themselves
    # (encode(allow_special=True)): BERT never hides those.
    done = finishes(["-c", """if True:
        import numpy as np
        from tinyformer.jobs import MaskedLM, NothingToHide
        from tinyformer.tokenizers import CharTokenizer
        from tinyformer.train import TrainConfig
        config = TrainConfig(model="bert", corpus="x.txt", context=8, batch_size=2).resolved()
        tok = CharTokenizer(list("ab"), ["<pad>", "<mask>"])
        job = MaskedLM(config, tok)
        tokens = np.array(tok.encode("<pad><mask>" * 20, allow_special=True))
        try:
            job.batch(tokens, np.random.default_rng(0))
        except NothingToHide as e:
            print(e)
        """])
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("BERT's examples hold only <pad> and <mask> tokens, none of which "
                           "can be hidden; train on a text of ordinary tokens (special ones "
                           "written in it encoded as text)\n")


def test_every_sample_shows_a_guess_even_at_a_rate_that_often_hides_nothing(tmp_path):
    # At a rate of 1%, most stories of about 70 letters have nothing hidden: a sample of one
    # then showed no [guess] at all, beside its note that hidden tokens are in brackets.
    config = TrainConfig(**TINY, mask_rate=0.01, whole_words=False, iters=1).resolved()
    trainer = Trainer.start(config, str(tmp_path), log=quiet)
    samples = [trainer.job.sample(trainer.model, np.random.default_rng(seed))
               for seed in range(10)]
    assert all(re.search(r"\[.+?\]", sample.splitlines()[0]) for sample in samples), samples


@pytest.mark.parametrize("context", [3, 4, 6, 7, 9])
def test_the_recall_hides_each_colour_whole_or_is_not_measured(context):
    # Shorter than "yellow.", the context hid part of a long colour, or none of it, which no
    # guess could match: the recall counted the short colours alone, a figure that meant
    # nothing. It is left out there, as on a text.
    tok = CharTokenizer.train(builtin_corpus(20_000), special_tokens=["<pad>", "<mask>"])
    job = MaskedLM(TrainConfig(**TINY, context=context, iters=1).resolved(), tok)
    if context < len("yellow."):
        assert job.recall_prompts is None
        return
    inputs, hidden, colours = job.recall_inputs()
    assert inputs.shape[1] <= context and "yellow" in colours
    for row, row_hidden, colour in zip(inputs, hidden, colours):
        assert row_hidden.sum() == len(colour)
        assert row[np.flatnonzero(row_hidden)[-1] + 1] == tok.encode(".")[0]
