"""Training: settings, data preparation, the loop, checkpoints and exact resumption."""

import copy
import dataclasses
import json
import math
import os
import re
import signal
from types import SimpleNamespace

import numpy as np
import pytest

import tinyautograd as ta

from tinyformer import GPT, checkpoint, parallel, rundir
from tinyformer.data import PAD, TASKS, builtin_corpus, recalled
from tinyformer.tokenizers import BPETokenizer, CharTokenizer
from tinyformer.jobs import encode_chars
from tinyformer.rundir import RunDirectory, RunDirectoryError
from tinyformer.train import TrainConfig, Trainer, update
from tinyformer.train_config import TASK_ITERS, default_out_dir

# Tiny models, so that a whole run takes a fraction of a second.
TINY = dict(n_layer=1, n_head=2, d_model=16, context=16, batch_size=4, eval_iters=2,
            sample_tokens=10)
BERT_TINY = dict(TINY, model="bert", sample_tokens=None)     # a BERT writes no sample
JOBS = {
    "gpt": dict(TINY, dropout=0.1),                   # dropout: the engine's generator matters
    "bert": dict(BERT_TINY, dropout=0.1),
    "gpt, modern block": dict(TINY, dropout=0.1, positions="rope", rope_theta=500.0,
                              normalization="rmsnorm", activation="swiglu", n_kv_head=1,
                              qk_norm=True, logit_softcap=15.0, bias=False, tie_weights=False),
    # Sources of 2 to 4 digits, 11,100 of them: few enough that the task makes them all and
    # shuffles them (to 5 digits, it drew its 20,000 training pairs one by one, 0.5 s a run).
    "transformer": dict(n_layer=1, n_head=2, d_model=16, batch_size=8, task="reverse",
                        min_len=2, max_len=4),
}


# The stories' recall on 8 prompts, not 100, in every test here but those that read it
# (all_recall_prompts): the 100 were most of each tiny run's time.
pytestmark = pytest.mark.usefixtures("recall_on_eight_prompts", "short_samples")


def quiet(*args):
    pass


