"""A property of the whole command line: whatever options and settings a user gives (wrong
types, out of range, NaN, infinite, huge, negative, empty), every command either works (exit
status 0) or says what is wrong (exit status 2) in at most three lines on stderr, with no
traceback, and changes no file outside its own directory.

Hypothesis draws the values; the models are tiny and the examples few, so that the whole
property runs in seconds. A drawn value is either bad or small: a valid but huge --iters would
only make a test that trains for an hour.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tinyformer_cli import main

TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context", "16",
        "--batch-size", "4", "--eval-iters", "1", "--iters", "2"]

# Values a user might type: bad ones of every kind, and small good ones.
BAD_TEXT = st.sampled_from(["", " ", "nan", "NaN", "inf", "-inf", "-1", "0", "-0.5", "1e400",
                            "1e12", "99999999999999999999", "abc", "1.5", "true", "\x00",
                            "gpt", "char", "rope", "3e-4"])
SMALL = st.one_of(st.integers(-3, 4).map(str), st.floats(-2, 2).map(repr))
VALUES = st.one_of(BAD_TEXT, SMALL)
# The same for a TOML file or config.json, as typed values.
TYPED = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 15, 10 ** 15),
                  st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4),
                  st.lists(st.integers(0, 3), max_size=2), st.integers(-3, 4))

TRAIN_OPTIONS = ["--n-layer", "--n-head", "--d-model", "--d-ff", "--context", "--batch-size",
                 "--iters", "--lr", "--min-lr", "--warmup", "--dropout", "--weight-decay",
                 "--clip", "--label-smoothing", "--eval-every", "--eval-iters", "--seed",
                 "--vocab-size", "--tokenizer", "--positions", "--norm", "--schedule",
                 "--model", "--task", "--min-len", "--max-len", "--threads", "--corpus",
                 "--checkpoint-every", "--normalization", "--activation", "--n-kv-head",
                 "--logit-softcap", "--rope-theta"]
TRAIN_KEYS = [o[2:].replace("-", "_") for o in TRAIN_OPTIONS if o != "--threads"] + [
    "qk_norm", "bias", "rmsnorm_affine"]                      # flags on the command line
GENERATE_OPTIONS = ["--max-new-tokens", "--temperature", "--top-k", "--top-p", "--seed",
                    "--beam", "--threads", "--prompt"]
BIG_ENOUGH = {"--iters", "--eval-iters", "--batch-size", "--n-layer", "--max-new-tokens",
              "--max-len", "--min-len", "--context", "--d-model", "--d-ff", "--vocab-size",
              "--beam", "--top-k", "--warmup", "--eval-every", "--checkpoint-every"}


def options(names):
    """A few of `names` with drawn values, as command-line arguments."""
    return st.lists(st.tuples(st.sampled_from(names), VALUES), min_size=1, max_size=3).map(
        lambda pairs: [x for pair in pairs for x in pair])


def small_enough(args):
    """No valid size so large that the command would run for minutes (the bounds are tested
    with values beyond them)."""
    for name, value in zip(args[::2], args[1::2]):
        if name in BIG_ENOUGH:
            try:
                number = float(value)
            except ValueError:
                continue
            if 4 < number < 1e9:
                return False
    return True


@pytest.fixture(scope="module")
def world(tmp_path_factory, two_step_gpt_run_evaluated_on_one_batch):
    """What the commands read: a tiny GPT run (`train TINY`, a copy of the run conftest trains
    once for every module that reads it), a corpus; each example works in a fresh copy."""
    root = tmp_path_factory.mktemp("world")
    (root / "corpus.txt").write_text("the quick brown fox jumps over the lazy dog. " * 40)
    shutil.copytree(two_step_gpt_run_evaluated_on_one_batch.out, root / "ckpt")
    return root


def snapshot(directory):
    return {str(p.relative_to(directory)): p.read_bytes() if p.is_file() else None
            for p in Path(directory).rglob("*")}


def check_command(world, args, prepare=None):
    """Run `tinyformer ARGS` in a fresh directory holding a copy of the world; assert the
    property. `prepare(work)` may edit the copy first (a config file, config.json)."""
    work = world / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    shutil.copytree(world / "ckpt", work / "ckpt")
    shutil.copy(world / "corpus.txt", work / "corpus.txt")
    if prepare:
        prepare(work)
    outside = {k: v for k, v in snapshot(world).items() if not k.startswith("work")}
    old = os.getcwd()
    os.chdir(work)
    try:
        result = CliRunner().invoke(main, [str(a) for a in args])
    finally:
        os.chdir(old)
    assert result.exit_code in (0, 2), (args, result.output, result.exception)
    assert "Traceback" not in result.output, (args, result.output)
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert 1 <= len(lines) <= 3 and lines[-1].startswith("Error: "), (args, result.stderr)
    after = {k: v for k, v in snapshot(world).items() if not k.startswith("work")}
    assert after == outside, args
    return result


FEW = settings(max_examples=8, deadline=None, derandomize=True, database=None,
               suppress_health_check=list(HealthCheck))


@FEW
@given(args=options(TRAIN_OPTIONS))
def test_train_options(world, args):
    assume(small_enough(args))
    check_command(world, ["train", *TINY, *args, "--out", "run"])


@FEW
@given(edits=st.dictionaries(st.sampled_from(TRAIN_KEYS), TYPED, min_size=1, max_size=3))
def test_train_settings_from_a_toml_file(world, edits):
    assume(small_enough([x for k, v in edits.items() for x in (f"--{k}", str(v))]))
    def prepare(work):
        lines = [f"{key} = {json.dumps(value)}" for key, value in edits.items()
                 if value is not None]
        (work / "run.toml").write_text("\n".join(lines).replace("NaN", "nan")
                                       .replace("Infinity", "inf") + "\n")
    # --iters 2 unless the file sets iters (the command line would override it): else the
    # default run, 800 steps, that the property does not need.
    tiny = TINY[:-2] if edits.get("iters") is not None else TINY
    check_command(world, ["train", "--config", "run.toml", *tiny, "--out", "run"], prepare)


@FEW
@given(args=options(GENERATE_OPTIONS))
def test_generate_options(world, args):
    assume(small_enough(args))
    check_command(world, ["generate", "--checkpoint", "ckpt", *args])


@FEW
@given(section=st.sampled_from(["model_config", "train", "top"]),
       key=st.sampled_from(["vocab_size", "context", "n_layer", "n_head", "d_model", "d_ff",
                            "lr", "iters", "seed", "step", "positions", "model", "files",
                            "normalization", "activation", "n_kv_head", "qk_norm",
                            "logit_softcap", "bias", "rope_theta", "d_head"]),
       value=TYPED, command=st.sampled_from(["generate", "resume"]))
def test_an_edited_config_json(world, section, key, value, command):
    assume(not (key == "iters" and isinstance(value, int) and value > 4))
    def prepare(work):
        path = work / "ckpt" / "config.json"
        config = json.loads(path.read_text())
        (config if section == "top" else config[section])[key] = value
        path.write_text(json.dumps(config))
    args = (["generate", "--checkpoint", "ckpt", "--max-new-tokens", "3"]
            if command == "generate" else ["train", "--resume", "ckpt"])
    check_command(world, args, prepare)


@FEW
@given(command=st.sampled_from([
    ["tokenize", "train", "corpus.txt", "--out", "tok.json", "--vocab-size"],
    ["tokenize", "decode", "--tokenizer", "ckpt/tokenizer.json", "1"],
    ["tokenize", "show", "--tokenizer", "ckpt/tokenizer.json"],
    ["attention", "--checkpoint", "ckpt", "--out", "a.png", "--prompt"],
    ["plot", "ckpt", "--out"],
    ["export", "--checkpoint", "ckpt", "--out"],
    ["exercises", "show"], ["exercises", "hint", "-w", "ckpt"],
    ["bench", "--threads"], ["bench", "--only"], ["bench", "--case"]]), value=VALUES)
def test_the_other_commands(world, command, value):
    # A valid bench runs benchmarks for minutes: only its refusals are exercised here.
    assume(command[0] != "bench" or not (value.isdigit() and int(value) >= 1))
    check_command(world, [*command, value])
