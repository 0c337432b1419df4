"""The command line: entry points, help and version, exit codes."""

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from command_lines import commands, parse

import tinyautograd
from tinyformer import files
from tinyformer.data import COLOURS
from tinyformer.train import TrainConfig
from tinyformer_cli import example_lines, main

ROOT = Path(__file__).resolve().parent.parent


def test_version_and_help():
    runner = CliRunner()
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0 and tinyautograd.__version__ in result.output
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0 and "Examples:" in result.output


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(main, ["no-such-command"])
    assert result.exit_code == 2 and "No such command" in result.output


def test_every_usage_error_says_where_the_commands_help_is():
    # click's parser named no command in these, which alone lacked the "(see ... --help)".
    for args, said in [(["graph", "--example", "mlp", "--out"], "Option '--out' requires an "
                        "argument. (see tinyformer graph --help)"),
                       (["tokenize", "train", "x", "--force=yes"], "Option '--force' does not "
                        "take a value. (see tinyformer tokenize train --help)"),
                       (["--debug=1"], "Option '--debug' does not take a value. (see "
                        "tinyformer --help)")]:
        result = CliRunner().invoke(main, args)
        assert (result.exit_code, result.stderr) == (2, f"Error: {said}\n"), result.output


def test_python_cli_py_is_the_same_program():
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "--version"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and tinyautograd.__version__ in done.stdout


def test_the_installed_tinyformer_command_runs_what_cli_py_runs():
    # The `tinyformer` console script is setup.cfg's entry point; an install, not a clone, is
    # what runs it, so the test reads the entry point as pip would and resolves it.
    import configparser
    import importlib

    import cli
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    scripts = dict(map(str.strip, line.split("=", 1)) for line in
                   setup["options.entry_points"]["console_scripts"].strip().splitlines())
    module, _, attribute = scripts["tinyformer"].partition(":")
    assert getattr(importlib.import_module(module), attribute) is cli.main is main


def test_python_cli_py_names_itself_as_it_is_run():
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "train", "--no-such-option"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "(see python cli.py train --help)" in done.stderr


@pytest.mark.parametrize("started, name", [(["cli.py"], "python cli.py"),
                                           (["-m", "tinyformer_cli"], "python -m tinyformer_cli")])
def test_the_commands_that_messages_advise_name_the_program_as_it_was_run(tmp_path, started,
                                                                          name):
    # Usage lines said `python cli.py`, and the advice beside them `tinyformer ...`: a command
    # that a clone without `pip install` cannot run, copied from the same screen. The first
    # is run as started (the name it finds for itself); the others, which say the same name,
    # in this process under it (a process each cost a third of a second of imports).
    for run_as_started, args, advice in [
            (True, ["train", "--prompt", "x"], f"it is an option of `{name} generate`"),
            (False, ["tokenize", "show", "--tokenizer", tmp_path / "no.json", "hi"],
             f"make one with `{name} tokenize train`"),
            (False, ["plot", tmp_path], f"({name} train --out DIR)")]:
        if run_as_started:
            done = subprocess.run([sys.executable, *started, *map(str, args)], cwd=ROOT,
                                  capture_output=True, text=True)
            status, said = done.returncode, done.stderr
        else:
            result = CliRunner().invoke(main, list(map(str, args)), prog_name=name)
            status, said = result.exit_code, result.stderr
        assert status == 2 and advice in said, said
        assert "tinyformer " not in said, said


def test_the_examples_of_every_help_name_the_program_as_it_was_run():
    # `python cli.py train --help` showed `Usage: python cli.py train` above examples to copy
    # that began `tinyformer train`; and a group without its command shows the same help.
    for path, command in commands():
        for args in ([*path, "--help"], list(path)) if isinstance(command, click.Group) \
                else ([*path, "--help"],):
            shown = CliRunner().invoke(main, args, prog_name="python cli.py").stdout
            first = next(line.strip() for line in (command.epilog or "").splitlines()
                         if line.strip().startswith("tinyformer "))
            assert not re.search(r"(?m)^\s*tinyformer ", shown), (path, shown)
            assert f"  python cli.py {first.removeprefix('tinyformer ')}" in shown, shown


