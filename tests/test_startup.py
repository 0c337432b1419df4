"""What starting the program loads: a command's help, or a mistyped option, answers without
loading what only some commands need (matplotlib for a PNG, graphviz for a graph, viz), and
nothing of ours loads torch or transformers, which are only beside us (bench, tests). Each
check runs in a fresh Python, whose sys.modules says what was loaded; no timing."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Loaded by a command that needs it, never to start one.
OPTIONAL = ["torch", "transformers", "matplotlib", "selenium", "graphviz", "PIL", "viz"]
# Never loaded by our packages at all.
NEVER = ["torch", "transformers", "selenium"]


def loaded_after(code, watched):
    """Those of the modules `watched` that a fresh Python has loaded after running `code`."""
    code += f"\nimport sys\nprint('loaded:', *[m for m in {watched!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1].split()[1:]


def test_every_help_and_a_mistyped_option_load_no_optional_dependency():
    code = """
import click
from tinyformer_cli import main

def paths(group, path):
    for name, command in group.commands.items():
        yield [*path, name]
        if isinstance(command, click.Group):
            yield from paths(command, [*path, name])

for args in [[], *paths(main, [])]:
    for tail in (["--help"], ["--no-such-option"]):
        try:
            main.main([*args, *tail], prog_name="tinyformer")
        except SystemExit:
            pass
"""
    assert loaded_after(code, OPTIONAL) == []


def test_no_module_of_ours_imports_torch_or_transformers():
    code = """
import importlib, pkgutil
for package in ["tinyautograd", "tinyformer", "viz", "tinyformer_cli"]:
    path = importlib.import_module(package).__path__
    for module in pkgutil.walk_packages(path, package + "."):
        if not module.name.endswith("__main__"):      # that one runs the program
            importlib.import_module(module.name)
"""
    assert loaded_after(code, NEVER) == []
