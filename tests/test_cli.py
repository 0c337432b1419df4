"""The command line: entry points, help and version, exit codes."""

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import tinyautograd
from tinyformer_cli import main

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


def test_python_cli_py_is_the_same_program():
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "--version"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and tinyautograd.__version__ in done.stdout


def test_a_command_group_without_a_command_prints_its_help_as_help_does():
    for group in ([], ["tokenize"], ["exercises"]):
        result = CliRunner().invoke(main, group)
        assert result.exit_code == 0, result.output
        assert result.stdout == CliRunner().invoke(main, [*group, "--help"]).stdout
        assert result.stderr == ""
