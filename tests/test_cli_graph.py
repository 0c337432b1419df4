"""`tinyformer graph`: the examples and a checkpoint's step, drawn for real; bad input."""

import re
import shutil

import pytest
from click.testing import CliRunner

from cli import main
from viz.examples import EXAMPLES, example

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="graphviz's dot is not installed (CI installs it)")


def tinyformer(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_is_a_scalar_loss_with_named_parameters(name):
    shown = example(name)
    assert shown.loss.shape == () and shown.loss.requires_grad
    assert list(shown.params.named_parameters())


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_draws_to_dot_with_its_parameter_names(name, tmp_path):
    out = tmp_path / f"{name}.dot"
    result = tinyformer("graph", "--example", name, "--out", out)
    assert result.exit_code == 0, result.output
    source = out.read_text()
    for param_name, _ in example(name).params.named_parameters():
        assert param_name in source
    assert len(re.findall(r"->", source)) >= 3


@needs_dot
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".png", b"\x89PNG"),
                                           (".pdf", b"%PDF")])
def test_renders_for_real(tmp_path, suffix, magic):
    out = tmp_path / f"gpt{suffix}"
    result = tinyformer("graph", "--example", "gpt", "--grad", "--data", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(magic)


@needs_dot
def test_a_checkpoints_training_step(tmp_path):
    run = tmp_path / "run"
    assert tinyformer("train", "--n-layer", 1, "--n-head", 2, "--d-model", 16, "--context", 16,
                      "--batch-size", 4, "--eval-iters", 1, "--iters", 1,
                      "--out", run).exit_code == 0
    out = tmp_path / "step.svg"
    result = tinyformer("graph", "--checkpoint", run, "--prompt", "eve has a red kite.",
                        "--out", out)
    assert result.exit_code == 0, result.output
    assert "blocks.0.attn" in out.read_text() or "blocks.0.self_attn" in out.read_text()


@pytest.mark.parametrize("args, words", [
    ([], "give one of --example NAME or --checkpoint DIR"),
    (["--example", "mlp", "--checkpoint", "x"], "give one of"),
    (["--example", "mlp", "--out", "g.txt"], "the suffix says the format"),
    (["--example", "mlp", "--out", "no/such/dir/g.svg"], "does not exist"),
    (["--example", "lstm"], "Invalid value for '--example'"),
    (["--checkpoint", "no-such-run"], "is not a directory"),
])
def test_bad_input(tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    result = tinyformer("graph", *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


@needs_dot
@pytest.mark.parametrize("name", ["mlp", "layernorm"])
def test_the_backward_graph_of_an_example(tmp_path, name):
    out = tmp_path / f"{name}.svg"
    result = tinyformer("graph", "--example", name, "--what", "backward", "--out", out)
    assert result.exit_code == 0, result.output
    svg = out.read_text()
    assert "dL/dL = 1" in svg and "backward" in svg
    for param_name, _ in example(name).params.named_parameters():
        assert f"dL/d{param_name}" in svg


def test_a_fused_kernel_has_no_backward_graph_and_says_so(tmp_path):
    result = tinyformer("graph", "--example", "gpt", "--what", "backward",
                        "--out", tmp_path / "g.dot")
    assert result.exit_code == 2 and "fused kernel" in result.stderr
    assert list(tmp_path.iterdir()) == []


@needs_dot
def test_depth_collapses_the_example_to_its_modules(tmp_path):
    out = tmp_path / "gpt.svg"
    result = tinyformer("graph", "--example", "gpt", "--depth", 1, "--out", out)
    assert result.exit_code == 0, result.output
    svg = out.read_text()
    for path in ("tok", "pos", "blocks.0", "norm"):
        assert f">{path}</text>" in svg
    assert "DecoderLayer" in svg and " ops</text>" in svg and " params</text>" in svg
    assert "blocks.0.self_attn.q.weight" not in svg          # folded into blocks.0


def test_depth_is_for_the_forward_graph_only(tmp_path):
    result = tinyformer("graph", "--example", "mlp", "--what", "backward", "--depth", 1,
                        "--out", tmp_path / "g.dot")
    assert result.exit_code == 2 and "--depth" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra", [[], ["--depth", "1"]])
def test_flow_colours_by_gradient_norm_with_a_legend(tmp_path, extra):
    out = tmp_path / "flow.dot"
    result = tinyformer("graph", "--example", "gpt", "--flow", *extra, "--out", out)
    assert result.exit_code == 0, result.output
    source = out.read_text()
    assert "gradient norm (log scale)" in source and "grad norm" in source