def test_the_examples_keep_their_layout_under_a_longer_program_name():
    # `bench --help` carried one example's comment on to a second line, indented to the
    # column of the comments: under `python -m tinyformer_cli`, whose name shifts every
    # example line but that one, it stood apart from its comment. And `train --help` had two
    # comments one column left of the others.
    for path, _ in commands():
        shown = CliRunner().invoke(main, [*path, "--help"],
                                   prog_name="python -m tinyformer_cli").stdout
        lines = shown.split("Examples:\n")[1].split("\n\n")[0].splitlines()
        indent = len(lines[0]) - len(lines[0].lstrip())
        for before, line in zip(lines, lines[1:]):
            if len(line) - len(line.lstrip()) > indent:       # only a command's next line
                assert before.endswith("\\"), (path, before, line)
        columns = {match.end() for line in lines
                   if (match := re.match(r"\s*python -m tinyformer_cli \S.*?\S {2,}", line))}
        assert all(abs(a - b) > 2 for a in columns for b in columns if a != b), (path, columns)


def test_a_bug_report_is_asked_for_with_the_program_as_it_was_run(monkeypatch):
    import tinyformer_cli

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand")
    monkeypatch.setattr(tinyformer_cli, "builtin_bpe", broken)
    result = CliRunner().invoke(main, ["tokenize", "show", "hi"], prog_name="python cli.py")
    assert result.exit_code == 1 and "`python cli.py --debug ...`" in result.stderr
    # Only while it runs: the library, and the program run again otherwise, say `tinyformer`.
    assert files.command_line("train") == "tinyformer train"
    assert "`tinyformer --debug ...`" in CliRunner().invoke(main, ["tokenize", "show", "hi"]).stderr


def test_the_programs_own_options_given_after_the_command_say_where_they_go():
    # `train ... --debug`, as the bug report's `tinyformer --debug ...` is easily read, said
    # only "No such option '--debug'".
    for args, said in [(["train", "--debug"], "`python cli.py --debug train ...`"),
                       (["exercises", "check", "--debug"],
                        "`python cli.py --debug exercises check ...`"),
                       (["generate", "--version"], "`python cli.py --version` (")]:
        result = CliRunner().invoke(main, args, prog_name="python cli.py")
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(f"Error: No such option {args[-1]!r}: it is the "
                                        f"program's own, given before the command: {said}"), \
            result.stderr


def test_a_command_group_without_a_command_prints_its_help_as_help_does():
    for group in ([], ["tokenize"], ["exercises"]):
        result = CliRunner().invoke(main, group)
        assert result.exit_code == 0, result.output
        assert result.stdout == CliRunner().invoke(main, [*group, "--help"]).stdout
        assert result.stderr == ""


def test_every_command_has_examples_and_every_option_says_what_it_does():
    for path, command in commands():
        name = " ".join(("tinyformer",) + path)
        assert "Examples:" in (command.epilog or ""), \
            f"{name}: its epilog has no \"Examples:\" (give the command's decorator an " \
            f"epilog with a few example command lines, as the other commands have)"
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"{name} {param.opts[0]} has no help: give its " \
                                   f"click.option a help= saying what it does"


def test_every_argument_is_named_in_its_commands_help():
    # click's arguments take no help=: the command's own text says what each is. `plot`'s
    # named no RUN_DIR, which its usage line asks for.
    for path, command in commands():
        for param in command.params:
            if isinstance(param, click.Argument):
                name = param.make_metavar(click.Context(command)).strip("[].")
                assert name in (command.help or ""), \
                    f"tinyformer {' '.join(path)}: its help does not say what {name} is"


