"""Messages that say what is true, and what to do, in the words of the one who reads them: a
command's user is given a command, a Python user a call."""

import re
import shutil
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
from click.testing import CliRunner

from tinyautograd import Tensor
from tinyformer import BERT, GPT, Transformer
from tinyformer.attention import MultiHeadAttention
from tinyformer.blocks import Decoder, DecoderLayer, Encoder, EncoderLayer
from tinyformer.layers import Embeddings, RotaryPositions, norm_layer, positional_encoding
from tinyformer.schema import BadInput
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


@pytest.mark.parametrize("model, build", [
    ("GPT", lambda: GPT(50, 8, n_layer=1, n_head=4, d_model=16, n_kv_head=3)),
    ("BERT", lambda: BERT(50, 8, n_layer=1, n_head=4, d_model=16, n_kv_head=3)),
    ("Transformer", lambda: Transformer(50, 50, 8, n_layer=1, n_head=4, d_model=16,
                                        n_kv_head=3)),
    ("MultiHeadAttention", lambda: MultiHeadAttention(16, 4, n_kv_head=3))])
def test_an_n_kv_head_that_does_not_divide_n_head_is_told_by_the_model_built(model, build):
    with pytest.raises(ValueError) as error:
        build()
    assert str(error.value) == (f"{model}: n_kv_head 3 does not divide n_head 4: each "
                                f"key-value head serves a whole group of query heads; give "
                                f"one of 1, 2, 4")


LAYERNORM_WITHOUT_AFFINE = ("rmsnorm_affine=False drops RMS norms' weight, and "
                            "normalization='layernorm' has none; give normalization='rmsnorm', "
                            "or leave rmsnorm_affine out")


@pytest.mark.parametrize("build", [
    lambda: MultiHeadAttention(16, 2, rmsnorm_affine=False),
    lambda: MultiHeadAttention(16, 2, rmsnorm_affine=False, qk_norm=True),
    lambda: DecoderLayer(16, 2, 32, rmsnorm_affine=False),
    lambda: EncoderLayer(16, 2, 32, rmsnorm_affine=False),
    lambda: Encoder(1, 16, 2, 32, rmsnorm_affine=False),
    lambda: Decoder(1, 16, 2, 32, rmsnorm_affine=False),
    lambda: Embeddings(50, 16, 8, "learned", 0.0, norm=True, rmsnorm_affine=False),
    lambda: norm_layer("layernorm", 16, rmsnorm_affine=False)],
    ids=["attention", "attention with qk_norm", "decoder layer", "encoder layer", "encoder",
         "decoder", "embeddings", "norm_layer"])
def test_the_parts_refuse_rmsnorm_affine_without_rms_norms_as_the_models_do(build):
    with pytest.raises(BadInput) as error:
        build()
    assert str(error.value) == LAYERNORM_WITHOUT_AFFINE


@pytest.mark.parametrize("build", [
    lambda: Embeddings(50, 16, 8, "learned", 0.0, rope_theta=500.0),
    lambda: positional_encoding("sinusoidal", 8, 16, rope_theta=500.0),
    lambda: positional_encoding("none", 8, 16, rope_theta=500.0)],
    ids=["embeddings", "sinusoidal", "none"])
def test_the_parts_refuse_rope_theta_without_rope_as_the_models_do(build):
    with pytest.raises(BadInput, match=r"^rope_theta 500.0 is the base of RoPE's rotations, "
                                       r"and positions='(learned|sinusoidal|none)' has none; "
                                       r"give positions='rope', or leave rope_theta out$"):
        build()


def test_the_parts_take_the_switches_where_they_apply():
    """What the models pass on, and what their configs carry (the defaults), builds."""
    MultiHeadAttention(16, 2, normalization="rmsnorm", rmsnorm_affine=False)
    DecoderLayer(16, 2, 32, normalization="rmsnorm", rmsnorm_affine=False, qk_norm=True)
    Embeddings(50, 16, 8, "rope", 0.0, d_head=8, rope_theta=500.0)
    Embeddings(50, 16, 8, "learned", 0.0, rope_theta=10000.0)
    GPT(50, 8, n_layer=1, n_head=2, d_model=16, normalization="rmsnorm", rmsnorm_affine=False)
    model = GPT(50, 8, n_layer=1, n_head=2, d_model=16)
    assert type(model)(**model.config).config == model.config       # as a checkpoint does


def test_a_run_whose_config_json_and_manifest_are_gone_is_told_config_json_is_missing(
        tmp_path, two_step_gpt_run_evaluated_on_one_batch):
    """A copy of a run without its config.json and manifest.json still holds the checkpoint's
    weights: it is told what is missing, not that it is no checkpoint."""
    out = tmp_path / "run"
    shutil.copytree(two_step_gpt_run_evaluated_on_one_batch.out, out)
    (out / "config.json").unlink()
    (out / "manifest.json").unlink()
    for command in (["generate", "--checkpoint", out], ["train", "--resume", out]):
        refused = tinyformer(*command)
        assert refused.exit_code == 2, refused.output
        assert refused.stderr == (f"Error: {out / 'config.json'} is missing, though the "
                                  f"directory holds weights-000002.npz: config.json describes "
                                  f"its model; put back the config.json this run wrote (from a "
                                  f"copy of the run), or train again\n")


def test_attention_given_a_rope_table_of_another_width_says_the_width_it_needs():
    """Found at the first forward, it was a shape error inside the rotation's product."""
    with pytest.raises(ValueError) as error:
        MultiHeadAttention(16, 2, rotary=RotaryPositions(8, 4))
    assert str(error.value) == ("MultiHeadAttention: rotary turns heads 4 wide, and this "
                                "attention's heads are 8 wide; give it RotaryPositions(context, "
                                "8)")
    attention = MultiHeadAttention(16, 2, rotary=RotaryPositions(8, 8))
    assert attention(Tensor(np.ones((1, 3, 16), dtype=np.float32))).shape == (1, 3, 16)
