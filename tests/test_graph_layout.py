"""Every picture of a graph is laid out in one place (tinyformer.graph_layout): `tinyformer
graph`'s and `tinyformer exercises draw`'s alike use graphviz's `dot`, or else `graphviz-pure`,
and without either say the same thing about installing one."""

import os
import shutil
import subprocess

import pytest
from click.testing import CliRunner
from solutions import write_solved

from tinyformer_cli import main
from tinyformer.exercises import find
from tinyformer.graph_layout import INSTALL_HINT, layout

# A stand-in for graphviz-pure: what it writes is its name, its flags and the dot source it read,
# so a test needs neither the real package nor dot. Shell builtins only: PATH holds it alone.
STAND_IN = """#!/bin/sh
echo "graphviz-pure stand-in $*"
while IFS= read -r line || [ -n "$line" ]; do echo "$line"; done
"""


def tinyformer(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def course(tmp_path, monkeypatch):
    """An exercise workspace, the current directory, with scalar_engine (a graph) solved."""
    assert tinyformer("exercises", "init", tmp_path / "course").exit_code == 0
    monkeypatch.chdir(tmp_path / "course")
    ex = find("scalar_engine")
    write_solved(ex, tmp_path / "course" / ex.file)
    return tmp_path / "course"


# Each command that draws a graph, with the --out it is given.
COMMANDS = {"graph": ["graph", "--example", "mlp", "--out"],
            "exercises draw": ["exercises", "draw", "scalar_engine", "--out"]}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_without_dot_each_command_lays_its_graph_out_with_graphviz_pure(command, course,
                                                                       tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "graphviz-pure").write_text(STAND_IN)
    (bin_dir / "graphviz-pure").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))                # graphviz-pure, and no `dot`
    result = tinyformer(*COMMANDS[command], "picture.svg")
    assert result.exit_code == 0, result.output
    drawn = (course / "picture.svg").read_text()
    assert drawn.startswith("graphviz-pure stand-in -Tsvg\n"), drawn[:200]
    assert "digraph" in drawn and "->" in drawn             # the graph's dot source went in


def test_without_dot_or_graphviz_pure_each_command_says_how_to_install_one(course, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))
    for command, args in COMMANDS.items():
        result = tinyformer(*args, "picture.svg")
        assert result.exit_code == 2, (command, result.output)
        line = result.stderr.strip()
        assert "\n" not in line and line.startswith(f"Error: {INSTALL_HINT}; "), (command, line)
    assert "graphviz-pure" in INSTALL_HINT and "apt-get install graphviz" in INSTALL_HINT
    assert not (course / "picture.svg").exists()


def test_graphviz_pure_draws_no_pdf_so_a_pdf_without_dot_is_none(tmp_path, monkeypatch):
    # graphviz-pure has no pdf: asked for one, it fails; layout says None, for the caller to
    # say INSTALL_HINT, as where neither program is installed.
    (tmp_path / "graphviz-pure").write_text(STAND_IN)
    (tmp_path / "graphviz-pure").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert layout("digraph { a -> b }", "png").startswith(b"graphviz-pure stand-in -Tpng\n")
    assert layout("digraph { a -> b }", "pdf") is None


def test_a_layout_program_that_fails_raises_rather_than_giving_an_empty_picture(tmp_path,
                                                                               monkeypatch):
    # Its empty output, taken as the picture, would be written as an empty file, unsaid.
    (tmp_path / "graphviz-pure").write_text("#!/bin/sh\necho 'syntax error' >&2\nexit 1\n")
    (tmp_path / "graphviz-pure").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(subprocess.CalledProcessError):
        layout("digraph { a -> }", "svg")


# CI installs dot: there, a missing dot fails the test rather than skipping it.
@pytest.mark.skipif(shutil.which("dot") is None and not os.environ.get("CI"),
                    reason="graphviz's dot is not installed (CI installs it)")
def test_dots_warnings_are_not_printed_to_the_user(capfd):
    # The command says what to do about a picture dot had to scale down; dot's own warning
    # (here of an unknown shape, drawn as a box) is not the user's to read.
    assert layout("digraph { a [shape=nonexistent]; a -> b }", "svg").lstrip().startswith(b"<")
    assert capfd.readouterr().err == ""
