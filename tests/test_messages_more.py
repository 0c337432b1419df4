"""Messages that say what is true, and what to do, in the words of the one who reads them: a
command's user is given a command, a Python user a call."""

import re
import subprocess
import sys
import unicodedata

from click.testing import CliRunner

from tinyformer_cli import main


def tinyformer(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_prompt_in_another_normal_form_is_told_a_shell_command_that_converts_it(tmp_path):
    """`tokenize encode` of "café" spelt "e" + a combining accent, by a tokenizer that knows
    "é": the error gives a shell user a command, and that command's output encodes."""
    (tmp_path / "nfc.txt").write_text(unicodedata.normalize("NFC", "le café est là\n"),
                                      encoding="utf-8")
    tokenizer = tmp_path / "chars.json"
    assert tinyformer("tokenize", "train", tmp_path / "nfc.txt", "--kind", "char",
                      "--out", tokenizer).exit_code == 0
    nfd = unicodedata.normalize("NFD", "café")
    refused = tinyformer("tokenize", "encode", nfd, "--tokenizer", tokenizer)
    assert refused.exit_code == 2, refused.output
    shell = re.search(r"in a shell pipe the text through `([^`]+)`", refused.stderr)
    assert shell, refused.stderr
    command = shell.group(1)
    assert command.startswith("python -c ")
    converted = subprocess.run(sys.executable + command[len("python"):], shell=True,
                               input=nfd.encode("utf-8"), capture_output=True, check=True)
    assert converted.stdout.decode("utf-8") == unicodedata.normalize("NFC", "café")
    encoded = tinyformer("tokenize", "encode", converted.stdout.decode("utf-8"),
                         "--tokenizer", tokenizer)
    assert encoded.exit_code == 0, encoded.output
