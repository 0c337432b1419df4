"""Messages that say what is true, and what to do, in the words of the one who reads them: a
command's user is given a command, a Python user a call."""

import re
import subprocess
import sys
import unicodedata

import pytest
from click.testing import CliRunner

from tinyformer import BERT, GPT, Transformer
from tinyformer.layers import Embeddings, positional_encoding
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


BUILD_WITH_ROPE = {
    "GPT": lambda **sizes: GPT(50, 8, n_layer=1, **sizes, positions="rope"),
    "BERT": lambda **sizes: BERT(50, 8, n_layer=1, **sizes, positions="rope"),
    "Transformer": lambda **sizes: Transformer(50, 50, 8, n_layer=1, **sizes, positions="rope")}


@pytest.mark.parametrize("model", BUILD_WITH_ROPE)
def test_an_odd_rope_head_width_is_told_by_the_model_of_what_the_user_gave(model):
    """An odd d_head given is told to be even (not to choose d_model and n_head, which it
    overrides); an odd d_model / n_head is told to choose those, or give d_head. Each named by
    the model built."""
    build = BUILD_WITH_ROPE[model]
    needs = f"{model}: positions='rope' needs an even head width (features turn in pairs)"
    with pytest.raises(ValueError) as given:
        build(n_head=2, d_model=16, d_head=5)
    assert str(given.value) == f"{needs}, got d_head 5; give an even d_head, such as 6"
    with pytest.raises(ValueError) as divided:
        build(n_head=2, d_model=10)
    assert str(divided.value) == (f"{needs}, but d_model / n_head = 5; choose d_model and "
                                  f"n_head whose d_model / n_head is even, or give an even "
                                  f"d_head")
    build(n_head=2, d_model=10, d_head=4)             # an even d_head mends an odd division


def test_the_rope_table_alone_names_the_argument_that_sized_it():
    with pytest.raises(ValueError, match=r"got d_model 9; give an even d_model$"):
        positional_encoding("rope", 8, 9)
    with pytest.raises(ValueError, match=r"got d_head 3; give an even d_head$"):
        Embeddings(50, 16, 8, "rope", 0.0, d_head=3)