def test_every_help_calls_the_model_kind_an_encoder_decoder():
    # The helps said "seq2seq", "transformer" and "encoder-decoder" for the one kind of model
    # (--model transformer): as in the README, it is the encoder-decoder, and "seq2seq" names
    # only the tasks it learns (--task).
    for path, _ in commands():
        text = " ".join(CliRunner().invoke(main, [*path, "--help"]).output.split())
        said = re.findall(r".{0,30}(?:seq2seq(?! tasks?\b)|\btransformer (?:checkpoint|model))"
                          r".{0,30}", text)
        assert not said, f"tinyformer {' '.join(path)} --help: {said}: say encoder-decoder"


def test_every_example_in_every_help_is_a_command_line_that_parses():
    examples = [(path, line) for path, command in commands()
                for line in example_lines(command.epilog or "")]
    assert len(examples) > 40
    for path, line in examples:
        try:
            parse(line)
        except click.ClickException as error:
            raise AssertionError(f"{' '.join(path)} --help: {line}: {error}") from None


def test_a_missing_argument_or_option_is_said_with_a_command_line_that_gives_it():
    # click's "Missing option '--checkpoint'." left the user to find what to give, and how.
    said = 0
    for path, command in commands():
        missing = next((p for p in command.params if p.required), None)
        if missing is None:
            continue
        result = CliRunner().invoke(main, list(path))
        assert result.exit_code == 2, (path, result.output)
        [line] = result.stderr.splitlines()
        example = re.search(r"\. For example: `(tinyformer [^`]+)` \(see ", line)
        assert example and line.startswith("Error: Missing "), line
        parse(example[1])                                   # a command line that runs
        assert isinstance(missing, click.Argument) or any(
            opt in shlex.split(example[1]) for opt in missing.opts), line
        said += 1
    assert said >= 8
    assert "`tinyformer generate --checkpoint " in CliRunner().invoke(
        main, ["generate", "--prompt", "hi"]).stderr


def test_a_word_given_to_a_command_of_options_only_is_said_with_an_example_of_its_options(
        tmp_path, monkeypatch):
    # `tinyformer train input.txt`, a prompt without --prompt: click said only "Got unexpected
    # extra argument", where the example shows --corpus, --prompt.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "input.txt").write_text("hello world\n" * 200)
    for args, example in [(["train", "input.txt"], "train --corpus input.txt --out "),
                          (["generate", "--checkpoint", "runs/x", "eve has"],
                           "generate --checkpoint runs/gpt-builtin --prompt ")]:
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        [line] = result.stderr.splitlines()
        assert line.startswith(f"Error: Got unexpected extra argument ({args[-1]}): {args[0]} "
                               f"takes options only. For example: `tinyformer {example}"), line
        parse(re.search(r"For example: `([^`]+)`", line)[1])       # a command line that runs
    two = CliRunner().invoke(main, ["train", "input.txt", "more.txt"]).stderr
    assert two.startswith("Error: Got unexpected extra arguments (input.txt more.txt): train "), two
    assert [path.name for path in tmp_path.iterdir()] == ["input.txt"]     # nothing written
    # A command with arguments of its own says click's words alone: it takes words.
    result = CliRunner().invoke(main, ["tokenize", "show", "a", "b"])
    assert result.exit_code == 2 and result.stderr.startswith(
        "Error: Got unexpected extra argument (b) (see "), result.output


def test_a_missing_option_is_given_by_the_first_example_that_has_it_not_the_first():
    from tinyformer_cli import with_example

    @click.command(epilog="\b\nExamples:\n  tinyformer x --other 1\n  tinyformer x --need 2 "
                          " the one with --need\n")
    @click.option("--need", required=True)
    @click.option("--other")
    def x(need, other):
        pass

    ctx = click.Context(x, info_name="x")
    [need] = [p for p in x.params if p.name == "need"]
    said = with_example(click.MissingParameter(ctx=ctx, param=need))
    assert said.endswith(" For example: `" + files.command_line("x", "--need", "2") + "`")


