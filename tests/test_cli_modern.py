"""The modern block on the command line: `tinyformer train` takes every switch as an option and
in a TOML file, a GPT with all of them on trains and generates, and every bad value is one
line with exit status 2. (That such a run resumes exactly is in tests/test_train.py.)"""

import json

import pytest
from test_cli_train import TINY, assert_input_error, tinyformer

from tinyformer.checkpoint import load_model

ALL_SWITCHES = ["--positions", "rope", "--rope-theta", "500", "--normalization", "rmsnorm",
                "--activation", "swiglu", "--n-kv-head", "1", "--qk-norm",
                "--logit-softcap", "15", "--no-bias", "--no-tie-weights"]


@pytest.fixture(scope="module")
def modern_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "modern"
    result = tinyformer("train", *TINY, "--iters", 4, "--eval-every", 2, *ALL_SWITCHES,
                        "--out", out)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_a_gpt_with_every_switch_on_trains_from_the_command_line(modern_run):
    out, printed = modern_run
    assert "step 4 (end of training)" in printed
    model, _, saved = load_model(out)
    config = saved["model_config"]
    assert {key: config[key] for key in ("positions", "rope_theta", "normalization",
                                         "activation", "n_kv_head", "qk_norm", "logit_softcap",
                                         "bias", "tie_weights")} == {
        "positions": "rope", "rope_theta": 500.0, "normalization": "rmsnorm",
        "activation": "swiglu", "n_kv_head": 1, "qk_norm": True, "logit_softcap": 15.0,
        "bias": False, "tie_weights": False}
    assert model.head is not None
    assert not [name for name, _ in model.named_parameters() if name.endswith("bias")]
    assert model.decoder.layers[0].attn.k.weight.shape == (16, 8)       # one head of 8
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]


def test_its_engine_line_names_the_compiled_loops_it_runs(modern_run):
    # It named layer norm and GELU, which RMSNorm and SwiGLU replace, among them.
    _, printed = modern_run
    engine, = [line for line in printed.splitlines() if line.startswith("engine: ")]
    assert engine.startswith("engine: softmax and Adam run "), engine


def test_it_generates_from_its_checkpoint(modern_run):
    out, _ = modern_run
    for extra in (["--temperature", 0], ["--beam", 2]):     # greedy, and the beam's search
        result = tinyformer("generate", "--checkpoint", out, "--prompt", "eve",
                            "--max-new-tokens", 5, *extra)
        assert result.exit_code == 0 and result.output.startswith("eve"), result.output


def test_export_names_the_one_switch_no_hugging_face_format_has(modern_run, tmp_path):
    # Every other switch is Qwen3's; the soft-capped logits are no format's.
    out, _ = modern_run
    assert_input_error(tinyformer("export", "--checkpoint", out, "--out", tmp_path / "hf"),
                       "no Hugging Face format expresses this GPT: the nearest, Qwen3, cannot "
                       "express logit_softcap=15.0 (it has None)")
    assert not (tmp_path / "hf").exists()


def test_the_switches_come_from_a_toml_file_too(tmp_path):
    (tmp_path / "run.toml").write_text('normalization = "rmsnorm"\nrmsnorm_affine = false\n'
                                       'activation = "relu2"\nn-kv-head = 1\nqk_norm = true\n'
                                       'bias = false\nlogit_softcap = 30.0\n'
                                       'tie_weights = false\n')
    result = tinyformer("train", "--config", tmp_path / "run.toml", *TINY, "--iters", 1,
                        "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    _, _, saved = load_model(tmp_path / "run")
    config = saved["model_config"]
    assert (config["normalization"], config["rmsnorm_affine"], config["activation"],
            config["n_kv_head"], config["qk_norm"], config["bias"],
            config["logit_softcap"], config["tie_weights"]) == ("rmsnorm", False, "relu2", 1,
                                                                True, False, 30.0, False)


@pytest.mark.parametrize("args, phrases", [
    (["--n-kv-head", "3"], ["--n-kv-head 3 does not divide --n-head 2", "try --n-kv-head 1 "
                                                                         "or 2"]),
    (["--n-kv-head", "0"], ["--n-kv-head must be a whole number >= 1, got 0"]),
    (["--rope-theta", "500"], ["--rope-theta is the base of RoPE's rotations; it needs "
                               "--positions rope"]),
    (["--positions", "rope", "--rope-theta", "1"], ["--rope-theta must be a finite number > 1"]),
    (["--normalization", "batchnorm"], ["--normalization must be one of layernorm, rmsnorm, "
                                        "got 'batchnorm'"]),
    (["--activation", "tanh"], ["--activation must be one of relu, gelu, swiglu, relu2"]),
    (["--logit-softcap", "0"], ["--logit-softcap must be a finite number > 0, got 0.0"]),
    (["--logit-softcap", "nan"], ["--logit-softcap must be a finite number > 0, got nan"]),
    (["--model", "transformer", "--task", "copy", "--n-kv-head", "4"],
     ["--n-kv-head 4 does not divide --n-head 2"]),
])
def test_bad_switches_on_the_command_line_are_one_line(tmp_path, args, phrases):
    result = tinyformer("train", *TINY, "--iters", 1, *args, "--out", tmp_path / "run")
    assert_input_error(result, *phrases)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("toml, phrase", [
    ('qk_norm = "yes"', "qk_norm in {} must be true or false, got 'yes'"),
    ("bias = 0", "bias in {} must be true or false, got 0"),
    ('tie_weights = "no"', "tie_weights in {} must be true or false, got 'no'"),
    ("rmsnorm_affine = false", "rmsnorm_affine in {} says whether RMS norms learn a weight; it "
                               "needs normalization = \"rmsnorm\""),
    ('activation = "swish"', "activation in {} must be one of relu, gelu, swiglu, relu2"),
    ("logit_softcap = 1" + "0" * 400, "logit_softcap in {} must be a finite number > 0, got 1000"),
])
def test_bad_switches_in_a_toml_file_are_one_line(tmp_path, toml, phrase):
    path = tmp_path / "run.toml"
    path.write_text(toml + "\n")
    result = tinyformer("train", "--config", path, *TINY, "--iters", 1, "--out",
                        tmp_path / "run")
    assert_input_error(result, phrase.format(path))
