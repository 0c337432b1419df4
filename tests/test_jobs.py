"""What each kind of run learns from: a text's training part for its steps and its held-out
part for evaluations and samples, drawn from the run's own generators."""

from types import SimpleNamespace

import numpy as np
import pytest

import tinyautograd as ta
from tinyautograd import Tensor
from tinyformer.jobs import TextData, encode_chunks
from tinyformer.schema import BadInput
from tinyformer.tokenizers import BPETokenizer, CharTokenizer
from tinyformer.train import TrainConfig, Trainer

TINY = dict(n_layer=1, n_head=2, d_model=16, context=16, batch_size=4, eval_iters=3)


def job_for(tmp_path, **settings):
    trainer = Trainer.start(TrainConfig(**dict(TINY, **settings)), str(tmp_path / "run"),
                            log=lambda *_: None)
    trainer.close()
    return trainer.job, trainer.model


@pytest.mark.parametrize("model", ["gpt", "bert"])
def test_a_text_job_trains_on_its_first_part_and_evaluates_on_the_rest(tmp_path, model):
    job, _ = job_for(tmp_path, model=model)
    job.recall_prompts = None                       # the recall reads no data: not tested here
    ids = [job.tokenizer.encode(letter)[0] for letter in "abde"]
    rng = np.random.default_rng(0)
    # Letters of the two parts told apart: the training part's a and b, the held-out d and e.
    job.data = SimpleNamespace(train=rng.choice(ids[:2], 400), val=rng.choice(ids[2:], 400))

    def tokens(batch):              # GPT's inputs; the tokens BERT hid (its inputs swap some)
        return batch[0] if model == "gpt" else batch[1][batch[1] >= 0]

    for seed in range(5):
        assert set(tokens(job.train_batch(np.random.default_rng(seed))).ravel()) <= set(ids[:2])
    seen = []

    def loss(model, batch):         # a figure of its own for each batch
        seen.append(tokens(batch))
        return Tensor(np.float32(np.count_nonzero(tokens(batch) == ids[2])))

    job.loss = loss
    figures = job.evaluate(model=None, threads=1)
    assert len(seen) == TINY["eval_iters"]
    assert all(set(batch.ravel()) <= set(ids[2:]) for batch in seen)
    counts = [np.count_nonzero(batch == ids[2]) for batch in seen]
    assert len(set(counts)) > 1                     # else one batch would give the mean too
    # Each batch weighs by the targets its loss averages over (BERT's hidden tokens vary)
    assert figures["val_loss"] == pytest.approx(
        np.average(counts, weights=[batch.size for batch in seen]))


@pytest.mark.parametrize("settings", [dict(sample_tokens=30), dict(model="bert"),
                                      dict(task="reverse", min_len=2, max_len=5, context=None,
                                           eval_iters=None)],
                         ids=["gpt", "bert", "transformer"])
def test_a_sample_is_the_generator_s_it_is_given_and_no_other(tmp_path, settings):
    """The sample printed at an evaluation comes from the generator the trainer hands the job
    (seeded by the run's seed and step): the engine's own, which dropout draws from, does not
    change it, so the same seed prints the same samples."""
    job, model = job_for(tmp_path, **settings)
    samples = []
    for engine_seed, seed in [(1, 3), (2, 3), (1, 4)]:
        ta.manual_seed(engine_seed)
        samples.append(job.sample(model, np.random.default_rng(seed)))
    assert samples[0] == samples[1] != samples[2]


def test_a_tasks_accuracy_is_the_share_of_held_out_pairs_answered_right(tmp_path):
    """Over every held-out pair, in chunks: 500 pairs of lengths 2 to 7, two chunks."""
    job, _ = job_for(tmp_path, task="reverse", min_len=2, max_len=7, context=None,
                     eval_iters=None)
    pairs = job.data.val
    sources = {tuple(row): pair for row, pair in zip(job.data.batch(pairs)[0], pairs)}
    right = {source for source, _ in pairs[::3]}           # a third of them, in each chunk

    def translate(model, src):
        answers = [sources[tuple(row)] for row in src]
        return [target if source in right else None for source, target in answers]

    job.translate = translate
    job.loss = lambda model, batch: Tensor(np.float32(1))
    assert len(pairs) > 250
    assert job.evaluate(model=None)["val_accuracy"] == len(pairs[::3]) / len(pairs)