def metrics(directory):
    with open(os.path.join(directory, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def run(directory, **settings):
    trainer = Trainer.start(TrainConfig(**settings), str(directory), log=quiet)
    assert trainer.train() == "done"
    return metrics(directory)


# -- settings -----------------------------------------------------------------------------------


def test_defaults_depend_on_the_job():
    builtin = TrainConfig().resolved()
    corpus = TrainConfig(corpus="x.txt").resolved()
    task = TrainConfig(task="reverse").resolved()
    assert builtin.model == "gpt" and task.model == "transformer"
    # A text file gets nanoGPT's small CPU recipe for Shakespeare.
    assert (corpus.n_layer, corpus.n_head, corpus.d_model, corpus.context, corpus.batch_size,
            corpus.iters, corpus.lr, corpus.min_lr, corpus.warmup) == (4, 4, 128, 64, 12, 2000,
                                                                      1e-3, 1e-4, 100)
    assert TrainConfig(iters=30).resolved().warmup == 3      # a short run, a short warmup
    # A text's validation loss is over so many batches; a task scores all its held-out pairs.
    assert (builtin.eval_iters, corpus.eval_iters, task.eval_iters) == (20, 20, None)


@pytest.mark.parametrize("settings, message", [
    (dict(n_layer=0), "--n-layer must be a whole number >= 1"),
    (dict(d_model=-4), "--d-model must be a whole number >= 1"),
    (dict(batch_size=2.5), "--batch-size must be a whole number"),
    (dict(micro_batches=0), "--micro-batches must be a whole number >= 1"),
    (dict(n_head=3, d_model=64), "--n-head 3 does not divide --d-model 64"),
    (dict(model="lstm"), "--model must be one of gpt, bert, transformer, got 'lstm'"),
    (dict(task="juggle"), "--task must be one of copy, reverse, sort, add, got 'juggle'"),
    # a slip of a key or of the case gets the choice it was meant for
    (dict(model="gtp"), "--model must be one of gpt, bert, transformer, got 'gtp'; did you mean "
                        "'gpt'?"),
    (dict(model="GPT"), "got 'GPT'; did you mean 'gpt'?"),
    (dict(task="revers"), "got 'revers'; did you mean 'reverse'?"),
    (dict(tokenizer=3), "--tokenizer must be char, bpe or a tokenizer file's path, got 3"),
    (dict(tokenizer=" "), "--tokenizer must be char, bpe or a tokenizer file's path"),
    (dict(lr=0), "--lr must be a finite number > 0"),
    (dict(lr=float("nan")), "--lr must be a finite number > 0, got nan"),
    (dict(lr=float("inf")), "--lr must be a finite number > 0"),
    (dict(lr="3e-4"), "--lr must be a finite number > 0, got '3e-4'"),
    (dict(min_lr="x"), "--min-lr must be a finite number >= 0, got 'x'"),
    (dict(n_layer=True), "--n-layer must be a whole number >= 1, got True"),
    (dict(d_model=10 ** 12), "--d-model must be at most 65,536"),
    (dict(d_model=65_537, n_head=1), "--d-model must be at most 65,536, got 65,537"),
    (dict(seed=-1), "--seed must be a whole number >= 0"),
    (dict(seed=2 ** 63), "--seed must be at most 9,223,372,036,854,775,807, got "
                         "9,223,372,036,854,775,808"),
    (dict(clip=float("inf")), "--clip must be a finite number >= 0"),
    (dict(corpus=""), "--corpus must be a file's path"),
    (dict(corpus="  "), "--corpus must be a file's path, got '  '"),
    (dict(corpus="a\0b"), "--corpus must be a file's path"),    # no file has such a name
    (dict(iters=10, warmup=20), "--warmup must be at most --iters (10), got 20"),
    # the empty parts were left out: the run computed 2, and recorded 8
    (dict(batch_size=2, micro_batches=8), "--micro-batches must be at most --batch-size (2), "
                                          "got 8: each part is at least one sequence"),
    (dict(dropout=1.5), "--dropout must be a finite number in [0, 1], got 1.5"),
    (dict(model="transformer"), "--model transformer trains on a seq2seq task"),
    (dict(task="copy", model="gpt"), "--task trains an encoder-decoder"),
    (dict(task="copy", min_len=6, max_len=3), "--min-len must be at most --max-len (3), got 6"),
    (dict(n_head=3, d_model=64), "--n-head 3 does not divide --d-model 64: each head gets "
                                 "d_model / n_head dimensions; try --n-head 2 or 4"),
    (dict(n_head=100, d_model=64), "--n-head 100 does not divide --d-model 64: each head gets "
                                   "d_model / n_head dimensions; try --n-head 64"),
    (dict(tokenizer="bpe", vocab_size=100), "--vocab-size 100 is too small"),
    (dict(tokenizer="bpe", vocab_size=258), "--vocab-size 258 is too small"),
    (dict(lr=1e-3, min_lr=2e-3), "--min-lr must be between 0 and --lr (0.001), got 0.002"),
    (dict(iters=0), "--iters must be a whole number >= 1, got 0"),
    (dict(eval_every=0), "--eval-every must be a whole number >= 1, got 0"),
    (dict(checkpoint_every=0), "--checkpoint-every must be a whole number >= 1, got 0"),
    (dict(beta2=1.0), "--beta2 must be a finite number in [0, 1), got 1.0"),
    # BERT learns from the tokens it hides: a rate of 0 hides none, 1 leaves nothing to read.
    (dict(model="bert", mask_rate=0), "--mask-rate must be a finite number in (0, 1), got 0"),
    (dict(model="bert", mask_rate=1.0), "--mask-rate must be a finite number in (0, 1), got 1.0"),
    (dict(qk_norm=1), "--qk-norm must be true or false, got 1"),
    # RoPE turns features in pairs: say which head counts give even heads, or that none can.
    (dict(positions="rope", n_head=2, d_model=6), "--positions rope needs an even head size, "
                                                  "but d_model / n_head = 3; try --n-head 1 or 3"),
    (dict(positions="rope", n_head=3, d_model=15), "d_model / n_head = 5; give an even "
                                                   "--d-model"),
    (dict(task="copy", min_len=1), "--min-len must be at least 2, got 1"),
])
def test_bad_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(ValueError) as e:
        TrainConfig(**settings).resolved()
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("settings, message", [
    # the rules' errors, and these, said --lr or --n-head whatever name() said
    (dict(lr=0), "lr must be a finite number > 0, got 0"),
    (dict(task="copy", model="gpt"), "task trains an encoder-decoder; use model transformer "
                                     "(the default with task), not gpt"),
    (dict(model="transformer"), "model transformer trains on a seq2seq task; give task "),
    (dict(n_head=3, d_model=64), "n_head 3 does not divide d_model 64: each head gets "
                                 "d_model / n_head dimensions; try n_head 2 or 4"),
    (dict(positions="rope", n_head=2, d_model=6), "positions rope needs an even head size, but "
                                                  "d_model / n_head = 3; try n_head 1 or 3"),
    (dict(n_head=4, n_kv_head=3), "n_kv_head 3 does not divide n_head 4: each key-value head "
                                  "serves a whole group of query heads; try n_kv_head 1 or 2 or 4"),
    (dict(tokenizer="bpe", vocab_size=258), "vocab_size 258 is too small"),
])
def test_errors_call_each_setting_what_name_calls_it(settings, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        TrainConfig(**settings).resolved(name=str)


@pytest.mark.parametrize("settings", [
    dict(lr=1e-3, min_lr=1e-3),                  # a constant rate after the warmup
    dict(iters=10, warmup=10),                   # a warmup as long as the run
    dict(tokenizer="bpe", vocab_size=259),       # the bytes, and some merges
    dict(lr=1e-3, min_lr=0.0),                   # a cosine all the way down
    dict(task="copy", min_len=5, max_len=5),     # sequences of one length
    dict(d_model=65_536, n_head=1),              # the largest width a rule allows
    dict(sample_tokens=0),                       # evaluations that write no sample
    dict(seed=2 ** 63 - 1),                      # the largest seed numpy's int64 holds
])
def test_settings_at_the_edge_of_their_range_are_accepted(settings):
    resolved = TrainConfig(**settings).resolved()
    assert all(getattr(resolved, key) == value for key, value in settings.items())


@pytest.mark.parametrize("settings, message", [
    (dict(label_smoothing=0.1), "--label-smoothing smooths a --task's targets"),
    (dict(min_len=3), "--min-len and --max-len set the lengths of a --task's sequences"),
    (dict(max_len=8, model="bert"), "--min-len and --max-len set the lengths"),
    (dict(task="copy", tokenizer="bpe"), "a --task has its own tokenizer"),
    (dict(task="copy", tokenizer="char"), "a --task has its own tokenizer"),
    (dict(task="copy", vocab_size=600), "a --task has its own tokenizer"),
    (dict(vocab_size=300), "--vocab-size is for a bpe tokenizer"),
    (dict(tokenizer="char", vocab_size=300), "--vocab-size is for a bpe tokenizer"),
    (dict(tokenizer="tok.json", vocab_size=300), "the tokenizer file 'tok.json' has its own "
                                                 "vocabulary: drop --vocab-size"),
    (dict(task="copy", tokenizer="tok.json"), "a --task has its own tokenizer"),
    (dict(schedule="noam", min_lr=1e-4), "--schedule noam has no floor: drop --min-lr"),
    (dict(task="copy", eval_iters=5), "a task is scored on all its held-out pairs: drop "
                                      "--eval-iters"),
])
def test_a_setting_that_does_not_apply_is_refused_not_ignored(settings, message):
    with pytest.raises(ValueError) as e:
        TrainConfig(**settings).resolved()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_run_saved_with_settings_that_did_not_apply_resumes_without_them(tmp_path,
                                                                           monkeypatch):
    """Runs saved before such settings were refused hold their defaults, unused: they resume,
    exactly, with those settings unset."""
    whole = run(tmp_path / "whole", **TINY, iters=4)
    assert cut_short(tmp_path / "cut", monkeypatch, after=1, **TINY, iters=4) == "interrupted"
    config = rundir.read_config(str(tmp_path / "cut"))
    config["train"].update(min_len=4, max_len=10, label_smoothing=0.0, vocab_size=512)
    (tmp_path / "cut" / "config.json").write_text(json.dumps(config))
    resumed = Trainer.resume(str(tmp_path / "cut"), log=quiet)
    assert (resumed.config.min_len, resumed.config.vocab_size) == (None, None)
    assert resumed.train() == "done"
    assert metrics(tmp_path / "cut") == whole


def test_a_run_saved_before_micro_batches_resumes_computing_each_batch_whole(tmp_path,
                                                                            monkeypatch):
    """Runs saved before batches were cut into micro-batches hold no micro_batches: they go
    on as they trained, each batch whole, exactly."""
    settings = dict(TINY, iters=4, micro_batches=1)
    whole = run(tmp_path / "whole", **settings)
    assert cut_short(tmp_path / "cut", monkeypatch, after=1, **settings) == "interrupted"
    config = rundir.read_config(str(tmp_path / "cut"))
    del config["train"]["micro_batches"]
    (tmp_path / "cut" / "config.json").write_text(json.dumps(config))
    resumed = Trainer.resume(str(tmp_path / "cut"), log=quiet)
    assert resumed.config.micro_batches == 1
    assert resumed.train() == "done"
    assert metrics(tmp_path / "cut") == whole


def test_micro_batches_default_to_two_or_the_batch_size_and_saved_runs_keep_theirs(tmp_path):
    """The default 2 makes way for a batch of one sequence, as it is computed; a run saved
    before more parts than sequences were refused resumes, its empty parts left out as ever."""
    assert TrainConfig(**TINY).resolved().micro_batches == 2
    assert TrainConfig(**dict(TINY, batch_size=1)).resolved().micro_batches == 1
    settings = dict(TINY, batch_size=1, iters=2)
    run(tmp_path / "run", **settings)
    assert rundir.read_config(str(tmp_path / "run"))["train"]["micro_batches"] == 1
    saved = dict(rundir.read_config(str(tmp_path / "run"))["train"], micro_batches=2)
    assert TrainConfig.from_saved(saved, "config.json").micro_batches == 1


def test_a_task_run_saved_with_eval_iters_resumes_without_it(tmp_path, monkeypatch):
    settings = dict(JOBS["transformer"], iters=4)
    whole = run(tmp_path / "whole", **settings)
    assert cut_short(tmp_path / "cut", monkeypatch, after=1, **settings) == "interrupted"
    config = rundir.read_config(str(tmp_path / "cut"))
    config["train"]["eval_iters"] = 20           # as task runs saved it before it was refused
    (tmp_path / "cut" / "config.json").write_text(json.dumps(config))
    resumed = Trainer.resume(str(tmp_path / "cut"), log=quiet)
    assert resumed.config.eval_iters is None
    assert resumed.train() == "done"
    assert metrics(tmp_path / "cut") == whole


def test_each_task_gets_its_own_default_number_of_steps():
    # The harder tasks need more steps to reach 99% exact match (TASK_ITERS); given, --iters wins.
    assert {task: TrainConfig(task=task).resolved().iters for task in TASKS} == TASK_ITERS
    assert TrainConfig(task="add", iters=7).resolved().iters == 7


def test_a_short_noam_run_gets_a_default_warmup_it_can_use():
    assert TrainConfig(schedule="noam", iters=5).resolved().warmup == 1
    assert TrainConfig(schedule="cosine", iters=5).resolved().warmup == 0
    assert TrainConfig(schedule="noam", iters=2000).resolved().warmup == 60    # the default
    with pytest.raises(ValueError, match="--warmup must be at least 1 with the noam schedule"):
        TrainConfig(schedule="noam", iters=5, warmup=0).resolved()     # given: refused


def test_a_noam_run_has_no_min_lr_and_one_saved_with_it_resumes_without_it():
    assert TrainConfig(schedule="noam").resolved().min_lr is None
    assert TrainConfig(schedule="cosine", lr=1e-3).resolved().min_lr == 1e-4
    saved = dataclasses.asdict(TrainConfig(schedule="noam").resolved())
    saved["min_lr"] = saved["lr"] / 10                 # as runs saved it before it was refused
    config = TrainConfig.from_saved(saved, "config.json")
    assert config.min_lr is None
    config.check()


@pytest.mark.parametrize("settings", [dict(model="bert"), dict(task="copy")])
def test_a_run_saved_with_a_sample_length_it_never_used_resumes_without_it(settings,
                                                                           full_samples):
    saved = dataclasses.asdict(TrainConfig(**settings).resolved())
    saved["sample_tokens"] = 200                    # as runs saved it before it was refused
    config = TrainConfig.from_saved(saved, "config.json")
    assert config.sample_tokens is None
    config.check()
    assert TrainConfig().resolved().sample_tokens == 200        # a GPT's, given or not


def test_a_setting_spelled_both_ways_is_refused_not_the_later_taken(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('n_layer = 1\n"n-layer" = 2\n')
    with pytest.raises(ValueError, match=f"^n_layer and n-layer in {re.escape(str(path))} are "
                                         f"the same setting; keep one$"):
        TrainConfig.from_toml(path)


def test_unknown_setting_names_the_one_meant_or_else_the_known_ones():
    with pytest.raises(ValueError, match="^unknown setting 'iter' in f.toml; did you mean "
                                         "'iters'\\?$"):
        TrainConfig.from_dict({"iter": 2}, "f.toml")
    with pytest.raises(ValueError, match="unknown setting 'optimiser' in f.toml; known settings: "
                                         "activation, batch_size"):
        TrainConfig.from_dict({"optimiser": "adam"}, "f.toml")
    # nanoGPT's and Hugging Face's names: ours, not a guess by spelling (eval_iters)
    for theirs, ours in [("lr_decay_iters", "iters"), ("per_device_train_batch_size",
                                                        "batch_size")]:
        with pytest.raises(ValueError, match=f"'{theirs}' in f.toml; did you mean '{ours}'"):
            TrainConfig.from_dict({theirs: 2}, "f.toml")


@pytest.mark.parametrize("key, ours", [("LR", "lr"), ("Batch_Size", "batch_size"),
                                       ("N-Layer", "n_layer")])
def test_a_setting_in_the_wrong_case_names_the_one_meant(key, ours):
    # A file's keys are read as written (TOML's are case-sensitive), but a slip of the case is
    # answered as a slip of a value's case is ("GELU": 'gelu'), not with every known setting;
    # the key is named as the file spells it (N-Layer, not N_Layer).
    with pytest.raises(ValueError, match=f"^unknown setting {key!r} in f.toml; did you mean "
                                         f"{ours!r}\\?$"):
        TrainConfig.from_dict({key: 2}, "f.toml")


@pytest.mark.parametrize("settings, message", [
    ({"lr": "abc"}, "lr in f.toml must be a finite number > 0, got 'abc'"),
    ({"n-layer": 2.0}, "n_layer in f.toml must be a whole number >= 1, got 2.0"),
    ({"task": 7}, "task in f.toml must be one of copy, reverse, sort, add, got 7"),
    ({"activation": "GELU"}, "activation in f.toml must be one of relu, gelu, swiglu, relu2, got "
                             "'GELU'; did you mean 'gelu'?"),
    ({"corpus": ["a.txt"]}, "corpus in f.toml must be a file's path"),
])
def test_a_files_values_are_checked_and_named_by_where_they_came_from(settings, message):
    with pytest.raises(ValueError) as e:
        TrainConfig.from_dict(settings, "f.toml")
    assert str(e.value).startswith(message)
    assert TrainConfig.from_dict({"n-layer": 2}).n_layer == 2     # dashes as on the CLI


@pytest.mark.parametrize("settings, message", [
    ({"iters": True}, "iters in f.toml must be a whole number >= 1, got true$"),
    ({"lr": False}, "lr in f.toml must be a finite number > 0, got false$"),
    ({"model": True}, "model in f.toml must be one of gpt, bert, transformer, got true$"),
    ({"bias": 1}, "bias in f.toml must be true or false, got 1$"),
    ({"corpus": [True]}, r"corpus in f.toml must be .*, got \[true\]$"),
    # A text quoted within its quotes is a text still: no advice to drop the quotes.
    ({"model": '"gpt"'}, r"""model in f.toml must be one of .*, got '"gpt"'; did you mean """
                         r"""'gpt'\?$"""),
    # A number quoted with spaces around it: written without them.
    ({"lr": " 3e-4 "}, "lr in f.toml must be a finite number > 0, got ' 3e-4 ', a text: write "
                       "3e-4 without the quotes$"),
    # An integer too large for a float is no finite number (math.isfinite overflows on it).
    ({"lr": 10 ** 400}, r"lr in f.toml must be a finite number > 0, got 10{400}$"),
])
def test_a_files_values_are_told_as_the_file_writes_them(settings, message):
    # The file says `true`: Python's `True` is nowhere in it.
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(settings, "f.toml")


# -- data ----------------------------------------------------------------------------------------


def test_encode_chars_agrees_with_the_tokenizer():
    text = "héllo wörld, ✓ naïve\n" * 3
    tok = CharTokenizer.train(text, special_tokens=["<pad>", "<mask>"])
    assert encode_chars(tok, text).tolist() == tok.encode(text)
    # A tokenizer file's characters may come in any order, not only a learned one's.
    unsorted = CharTokenizer(list(dict.fromkeys(text)), special_tokens=["<pad>"])
    assert encode_chars(unsorted, text).tolist() == unsorted.encode(text)


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_a_corpus_file_becomes_a_memory_mapped_token_array(tmp_path, tokenizer):
    corpus = tmp_path / "corpus.txt"
    text = "the quick brown fox jumps over the lazy dog. " * 200 + "ünïcödé ✓\n"
    corpus.write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    sizes = dict(vocab_size=300) if tokenizer == "bpe" else {}     # a char one has none
    trainer = Trainer.start(TrainConfig(corpus=str(corpus), tokenizer=tokenizer, **TINY,
                                        iters=2, **sizes), str(out), log=quiet)
    data = trainer.job.data
    assert isinstance(data.train, np.memmap) and isinstance(data.val, np.memmap)
    tokens = np.concatenate([data.train, data.val])
    assert trainer.job.tokenizer.decode(tokens) == text
    assert len(data.val) == len(tokens) - int(len(tokens) * 0.9)     # the last 10% held out


def test_a_corpus_and_a_tokenizer_file_may_be_given_as_paths(tmp_path):
    # As a Python user has them (pathlib); they were refused as "not a text".
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("hello world, hello there. " * 20)
    first = Trainer.start(TrainConfig(corpus=corpus, **TINY, iters=1), str(tmp_path / "a"),
                          log=quiet)
    assert first.train(threads=1) == "done"
    said = []
    second = Trainer.start(TrainConfig(corpus=corpus, tokenizer=tmp_path / "a", **TINY, iters=1),
                           str(tmp_path / "b"), log=said.append)
    assert second.train(threads=1) == "done"
    # the folder named as what it is, not as a kind of tokenizer ("with a .../a tokenizer")
    vocab_size = first.job.tokenizer.vocab_size
    assert (f"tokenising {corpus} (520 bytes) with the tokenizer of {tmp_path / 'a'} (char, "
            f"{vocab_size} ids)...") in said


def test_settings_given_as_numpy_numbers_are_recorded_as_the_numbers_they_are(tmp_path):
    # A sweep's np.arange(...) of steps, or an lr of float32: taken by the rules, they then
    # failed as "Object of type int64 is not JSON serializable" as the run wrote its manifest.
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("hello world, hello there. " * 20)
    config = TrainConfig(**TINY, corpus=corpus, iters=np.int64(1), lr=np.float32(0.5),
                         seed=np.uint8(3))
    trainer = Trainer.start(config, str(tmp_path / "run"), log=quiet)
    trainer.close()
    saved = json.loads((tmp_path / "run" / "manifest.json").read_text())["settings"]
    assert (saved["iters"], saved["lr"], saved["seed"]) == (1, 0.5, 3)
    assert type(trainer.config.iters) is int and type(trainer.config.lr) is float


def test_a_corpus_shorter_than_the_context_is_refused(tmp_path):
    corpus = tmp_path / "short.txt"
    corpus.write_text("a few words only, and then some more words to make it longer")
    with pytest.raises(ValueError, match="the corpus is too short: its validation part has "):
        Trainer.start(TrainConfig(corpus=str(corpus), **TINY), str(tmp_path / "run"), log=quiet)
    # Each part needs context + 1 tokens (a window and its next token): the 10% held out of
    # 160 characters is 16 = TINY's context, one too few; of 170, 17 is enough.
    corpus.write_text("ab" * 80)
    with pytest.raises(ValueError, match="validation part has 16 tokens, fewer than --context "
                                         r"\+ 1 = 17"):
        Trainer.start(TrainConfig(corpus=str(corpus), **TINY), str(tmp_path / "run"), log=quiet)
    corpus.write_text("ab" * 85)
    trainer = Trainer.start(TrainConfig(corpus=str(corpus), **TINY), str(tmp_path / "run2"),
                            log=quiet)
    assert len(trainer.job.data.val) == 17
    trainer.close()


def test_the_out_directory_is_checked_before_anything_is_written(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="is not empty; give another --out, or --force"):
        Trainer.start(TrainConfig(**TINY, iters=2), str(tmp_path / "full"), log=quiet)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(RunDirectoryError, match="is a file, not a directory"):
        RunDirectory.claim(str(tmp_path / "a-file"), create=True)
    with pytest.raises(RunDirectoryError, match="cannot write to"):
        RunDirectory.claim(str(tmp_path / "a-file" / "run"), create=True)
    assert sorted(os.listdir(tmp_path / "full")) == ["notes.txt"]      # the lock is gone
    # --force replaces a run's files, and only those: the user's notes stay.
    Trainer.start(TrainConfig(**TINY, iters=2), str(tmp_path / "full"), force=True, log=quiet)
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine"


# -- the loop ------------------------------------------------------------------------------------


def test_without_out_an_empty_folder_of_the_runs_name_is_used_and_a_file_is_passed_over(
        tmp_path):
    runs = tmp_path / "runs"
    (runs / "gpt-builtin").mkdir(parents=True)               # made beforehand, and empty
    (runs / "gpt-builtin-2").write_text("not a folder")
    config = TrainConfig().resolved()
    assert default_out_dir(config, runs) == os.path.join(runs, "gpt-builtin")
    (runs / "gpt-builtin" / "notes.txt").write_text("mine")
    assert default_out_dir(config, runs) == os.path.join(runs, "gpt-builtin-3")


def test_without_out_a_run_goes_on_to_the_next_name_when_another_claims_its_choice_first(
        tmp_path, monkeypatch):
    # A sweep started in parallel, none with --out: two runs choose runs/gpt-builtin at the
    # same moment, and the other locks it first.
    monkeypatch.chdir(tmp_path)
    from tinyformer import train as train_module
    chosen, others = [], []

    def chosen_as_another_run_claims_it(config):
        path = default_out_dir(config)
        chosen.append(path)
        if not others:
            others.append(RunDirectory.claim(path, quiet, create=True))
        return path

    monkeypatch.setattr(train_module, "default_out_dir", chosen_as_another_run_claims_it)
    trainer = Trainer.start(TrainConfig(**TINY, iters=1), None, log=quiet)
    try:
        assert chosen == [os.path.join("runs", name) for name in ("gpt-builtin", "gpt-builtin-2")]
        assert trainer.directory == os.path.join("runs", "gpt-builtin-2")
    finally:
        trainer.close()
        others[0].release()


def test_without_out_a_run_passes_over_a_run_that_started_in_its_choice_meanwhile(
        tmp_path, monkeypatch):
    # Another run of the sweep takes runs/gpt-builtin between this one's choice and its lock,
    # and gives the lock up (it ended, or stopped): the name is free to lock but no longer
    # empty, and this run goes on to the next name, neither refused there nor replacing that
    # run (--force, which would, needs an --out: test_cli_train.py).
    monkeypatch.chdir(tmp_path)
    from tinyformer import train as train_module
    chosen = []

    def chosen_as_another_run_starts_there(config):
        path = default_out_dir(config)
        chosen.append(path)
        if len(chosen) == 1:
            Trainer.start(config, path, log=quiet).close()
        return path

    monkeypatch.setattr(train_module, "default_out_dir", chosen_as_another_run_starts_there)
    theirs = os.path.join("runs", "gpt-builtin", rundir.MANIFEST)
    trainer = Trainer.start(TrainConfig(**TINY, iters=1), None, log=quiet)
    try:
        assert trainer.directory == os.path.join("runs", "gpt-builtin-2")
        assert chosen == [os.path.join("runs", name) for name in ("gpt-builtin", "gpt-builtin-2")]
        assert os.path.exists(theirs)
    finally:
        trainer.close()


@pytest.mark.usefixtures("all_recall_prompts")
def test_the_loss_goes_down_and_metrics_follow_the_contract(tmp_path):
    lines = run(tmp_path, n_layer=1, n_head=2, d_model=32, context=32, batch_size=16,
                iters=60, eval_every=30, eval_iters=4, sample_tokens=10, lr=1e-2)
    assert [line["step"] for line in lines] == list(range(1, 61))
    assert all({"train_loss", "lr"} <= set(line) for line in lines)
    evaluated = [line for line in lines if "val_loss" in line]
    assert [line["step"] for line in evaluated] == [30, 60]
    # From ln(26) = 3.26 (uniform over the corpus's characters) to well below it.
    assert np.mean([line["train_loss"] for line in lines[-10:]]) < 2.6
    assert evaluated[-1]["val_loss"] < 2.6
    assert all(0 <= line["val_recall"] <= 1 for line in evaluated)   # the built-in corpus's


def test_the_last_step_is_evaluated_and_saved_though_eval_every_does_not_divide_it(tmp_path):
    lines = run(tmp_path, **TINY, iters=5, eval_every=2)
    assert [line["step"] for line in lines if "val_loss" in line] == [2, 4, 5]
    assert rundir.read_config(str(tmp_path))["step"] == 5


def test_the_readme_names_every_field_of_metrics_jsonl(tmp_path):
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    told = re.search(r"`metrics.jsonl` \(one JSON line a step:(.*?)\) and `loss.png`", readme,
                     re.S).group(1)
    written = set()
    for job in ("gpt", "transformer"):                  # the built-in stories, and a task
        for line in run(tmp_path / job, **JOBS[job], iters=2):
            written |= line.keys()
    assert written <= set(re.findall(r"`(\w+)`", told))


def test_the_lr_warms_up_to_lr_then_follows_the_cosine_down_to_min_lr(tmp_path):
    # nanoGPT's schedule as the trainer drives it: each step reports the lr its update used,
    # the warmup's climbing to --lr at step --warmup, the cosine's ending at --min-lr.
    lr, min_lr, warmup, iters = 1e-2, 1e-3, 2, 6
    trainer = Trainer.start(TrainConfig(**TINY, iters=iters, warmup=warmup, lr=lr,
                                        min_lr=min_lr), str(tmp_path), log=quiet)
    used = [trainer.train_step().lr for _ in range(iters)]
    trainer.close()
    def cosine(step):
        return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * (step - warmup) /
                                                      (iters - warmup))) / 2
    assert used == pytest.approx([lr * (step + 1) / (warmup + 1) for step in range(warmup)] +
                                 [cosine(step) for step in range(warmup, iters)], rel=1e-12)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(min_lr, rel=1e-12)


def test_the_optimizer_takes_beta1_beta2_and_the_weight_decay_of_the_settings(tmp_path):
    # Nothing checked that beta2 reached AdamW: the run could train with (beta1, beta1).
    trainer = Trainer.start(TrainConfig(**TINY, iters=2, beta1=0.8, beta2=0.95,
                                        weight_decay=0.2), str(tmp_path), log=quiet)
    trainer.close()
    groups = trainer.optimizer.param_groups
    assert [group["betas"] for group in groups] == [(0.8, 0.95)] * 2
    assert [group["weight_decay"] for group in groups] == [0.2, 0.0]   # matrices only


def test_a_noam_run_peaks_at_the_lr_asked_for_at_the_end_of_its_warmup(tmp_path):
    # Noam's rate is factor / sqrt(d_model * step) after warmup and peaks at the warmup's
    # last step; the trainer chooses the factor that makes that peak --lr.
    lines = run(tmp_path, **TINY, iters=6, warmup=3, schedule="noam", lr=2e-3)
    rates = [line["lr"] for line in lines]
    assert max(rates) == pytest.approx(2e-3, rel=1e-9)
    assert rates.index(max(rates)) == 2                          # the third step's


def test_a_dropout_of_one_trains_as_torch_allows_it(tmp_path):
    # Every activation dropped: the model learns only what needs no input (its biases), but
    # the run is as valid as torch's nn.Dropout(1.0) and MultiheadAttention(dropout=1.0) make it.
    lines = run(tmp_path, **TINY, iters=2, dropout=1.0)
    assert [line["step"] for line in lines] == [1, 2]
    assert all(np.isfinite(line["train_loss"]) for line in lines)


@pytest.mark.usefixtures("all_recall_prompts")
def test_the_recall_writes_each_colour_through_the_kv_cache_batch_size_prompts_at_a_time(
        tmp_path):
    # The prompts leave room in the context for the longest colour and its full stop, so the
    # window never slides while they are written: one pass over the prompts, then one
    # position per letter (a sliding window would run the whole context again each time).
    # They are written batch_size at a time, so the recall needs no more memory than that
    # many rows do (all 100 at once needed several times a training step's).
    trainer = Trainer.start(TrainConfig(**dict(TINY, batch_size=3), iters=1), str(tmp_path),
                            log=quiet)
    job, model = trainer.job, trainer.model
    room = len("yellow.")
    prompt_length = TINY["context"] - room
    assert {len(prompt) for prompt, _ in job.recall_prompts} == {prompt_length}
    shapes, forward = [], model.forward
    written, generate = [], model.generate

    def recording(idx, cache=None, **kwargs):
        shapes.append(np.shape(idx))
        return forward(idx, cache, **kwargs)

    def keeping(idx, *args, **kwargs):
        written.append(generate(idx, *args, **kwargs))
        return written[-1]
    model.forward, model.generate = recording, keeping
    recall = job.recall(model)

    def steps(rows):
        return [(rows, prompt_length)] + [(rows, 1)] * (room - 1)
    assert shapes == steps(3) * 33 + steps(1)                       # 100 prompts
    # The same letters as the model writes for all the prompts at once without the cache,
    # recomputing every position, and so the same figure.
    prompts = np.array([job.tokenizer.encode(prompt) for prompt, _ in job.recall_prompts])
    out = generate(prompts, room, temperature=0, use_cache=False)
    assert np.array_equal(np.concatenate(written), out)
    hits = [recalled(job.tokenizer.decode(row[prompt_length:]), colour)
            for row, (_, colour) in zip(out, job.recall_prompts)]
    assert recall == np.mean(hits)
    trainer.close()


@pytest.mark.usefixtures("all_recall_prompts")
def test_the_recall_runs_on_a_context_too_short_to_leave_room(tmp_path):
    # Shorter than the colour and its full stop: one-letter prompts, and the window slides.
    trainer = Trainer.start(TrainConfig(**dict(TINY, context=4), iters=1), str(tmp_path),
                            log=quiet)
    assert len(trainer.job.recall_prompts) == 100
    assert {len(prompt) for prompt, _ in trainer.job.recall_prompts} == {1}
    assert 0 <= trainer.job.recall(trainer.model) <= 1
    trainer.close()


def test_the_same_seed_gives_the_same_losses_and_another_seed_does_not(tmp_path):
    first = run(tmp_path / "a", **JOBS["gpt"], iters=5, seed=3)
    assert run(tmp_path / "b", **JOBS["gpt"], iters=5, seed=3) == first
    assert run(tmp_path / "c", **JOBS["gpt"], iters=5, seed=4) != first


def test_a_runs_losses_do_not_depend_on_what_else_the_program_draws(tmp_path):
    # Dropout drew from the engine's shared generator: a second Trainer started meanwhile
    # (which seeds it again, and draws its own initial weights) or a sample drawn before
    # training moved the first run's stream, and its losses were another run's.
    corpus = tmp_path / "corpus.txt"            # short, to be quick: no recall evaluated
    corpus.write_text(builtin_corpus(2_000))
    settings = dict(JOBS["gpt"], corpus=str(corpus), iters=2, eval_every=2)
    alone = run(tmp_path / "alone", **settings)
    first = Trainer.start(TrainConfig(**settings), str(tmp_path / "first"), log=quiet)
    other = Trainer.start(TrainConfig(**dict(settings, d_model=32)), str(tmp_path / "other"),
                          log=quiet)
    first.model.generate(np.array([[1]]), 3)           # drawn from the engine's generator
    assert first.train(threads=1) == "done"
    assert metrics(tmp_path / "first") == alone
    other.close()


def test_the_seed_chooses_the_batches_and_the_initial_weights(tmp_path):
    corpus = tmp_path / "corpus.txt"          # the same text for both seeds
    corpus.write_text(builtin_corpus(5_000))
    def started(seed):
        trainer = Trainer.start(TrainConfig(**TINY, corpus=str(corpus), iters=1, seed=seed),
                                str(tmp_path / str(seed)), log=quiet)
        trainer.close()
        weights = [p.data for p in trainer.parameters if p.data.ndim >= 2]
        return trainer.job.train_batch(trainer.data_rng)[0], weights
    (batch, weights), (other_batch, other_weights) = started(3), started(4)
    assert not np.array_equal(batch, other_batch)
    assert not any(np.array_equal(a, b) for a, b in zip(weights, other_weights))


def test_checkpoints_come_every_checkpoint_every_steps_and_at_the_last(tmp_path, monkeypatch):
    saved = []
    write = Trainer._write_checkpoint
    def recorded(trainer):
        saved.append(trainer.step)
        write(trainer)
    monkeypatch.setattr(Trainer, "_write_checkpoint", recorded)
    evaluated = []
    monkeypatch.setattr(Trainer, "evaluate",                  # not what is tested here
                        lambda trainer, *args: evaluated.append(trainer.step) or {})
    run(tmp_path, **TINY, iters=5, eval_every=5, checkpoint_every=2)
    assert (evaluated, saved) == ([0, 5], [2, 4, 5])     # 0: before training
    evaluated.clear(), saved.clear()
    run(tmp_path / "other", **TINY, iters=5, eval_every=2, checkpoint_every=5)
    assert (evaluated, saved) == ([0, 2, 4, 5], [5])
    # Unset, with each evaluation.
    assert TrainConfig(eval_every=7).resolved().checkpoint_every == 7
    # --eval-every's help listed a checkpoint as part of every evaluation, which steps 2 and 4
    # were without: it is so only while --checkpoint-every is left to its default.
    said = {f.name: f.metadata.get("help") for f in dataclasses.fields(TrainConfig)}["eval_every"]
    assert "checkpoint" not in said or "checkpoint-every" in said, said


@pytest.mark.usefixtures("all_recall_prompts")
def test_an_evaluation_turns_dropout_off_for_itself_only_and_samples_anew_each_step(tmp_path):
    said = []
    trainer = Trainer.start(TrainConfig(**TINY, iters=1, dropout=0.5), str(tmp_path),
                            log=said.append)
    trainer.close()
    figures = trainer.evaluate("first")
    assert trainer.evaluate("second") == figures     # the same batches, nothing dropped
    assert trainer.model.training                    # the steps after it drop out again
    trainer.step += 1                                # the same weights, a later step
    trainer.evaluate("third")
    samples = [message.split("\n", 1)[1] for message in said[-3:]]
    assert samples[0] == samples[1] != samples[2]
    trainer.model.eval()                 # a caller's own evaluation mode is left as it was
    trainer.evaluate("fourth")
    assert not any(module.training for module in trainer.model.modules())


def test_a_step_is_the_mean_over_its_targets_however_the_batch_is_cut(tmp_path,
                                                                      monkeypatch):
    # BERT's micro-batches hide different numbers of tokens: each weighs by its own.
    cuts = []
    split = parallel.split
    monkeypatch.setattr(parallel, "split", lambda batch, n, counted: cuts.append(n) or
                        split(batch, n, counted))
    def first_step(micro_batches):
        trainer = Trainer.start(TrainConfig(**BERT_TINY, iters=1,
                                            micro_batches=micro_batches),
                                str(tmp_path / str(micro_batches)), log=quiet)
        trainer.close()
        batch = trainer.job.train_batch(copy.deepcopy(trainer.data_rng))      # the step's
        halves = np.array_split(batch[1], 2)
        return trainer.train_step().loss, [trainer.job.counted((None, half)) for half in halves]
    whole, _ = first_step(1)
    cut, counts = first_step(2)
    assert cuts == [1, 2]                  # each batch cut as --micro-batches says
    assert counts[0] != counts[1]          # else weighing by rows would give the same
    assert cut == pytest.approx(whole, rel=1e-5)


def test_a_stop_asked_for_during_the_last_step_finishes_the_run(tmp_path, monkeypatch):
    # Nothing is left to resume: the run is done (exit 0), not interrupted.
    assert cut_short(tmp_path, monkeypatch, after=3, **TINY, iters=4) == "done"
    assert rundir.read_config(str(tmp_path))["step"] == 4


def cut_short(directory, monkeypatch, after, signum=signal.SIGINT, prepare=None, **settings):
    """A run stopped by a real signal (Ctrl-C's SIGINT, unless `signum` names another) during
    step `after` + 1, which it finishes and saves; `prepare(trainer)`, if given, changes its
    model once started, as a notebook might. Returns what train() returned."""
    trainer = Trainer.start(TrainConfig(**settings), str(directory), log=quiet)
    if prepare:
        prepare(trainer)
    step = trainer.train_step
    def step_then_signal(threads=1, workers=None):
        if trainer.step == after:
            os.kill(os.getpid(), signum)
        return step(threads, workers)
    monkeypatch.setattr(trainer, "train_step", step_then_signal)
    return trainer.train()


def test_training_again_after_a_stop_holds_the_run_directory_again(tmp_path, monkeypatch):
    # After a stop, train() has let go of the directory; a notebook's cell `trainer.train()`
    # run again goes on from there, and must lock it again: otherwise a second writer (a
    # `--resume` in a terminal) could write the same run meanwhile.
    trainer = Trainer.start(TrainConfig(**TINY, iters=2), str(tmp_path), log=quiet)
    trainer.close()                                      # as train() leaves it after a stop
    held, step = [], trainer.train_step
    def step_and_look(threads=1, workers=None):
        held.append(rundir.is_training(str(tmp_path)))
        return step(threads, workers)
    monkeypatch.setattr(trainer, "train_step", step_and_look)
    assert trainer.train(threads=1) == "done" and held == [True, True]
    assert not rundir.is_training(str(tmp_path))        # and lets go of it again at the end


def test_training_again_after_a_step_cut_short_is_refused_and_resume_goes_on_exactly(
        tmp_path, monkeypatch):
    # A second Ctrl-C (or any exception) in the middle of a step leaves the Trainer part of
    # the way into it, its batch drawn: train() run again went on from there, silently not as
    # an unbroken run would. It says to go on from the last checkpoint, which is exact.
    settings = dict(TINY, iters=4, eval_every=2)
    whole = run(tmp_path / "whole", **settings)
    trainer = Trainer.start(TrainConfig(**settings), str(tmp_path / "cut"), log=quiet)
    loss_of, cut = trainer.part_loss, []
    def cut_in_step_3(part):
        if trainer.step == 2 and not cut:
            cut.append(part)
            raise KeyboardInterrupt                      # stopped at once, mid-step
        return loss_of(part)
    monkeypatch.setattr(trainer, "part_loss", cut_in_step_3)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(threads=1)
    halfway = (r"^this Trainer stopped in the middle of step 3, .*; go on from the run's last "
               r"checkpoint: Trainer.resume\('.*cut'\)$")
    with pytest.raises(RuntimeError, match=halfway):
        trainer.train(threads=1)
    with pytest.raises(RuntimeError, match=halfway):      # nor saved as if it were step 2
        trainer.save()
    assert Trainer.resume(str(tmp_path / "cut"), log=quiet).train(threads=1) == "done"
    assert metrics(tmp_path / "cut") == whole


def test_training_again_after_a_clean_stop_goes_on_exactly(tmp_path, monkeypatch):
    # A first Ctrl-C finishes its step and writes its line: the step is whole, and the same
    # Trainer's train() run again (a notebook's cell) goes on from it as an unbroken run does.
    settings = dict(TINY, iters=4, eval_every=2)
    whole = run(tmp_path / "whole", **settings)
    trainer = Trainer.start(TrainConfig(**settings), str(tmp_path / "cut"), log=quiet)
    step = trainer.train_step
    def step_then_ctrl_c(threads=1, workers=None):
        if trainer.step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return step(threads, workers)
    monkeypatch.setattr(trainer, "train_step", step_then_ctrl_c)
    assert trainer.train(threads=1) == "interrupted"
    monkeypatch.setattr(trainer, "train_step", step)
    assert trainer.train(threads=1) == "done"
    assert metrics(tmp_path / "cut") == whole


def test_threads_that_are_not_a_count_are_refused_before_training(tmp_path):
    # 0 and -1 trained on, on BLAS's threads as they were, the progress line saying "0 cores";
    # 2.5 and "2" failed deep in the thread-pool library.
    trainer = Trainer.start(TrainConfig(**TINY, iters=1), str(tmp_path), log=quiet)
    for threads in (0, -1, 2.5, "2", True):
        with pytest.raises(ValueError, match=rf"^threads must be a whole number >= 1, got "
                                             rf"{re.escape(repr(threads))}$"):
            trainer.train(threads)
    assert trainer.train(threads=1) == "done"


def test_threads_that_are_not_a_count_are_refused_before_a_step_or_evaluation(tmp_path):
    # train_step(0) failed dividing by zero, train_step(None) comparing None, after the step
    # had begun: its batch drawn, the Trainer halfway into it, unable to go on or to save.
    trainer = Trainer.start(TrainConfig(**TINY, iters=2), str(tmp_path / "run"), log=quiet)
    unbroken = Trainer.start(TrainConfig(**TINY, iters=2), str(tmp_path / "unbroken"),
                             log=quiet)
    for threads in (0, None, 2.5):
        with pytest.raises(ValueError, match=rf"^threads must be a whole number >= 1, got "
                                             rf"{re.escape(repr(threads))}$"):
            trainer.train_step(threads)
        with pytest.raises(ValueError, match=r"^threads must be a whole number >= 1"):
            trainer.evaluate("now", threads)          # (None failed comparing, 0 ran on)
        with pytest.raises(ValueError, match=r"^threads must be a whole number >= 1"):
            update(trainer.part_loss, trainer.job.train_batch(np.random.default_rng(0)),
                   trainer.job.counted, trainer.parameters, trainer.optimizer, 2, threads)
    assert trainer.step == 0
    assert trainer.train_step(1).loss == unbroken.train_step(1).loss     # the same batch
    trainer.save()                                                       # a whole step


def test_a_run_directory_given_as_a_path_is_named_as_its_text(tmp_path):
    # Not as "PosixPath('runs/x')", which is no path a user can type.
    with pytest.raises(RunDirectoryError, match=r"^--resume '[^']*nope' does not exist"):
        Trainer.resume(tmp_path / "nope", log=quiet)
    run(tmp_path / "done", **TINY, iters=1)
    with pytest.raises(RunDirectoryError, match=r"^--out '[^']*done' holds a finished run"):
        Trainer.start(TrainConfig(**TINY, iters=1), tmp_path / "done", log=quiet)


def test_training_again_after_another_process_went_on_with_the_run_is_refused(tmp_path):
    # A Trainer stopped (a notebook's), the run resumed elsewhere and trained to its end: the
    # first one, trained again from its older state, wrote over that run's checkpoint and
    # metrics (steps 3 to 6 twice), and said "done".
    first = Trainer.start(TrainConfig(**TINY, iters=4), str(tmp_path), log=quiet)
    first.train_step()
    first.save()
    first.close()
    assert Trainer.resume(str(tmp_path), log=quiet).train(threads=1) == "done"
    with open(tmp_path / "metrics.jsonl") as f:
        written = f.read()
    with pytest.raises(RunDirectoryError, match=r"went on without this process \(its "
                       r"checkpoint is at step 4, this one's at step 1\); .*Trainer.resume"):
        first.train(threads=1)
    with open(tmp_path / "metrics.jsonl") as f:
        assert f.read() == written
    assert not rundir.is_training(str(tmp_path))


def test_a_step_of_ones_own_cut_short_is_not_saved_as_the_step_before(tmp_path, monkeypatch):
    # train_step() called on its own (a loop of one's own) and stopped in the middle: its batch
    # drawn, so save() wrote a checkpoint of step 1 from which a resumed run drew other batches.
    trainer = Trainer.start(TrainConfig(**TINY, iters=4), str(tmp_path), log=quiet)
    trainer.train_step()
    trainer.save()
    monkeypatch.setattr(trainer.job, "loss", lambda model, part: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        trainer.train_step()
    with pytest.raises(RuntimeError, match=r"^this Trainer stopped in the middle of step 2, "):
        trainer.save()
    assert rundir.read_config(str(tmp_path))["step"] == 1


def test_save_takes_the_run_directorys_lock_as_train_does(tmp_path):
    # save() wrote without the lock: a notebook's Trainer, stopped, saving while the run was
    # resumed elsewhere wrote over that run's checkpoint, or over one it had gone on to.
    first = Trainer.start(TrainConfig(**TINY, iters=4), str(tmp_path), log=quiet)
    first.train_step()
    first.save()
    assert rundir.is_training(str(tmp_path))            # held since start, and kept
    first.close()
    first.save()                    # free: taken for the moment it writes, then given back
    assert not rundir.is_training(str(tmp_path))
    second = Trainer.resume(str(tmp_path), log=quiet)   # holds it now
    written = files_in(tmp_path)
    with pytest.raises(RunDirectoryError, match=r"^'.*' is in use by this process: .*; call "
                                                r"its close\(\) and try again$"):
        first.save()
    assert files_in(tmp_path) == written
    assert second.train(threads=1) == "done"
    written = files_in(tmp_path)
    with pytest.raises(RunDirectoryError, match=r"went on without this process \(its "
                       r"checkpoint is at step 4, this one's at step 1\); .*Trainer.resume"):
        first.save()
    assert files_in(tmp_path) == written
    assert not rundir.is_training(str(tmp_path))


@pytest.mark.parametrize("job", sorted(JOBS))
def test_ctrl_c_then_resume_equals_an_uninterrupted_run(tmp_path, job, monkeypatch):
    settings = dict(JOBS[job], iters=8, eval_every=3)
    whole = run(tmp_path / "whole", **settings)

    # Ctrl-C during step 5: the step finishes, a checkpoint is saved.
    assert cut_short(tmp_path / "cut", monkeypatch, after=4, **settings) == "interrupted"
    assert rundir.read_config(str(tmp_path / "cut"))["step"] == 5

    said = []
    resumed = Trainer.resume(str(tmp_path / "cut"), log=said.append)
    assert resumed.step == 5
    assert not [line for line in said if "metrics.jsonl" in line]     # no line was lost
    assert resumed.train() == "done"
    assert metrics(tmp_path / "cut") == whole                    # every loss, bit for bit


def freeze_embeddings(trainer):
    """The embeddings frozen, to tune the rest."""
    trainer.model.embed.requires_grad_(False)


def in_float64(trainer):
    """Every parameter cast to float64 (nn.py's advice for torch's model.double())."""
    for p in trainer.model.parameters():
        p.data = p.data.astype(np.float64)


def prepared_run(directory, prepare, **settings):
    """The metrics of a whole run whose model `prepare(trainer)` changed once started."""
    trainer = Trainer.start(TrainConfig(**settings), str(directory), log=quiet)
    prepare(trainer)
    assert trainer.train(threads=1) == "done"
    return metrics(directory)


def test_frozen_parameters_stay_frozen_on_resume_and_the_run_goes_on_exactly(tmp_path,
                                                                              monkeypatch):
    # The checkpoint did not say which parameters were frozen: resume built the model again
    # from its config, every parameter trainable, and trained the embeddings from there on.
    settings = dict(TINY, iters=4, eval_every=4)
    whole = prepared_run(tmp_path / "whole", freeze_embeddings, **settings)
    assert cut_short(tmp_path / "cut", monkeypatch, after=1, prepare=freeze_embeddings,
                     **settings) == "interrupted"
    embeddings = rundir.load_arrays(tmp_path / "cut" / "weights-000002.npz")
    resumed = Trainer.resume(str(tmp_path / "cut"), log=quiet)        # no model=: built anew
    assert resumed.step == 2
    frozen = [name for name, p in resumed.model.named_parameters() if not p.requires_grad]
    assert frozen == ["embed.tok.weight", "embed.pos.embedding.weight"]
    assert resumed.train(threads=1) == "done"
    for name, p in resumed.model.named_parameters():
        if name in frozen:
            assert np.array_equal(p.data, embeddings[name]), name
    assert metrics(tmp_path / "cut") == whole


def test_a_run_cast_to_float64_resumes_in_float64_and_goes_on_exactly(tmp_path, monkeypatch):
    # The weights were saved as float64, and loaded into a model built from the config, in
    # float32: the resumed run went on rounded, and its losses drifted from the whole run's.
    settings = dict(TINY, iters=4, eval_every=4)
    whole = prepared_run(tmp_path / "whole", in_float64, **settings)
    assert cut_short(tmp_path / "cut", monkeypatch, after=1, prepare=in_float64,
                     **settings) == "interrupted"
    resumed = Trainer.resume(str(tmp_path / "cut"), log=quiet)
    assert {p.dtype for p in resumed.model.parameters()} == {np.dtype(np.float64)}
    assert resumed.train(threads=1) == "done"
    assert metrics(tmp_path / "cut") == whole
    model, _, _ = checkpoint.load_model(str(tmp_path / "cut"))      # generate's, likewise
    assert {p.dtype for p in model.parameters()} == {np.dtype(np.float64)}


def test_a_run_stopped_before_its_first_checkpoint_starts_again_with_the_same_parameters_frozen(
        tmp_path):
    # The manifest did not say which parameters were frozen: the run started again from its
    # settings built its model anew, every parameter trainable, and trained the embeddings.
    def two_steps(trainer):
        for _ in range(2):
            trainer.train_step()
        trainer.close()
        return {name: p.data.copy() for name, p in trainer.model.named_parameters()}
    settings = TrainConfig(**TINY, iters=3)
    whole = Trainer.start(settings, str(tmp_path / "whole"), log=quiet)
    freeze_embeddings(whole)
    first = Trainer.start(settings, str(tmp_path / "cut"), log=quiet)
    freeze_embeddings(first)
    first.train_step()
    first.close()                                   # killed, its step in no checkpoint
    again = Trainer.resume(str(tmp_path / "cut"), log=quiet)
    assert again.step == 0
    frozen = [name for name, p in again.model.named_parameters() if not p.requires_grad]
    assert frozen == ["embed.tok.weight", "embed.pos.embedding.weight"]
    expected, weights = two_steps(whole), two_steps(again)
    for name in expected:
        np.testing.assert_array_equal(weights[name], expected[name], err_msg=name)
    manifest = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    manifest["settings"]["frozen"] = ["nope"]                     # a damaged record
    (tmp_path / "cut" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(rundir.CheckpointError, match=r"manifest.json lists 'nope' as frozen, "
                                                     r"which is no parameter of the model; put "
                                                     r"back the manifest.json this run wrote"):
        Trainer.resume(str(tmp_path / "cut"), log=quiet)


def test_an_older_checkpoint_leaves_the_model_as_built_and_a_damaged_frozen_list_is_refused(
        tmp_path):
    trainer = Trainer.start(TrainConfig(**TINY, iters=4), str(tmp_path), log=quiet)
    freeze_embeddings(trainer)
    trainer.train_step()
    trainer.save()
    trainer.close()
    config = rundir.read_config(str(tmp_path))
    del config["resume"]["frozen"]                        # written before checkpoints said
    (tmp_path / "config.json").write_text(json.dumps(config))
    model = GPT(**config["model_config"]).requires_grad_(False)     # frozen by its maker
    resumed = Trainer.resume(str(tmp_path), log=quiet)
    assert all(p.requires_grad for p in resumed.model.parameters())
    resumed.close()
    resumed = Trainer.resume(str(tmp_path), log=quiet, model=model)  # left as it was built
    assert not any(p.requires_grad for p in resumed.model.parameters())
    resumed.close()
    for frozen, message in ((["embed.tok.weight", "nope"], r"lists 'nope' as frozen, which is "
                                                           r"no parameter of the model"),
                            ("embed", r"holds a damaged list of frozen parameters \('embed', not a "
                                      r"list of names\)")):
        config["resume"]["frozen"] = frozen
        (tmp_path / "config.json").write_text(json.dumps(config))
        with pytest.raises(rundir.CheckpointError, match=rf"config.json {message}.*; put back "
                                                         rf"the config.json this run wrote"):
            Trainer.resume(str(tmp_path), log=quiet)


@pytest.mark.parametrize("kept", [3, 0], ids=["cut", "deleted"])
def test_resuming_says_which_steps_metrics_jsonl_lost(tmp_path, monkeypatch, kept):
    """metrics.jsonl cut (a power cut after the checkpoint was written, say) or deleted: the
    run goes on exactly, and says which steps have no line, rather than leaving a silent gap
    in its record."""
    settings = dict(JOBS["gpt"], iters=8, eval_every=3)
    assert cut_short(tmp_path / "cut", monkeypatch, after=4, **settings) == "interrupted"
    path = tmp_path / "cut" / "metrics.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:kept]))
    said = []
    resumed = Trainer.resume(str(tmp_path / "cut"), log=said.append)
    assert [line for line in said if "metrics.jsonl" in line] == [
        f"note: {path} has no lines for steps {kept + 1} to 5 (lost since they were written, "
        f"or never written: steps taken with Trainer.train_step() write none); "
        f"the resumed run's lines follow from step 6, so its curves have a gap there"]
    assert resumed.train() == "done"
    assert [record["step"] for record in metrics(tmp_path / "cut")] == [*range(1, kept + 1),
                                                                          6, 7, 8]


def test_a_run_with_a_tokenizer_file_resumes_exactly_without_the_file(tmp_path, monkeypatch):
    """The run keeps its own copy of the tokenizer: resuming needs the file no more."""
    path = tmp_path / "tok.json"
    BPETokenizer.train(builtin_corpus(seed=0)[:3000], 300).save(path)
    settings = dict(JOBS["gpt"], tokenizer=str(path), iters=6, eval_every=3)
    whole = run(tmp_path / "whole", **settings)
    assert cut_short(tmp_path / "cut", monkeypatch, after=3, **settings) == "interrupted"
    path.unlink()
    resumed = Trainer.resume(str(tmp_path / "cut"), log=quiet)
    assert resumed.model.config["vocab_size"] == 300
    assert resumed.train() == "done"
    assert metrics(tmp_path / "cut") == whole



def files_in(directory):
    """Every file in `directory` with its bytes."""
    return {name: (directory / name).read_bytes() for name in os.listdir(directory)}


def test_a_forced_run_stopped_after_tokenising_leaves_the_previous_run_to_resume(
        tmp_path, monkeypatch):
    """A new run forced over a stopped one, and stopped itself (Ctrl-C) once it has tokenised
    its corpus but before it replaces the previous run's files, leaves that run as it was: no
    file of the new run's stays, and the previous run resumes exactly."""
    settings = dict(JOBS["gpt"], iters=6, eval_every=3)
    whole = run(tmp_path / "whole", **settings)
    assert cut_short(tmp_path / "cut", monkeypatch, after=2, **settings) == "interrupted"
    before = files_in(tmp_path / "cut")
    corpus = tmp_path / "other.txt"
    corpus.write_text("another text, of other words.\n" * 200)

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(RunDirectory, "replace_previous", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        Trainer.start(TrainConfig(**settings, corpus=str(corpus)), str(tmp_path / "cut"),
                      force=True, log=quiet)
    monkeypatch.undo()
    assert files_in(tmp_path / "cut") == before
    resumed = Trainer.resume(str(tmp_path / "cut"), log=quiet)
    assert resumed.train() == "done"
    assert metrics(tmp_path / "cut") == whole


# A run, and the run forced in its place, with another seed: two steps, evaluated at the end.
FORCED = {"first": dict(JOBS["gpt"], iters=2), "second": dict(JOBS["gpt"], iters=2, seed=7)}


@pytest.fixture(scope="module")
def second_run_whole(tmp_path_factory):
    """The metrics of FORCED's second run, never stopped."""
    return run(tmp_path_factory.mktemp("forced") / "whole", **FORCED["second"])


@pytest.mark.parametrize("removed", ["tokenizer.json", "tokens.bin", "metrics.jsonl"])
def test_a_forced_run_stopped_while_it_removes_the_previous_run_is_the_one_resume_restarts(
        tmp_path, monkeypatch, removed, second_run_whole):
    """Once a new run has begun to remove the previous run's files, the directory is the new
    run's: stopped there, it is a run that stopped before its first checkpoint, which --resume
    starts again with its own settings, whichever file went first (with tokenizer.json gone,
    its restart looked for its checksum and failed)."""
    run(tmp_path / "run", **FORCED["first"])
    second = FORCED["second"]
    remove = RunDirectory._remove_file

    def remove_then_ctrl_c(self, name):             # `removed` removed, then Ctrl-C
        remove(self, name)
        if name == removed:
            raise KeyboardInterrupt
    monkeypatch.setattr(RunDirectory, "_remove_file", remove_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        Trainer.start(TrainConfig(**second), str(tmp_path / "run"), force=True, log=quiet)
    monkeypatch.undo()
    said = []
    resumed = Trainer.resume(str(tmp_path / "run"), log=said.append)
    assert "starting it again from step 0" in said[0]
    assert resumed.train() == "done"
    assert metrics(tmp_path / "run") == second_run_whole

@pytest.mark.parametrize("signum, outcome", [(signal.SIGTERM, "terminated"),
                                             (signal.SIGHUP, "hung up")],
                         ids=["sigterm", "sighup"])
def test_sigterm_stops_after_the_step_as_ctrl_c_does_and_the_handlers_are_put_back(
        tmp_path, monkeypatch, signum, outcome):
    """SIGTERM (`kill`, `timeout`, a container's stop) or SIGHUP (a terminal closed) ended a
    run at once, losing every step since its last checkpoint: it finishes the step and saves,
    as a first Ctrl-C does. The handlers the trainer replaced as it ran (a notebook's, say)
    are put back as it ends."""
    theirs = {signal.SIGINT: lambda *_: None, signal.SIGTERM: lambda *_: None,
              signal.SIGHUP: lambda *_: None}
    previous = {signum: signal.signal(signum, handler) for signum, handler in theirs.items()}
    try:
        returned = cut_short(tmp_path, monkeypatch, after=2, signum=signum, **TINY, iters=6)
        after = {signum: signal.getsignal(signum) for signum in theirs}
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert returned == outcome and after == theirs
    assert rundir.read_config(str(tmp_path))["step"] == 3 == metrics(tmp_path)[-1]["step"]


@pytest.mark.parametrize("then, now", [(True, False), (False, True), (True, True),
                                       (False, False)])
def test_a_run_resumed_with_other_forms_of_the_ops_says_so_and_how_to_go_on_exactly(
        tmp_path, monkeypatch, then, now):
    """The compiled loops and the numpy forms agree to rounding, not to the bit: a run resumed
    with the other forms than it trained with goes on, and says that it will not continue
    exactly, and how it would."""
    monkeypatch.setattr(ta.kernels, "in_use", lambda: then)
    assert cut_short(tmp_path, monkeypatch, after=2, **TINY, iters=4) == "interrupted"
    assert rundir.read_config(str(tmp_path))["engine"]["compiled_loops"] == then
    monkeypatch.setattr(ta.kernels, "in_use", lambda: now)
    said = []
    resumed = Trainer.resume(str(tmp_path), log=said.append)
    assert resumed.train() == "done"
    notes = [line for line in said if "last digits" in line]
    if then == now:
        assert notes == []
    elif then:
        assert notes == [notes[0]] and ("trained with the compiled loops and goes on with "
                                        "the numpy forms") in notes[0]
        assert "without TINYAUTOGRAD_KERNELS=numpy" in notes[0]
    else:
        assert notes == [notes[0]] and ("trained with the numpy forms and goes on with the "
                                        "compiled loops") in notes[0]
        assert "resume with TINYAUTOGRAD_KERNELS=numpy" in notes[0]
    # A finished run goes on no further: no note, though it ended with other forms than now.
    monkeypatch.setattr(ta.kernels, "in_use", lambda: not now)
    said = []
    Trainer.resume(str(tmp_path), log=said.append).close()
    assert not [line for line in said if "last digits" in line]


@pytest.mark.parametrize("then, now", [("a-1", "b-2"), ("a-1", "a-1"), (None, "b-2")])
def test_a_run_resumed_with_loops_built_elsewhere_says_so_and_how_to_go_on_exactly(
        tmp_path, monkeypatch, then, now):
    """Loops built by another C compiler or for another processor agree to rounding, not to
    the bit: a run resumed with them goes on, and says so, once; with the library it trained
    with, or from a run that never recorded which (None: the numpy forms'), it says nothing."""
    monkeypatch.setattr(ta.kernels, "in_use", lambda: True)
    monkeypatch.setattr(ta.kernels, "build_id", lambda: then)
    assert cut_short(tmp_path, monkeypatch, after=2, **TINY, iters=4) == "interrupted"
    assert rundir.read_config(str(tmp_path))["engine"] == {"compiled_loops": True,
                                                           "kernels": then}
    monkeypatch.setattr(ta.kernels, "build_id", lambda: now)
    said = []
    assert Trainer.resume(str(tmp_path), log=said.append).train() == "done"
    notes = [line for line in said if "last digits" in line]
    if then is None or then == now:
        assert notes == []
    else:
        assert notes == [notes[0]] and notes[0].startswith(
            f"note: this run trained with compiled loops built as {then} and goes on with "
            f"loops built as {now} (another kernels.c, C compiler or processor)")
        assert "resume on the machine and with the C compiler (CC) it trained with" in notes[0]


def test_a_checkpoint_that_does_not_say_which_forms_ran_resumes_without_a_note(tmp_path,
                                                                                monkeypatch):
    assert cut_short(tmp_path, monkeypatch, after=2, **TINY, iters=4) == "interrupted"
    config = rundir.read_config(str(tmp_path))
    del config["engine"]                                   # written before runs recorded it
    (tmp_path / "config.json").write_text(json.dumps(config))
    other = not ta.kernels.in_use()
    monkeypatch.setattr(ta.kernels, "in_use", lambda: other)
    said = []
    Trainer.resume(str(tmp_path), log=said.append).close()
    assert not [line for line in said if "last digits" in line]
    config["engine"] = {"compiled_loops": not other}
    (tmp_path / "config.json").write_text(json.dumps(config))
    said = []
    Trainer.resume(str(tmp_path), log=said.append).close()
    assert [line for line in said if "last digits" in line]      # the same file, with the key
    config["engine"] = {"compiled_loops": "sometimes"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(rundir.CheckpointError, match="damaged resume state.*sometimes"):
        Trainer.resume(str(tmp_path), log=quiet)
    # Which library ran: a run written before runs recorded it says nothing, as above.
    monkeypatch.setattr(ta.kernels, "in_use", lambda: True)
    monkeypatch.setattr(ta.kernels, "build_id", lambda: "here-1")
    config["engine"] = {"compiled_loops": True}
    (tmp_path / "config.json").write_text(json.dumps(config))
    said = []
    Trainer.resume(str(tmp_path), log=said.append).close()
    assert not [line for line in said if "last digits" in line]
    config["engine"] = {"compiled_loops": True, "kernels": 7}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(rundir.CheckpointError, match="damaged resume state.*kernels is 7"):
        Trainer.resume(str(tmp_path), log=quiet)


def test_a_crash_leaves_the_last_checkpoint_and_resume_drops_later_metrics(tmp_path, monkeypatch):
    settings = dict(JOBS["gpt"], iters=9, eval_every=3)
    whole = run(tmp_path / "whole", **settings)

    trainer = Trainer.start(TrainConfig(**settings), str(tmp_path / "crash"), log=quiet)
    saves = []
    real_savez = np.savez
    def savez_then_crash(f, **arrays):
        saves.append(1)
        if len(saves) == 3:                 # the second checkpoint (step 6), mid-way through
            f.write(b"half an archive")
            raise OSError("disk full")
        return real_savez(f, **arrays)
    monkeypatch.setattr(np, "savez", savez_then_crash)
    with pytest.raises(OSError, match="disk full"):
        trainer.train()
    monkeypatch.setattr(np, "savez", real_savez)

    assert len(metrics(tmp_path / "crash")) == 6          # lines past the checkpoint at step 3
    model, _, config = checkpoint.load_model(str(tmp_path / "crash"))
    assert config["step"] == 3                             # the last good one, intact
    assert not [name for name in os.listdir(tmp_path / "crash") if name.startswith(".tmp-")]
    resumed = Trainer.resume(str(tmp_path / "crash"), log=quiet)
    resumed.train()
    assert metrics(tmp_path / "crash") == whole


@pytest.mark.parametrize("every", [dict(eval_every=1), dict(eval_every=100, checkpoint_every=1)])
def test_an_update_that_makes_the_weights_nan_stops_before_it_is_evaluated_or_saved(tmp_path,
                                                                                    every):
    # A far too large lr, unclipped: an infinite gradient makes the weights NaN while the
    # loss of the step's batch, computed before the update, is still finite. (The weights are
    # checked before an evaluation or a checkpoint only: a later step's loss shows them.)
    settings = dict(TINY, lr=1e6, clip=0.0, warmup=0, iters=20, **every)
    trainer = Trainer.start(TrainConfig(**settings), str(tmp_path), log=quiet)
    # Unclipped, the advice names clipping too.
    with pytest.raises(FloatingPointError, match=r"^the .* at step \d+; lower --lr.* or clip "
                                                 r"the gradients \(--clip 1\)$"):
        trainer.train()
    step = rundir.read_config(str(tmp_path))["step"]
    weights = np.load(tmp_path / f"weights-{step:06d}.npz", allow_pickle=False)
    assert all(np.isfinite(weights[name]).all() for name in weights.files)     # a good one
    assert all(np.isfinite(list(line.values())).all() for line in metrics(tmp_path))
    # Checked before the step's line is written, at a step that saves and does not evaluate
    # too: metrics.jsonl has no line for a step whose weights were refused.
    assert metrics(tmp_path)[-1]["step"] == step


def test_a_checkpoint_whose_second_moments_overflowed_resumes_as_the_run_goes_on(tmp_path):
    # Unclipped at --lr 1e4, gradients whose square overflows float32 make some of AdamW's
    # second moments +inf by step 4, with the weights and loss still finite: the update divides
    # into 0 there, and the run goes on. Its checkpoint was refused as a damaged optimizer state.
    settings = dict(TINY, lr=1e4, clip=0.0, warmup=0, iters=10, eval_every=100)
    trainer = Trainer.start(TrainConfig(**settings), str(tmp_path), log=quiet)
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(4):
            trainer.train_step()
    assert any(np.isposinf(state["exp_avg_sq"]).any()
               for state in trainer.optimizer.state.values())
    trainer.save()
    trainer.close()
    resumed = Trainer.resume(str(tmp_path), log=quiet)
    with np.errstate(over="ignore", invalid="ignore"):
        assert resumed.train_step().loss == trainer.train_step().loss


def test_a_run_diverging_with_a_weight_decay_too_large_for_its_lr_is_told_to_lower_it(tmp_path):
    # AdamW multiplies each weight by 1 - lr * weight_decay a step: 1 - 0.01 * 1e4 = -99 flips
    # the weights' sign and grows them, which a lower --lr or a warmup only delays.
    settings = dict(TINY, lr=0.01, weight_decay=1e4, warmup=0, iters=50, eval_every=100)
    trainer = Trainer.start(TrainConfig(**settings), str(tmp_path), log=quiet)
    with pytest.raises(FloatingPointError, match=r"; lower --lr or --weight-decay \(at the peak "
                                                 r"lr, AdamW multiplies each weight by -99 a "
                                                 r"step\) or raise --warmup$"):
        trainer.train()


def test_a_diverging_run_is_told_of_the_weight_decay_its_optimizer_groups_have(tmp_path):
    # A group's weight decay set in code, not by --weight-decay (0.1 here, harmless): the
    # advice read the settings', and blamed only the lr.
    settings = dict(TINY, lr=0.01, weight_decay=0.1, warmup=0, iters=50, eval_every=100)
    trainer = Trainer.start(TrainConfig(**settings), str(tmp_path), log=quiet)
    trainer.optimizer.param_groups[0]["weight_decay"] = 1e4
    with pytest.raises(FloatingPointError, match=r"; lower the lr or weight decay of the "
                                                 r"optimizer's group 0 \(at its peak lr, 0.01, "
                                                 r"and weight decay 10000, AdamW multiplies each "
                                                 r"of its weights by -99 a step\) or raise "
                                                 r"--warmup$"):
        trainer.train()


def test_a_resumed_run_is_advised_by_its_groups_not_by_settings_edited_since(tmp_path,
                                                                            monkeypatch):
    # --resume goes on with the groups config.json saved: a weight decay lowered in its
    # settings since (as the advice asked) changes nothing, and the advice, read from them,
    # no longer named the decay that still flips the weights.
    settings = dict(TINY, lr=0.01, weight_decay=1e4, warmup=0, iters=50, eval_every=100)
    assert cut_short(tmp_path, monkeypatch, after=2, **settings) == "interrupted"
    config = rundir.read_config(str(tmp_path))
    config["train"]["weight_decay"] = 0.1
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(FloatingPointError, match=r"lower the lr or weight decay of the "
                                                 r"optimizer's group 0 \(at its peak lr, 0.01, "
                                                 r"and weight decay 10000, AdamW multiplies"):
        Trainer.resume(str(tmp_path), log=quiet).train()


def test_a_diverging_run_is_told_of_the_largest_lr_its_optimizer_groups_have(tmp_path):
    # Group 1's lr (biases and gains) raised in code, where --lr is harmless.
    settings = dict(TINY, lr=0.01, iters=4, eval_every=100)
    trainer = Trainer.start(TrainConfig(**settings), str(tmp_path), log=quiet)
    trainer.schedule.base_lrs[1] = 1e308
    with pytest.raises(FloatingPointError, match=r"; lower the lr of the optimizer's group 1 "
                                                 r"\(1e\+308 at its peak, not --lr's 0.01\) or "
                                                 r"raise --warmup$"):
        trainer.train()


class RootOfSquare(ta.nn.Module):
    """|fc(x)| as sqrt(fc(x)^2): finite where fc(x) is 0, but its derivative there is not."""

    def __init__(self, d):
        self.fc = ta.nn.Linear(d, d)

    def forward(self, x):
        h = self.fc(x)
        return (h * h).sqrt()


def test_a_gradient_that_is_nan_at_a_finite_loss_stops_the_step_it_happens(tmp_path):
    # A model of the user's own whose gradient is NaN while its loss is finite: clipping by a
    # NaN norm makes every weight NaN. The run stopped one step later, at a NaN loss, blaming
    # that step (and its lr), and the step's line in metrics.jsonl held "grad_norm": NaN,
    # which is not JSON.
    ta.manual_seed(0)
    model = GPT(vocab_size=26, context=16, n_layer=1, n_head=2, d_model=16)   # the stories'
    ffn = model.decoder.layers[0].ffn = RootOfSquare(16)
    ffn.fc.weight.data[:] = ffn.fc.bias.data[:] = 0          # fc(x) is 0: the root's kink
    trainer = Trainer.start(TrainConfig(**TINY, iters=4), str(tmp_path), log=quiet,
                            model=model)
    with pytest.raises(FloatingPointError, match=r"^the gradient's norm became nan at step 1, "
                                                 r"before any update"):
        trainer.train()
    assert strict_json_lines(tmp_path / "metrics.jsonl") == []


def test_a_gradient_that_is_nan_before_any_update_does_not_blame_the_learning_rate(tmp_path):
    # A softcap of 1e-300 divides the logits into infinities, whose tanh's derivative is NaN:
    # the first step's gradient, of the initial weights, which no lr has touched yet.
    settings = dict(TINY, logit_softcap=1e-300, iters=2, eval_every=100)
    trainer = Trainer.start(TrainConfig(**settings), str(tmp_path), log=quiet)
    with pytest.raises(FloatingPointError, match=r"^the gradient's norm became nan at step 1, "
                                                 r"before any update: .*no --lr would help; "
                                                 r"change the model's settings"):
        trainer.train()


def test_a_loss_that_is_nan_before_any_update_does_not_blame_the_learning_rate(tmp_path):
    # Step 1's loss is of the initial weights, as its gradient is: a weight NaN from the start
    # (the evaluation before training, which would see it first, left out).
    ta.manual_seed(0)
    model = GPT(vocab_size=26, context=16, n_layer=1, n_head=2, d_model=16)   # the stories'
    model.decoder.layers[0].ffn.fc1.weight.data[0, 0] = np.nan
    trainer = Trainer.start(TrainConfig(**TINY, iters=2), str(tmp_path), log=quiet,
                            model=model)
    trainer.job.evaluate = lambda model, threads: {"val_loss": 1.0}
    trainer.job.sample = lambda model, rng: ""
    with pytest.raises(FloatingPointError, match=r"^the loss became nan at step 1, before any "
                                                 r"update: .*no --lr would help"):
        trainer.train()


@pytest.mark.parametrize("schedule", [dict(warmup=0), dict(schedule="noam", warmup=1)])
def test_a_learning_rate_that_overflows_stops_the_step_that_used_it(tmp_path, schedule):
    # --lr 1e308 is a finite number, but the schedules' formulas overflow on the way to it
    # (the cosine's (lr - min_lr) * 2, Noam's factor lr * sqrt(d_model * warmup)): the first
    # update used an infinite lr, and its line in metrics.jsonl held "lr": Infinity.
    settings = dict(TINY, lr=1e308, weight_decay=0.0, iters=4, **schedule)
    trainer = Trainer.start(TrainConfig(**settings), str(tmp_path), log=quiet)
    with pytest.raises(FloatingPointError, match=r"^the learning rate became inf at step 1; "
                                                 r"lower --lr"):
        trainer.train()
    assert strict_json_lines(tmp_path / "metrics.jsonl") == []


def strict_json_lines(path):
    """The lines of a metrics.jsonl, as JSON has them: NaN and Infinity, which Python's json
    writes and reads but JSON has not, fail."""
    def not_json(constant):
        raise AssertionError(f"{path} holds {constant}")
    with open(path) as f:
        return [json.loads(line, parse_constant=not_json) for line in f]


def test_an_evaluation_whose_loss_is_not_finite_stops_before_it_samples(tmp_path):
    # Weights finite but far too large give infinite logits: the sample would fail to draw
    # from them, with a message about sampling that tells the learner nothing.
    trainer = Trainer.start(TrainConfig(**TINY, iters=4), str(tmp_path), log=quiet)
    trainer.job.evaluate = lambda model, threads: {"val_loss": float("inf")}
    trainer.job.sample = lambda model, rng: pytest.fail("sampled from a diverged model")
    trainer.step = 3                        # weights that three updates made too large
    with pytest.raises(FloatingPointError, match=r"^the val_loss became inf at step 3; "
                                                 r"lower --lr or raise --warmup$"):
        trainer.evaluate("t")


def test_a_sample_whose_logits_leave_no_token_to_pick_stops_the_run_as_diverged(tmp_path):
    # A validation loss finite, and the sample's prompt that overflows all the same: the
    # decoding's refusal went up as a plain ValueError, which the command said was its bug.
    trainer = Trainer.start(TrainConfig(**TINY, iters=4), str(tmp_path), log=quiet)
    trainer.job.evaluate = lambda model, threads: {"val_loss": 1.0}
    trainer.model.decoder.final_norm.weight.data[:] = 3e38     # finite, its output not
    trainer.step = 3
    with pytest.raises(FloatingPointError, match=r"^the sample's logits became NaN or infinite "
                                                 r"at step 3; lower --lr or raise --warmup$"):
        trainer.evaluate("t")


def test_a_checkpoint_holds_the_contract_files_and_rebuilds_the_model(tmp_path):
    trainer = Trainer.start(TrainConfig(**TINY, iters=4, eval_every=2), str(tmp_path), log=quiet)
    trainer.train()
    names = sorted(os.listdir(tmp_path))
    assert names == ["config.json", "manifest.json", "metrics.jsonl", "optimizer-000004.npz",
                     "tokenizer.json", "tokens.bin", "weights-000004.npz"]   # step 2's are gone
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["checkpoint"] == 4 and "weights-000002.npz" not in manifest["owns"]
    assert set(names) - {"manifest.json"} <= set(manifest["owns"])
    model, tokenizer, config = checkpoint.load_model(str(tmp_path))
    x = np.array([tokenizer.encode("alice has a")])
    np.testing.assert_array_equal(model(x).data, trainer.model.eval()(x).data)
    assert config["train"]["iters"] == 4 and config["model_config"] == trainer.model.config


@pytest.mark.parametrize("bad, named", [("abc", "(in a, b, c);"), ("abcd", "(in a, b, c, ...);")])
def test_weights_that_are_not_finite_are_named_three_at_most(bad, named):
    class Four(ta.nn.Module):
        def __init__(self):
            for name in "abcd":
                setattr(self, name, ta.nn.Parameter(np.zeros(2)))
    model = Four()
    for name in bad:
        getattr(model, name).data[0] = np.nan
    with pytest.raises(rundir.CheckpointError, match=re.escape(f"hold NaN or infinite values "
                                                               f"{named}")):
        checkpoint.check_finite_weights(model, "run/weights-000001.npz")


@pytest.mark.parametrize("job", ["bert", "transformer"])
def test_a_checkpoint_records_the_pad_id_its_model_hides(tmp_path, job):
    # The models hide no token unless given a pad_id; config.json records the tokenizer's
    # <pad>, so a checkpoint, of this version or an earlier one, hides its padding.
    trainer = Trainer.start(TrainConfig(**JOBS[job], iters=1), str(tmp_path), log=quiet)
    trainer.train()
    saved = json.loads((tmp_path / "config.json").read_text())["model_config"]
    model, tokenizer, _ = checkpoint.load_model(str(tmp_path))
    assert saved["pad_id"] == model.pad_id == tokenizer.token_to_id("<pad>")


def test_the_task_tokenizer_is_the_tasks_own_symbols(tmp_path):
    from tinyformer.data import SYMBOLS, Seq2SeqTask
    trainer = Trainer.start(TrainConfig(**JOBS["transformer"], iters=1), str(tmp_path),
                            log=quiet)
    tok = trainer.job.tokenizer
    assert [tok.id_to_token(i) for i in range(tok.vocab_size)] == SYMBOLS
    assert tok.encode("12+7") == Seq2SeqTask.encode("12+7")


def test_a_tasks_answer_is_the_symbols_before_eos_and_none_with_a_special_token_inside():
    from tinyformer.data import BOS, EOS, PAD, Seq2SeqTask
    from tinyformer.jobs import Seq2Seq

    class Written:                                  # a model that writes these rows
        context = 5
        def greedy_decode(self, src, max_len, bos_id, eos_id):
            return np.array([[BOS, 5, 6, EOS, PAD],             # "23"
                             [BOS, 5, BOS, 6, EOS],             # a special token inside
                             [BOS, 5, 6, 7, 8],                 # never ended
                             [BOS, EOS, PAD, PAD, PAD],         # an empty answer
                             [BOS, 3, EOS, PAD, PAD]])          # the first symbol, "0"
    # translate reads only the task's decode: a job without its thousands of training pairs.
    job = SimpleNamespace(data=Seq2SeqTask)
    assert Seq2Seq.translate(job, Written(), np.zeros((5, 3), int)) == ["23", None, None, "",
                                                                         "0"]


def test_a_task_takes_a_context_just_long_enough_and_refuses_a_shorter_one():
    from tinyformer.jobs import Seq2Seq
    needed = 5                       # max_len 4: the longest target and its <bos> or <eos>
    assert Seq2Seq(TrainConfig(**JOBS["transformer"], iters=1,
                               context=needed).resolved()).data.context == needed
    with pytest.raises(ValueError, match=f"--context {needed - 1} is too short for --max-len 4"):
        Seq2Seq(TrainConfig(**JOBS["transformer"], iters=1, context=needed - 1).resolved())


def test_a_tasks_val_loss_is_the_mean_over_every_held_out_target_token(tmp_path):
    # Evaluated in chunks of 250 pairs; each chunk's mean weighs by its tokens, not its pairs.
    settings = dict(JOBS["transformer"], min_len=2, max_len=9, iters=1)
    trainer = Trainer.start(TrainConfig(**settings), str(tmp_path), log=quiet)
    job, model = trainer.job, trainer.model.eval()
    assert len(job.data.val) > 250
    with ta.no_grad():
        whole = job.loss(model, job.data.batch(job.data.val)).item()   # all pairs at once
        assert job.evaluate(model)["val_loss"] == pytest.approx(whole, rel=2e-6)
    trainer.close()


def test_berts_val_loss_is_the_mean_over_every_hidden_token_of_its_batches(tmp_path):
    # Each validation batch hides another number of tokens; the mean of the batches' means
    # counted a batch that hid 25 tokens as much as one that hid 50, unlike training's steps.
    settings = dict(BERT_TINY, context=32, eval_iters=6, iters=1)
    trainer = Trainer.start(TrainConfig(**settings), str(tmp_path), log=quiet)
    job, model = trainer.job, trainer.model.eval()
    rng = np.random.default_rng(job.config.seed + 1)          # evaluate's batches
    batches = [job.batch(job.data.val, rng) for _ in range(job.config.eval_iters)]
    assert len({job.counted(batch) for batch in batches}) > 1
    inputs, targets = (np.concatenate(arrays) for arrays in zip(*batches))
    with ta.no_grad():
        whole = job.loss(model, (inputs, targets)).item()        # all the batches as one
        assert job.evaluate(model)["val_loss"] == pytest.approx(whole, rel=1e-6)
    trainer.close()


def test_a_tasks_loss_is_smoothed_by_its_label_smoothing(tmp_path):
    # The cross-entropy against targets smoothed by --label-smoothing, padding ignored: the
    # setting must reach the loss that training (and val_loss) computes, not only config.json.
    settings = dict(JOBS["transformer"], label_smoothing=0.2, iters=1)
    trainer = Trainer.start(TrainConfig(**settings), str(tmp_path), log=quiet)
    job, model = trainer.job, trainer.model.eval()
    by_length = sorted(job.data.val, key=lambda pair: len(pair[1]))
    src, tgt_in, tgt_out = batch = job.data.batch(by_length[:4] + by_length[-4:])
    assert (tgt_out == PAD).any()                        # padding, which the loss ignores
    with ta.no_grad():
        logits = model(src, tgt_in)
        smoothed = ta.functional.cross_entropy(logits, tgt_out, ignore_index=PAD,
                                               label_smoothing=0.2).item()
        plain = ta.functional.cross_entropy(logits, tgt_out, ignore_index=PAD).item()
        assert job.loss(model, batch).item() == pytest.approx(smoothed, rel=1e-6)
    assert smoothed != pytest.approx(plain, rel=1e-3)
    trainer.close()


def test_bert_on_batches_too_small_to_always_hide_a_token_trains_with_finite_losses(tmp_path):
    # One example of 8 letters with 30% of words hidden: a batch often draws nothing to hide,
    # and a loss averaged over no token is NaN.
    settings = dict(BERT_TINY, context=8, batch_size=1, iters=6, eval_every=3)
    lines = run(tmp_path, **settings)
    assert [line["step"] for line in lines] == list(range(1, 7))
    assert all(np.isfinite([line["train_loss"], line.get("val_loss", 0)]).all() for line in lines)
    trainer = Trainer.resume(str(tmp_path), log=quiet)
    rng = np.random.default_rng(0)
    assert all(trainer.job.counted(trainer.job.train_batch(rng)) > 0 for _ in range(50))
    trainer.close()


def test_each_step_records_its_gradient_norm_before_clipping(tmp_path, train_unplotted):
    def records(clip):
        out = tmp_path / f"clip-{clip}"
        result = train_unplotted("--n-layer", "1", "--n-head", "2", "--d-model", "16",
                                 "--context", "16", "--batch-size", "4", "--iters", "3",
                                 "--eval-every", "3", "--eval-iters", "1", "--clip", clip,
                                 "--out", out)
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in open(out / "metrics.jsonl")]
    # The norm of the step's gradients as computed, not as clipped to 1e-6.
    assert all(isinstance(r["grad_norm"], float) and r["grad_norm"] > 1e-3
               for r in records("1e-6"))
    # Not clipped, the norm is not computed: no grad_norm, rather than a null.
    assert all("grad_norm" not in r for r in records("0"))


def test_steps_taken_one_by_one_and_saved_resume_as_an_unbroken_run(tmp_path):
    """train_step is a whole step: the step count goes on with the optimizer and the schedule,
    so a checkpoint saved after steps taken by hand resumes at its step, with its lr."""
    settings = dict(TINY, iters=10, dropout=0.1)
    whole = run(tmp_path / "whole", **settings)
    trainer = Trainer.start(TrainConfig(**settings), str(tmp_path / "by-hand"), force=True,
                            log=quiet)
    steps = [trainer.train_step() for _ in range(3)]
    trainer.save()
    trainer.close()
    resumed = Trainer.resume(str(tmp_path / "by-hand"), log=quiet)
    assert resumed.step == 3
    assert resumed.train() == "done"
    assert metrics(tmp_path / "by-hand") == whole[3:]         # the steps after, bit for bit
    assert [(done.loss, done.lr) for done in steps] == [
        (line["train_loss"], line["lr"]) for line in whole[:3]]


def test_a_step_past_the_runs_last_is_refused_and_its_checkpoint_still_resumes(tmp_path):
    # It was taken, at min_lr, and save() then wrote a checkpoint at step iters + 1, which
    # resume refused as damaged.
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("hello world, hello there. " * 20)
    trainer = Trainer.start(TrainConfig(**TINY, corpus=corpus, iters=1), str(tmp_path / "run"),
                            log=quiet)
    trainer.train_step()
    with pytest.raises(RuntimeError, match="has finished its 1 step; to train further"):
        trainer.train_step()
    assert trainer.step == 1
    trainer.save()
    trainer.close()
    resumed = Trainer.resume(str(tmp_path / "run"), log=quiet)
    assert resumed.step == 1 and resumed.train() == "done"


@pytest.mark.parametrize("model", ["gpt", "bert"])
def test_a_bpe_on_the_builtin_stories_learns_at_its_default_vocabulary_size(tmp_path, model):
    # The stories run out of pairs to merge long before 512 ids, the default for a text file:
    # `train --tokenizer bpe` was refused on them, with its own defaults.
    config = TrainConfig(model=model, tokenizer="bpe", iters=1, n_layer=1, d_model=16,
                         n_head=2, context=16, batch_size=2)
    trainer = Trainer.start(config, tmp_path / "run", log=lambda *_: None)
    assert isinstance(trainer.job.tokenizer, BPETokenizer)
    assert trainer.job.tokenizer.vocab_size == trainer.config.vocab_size > 256