def test_a_missing_option_is_given_by_the_plainest_example_that_has_it():
    # generate's said `--prompt "bob has" --beam 4`, its first example's: beam search, where
    # only --checkpoint was missing.
    from tinyformer_cli import with_example

    @click.command(epilog="\b\nExamples:\n  tinyformer x --need 1 --other 2 --flag\n"
                          "  tinyformer x --need 2 --other 3\n  tinyformer x --other 4 --need 5\n")
    @click.option("--need", required=True)
    @click.option("--other")
    @click.option("--flag", is_flag=True)
    def x(need, other, flag):
        pass

    ctx = click.Context(x, info_name="x")
    [need] = [p for p in x.params if p.name == "need"]
    said = with_example(click.MissingParameter(ctx=ctx, param=need))
    assert said.endswith(" For example: `" + files.command_line("x", "--need", "2", "--other",
                                                                "3") + "`")


@pytest.mark.parametrize("args, example", [
    (["generate"], 'generate --checkpoint runs/gpt-builtin --prompt "bob has"'),
    (["tokenize", "train"], "tokenize train corpus.txt --out tok.json"),
    (["tokenize", "train", "corpus.txt"], "tokenize train corpus.txt --out tok.json"),
    (["tokenize", "encode", "hi"], 'tokenize encode "Hello, world" --tokenizer tok.json')])
def test_the_example_for_a_missing_argument_shows_it_without_other_features(args, example):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"For example: `{files.command_line()} {example}` (see " in result.stderr


def test_a_groups_help_lists_its_commands_each_in_words_not_cut_short():
    for path, command in commands():
        if isinstance(command, click.Group):
            listed = CliRunner().invoke(main, [*path, "--help"]).output.split("Commands:")[1]
            for name in command.commands:
                line, = [line for line in listed.splitlines() if line.split()[:1] == [name]]
                assert not line.endswith("..."), (path, line)


def test_every_environment_variable_an_option_reads_is_named_in_its_help():
    for path, command in commands():
        for param in command.params:
            if isinstance(param, click.Option) and param.envvar:
                assert param.envvar in option_help(path, param.opts[0])[1], (path, param.opts)


def test_the_programs_help_names_every_environment_variable_it_reads_and_its_exit_statuses():
    # TINYAUTOGRAD_KERNELS, read (and refused when wrong) by every command, and NO_COLOR,
    # which lens and the exercises follow too, were in no --help; nor were the exit statuses.
    import tinyformer_cli
    read = {"NO_COLOR"} | {name for package in ("tinyautograd", "tinyformer", "viz",
                                                "tinyformer_cli")
                           for path in (ROOT / package).rglob("*.py")
                           for name in re.findall(r"\bTINY[A-Z]+_[A-Z_]+\b", path.read_text())}
    assert {"TINYAUTOGRAD_KERNELS", "TINYFORMER_THREADS", "TINYFORMER_EXERCISES"} <= read
    shown = CliRunner().invoke(main, ["--help"]).stdout
    environment = shown.split("Environment:")[1].split("Exit status:")[0]
    assert all(f"\n    {name}" in environment for name in read), (read, environment)
    statuses = " ".join(shown.split("Exit status:")[1].split())
    # The statuses of a run stopped by SIGTERM or SIGHUP, and of a closed pipe, were not there.
    for status in (0, 2, 1, tinyformer_cli.INTERRUPTED, tinyformer_cli.NOT_YET,
                   *tinyformer_cli.STOPPED.values(), tinyformer_cli.PIPE_CLOSED):
        assert f" {status} " in f" {statuses} ", (status, statuses)


def test_every_option_but_trains_settings_leaves_saying_its_default_to_click():
    # Defaults were written four ways: [512], [default: 512], click's, and (default: ...).
    settings = {field.name for field in dataclasses.fields(TrainConfig)
                if "help" in field.metadata}         # their help is the settings' own
    for path, command in commands():
        for param in command.params:
            if isinstance(param, click.Option) and not (path == ("train",) and
                                                        param.name in settings):
                assert not re.search(r"\[[^]{]*\]|default", param.help or ""), (
                    f"tinyformer {' '.join(path)} {param.opts[0]}: its help writes a default "
                    f"(or a [...]) itself: {param.help!r}; leave that to click, with "
                    f"show_default=True on the option (nothing for a flag, which is off)")