def test_the_recall_is_the_share_of_prompts_whose_colour_the_model_writes(tmp_path):
    """A model that writes the right colour and its full stop after every other prompt, and a
    wrong one after the others, recalls half of them."""
    job, _ = job_for(tmp_path)
    colours = [colour for _, colour in job.recall_prompts]
    written = iter([colour if i % 2 else "pink" if colour != "pink" else "blue"
                    for i, colour in enumerate(colours)])

    class Writer:                   # writes after each prompt the letters the test chose
        def generate(self, idx, max_new_tokens, temperature):
            rows = [job.tokenizer.encode((next(written) + ". ")[:max_new_tokens].ljust(
                max_new_tokens)) for _ in idx]
            return np.concatenate([idx, np.array(rows)], axis=1)

    assert job.recall(Writer()) == np.mean([i % 2 for i in range(len(colours))])


def test_the_recall_prompts_are_held_out_not_the_training_text(tmp_path):
    """Drawn from another seed's stories: the built-in stories repeat, so some prompts occur
    word for word in the training text, but the run's own text would hold every one."""
    job, _ = job_for(tmp_path, context=64)
    text = job.tokenizer.decode(np.asarray(job.data.train).tolist())
    assert len(job.recall_prompts) == 100
    assert sum(prompt in text for prompt, _ in job.recall_prompts) < 50


def test_a_task_model_takes_the_context_asked_for_or_just_what_the_task_needs(tmp_path):
    task = dict(task="reverse", min_len=2, max_len=5, eval_iters=None)
    job, model = job_for(tmp_path / "a", **task, context=None)
    assert model.context == job.data.context
    _, longer = job_for(tmp_path / "b", **task, context=job.data.context + 4)
    assert longer.context == job.data.context + 4


@pytest.mark.parametrize("text, context, fix", [
    ("hello world\n", 64, "use a longer text or --context 1 at most"),
    ("hello world\n", 8, "use a longer text or --context 1 at most"),      # the held-out part
    ("x" * 200, 64, "use a longer text or --context 19 at most"),
    ("abc", 64, "use a longer text$"),                  # one held-out token: no context fits
])
def test_a_text_too_short_for_the_context_is_told_the_context_that_fits(tmp_path, text,
                                                                          context, fix):
    (tmp_path / "short.txt").write_text(text)
    config = TrainConfig(corpus=str(tmp_path / "short.txt"), context=context)
    with pytest.raises(ValueError, match=f"^the corpus is too short: .*; {fix}"):
        TextData.prepare(config.resolved(), tmp_path / "tokens.bin", [], log=lambda *_: None)
    if fix.endswith("at most"):                         # the context said fits
        fits = int(fix.split()[-3])
        TextData.prepare(TrainConfig(corpus=str(tmp_path / "short.txt"), context=fits).resolved(),
                         tmp_path / "tokens.bin", [], log=lambda *_: None)
        # One more is refused: a part of exactly --context tokens has no window of context + 1
        with pytest.raises(ValueError, match="^the corpus is too short"):
            TextData.prepare(TrainConfig(corpus=str(tmp_path / "short.txt"),
                                         context=fits + 1).resolved(),
                             tmp_path / "tokens.bin", [], log=lambda *_: None)


@pytest.mark.parametrize("given, lengths", [
    (dict(max_len=3), (3, 3)), (dict(min_len=12), (12, 12)), (dict(max_len=6), (4, 6)),
    ({}, (4, 10)),
])
def test_a_task_length_given_alone_moves_the_other_default_out_of_its_way(given, lengths):
    # --max-len 3 alone was refused as "--min-len must be at most --max-len (3), got 4", a
    # --min-len the user never gave.
    config = TrainConfig(task="copy", **given).resolved()
    assert (config.min_len, config.max_len) == lengths
    with pytest.raises(ValueError, match="^--max-len must be at least 2, got 1$"):
        TrainConfig(task="copy", max_len=1).resolved()


