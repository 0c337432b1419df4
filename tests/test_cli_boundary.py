"""The command boundary: what reaches it is one line. Bad input and the machine's refusals
(memory, disk) exit with status 2; our own bugs with status 1 and a request to report them,
the traceback behind --debug. And what a model writes cannot drive the user's terminal."""

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import tinyautograd as ta
import tinyformer_cli as cli
import viz.write
from tinyformer_cli import main
from tinyformer.gpt import GPT
from tinyformer.prompts import TextStream
from tinyformer.schema import BadInput
from tinyformer.tokenizers import BPETokenizer, CharTokenizer, escape_controls

TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context", "16",
        "--batch-size", "4", "--eval-iters", "2"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_bug_of_ours_exits_1_and_asks_for_a_report(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise TypeError("unsupported operand")
    monkeypatch.setattr(cli, "load_model", broken)
    result = run("generate", "--checkpoint", tmp_path)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert "internal error (TypeError: unsupported operand)" in lines[0]
    assert "please report it" in lines[0] and "tinyformer --debug" in lines[0]
    # The advice, taken: --debug lets the traceback through.
    result = run("--debug", "generate", "--checkpoint", tmp_path)
    assert result.exit_code == 1 and isinstance(result.exception, TypeError)


def test_an_input_error_of_several_lines_is_said_in_its_first(monkeypatch, tmp_path):
    def refuse(path, **options):
        raise BadInput("the tokenizer file is damaged\nand this is detail for the curious")
    monkeypatch.setattr(cli, "load_tokenizer_at", refuse)
    result = run("tokenize", "encode", "hi", "--tokenizer", tmp_path / "tok.json")
    assert result.exit_code == 2
    assert result.stderr == "Error: the tokenizer file is damaged\n"


def test_a_full_disk_names_the_file_not_a_temporary_one(monkeypatch, tmp_path):
    calls = []
    def full(fd):                         # the disk fills up after the first file
        calls.append(fd)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    result = run("train", *TINY, "--iters", 1, "--out", tmp_path / "run")
    assert result.exit_code == 2, result.output
    line, = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: {tmp_path / 'run'}{os.sep}")
    assert "no space left on device; free some disk space" in line
    assert ".tmp-" not in line and "Traceback" not in result.output


@pytest.mark.parametrize("command", [["tokenize", "show", "--file"], ["tokenize", "show", "--ids",
                                                                      "--file"]])
def test_a_reader_that_stops_early_stops_the_command_quietly(tmp_path, command):
    # `tinyformer tokenize show --file big.txt | head -c 100`: head closes the pipe after 100 bytes.
    # What it shows of this file (360 kB, or 990 kB as ids) is several times a pipe's buffer
    # (64 kB): it is still writing when the pipe closes.
    (tmp_path / "big.txt").write_text("hello world, " * 15_000)
    cli_py = Path(__file__).resolve().parent.parent / "cli.py"
    process = subprocess.Popen([sys.executable, str(cli_py), *command, str(tmp_path / "big.txt")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.read(100)           # it has begun to write
    process.stdout.close()
    error = process.stderr.read().decode()
    assert process.wait(timeout=60) == cli.PIPE_CLOSED == 141     # as the shell's `cat | head`
    assert error == ""                        # no traceback, no "internal error"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full to write to")
@pytest.mark.parametrize("command", [["--help"], [], ["tokenize"], ["--version"],
                                     ["tokenize", "show", "hi"], ["train", "--help"]],
                         ids=["help", "no-command", "group-alone", "version", "result", "a-help"])
def test_a_full_standard_output_is_said_to_be_the_standard_output(command):
    """`tinyformer --help > /dev/full` said "no space left on device", as if a file of the
    command's had failed; a group's help printed for want of its command met a traceback."""
    cli_py = Path(__file__).resolve().parent.parent / "cli.py"
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, str(cli_py), *command], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (2, "Error: the standard output: no space left on "
                                                 "device; free some disk space and try again\n")


def test_a_closed_pipe_is_no_input_error_where_other_os_errors_are():
    with pytest.raises(BrokenPipeError):         # left for the program to stop quietly
        with cli.input_errors(OSError):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
    with pytest.raises(cli.InputError):
        with cli.input_errors(OSError):
            raise PermissionError(errno.EACCES, "Permission denied", "out.png")


def test_out_of_memory_is_one_line_naming_the_sizes(monkeypatch, tmp_path):
    def no_memory(*args, **kwargs):
        raise MemoryError
    monkeypatch.setattr(cli.Trainer, "train", no_memory)
    result = run("train", *TINY, "--iters", 1, "--out", tmp_path / "run")
    assert result.exit_code == 2
    line, = result.stderr.strip().splitlines()
    assert "out of memory" in line and "--batch-size" in line


def test_out_of_memory_names_the_options_of_the_command_that_ran(monkeypatch, tmp_path):
    # generate has no --batch-size: its hint names what generate can make smaller
    def no_memory(*args, **kwargs):
        raise MemoryError
    monkeypatch.setattr(cli, "load_model", no_memory)
    result = run("generate", "--checkpoint", tmp_path, "--prompt", "a")
    assert result.exit_code == 2
    line, = result.stderr.strip().splitlines()
    assert "out of memory" in line and "--beam" in line and "--batch-size" not in line


def overflowing_gpt():
    """A GPT whose weights are finite, as load_model requires, but whose activations are not:
    its final norm scales every feature past float32's largest number."""
    ta.manual_seed(0)
    tokenizer = CharTokenizer(list("ab "))
    model = GPT(vocab_size=tokenizer.vocab_size, context=8, n_layer=1, n_head=1, d_model=8)
    model.decoder.final_norm.weight.data[:] = 3e38
    model.eval()
    return model, tokenizer, {"model": "gpt"}


@pytest.mark.parametrize("search", [[], ["--beam", 2]], ids=["sampling", "beam search"])
def test_logits_that_leave_no_token_to_pick_are_the_checkpoints_fault_in_one_line(
        monkeypatch, tmp_path, recwarn, search):
    """Found only as the model writes, after the prompt is out: the checkpoint's fault (exit
    2), on a line of its own, where it was said as a bug of ours (exit 1), after numpy's
    warnings of the overflow."""
    checkpoint = overflowing_gpt()
    monkeypatch.setattr(cli, "load_model", lambda directory: checkpoint)
    result = run("generate", "--checkpoint", tmp_path, "--prompt", "ab", *search)
    assert [str(w.message) for w in recwarn] == []
    assert result.exit_code == 2, result.output
    assert result.stdout == "ab\n"                      # the text so far, its line ended
    line, = result.stderr.splitlines()
    assert line.startswith("Error: ") and "logits hold NaN at step 1" in line, line
    # Any other error from the work is a bug of ours, a ValueError too.
    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")
    monkeypatch.setattr(checkpoint[0], "generate", broken)
    result = run("generate", "--checkpoint", tmp_path, "--prompt", "ab")
    assert result.exit_code == 1 and "internal error (ValueError: operands" in result.stderr


@pytest.mark.parametrize("command", [["attention", "--out", "a.png"], ["lens"],
                                     ["graph", "--out", "g.dot"]], ids=lambda c: c[0])
def test_a_value_error_from_running_the_model_is_a_bug_of_ours_not_the_prompts(
        monkeypatch, tmp_path, command):
    """The prompt is checked before the model runs (exit 2); what fails in the run is ours
    (exit 1), a ValueError too, where it was said as the user's bad input."""
    ta.manual_seed(0)
    tokenizer = CharTokenizer(list("ab "))
    model = GPT(vocab_size=tokenizer.vocab_size, context=8, n_layer=1, n_head=1, d_model=8)
    checkpoint = model, tokenizer, {"model": "gpt"}
    monkeypatch.setattr(cli, "load_model", lambda directory: checkpoint)
    monkeypatch.setattr(viz.write, "load_model", lambda directory: checkpoint)   # graph's

    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")
    monkeypatch.setattr(model, "forward", broken)
    command = [command[0], *(str(tmp_path / a) if "." in a else a for a in command[1:])]
    result = run(*command, "--checkpoint", tmp_path, "--prompt", "ab")
    assert result.exit_code == 1, result.output
    assert "internal error (ValueError: operands" in result.stderr
    result = run(*command, "--checkpoint", tmp_path, "--prompt", "abc")   # no c in the vocabulary
    assert result.exit_code == 2, result.output
    line, = result.stderr.splitlines()
    assert line.startswith("Error: ") and "'c'" in line, line


@pytest.mark.parametrize("command, refused, phrase", [
    (["generate"], [], "neither <|endoftext|> nor a new line"),      # no --prompt
    (["attention", "--prompt", "ab", "--out", "a.png"], ["--which", "cross"],
     "--which cross: this model has self-attention only"),
    (["lens", "--prompt", "ab"], ["--prompt", "abc"], "cannot encode 'c'"),
    (["graph", "--prompt", "ab", "--out", "g.dot"], ["--prompt", "a"],
     "--prompt must give at least 2 tokens"),
    (["export", "--out", "hf"], ["--out", "."], "exists; give a new directory"),
], ids=["generate", "attention", "lens", "graph", "export"])
def test_a_value_error_from_loading_the_model_is_a_bug_of_ours_not_the_checkpoints(
        monkeypatch, tmp_path, command, refused, phrase):
    """Loading a checkpoint checks it, and builds the model from it: only what the checks (and
    those of the settings and the prompt beside it) refuse is the input's fault (exit 2); a
    ValueError from the building is ours (exit 1), where it was said as the user's bad input."""
    import tinyformer.checkpoint
    from tinyformer.rundir import save_checkpoint

    ta.manual_seed(0)
    tokenizer = CharTokenizer(list("ab "))            # no new line, no <|endoftext|>
    model = GPT(vocab_size=tokenizer.vocab_size, context=8, n_layer=1, n_head=1, d_model=8)
    checkpoint = tmp_path / "run"
    checkpoint.mkdir()
    tokenizer.save(checkpoint / "tokenizer.json")
    save_checkpoint(checkpoint, {"model": "gpt", "model_config": model.config, "step": 1},
                    {name: p.data for name, p in model.named_parameters()}, {})
    monkeypatch.chdir(tmp_path)                       # where --out writes

    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")
    with monkeypatch.context() as deep_inside_load_model:
        deep_inside_load_model.setattr(tinyformer.checkpoint, "check_finite_weights", broken)
        result = run(*command, "--checkpoint", checkpoint)
    assert result.exit_code == 1, result.output
    assert "internal error (ValueError: operands" in result.stderr
    result = run(*command, *refused, "--checkpoint", checkpoint)
    assert result.exit_code == 2, result.output
    line, = result.stderr.splitlines()
    assert line.startswith("Error: ") and phrase in line, line


def test_control_characters_are_escaped_not_sent_to_the_terminal():
    assert escape_controls("a\0b\a\b\x7f\x1b[31m\u0085é\n\t") == \
        "a\\x00b\\x07\\x08\\x7f\\x1b[31m\\x85é\n\t"
    # Windows' \r\n is a new line; a lone \r would send the cursor back over the line.
    assert escape_controls("a\r\nb\rc\r") == "a\r\nb\\x0dc\\x0d"
    tok = BPETokenizer.train("some text to learn from " * 20, 260)
    ids = tok.encode("hi\0\a\b\x7f!")
    shown = []
    stream = TextStream(tok, shown.append, None, skip_newlines=False)
    for i in ids:
        stream([i])
    stream.close()
    assert "".join(shown) == "hi\\x00\\x07\\x08\\x7f!"


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_train_refuses_non_finite_and_negative_numbers_before_writing(tmp_path, value):
    result = run("train", "--lr", value, "--out", tmp_path / "run")
    assert result.exit_code == 2 and "--lr must be a finite number > 0" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("theirs, ours", [("max_iters", "iters"), ("block_size", "context"),
                                          ("n_embd", "d_model"), ("learning_rate", "lr"),
                                          ("eval_interval", "eval_every")])
def test_another_programs_name_for_a_setting_is_answered_with_ours(tmp_path, theirs, ours):
    # nanoGPT's names, which a guess by spelling would answer with another setting
    # (max_iters: eval_iters, block_size: vocab_size, n_embd: n_head).
    (tmp_path / "run.toml").write_text(f"{theirs} = 1\n")
    result = run("train", "--config", tmp_path / "run.toml")
    assert result.exit_code == 2
    assert result.stderr == (f"Error: unknown setting {theirs!r} in {tmp_path / 'run.toml'}; "
                             f"did you mean {ours!r}?\n")
    flag, our_flag = "--" + theirs.replace("_", "-"), "--" + ours.replace("_", "-")
    result = run("train", flag, 1)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: No such option {flag!r}; did you mean "
                                    f"{our_flag!r}?")
    # Another command has no setting of train's: it is not offered one of them.
    result = run("generate", "--checkpoint", tmp_path, flag, 1)
    assert result.exit_code == 2 and our_flag not in result.stderr, result.stderr


@pytest.mark.parametrize("theirs, ours", [("learning_rat", "lr"), ("max_iter", "iters"),
                                          ("n_embed", "d_model")])
def test_another_programs_name_misspelled_is_answered_with_ours(tmp_path, theirs, ours):
    # Only the name as the other program spells it was known: a slip in it got no guess at
    # all (learning_rat), or a guess by spelling of another setting (max_iter: max_len).
    (tmp_path / "run.toml").write_text(f"{theirs} = 1\n")
    result = run("train", "--config", tmp_path / "run.toml")
    assert result.stderr == (f"Error: unknown setting {theirs!r} in {tmp_path / 'run.toml'}; "
                             f"did you mean {ours!r}?\n")
    flag, our_flag = "--" + theirs.replace("_", "-"), "--" + ours.replace("_", "-")
    assert run("train", flag, 1).stderr.startswith(f"Error: No such option {flag!r}; did you "
                                                   f"mean {our_flag!r}?")


@pytest.mark.parametrize("line, said", [
    ('lr = "3e-4"', "lr in {} must be a finite number > 0, got '3e-4', a text: write 3e-4 "
                    "without the quotes"),
    ('n_layer = "2"', "n_layer in {} must be a whole number >= 1, got '2', a text: write 2 "
                      "without the quotes"),
    ('bias = "false"', "bias in {} must be true or false, got 'false', a text: write false "
                       "without the quotes"),
    ('lr = "abc"', "lr in {} must be a finite number > 0, got 'abc'"),    # no number to write
    ('lr = "-1"', "lr in {} must be a finite number > 0, got '-1'"),      # nor a good one
    ('lr = "' + "[" * 5000 + '"', "lr in {} must be a finite number > 0, got '[[["),
])
def test_a_number_or_flag_quoted_in_a_config_file_is_said_to_be_text(tmp_path, line, said):
    config = tmp_path / "run.toml"
    config.write_text(line + "\n")
    result = run("train", "--config", config)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: " + said.format(config))
    assert result.stderr.count("without the quotes") == ("without" in said)


@pytest.mark.parametrize("body, table", [
    ("[model]\nn_layer = 2\n", "[model]"),           # was: model must be one of gpt, ...
    ("[optim]\nlr = 1e-3\n", "[optim]"),             # was: unknown setting 'optim'
    ("[train]\niters = 2\n[train.model]\nd_model = 16\n", "[train.model]"),
])
def test_settings_grouped_in_tables_of_their_own_are_told_where_settings_go(tmp_path, body,
                                                                           table):
    config = tmp_path / "run.toml"
    config.write_text(body)
    result = run("train", "--config", config)
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {table} in {config} is a table of its own; put every "
                             f"setting in [train], or every one at the top level\n")