# The options that take a value and whose absence needs no default: one of two ways to give
# the input (TEXT or --file; --example or --checkpoint with its --prompt), or a thing that is
# there or not (a config file, a run to resume, a task, a prediction typed later).
WITHOUT_DEFAULT = {("tokenize", "encode", "--file"), ("tokenize", "show", "--file"),
                   ("tokenize", "decode", "--file"),
                   ("train", "--task"), ("train", "--config"), ("train", "--resume"),
                   ("graph", "--example"), ("graph", "--checkpoint"), ("graph", "--prompt"),
                   ("exercises", "predict", "--answer")}


def test_every_option_that_takes_a_value_says_what_it_is_when_not_given():
    # --top-k, --top-p, --beam, --depth and bench's --only and --threads said nothing of it.
    for path, command in commands():
        for param in command.params:
            if (isinstance(param, click.Option) and not param.is_flag and not param.hidden
                    and not param.required and (*path, param.opts[0]) not in WITHOUT_DEFAULT):
                shown = option_help(path, param.opts[0])[1]
                assert "default: " in shown, (path, param.opts[0], shown)



@pytest.mark.parametrize("command, unset", [
    ("bench", "the --case's own count"), ("train", "threads chosen as it runs"),
    ("generate", "threads chosen as it runs")])
def test_threads_0_is_told_to_give_a_count_or_leave_it_unset(command, unset):
    # "0 is not in the range x>=1." said nothing of what to give, where --top-k 0 does; 0 is
    # "as many as the cores" to some tools (xz -T0), which leaving it unset comes nearest to;
    # and so is a word for it ("auto", "max"), where click said only "not a valid integer".
    for given in ["0", "auto"]:
        result = CliRunner().invoke(main, [command, "--threads", given])
        line, = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and line.startswith("Error: "), result.output
        assert f"(give 1 or more, or leave it unset for {unset})." in line, line


def test_a_word_for_top_k_is_said_as_click_says_it():
    # --top-k's hint is about 0 (every token): a word there is no number, and only that.
    result = CliRunner().invoke(main, ["generate", "--top-k", "all"])
    assert result.exit_code == 2
    assert "'all' is not a valid integer. (see " in result.stderr, result.output