def a_corpus_read_in_small_chunks(monkeypatch, change_after_first_pass=None):
    """TextData.prepare's reader, giving the text 1,000 bytes at a time as it would a 200 MB
    corpus 1 MiB at a time; `change_after_first_pass(path)` runs once the first pass (a char
    tokenizer's, which learns the characters) has read the file."""
    import tinyformer.jobs as jobs
    real, passes = jobs.iter_text, []
    def in_small_chunks(path, what="file"):
        passes.append(path)
        yield from real(path, what, chunk_bytes=1000)
        if len(passes) == 1 and change_after_first_pass is not None:
            change_after_first_pass(path)
    monkeypatch.setattr(jobs, "iter_text", in_small_chunks)


def test_tokenising_a_large_corpus_shows_its_progress_and_clears_it(tmp_path, monkeypatch,
                                                                     capsys):
    """Tokenising a corpus of 200 MB takes about a minute (with a bpe), which ran silent."""
    a_corpus_read_in_small_chunks(monkeypatch)
    monkeypatch.setattr(TextData, "PROGRESS_AFTER", 0.0)   # as if each chunk took long
    (tmp_path / "big.txt").write_text("to be or not to be, that is the question\n" * 250)
    config = TrainConfig(corpus=str(tmp_path / "big.txt"), context=8).resolved()
    TextData.prepare(config, tmp_path / "tokens.bin", [], log=lambda *_: None)
    lines = capsys.readouterr().err.splitlines()
    # 10,250 bytes in chunks of 1,000: a line at each tenth passed, none at the end (where
    # the log says what was done)
    assert [line.split(" of ")[0] for line in lines] == [
        f"tokenising: {share}%" for share in (20, 29, 39, 49, 59, 68, 78, 88, 98)]
    assert lines[0] == "tokenising: 20% of 10.2 KB, 0:00 left"


def test_a_corpus_that_changes_while_it_is_tokenised_is_said_to_have_changed(tmp_path,
                                                                            monkeypatch):
    """A character written into the corpus after the pass that learned a char vocabulary:
    "cannot encode 'Ω': not in the vocabulary", as if the tokenizer were at fault. Where it
    came in is said by its line (the 51st: after the 50 the file had)."""
    def a_character_comes_in(path):
        with open(path, "a", encoding="utf-8") as f:
            f.write("Ωmega\n")
    a_corpus_read_in_small_chunks(monkeypatch, a_character_comes_in)
    (tmp_path / "growing.txt").write_text("to be or not to be, that is the question\n" * 50)
    config = TrainConfig(corpus=str(tmp_path / "growing.txt"), context=8).resolved()
    with pytest.raises(ValueError, match=r"^corpus '.*growing.txt' changed while it was read: "
                                         r"cannot encode 'Ω' .* at line 51, column 1: .*; train "
                                         r"on it once nothing writes to it, or on a copy$"):
        TextData.prepare(config, tmp_path / "tokens.bin", [], log=lambda *_: None)
    assert not (tmp_path / "tokens.bin").exists()


