"""What a user on Windows meets where it differs from Linux and macOS, simulated here through
the seam the code decides by (files.WINDOWS): the commands that messages advise, quoted for
cmd and PowerShell, and a ~ that no shell of theirs expands."""

import subprocess

import pytest
from click.testing import CliRunner

from tinyformer import files
from tinyformer_cli import main

TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context", "16",
        "--batch-size", "2", "--eval-every", "1000", "--threads", "1"]


def windows_words(line):
    """`line` split into words as a Windows program's C runtime splits its command line (how
    Python's own sys.argv is made there, and what cmd passes on as typed): a space or tab
    ends a word outside double quotes; 2n backslashes before a quote are n, and the quote
    opens or closes; 2n + 1 are n and a quote in the word; other backslashes are themselves."""
    words, word, quoted, started, i = [], "", False, False, 0
    while i < len(line):
        c = line[i]
        if c == "\\":
            n = len(line) - i - len(line[i:].lstrip("\\"))
            i += n
            if i < len(line) and line[i] == '"':
                word += "\\" * (n // 2) + '"' * (n % 2)
                i += n % 2              # an even count leaves the quote to open or close
            else:
                word += "\\" * n
            started = True
            continue
        if c == '"':
            quoted, started = not quoted, True
        elif c in " \t" and not quoted:
            if started:
                words.append(word)
            word, started = "", False
        else:
            word, started = word + c, True
        i += 1
    return words + [word] * started


@pytest.fixture
def on_windows(monkeypatch):
    monkeypatch.setattr(files, "WINDOWS", True)


@pytest.mark.parametrize("word", [r"C:\Users\jo\My Runs\run", "runs\\x", "eve has a red kite.",
                                  'she said "hi"', 'a \\"quoted\\" word', "C:\\new folder\\",
                                  "", "it's", "naïve café", "a&b|c<d>e^f", "50% off"])
def test_a_word_quoted_for_windows_is_read_back_by_a_windows_program_as_it_was(on_windows,
                                                                              word):
    # shlex.quote's single quotes, which cmd does not know: cmd passed 'C:\My Runs\run' on as
    # two words, quotes and all, and a --prompt 'eve has a red kite.' as four.
    quoted = files.shell_quoted(word)
    assert windows_words(f"tinyformer {quoted} next") == ["tinyformer", word, "next"]
    if " " in word or not word:         # where the standard library's quoting quotes, the same
        assert quoted == subprocess.list2cmdline([word])


def test_a_path_with_backslashes_alone_is_not_quoted_on_windows(on_windows):
    # shlex.quote quoted every Windows path ('runs\x'), where none of its characters needs it.
    assert files.command_line("generate", "--checkpoint", "runs\\x") == \
        "tinyformer generate --checkpoint runs\\x"


def test_the_command_a_run_suggests_on_windows_runs_as_a_windows_program_reads_it(
        on_windows, tmp_path):
    out = tmp_path / "my 'run'"
    trained = CliRunner().invoke(main, ["train", *TINY, "--iters", "1", "--out", str(out)])
    assert trained.exit_code == 0, trained.output
    suggested = trained.stdout.strip().splitlines()[-1].removeprefix("try: ")
    words = windows_words(suggested)
    assert words[:4] == ["tinyformer", "generate", "--checkpoint", str(out)]
    assert words[-2:] == ["--prompt", "eve has a red kite."]
    tried = CliRunner().invoke(main, [*words[1:], "--max-new-tokens", "3"])
    assert tried.exit_code == 0, tried.output


def test_a_tilde_on_windows_is_said_with_the_path_to_write_not_home(on_windows, tmp_path,
                                                                   monkeypatch):
    # "write $HOME in its place": cmd reads $HOME as it stands, a folder of that name.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "my home"))
    result = CliRunner().invoke(main, ["plot", "~/run"])
    assert result.exit_code == 2
    home_run = files.shell_quoted(str(tmp_path / "my home" / "run"))
    assert result.stderr.strip() == (
        f"Error: RUN_DIR '~/run': cmd and PowerShell do not expand a ~ in a program's words; "
        f"write {home_run} in its place")
    assert home_run.startswith('"') and "$HOME" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_path_that_starts_with_a_dash_is_given_back_after_dot_slash():
    # A command (cd, mkdir) would read "-out" as its options
    assert files.shell_path("-out") == "./-out" and files.shell_path("out") == "out"