def test_trains_settings_say_their_default_as_click_does_and_the_jobs_are_the_ones_resolved(
        tmp_path):
    # Their defaults were written by hand ("[4]", "(default: ...)"), and those that depend on
    # what is trained (--n-layer, --iters, --lr, ...) not at all; a fixed one was written again
    # beside the field's own, and a changed default left the help saying the old one.
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc " * 2000)
    jobs = {"built-in": TrainConfig(), "--corpus": TrainConfig(corpus=str(corpus)),
            "--task": TrainConfig(task="reverse")}
    resolved = {where: config.resolved() for where, config in jobs.items()}
    for field in dataclasses.fields(TrainConfig):
        if "help" not in field.metadata or field.name == "task":   # the one with no default
            continue
        help_text = option_help(("train",), "--" + field.name.replace("_", "-"))[1]
        shown = " ".join(re.search(r"\[default: ([^]]*)\]", help_text)[1].split())
        if field.default is not None:                  # the same for every job: the field's
            said = float(shown) if isinstance(field.default, (int, float)) else shown
            assert said == field.default, field.name
        for where, config in resolved.items():
            said = re.search(rf"(\d[\d.e+-]*) {where}\b", shown)
            if said:
                value = float(said[1])
                if field.name == "warmup":             # a short run's is cut, as it says
                    assert "at most a tenth of --iters" in shown
                    value = min(value, config.iters // 10)
                assert getattr(config, field.name) == value, (field.name, where)


def option_help(path, option):
    """The help text of `option` of the command `path`, as --help shows it."""
    command = dict(commands())[path]
    param, = [p for p in command.params if option in getattr(p, "opts", ())]
    return param.get_help_record(click.Context(command))


def test_every_setting_of_a_run_is_an_option_of_train_or_named_by_its_config_help():
    options = {param.name for param in main.commands["train"].params}
    config_help = option_help(("train",), "--config")[1]
    for field in dataclasses.fields(TrainConfig):
        assert field.name in options or field.name in config_help, field.name


def test_an_options_help_speaks_of_its_own_command():
    assert "micro-batches" in option_help(("train",), "--threads")[1]
    assert "micro-batches" not in option_help(("generate",), "--threads")[1]
    assert "replaced if there" in option_help(("graph",), "--out")[1]
    for option in ("--normalization", "--activation"):
        assert option_help(("train",), option)[0] == f"{option} KIND"


def test_the_commands_that_read_a_model_say_they_take_a_hugging_face_one():
    # Each loads its --checkpoint as generate does, a Hugging Face directory too.
    for command in ("generate", "attention", "lens", "graph"):
        assert "Hugging Face" in option_help((command,), "--checkpoint")[1], command


def test_the_help_asks_the_built_in_bert_for_a_colour_its_prompt_has_given():
    # It asked "the kite is <mask><mask><mask>.": no colour to recall, and the built-in BERT,
    # which learns to recall a story's colour from its first sentence, answered "lee".
    line, = [line for line in example_lines(main.commands["generate"].epilog)
             if "runs/bert-builtin" in line]
    words = shlex.split(line)
    prompt = words[words.index("--prompt") + 1]
    first, *_ = prompt.split(".")
    colour, = [colour for colour in COLOURS if f" {colour} " in f" {first} "]
    # The built-in BERT reads characters: a mask for each of the colour's.
    filled = prompt.replace("<mask>" * len(colour), colour)
    assert "<mask>" not in filled and filled.endswith(f" is {colour}."), prompt


def test_no_two_examples_write_the_same_file():
    # `tokenize train`'s example wrote tok.json over the one `tokenize`'s made: copied in
    # order, it stopped at "exists", and with --force it left a tokenizer without the <bos>
    # that `tokenize encode`'s example reads as its token.
    # A group's help may repeat its command's example, the same line: counted once.
    lines = dict.fromkeys(line for _, command in commands()
                          for line in example_lines(command.epilog or ""))
    written = [(line, words[words.index("--out") + 1]) for line in lines
               for words in [shlex.split(line)] if "--out" in words]
    assert len(written) > 5
    files = [out for _, out in written]
    assert len(set(files)) == len(files), written


# The examples that are not run below, and why: each trains for a minute or more (the training
# commands are run, on small models, by test_cli_train), or needs the Shakespeare text or
# GPT-2's weights. The exercises' run in test_cli_exercises, in a workspace of their own.
NOT_RUN = {"tinyformer train", "tinyformer train --corpus input.txt --out runs/shakespeare",
           "tinyformer train --model bert", "tinyformer train --config run.toml --lr 3e-4",
           "tinyformer bench --quick", "tinyformer bench --case loaded",
           "tinyformer bench --only gpt2 --threads 2", "tinyformer bench --only builtin_run",
           "tinyformer bench --whole-run --corpus tinyshakespeare.txt"}


def test_every_example_runs_after_the_examples_before_it_and_writes_what_it_says(
        tmp_path, monkeypatch, one_step_reverse_run):
    # Run as a user copies them, in a folder holding what they read: the runs the training
    # examples write (tiny ones here, trained for a step), a text, and the files that
    # earlier examples write (tok.json, chars.json) or that a user has (story.txt, ids.txt).
    # A group's help may repeat its command's example: each line runs once.
    monkeypatch.chdir(tmp_path)
    shutil.copytree(one_step_reverse_run.out, "runs/transformer-reverse")
    for model in ("gpt", "bert"):     # a context of 80: the examples' prompts are up to 72 long
        result = CliRunner().invoke(main, [
            "train", "--model", model, "--n-layer", "1", "--n-head", "2", "--d-model", "16",
            "--context", "80", "--batch-size", "4", "--iters", "1", "--eval-iters", "1",
            "--out", f"runs/{model}-builtin"])
        assert result.exit_code == 0, result.output
    for copy in ("shakespeare", "lr-1", "lr-2"):           # a --corpus run, a sweep
        shutil.copytree("runs/gpt-builtin", f"runs/{copy}")
    Path("corpus.txt").write_text((ROOT / "README.md").read_text())
    Path("story.txt").write_text("eve has a red kite.\n")
    Path("ids.txt").write_text("72 101\n108\n")
    lines = dict.fromkeys(line for _, command in commands()
                          for line in example_lines(command.epilog or ""))
    assert NOT_RUN <= set(lines), NOT_RUN - set(lines)      # none left here that is gone
    ran = 0
    for line in lines:
        words = shlex.split(line)[1:]
        if line in NOT_RUN or words[0] == "exercises" and words[1] != "init":
            continue
        # `plot runs/lr-*` names the runs the shell finds.
        words = [found for word in words
                 for found in (sorted(map(str, Path().glob(word))) if "*" in word else [word])]
        result = CliRunner().invoke(main, words)
        assert result.exit_code == 0, (line, result.output)
        if "--out" in words:
            assert Path(words[words.index("--out") + 1]).stat().st_size > 0, line
        ran += 1
    assert ran > 25
    assert Path("runs/gpt-builtin/loss.png").stat().st_size > 0     # plot's, as it says
    assert Path("tinyformer-exercises").is_dir() and Path("my-course").is_dir()


def test_with_standard_input_and_output_closed_a_command_reads_and_writes_the_null_device(
        tmp_path):
    """As a launcher may start it (here the shell's `0<&- 1>&-`): a prompt reads no answer,
    as at the end of a file, and what it prints goes nowhere, rather than a bug's exit
    status 1."""
    assert CliRunner().invoke(main, ["exercises", "init", str(tmp_path / "ws")]).exit_code == 0
    command = [sys.executable, "-c", "from tinyformer_cli import main; main()", "exercises",
               "solution", "1", "-w", str(tmp_path / "ws")]
    done = subprocess.run(["sh", "-c", 'exec "$@" 0<&- 1>&-', "sh", *command],
                          capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")
    # The standard error closed: its errors go nowhere, and the result is written as ever.
    command = [sys.executable, "-c", "from tinyformer_cli import main; main()", "tokenize",
               "show", "hi"]
    done = subprocess.run(["sh", "-c", 'exec "$@" 2>&-', "sh", *command], capture_output=True,
                          text=True)
    assert (done.returncode, done.stdout[:6]) == (0, "|h|i|\n"), done


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="a pseudo-terminal: Unix only")
@pytest.mark.parametrize("variable", [{"NO_COLOR": "1"},
                                      {"TERM": "dumb"}])    # Emacs's: it showed ^[[30;46m
def test_no_color_or_a_dumb_terminal_leaves_a_terminal_without_colours(variable):
    def shown(*args):
        reader, writer = os.openpty()
        command = [sys.executable, "-c", "from tinyformer_cli import main; main()", *args]
        done = subprocess.run(command, stdout=writer, env={**os.environ, **variable})
        os.close(writer)
        text = os.read(reader, 10_000).decode()
        os.close(reader)
        assert done.returncode == 0
        return text
    tokens = shown("tokenize", "show", "hello")
    assert tokens.startswith("|he|l|l|o|")
    # The exercises' headings, in click's styles, were bold whatever the variables said.
    assert "\033[" not in tokens + shown("exercises", "show", "1")


def test_a_run_stopped_before_its_first_step_lets_go_of_its_directory(tmp_path, monkeypatch):
    """Stopped while the engine builds its loops (a Ctrl-C; or a reader gone, `| head`): the
    run says how to start it again, and leaves no run.lock that the next one would call left
    by a process that stopped without releasing it."""
    def building(ops=()):
        raise KeyboardInterrupt
    monkeypatch.setattr(tinyautograd.kernels, "summary", building)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--iters", "1", "--d-model", "8", "--n-layer",
                                       "1", "--n-head", "1", "--context", "8", "--out", str(out)])
    assert result.exit_code == 130
    assert "has no checkpoint yet" in result.stderr and not (out / "run.lock").exists()