@pytest.mark.parametrize("chars", [list("abc \n"), []])
def test_a_character_the_tokenizer_file_lacks_is_said_by_its_line_in_the_corpus(tmp_path,
                                                                                chars):
    """A char tokenizer file without a character of the corpus said only "cannot encode 'x':
    not in the vocabulary", not where in a corpus of millions of characters; one of special
    tokens alone (no character at all) failed as a bug of ours, numpy's IndexError."""
    text = "abc abc\n" * 300 + "ab xc\n"                                # x: line 301
    tokenizer = CharTokenizer(chars, ["<pad>"])
    first, where = ("x", "line 301, column 4") if chars else ("a", "line 1, column 1")
    said = (f"cannot encode '{first}' at {where}: not in the tokenizer's "
            f"{len(chars)}-character vocabulary; use a bpe tokenizer")
    # Read in chunks that cut its lines anywhere, as a large corpus is
    chunks = [text[i:i + 333] for i in range(0, len(text), 333)]
    with pytest.raises(BadInput, match=f"^the tokenizer 'chars.json' does not fit the text: "
                                       f"{said}"):
        list(encode_chunks(tokenizer, lambda: iter(chunks), "chars.json"))
    (tmp_path / "text.txt").write_text(text)
    tokenizer.save(tmp_path / "chars.json")
    config = TrainConfig(corpus=str(tmp_path / "text.txt"),
                         tokenizer=str(tmp_path / "chars.json"), context=8).resolved()
    with pytest.raises(BadInput, match=f"^the tokenizer '.*chars.json' does not fit the text: "
                                       f"{said}"):
        TextData.prepare(config, tmp_path / "tokens.bin", [], log=lambda *_: None,
                         tokenizer=tokenizer)
    assert not (tmp_path / "tokens.bin").exists()


def resident_bytes_of(path):
    """How much of the file `path`, memory-mapped by this process, is in its memory now."""
    resident, mapped = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0]:                      # a mapping's first line
                mapped = fields[-1] == str(path)
            elif mapped and fields[0] == "Rss:":
                resident += int(fields[1]) * 1024
    return resident


def test_opening_the_tokens_checks_them_without_bringing_the_whole_file_into_memory(tmp_path):
    """The pass that checks tokens.bin (its SHA-256, its largest id) read it through the memory
    map, whose every page then stayed in the process's memory: a run on a 200 MB corpus
    started with 400 MB resident, where the point of the map is that training reads only the
    windows it draws."""
    from tinyformer.rundir import write_tokens
    ids = np.arange(2_000_000) % 50                 # 4 MB of uint16
    path = tmp_path / "tokens.bin"
    dtype, n_tokens, sha256 = write_tokens(path, [ids], 50, lambda n: None)
    data = TextData(path, dtype, n_tokens, vocab_size=50, sha256=sha256)
    assert resident_bytes_of(path) < 1_000_000
    assert int(data.val[-1]) == ids[-1]             # the map reads what was written


def test_tokens_holding_the_id_one_past_the_vocabulary_are_refused_as_they_are_opened(tmp_path):
    """Ids run from 0 to vocab_size - 1: an id equal to vocab_size has no row in the
    embedding, and would fail deep in a step mid-run."""
    from tinyformer.rundir import CheckpointError, write_tokens
    path = tmp_path / "tokens.bin"
    dtype, n_tokens, _ = write_tokens(path, [[0, 1, 50]], 51, lambda n: None)
    assert TextData(path, dtype, n_tokens, vocab_size=51).val.tolist() == [50]
    with pytest.raises(CheckpointError, match="holds token id 50, beyond the tokenizer's 50"):
        TextData(path, dtype, n_tokens, vocab_size=50)


def test_data_info_with_a_negative_number_of_tokens_is_refused():
    from tinyformer.jobs import check_data_info
    info = {"tokens": "tokens.bin", "dtype": "uint16", "n_tokens": 0}
    check_data_info(info)
    with pytest.raises(BadInput, match="gives the number of tokens as -1, where a run writes"):
        check_data_info({**info, "n_tokens": -1})


def test_a_corpus_read_in_chunks_gets_the_ids_of_the_whole_text():
    # Each chunk of the file (1 MiB) was encoded alone: a word that a chunk's edge cut was
    # two tokens ("ca", "t"), not the one the whole text gives ("cat").
    bpe = BPETokenizer.train("the cat sat on the mat " * 50, 268)
    chunks = ["the cat sat on the ca", "t sat on the m", "at"]
    ids = [i for part in encode_chunks(bpe, lambda: iter(chunks)) for i in part]
    assert ids == bpe.encode("".join(chunks))