@pytest.mark.parametrize("body, args, said", [
    # Each was "vocab_size in c.toml: --vocab-size is for ...": one setting named two ways.
    ("vocab_size = 300\n", [], "vocab_size in {} is for a bpe tokenizer; a char tokenizer's "
                               "vocabulary is the characters of its text: drop it, or give "
                               "--tokenizer bpe"),
    ('task = "copy"\nvocab_size = 300\n', [], "a task in {0} has its own tokenizer (of its "
                                               "digits and signs): drop vocab_size in {0}"),
    ("rope_theta = 500.0\n", [], "rope_theta in {} is the base of RoPE's rotations; it needs "
                                 "--positions rope"),
    ("label_smoothing = 0.1\n", [], "label_smoothing in {} smooths a --task's targets; drop "
                                    "it, or give --task copy|reverse|sort|add"),
])
def test_a_setting_from_a_config_file_that_does_not_apply_is_named_as_the_file_names_it(
        tmp_path, body, args, said):
    config = tmp_path / "c.toml"
    config.write_text(body)
    result = run("train", "--config", config, *args, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert result.stderr == f"Error: {said.format(config)}\n"
    assert not (tmp_path / "run").exists()


def test_a_bpe_too_small_is_told_what_its_ids_are_without_special_tokens(tmp_path):
    # A text's BPE has no special tokens, where the line said it needed them.
    corpus = tmp_path / "c.txt"
    corpus.write_text("the text of the run\n" * 20)
    result = run("train", "--corpus", corpus, "--tokenizer", "bpe", "--vocab-size", 258,
                 "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert result.stderr == ("Error: --vocab-size 258 is too small for a byte-level BPE: it "
                             "needs at least 259 ids, the 256 bytes and some merges learned "
                             "from the text; try 512\n")
    assert not (tmp_path / "run").exists()


def blas_threads_now():
    from threadpoolctl import threadpool_info
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_sets_the_blas_threads_of_train_and_generate(monkeypatch, tmp_path, threads):
    import tinyformer.resources
    monkeypatch.setattr(tinyformer.resources, "usable_cores", lambda: 2)   # on any machine
    seen, before = [], blas_threads_now()
    monkeypatch.setattr(cli.Trainer, "_loop", lambda self, threads, workers: seen.append(
        blas_threads_now()) or "done")
    monkeypatch.setattr(viz.write, "plot_after_training", lambda directory: "")
    result = run("train", *TINY, "--iters", 1, "--threads", threads, "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    monkeypatch.setattr(cli, "load_model", lambda directory: (None, None, {"model": "gpt"}))
    monkeypatch.setattr(cli, "respond", lambda *args, **kwargs: seen.append(
        kwargs["threads"]) or (lambda write: None))     # respond applies them: test_resources
    assert run("generate", "--checkpoint", tmp_path, "--threads", threads).exit_code == 0
    assert seen == [{threads}, threads]
    assert blas_threads_now() == before                 # only for the command's work


def threads_chosen(monkeypatch, cores):
    """On a machine of `cores` usable cores, train and generate do no work; the list returned
    gets the thread count each command chose, in the order they ran."""
    import tinyformer.resources
    monkeypatch.setattr(tinyformer.resources, "usable_cores", lambda: cores)
    seen = []
    monkeypatch.setattr(cli.Trainer, "_loop", lambda self, threads, workers: seen.append(
        threads.chosen) or "done")
    monkeypatch.setattr(viz.write, "plot_after_training", lambda directory: "")
    monkeypatch.setattr(cli, "load_model", lambda directory: (None, None, {"model": "gpt"}))
    monkeypatch.setattr(cli, "respond", lambda *args, **kwargs: seen.append(
        kwargs["threads"]) or (lambda write: None))
    return seen


def test_threads_beyond_the_cores_are_lowered_to_the_cores_and_said(monkeypatch, tmp_path):
    seen = threads_chosen(monkeypatch, cores=3)

    def said(result):
        assert result.exit_code == 0, result.output
        return [line for line in result.stderr.splitlines() if "core" in line]

    lines = said(run("train", *TINY, "--iters", 1, "--threads", 8, "--out", tmp_path / "a"))
    assert lines == ["--threads 8: this machine lets the run use 3 cores, and threads beyond "
                     "the cores only slow it down; using 3"]
    assert said(run("generate", "--checkpoint", tmp_path / "a", "--threads", 4))[0].startswith(
        "--threads 4: ")
    assert said(run("train", *TINY, "--iters", 1, "--threads", 3, "--out", tmp_path / "b")) == []
    # From the environment, the message names the variable that gave it.
    result = CliRunner(env={"TINYFORMER_THREADS": "5"}).invoke(
        main, ["train", *TINY, "--iters", "1", "--out", str(tmp_path / "c")])
    assert said(result)[0].startswith("TINYFORMER_THREADS=5: ")
    assert seen == [3, 3, 3, 3]


def test_threads_on_the_command_line_overrides_the_variable(monkeypatch, tmp_path):
    # As README says: given both, --threads counts, and the variable is not even read (a
    # value it could not take is no error then).
    seen = threads_chosen(monkeypatch, cores=2)
    for variable, out in (("2", "a"), ("junk", "b")):
        result = CliRunner(env={"TINYFORMER_THREADS": variable}).invoke(
            main, ["train", *TINY, "--iters", "1", "--threads", "1", "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
    assert seen == [1, 1]


def test_a_bad_threads_names_the_variable_only_when_it_came_from_there(monkeypatch, tmp_path):
    monkeypatch.delenv("TINYFORMER_THREADS", raising=False)
    typed = run("generate", "--checkpoint", tmp_path, "--threads", 0)
    assert typed.exit_code == 2 and "'--threads': 0 is not" in typed.stderr, typed.output
    assert "TINYFORMER_THREADS" not in typed.stderr
    given = CliRunner(env={"TINYFORMER_THREADS": "0"}).invoke(
        main, ["generate", "--checkpoint", str(tmp_path)])
    assert given.exit_code == 2 and "TINYFORMER_THREADS" in given.stderr, given.output


@pytest.mark.parametrize("option, value, bounds", [
    ("--top-k", 0, "x>=1"), ("--top-p", 0, "0<x<=1"), ("--top-p", 1.5, "0<x<=1"),
    ("--seed", -1, "x>=0"), ("--temperature", -0.5, "x>=0")])
def test_a_sampling_option_out_of_range_is_refused_with_the_range_its_help_shows(
        tmp_path, option, value, bounds):
    result = run("generate", "--checkpoint", tmp_path / "none", option, value)
    assert result.exit_code == 2 and f"not in the range {bounds}" in result.stderr, result.output
    command = main.commands["generate"]
    param, = [p for p in command.params if option in p.opts]
    assert f"{bounds}]" in param.get_help_record(click.Context(command))[1]


@pytest.mark.parametrize("option, value, hint", [
    ("--top-k", 0, "(to keep every token, leave it unset)."),
    ("--top-p", 0, "(for the likeliest token alone, give temperature 0; to keep every token, "
                   "leave it unset).")])
def test_top_k_or_top_p_0_as_transformers_takes_them_is_told_what_to_give_here(
        tmp_path, option, value, hint):
    """transformers reads top_k=0 as no top-k and top_p=0 as the likeliest token alone; the
    refusal says how to ask for that here, as the library's check does, after the range."""
    result = run("generate", "--checkpoint", tmp_path / "none", option, value)
    assert result.exit_code == 2 and "not in the range" in result.stderr, result.output
    assert hint in result.stderr, result.stderr
    # Above the range, or no number at all: nothing to hint.
    above = run("generate", "--checkpoint", tmp_path / "none", "--top-p", 1.5).stderr
    assert "1.5 is not in the range 0<x<=1. (see" in above, above
    assert "(to keep" not in run("generate", "--checkpoint", tmp_path, option, "x").stderr


def test_sizes_that_cannot_fit_in_memory_are_refused_before_anything_is_written(tmp_path,
                                                                                 monkeypatch):
    import tinyformer.resources
    monkeypatch.setattr(tinyformer.resources, "available_memory", lambda: 10 ** 9)
    result = run("train", "--d-model", 4096, "--n-head", 8, "--out", tmp_path / "run")
    assert result.exit_code == 2
    line, = result.stderr.strip().splitlines()
    assert "training with these sizes needs about" in line and "GB of memory" in line
    assert "1 GB is available" in line
    assert not (tmp_path / "run").exists()
    # The defaults fit in that much.
    assert run("train", *TINY, "--iters", 1, "--out", tmp_path / "small").exit_code == 0
    # Far more: in a larger unit, with three figures (it said "15,400.0 GB").
    monkeypatch.setattr(tinyformer.resources, "training_memory", lambda *args: 15.4e12)
    result = run("train", "--out", tmp_path / "run")
    assert result.stderr == ("Error: training with these sizes needs about 15.4 TB of memory "
                             "and 1 GB is available; choose a smaller --batch-size, --context, "
                             "--d-model or --n-layer\n"), result.stderr
    assert not (tmp_path / "run").exists()


@pytest.fixture
def one_step_run(request):
    """`train TINY --iters 1` (for "gpt") or `train TINY --task reverse --min-len 3 --max-len 5
    --iters 1` (for "reverse"; a task takes no --eval-iters): the runs conftest trains once for
    every test that reads them."""
    return request.getfixturevalue(f"one_step_{request.param}_run").out


@pytest.mark.parametrize("one_step_run, generate_options", [
    ("gpt", ["--prompt", "eve", "--max-new-tokens", "99999999999999999999"]),
    ("gpt", ["--prompt", "eve", "--beam", "99999999999999999999"]),
    ("reverse", ["--prompt", "123", "--beam", "99999999999999999999"]),
], indirect=["one_step_run"])
def test_a_count_too_large_for_generate_is_refused_before_the_prompt_is_written(
        one_step_run, generate_options):
    """Numbers beyond what the decoding loops take are the user's mistake (exit 2), found with
    the other settings: not after the prompt is on the screen, as an internal error."""
    out = one_step_run
    result = run("generate", "--checkpoint", out, *generate_options)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    line, = result.stderr.splitlines()
    assert line.startswith(f"Error: {generate_options[2]} must be at most ")


@pytest.mark.parametrize("one_step_run, prompt", [("gpt", "eve"), ("reverse", "123")],
                         indirect=["one_step_run"])
def test_a_beam_too_wide_for_memory_is_refused_before_the_prompt_is_written(
        monkeypatch, one_step_run, prompt):
    """Beams grow towards --beam as fast as the vocabulary allows: a million of them was found
    only when the machine's memory ran out, and the process was killed."""
    import tinyformer.resources
    out = one_step_run
    monkeypatch.setattr(tinyformer.resources, "available_memory", lambda: 10 ** 9)
    result = run("generate", "--checkpoint", out, "--prompt", prompt, "--beam", 10 ** 6)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    line, = result.stderr.splitlines()
    assert line.startswith("Error: --beam 1,000,000 needs about ")
    assert line.endswith(" GB of memory and 1 GB is available; choose a smaller --beam")
    assert run("generate", "--checkpoint", out, "--prompt", prompt, "--beam", 4).exit_code == 0


@pytest.mark.parametrize("edit, said", [
    (lambda model: model.update(d_model="16"), "(d_model in {} must be a whole number >= 1, "
     "got '16', a text: write 16 without the quotes); put back the config.json"),
    (lambda model: model.pop("n_head"), "(it has no n_head); put back the config.json")],
    ids=["a value of the wrong type", "a size missing"])
def test_a_damaged_model_config_is_quoted_whole(tmp_path, edit, said, one_step_gpt_run):
    """The value in the message keeps both its quotes; a missing key is named as missing."""
    import json
    out = Path(shutil.copytree(one_step_gpt_run.out, tmp_path / "run"))   # `train TINY --iters 1`
    config = json.loads((out / "config.json").read_text())
    edit(config["model_config"])
    (out / "config.json").write_text(json.dumps(config))
    result = run("generate", "--checkpoint", out)
    assert result.exit_code == 2, result.output
    line, = result.stderr.splitlines()
    assert said.format(out / "config.json") in line


@pytest.mark.parametrize("command, offers_pretrained", [
    (["train", "--resume"], False), (["export", "--out", "exported", "--checkpoint"], False),
    (["generate", "--checkpoint"], True)])
def test_a_directory_without_a_checkpoint_is_answered_with_what_the_command_takes(
        tmp_path, monkeypatch, command, offers_pretrained):
    """Only generate takes a Hugging Face model's directory: --resume continues a run of
    tinyformer train, and export writes one in that format."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    result = run(*command, "empty")
    assert result.exit_code == 2, result.output
    line, = result.stderr.splitlines()
    assert line.startswith("Error: 'empty' is not a checkpoint: it has no config.json; give "
                           "the --out directory of a `tinyformer train` run")
    assert ("Hugging Face model's directory (GPT-2, Llama or Qwen3" in line) == offers_pretrained


@pytest.mark.parametrize("out", [[], ["--out", "report.html"]])
def test_plot_names_a_metrics_file_that_is_a_folder_by_its_own_path(tmp_path, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run" / "metrics.jsonl").mkdir(parents=True)
    result = run("plot", "run", *out)
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"Error: metrics file {os.path.join('run', 'metrics.jsonl')!r} "
                             f"is a directory; give a run directory or its metrics.jsonl\n")


# Each path that a command takes, given empty (`--config "$UNSET"`), as its own path or as a
# file's (a run directory is refused before a file's path is looked at). `train --config ""`
# trained the built-in run, `tokenize show --tokenizer ""` used the default tokenizer, `bench
# --corpus ""` looked for the default text, and `graph --checkpoint ""` was a bug (exit 1).
EMPTY_PATHS = [
    (["train", "--config", ""], "--config must be a file's path"),
    (["train", "--resume", ""], "--resume must be a directory's path"),
    (["train", "--resume", "x", "--out", ""], "--out must be a directory's path"),
    (["tokenize", "train", "", "--out", "x.json"], "INPUT must be a file's path"),
    (["tokenize", "show", "--tokenizer", "", "hi"], "--tokenizer must be a file's or a"),
    (["tokenize", "encode", "--file", "", "--tokenizer", "x"], "--file must be a file's path"),
    (["tokenize", "decode", "1", "--tokenizer", " "], "--tokenizer must be a file's or a"),
    (["generate", "--checkpoint", ""], "--checkpoint must be a directory's path"),
    (["graph", "--checkpoint", "", "--prompt", "x"], "--checkpoint must be a directory's path"),
    (["attention", "--checkpoint", "", "--prompt", "x"], "--checkpoint must be a directory's"),
    (["lens", "--checkpoint", "x", "--prompt", "x", "--out", ""], "--out must be a file's path"),
    (["export", "--checkpoint", "x", "--out", ""], "--out must be a directory's path"),
    (["plot", "x", ""], "RUN_DIR must be a directory's path"),
    (["bench", "--corpus", "", "--only", "tokenizer"], "--corpus must be a file's path"),
    # `exercises init ""` wrote the course into the current directory, and `-w ""` and `draw
    # --out ""` said "Error:  is not an exercise workspace" and "--out  is a directory".
    (["exercises", "init", ""], "DIR must be a directory's path"),
    (["exercises", "list", "-w", ""], "--workspace must be a directory's path"),
    (["exercises", "draw", "1", "--out", ""], "--out must be a file's path"),
]


@pytest.mark.parametrize("args, said", EMPTY_PATHS, ids=[" ".join(a) for a, _ in EMPTY_PATHS])
def test_an_empty_path_is_refused_as_one_and_never_read_as_none(tmp_path, monkeypatch, args,
                                                                said):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 2 and result.stderr.startswith(f"Error: {said}"), result.output
    assert len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_an_out_file_that_cannot_be_written_there_says_where_to_write_instead(tmp_path,
                                                                             monkeypatch):
    # They said what was wrong ("directory ... is not writable") and left what to do unsaid.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access          # as a user's permissions would say (root writes anywhere)
    monkeypatch.setattr(os, "access", lambda path, mode: str(path) != str(locked)
                        and real_access(path, mode))
    for out, said in [(locked / "g.svg", "is not writable; give a path in a directory you can "
                                         "write to"),
                      (tmp_path / "no" / "g.svg", "does not exist; give a path in a directory "
                                                  "that exists")]:
        result = run("graph", "--example", "mlp", "--out", out)
        assert result.exit_code == 2 and said in result.stderr, result.output
        assert len(result.stderr.splitlines()) == 1
    assert list(locked.iterdir()) == [] and not (tmp_path / "no").exists()


@pytest.mark.parametrize("args", [["tokenize", "train", "c.txt", "--kind", "char"],
                                  ["graph", "--example", "mlp"],
                                  ["attention", "--checkpoint", "run", "--prompt", "x"]],
                         ids=["tokenize", "graph", "attention"])
def test_out_dash_is_no_file_named_dash(tmp_path, monkeypatch, args):
    # `lens --out -` prints its table, `plot --out -` its PNG (test_viz_plots); `tokenize
    # train --out -` wrote a file named '-'.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.txt").write_text("some text")
    (tmp_path / "run").mkdir()
    result = run(*args, "--out", "-")
    assert result.exit_code == 2 and "--out - would be a file named '-'" in result.stderr, \
        result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "run"]


def test_a_tilde_the_shell_left_as_it_was_is_said_not_made_a_folder(tmp_path, monkeypatch):
    # `train --out=~/runs/x` (bash expands no ~ after an =) trained into ./~/runs/x.
    monkeypatch.chdir(tmp_path)
    for args, said in [(["train", *TINY, "--iters", "1", "--out", "~/runs/x"],
                        "--out '~/runs/x': the shell did not expand its ~ (it does only "
                        "unquoted, at the start of a word: not after --out=); write $HOME in "
                        "its place"),
                       (["plot", "~/run"], "RUN_DIR '~/run': the shell did not expand its ~ "
                        "(it does only unquoted, at the start of a word); write $HOME")]:
        result = run(*args)
        assert result.exit_code == 2 and said in result.stderr, result.output
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "~mine").mkdir()          # a folder of that name, which is there: as it is
    assert "metrics file '~mine/metrics.jsonl'" in run("plot", "~mine").stderr


def test_the_exercises_say_a_tilde_the_shell_left_as_it_was_and_make_no_folder_of_it(
        tmp_path, monkeypatch):
    # `exercises init "~/course"` wrote the course into ./~/course, and `-w "~/course"` advised
    # that command; TINYFORMER_EXERCISES is named as itself, the user having typed no option.
    monkeypatch.chdir(tmp_path)
    for args, said in [(["init", "~/course"], "DIR '~/course': the shell did not expand its ~ "
                         "(it does only unquoted, at the start of a word); write $HOME"),
                       (["list", "-w", "~/course"], "--workspace '~/course': the shell did "
                        "not expand its ~"),
                       (["draw", "1", "--out", "~/x.png"], "--out '~/x.png': the shell did not "
                        "expand its ~")]:
        result = run("exercises", *args)
        assert result.exit_code == 2 and result.stderr.startswith(f"Error: {said}"), \
            result.output
    monkeypatch.setenv("TINYFORMER_EXERCISES", "~/course")
    result = run("exercises", "list")
    assert result.exit_code == 2 and result.stderr.startswith(
        "Error: TINYFORMER_EXERCISES='~/course': the shell did not expand its ~ (it does only "
        "unquoted, at the start of a word); write $HOME"), result.output
    assert list(tmp_path.iterdir()) == []


def test_a_tilde_in_a_path_setting_is_said_as_where_it_was_given(tmp_path, monkeypatch):
    # `train --corpus=~/x` said only "does not exist"; `corpus = "~/x"` in run.toml, that a
    # relative path is read from the current directory. Each now says who left its ~.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "run.toml").write_text('corpus = "~/x.txt"\ntokenizer = "~/tok.json"\n')
    for args, said in [(["--corpus", "~/x.txt"], "--corpus '~/x.txt': the shell did not expand "
                         "its ~ (it does only unquoted, at the start of a word: not after "
                         "--corpus=); write $HOME in its place"),
                       (["--tokenizer", "~/tok.json"], "--tokenizer '~/tok.json': the shell did "
                        "not expand its ~"),
                       (["--config", "run.toml"], "corpus '~/x.txt' in run.toml: a ~ in a file "
                        "is not expanded (only a shell does that); write "
                        f"{str(tmp_path / 'home' / 'x.txt')!r} in its place"),
                       (["--config", "run.toml", "--corpus", "c.txt"], "tokenizer '~/tok.json' "
                        "in run.toml: a ~ in a file is not expanded")]:
        result = run("train", *TINY, "--iters", "1", *args)
        assert result.exit_code == 2 and said in result.stderr, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.toml"]


def test_a_gpt_prompt_longer_than_the_context_is_continued_with_a_note_saying_so(monkeypatch):
    # The GPT reads only its last `context` tokens, as it slides along while writing: without
    # a note its text seemed to answer a prompt it had not read whole.
    import tinyautograd as ta
    from tinyformer.gpt import GPT
    from tinyformer.tokenizers import CharTokenizer
    ta.manual_seed(0)
    tokenizer = CharTokenizer("abc .")
    model = GPT(tokenizer.vocab_size, 8, n_layer=1, n_head=1, d_model=8)
    monkeypatch.setattr(cli, "load_model", lambda directory: (model, tokenizer, {"model": "gpt"}))
    for prompt, note in (("abc " * 3, "--prompt has 12 tokens, more than the 8 this model reads: "
                                      "it continues from the last 8"), ("abc abc ", None)):
        result = run("generate", "--checkpoint", ".", "--prompt", prompt, "--max-new-tokens", 2)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(prompt)
        assert result.stderr.strip() == (f"note: {note}" if note else "")
    # A refusal stays the one line it is: the note comes only once nothing is refused.
    import tinyformer.prompts

    def too_big(*args):
        raise BadInput("--beam 2: would need more memory than this machine has")
    monkeypatch.setattr(tinyformer.prompts, "check_beam_memory", too_big)
    refused = run("generate", "--checkpoint", ".", "--prompt", "abc " * 3, "--beam", 2)
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "note:" not in refused.stderr


def test_a_rope_gpt_that_may_write_past_its_context_says_transformers_would_part_there(
        monkeypatch):
    # transformers' generate reads every token of a Llama past its max_position_embeddings,
    # where ours slides its window: the texts part at the first token read past the context,
    # the (context + 1)th of prompt and new tokens (a GPT-2's learned positions run out in
    # transformers instead). Without a note, a Llama's text past it differed silently.
    import tinyautograd as ta
    from tinyformer.gpt import GPT
    from tinyformer.tokenizers import CharTokenizer
    ta.manual_seed(0)
    tokenizer = CharTokenizer("abc .")
    note = ("note: with --max-new-tokens 6 it may write past the 8 positions this model was "
            "trained on: from there it reads only the last 8 tokens, where transformers' "
            "generate reads them all, so their texts part there")
    for positions, new_tokens, said in (("rope", 5, ""), ("rope", 6, note),
                                        ("learned", 6, "")):
        model = GPT(tokenizer.vocab_size, 8, n_layer=1, n_head=1, d_model=8,
                    positions=positions)
        monkeypatch.setattr(cli, "load_model",
                            lambda directory, model=model: (model, tokenizer, {"model": "gpt"}))
        for how in (["--temperature", "0"], ["--beam", "2"]):
            result = run("generate", "--checkpoint", ".", "--prompt", "abc ",
                         "--max-new-tokens", new_tokens, *how)
            assert result.exit_code == 0, result.output
            assert result.stdout.startswith("abc ")
            assert result.stderr.strip() == said, (positions, new_tokens, how)
