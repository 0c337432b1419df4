"""The models' options in combination, as a researcher tries them: what the Python API takes,
`tinyformer train` takes too (a head width of its own, `d_head`, among them), and a setting
out of range, or two that do not go together, is one line with exit status 2."""

import pytest
from test_cli_train import TINY, assert_input_error, tinyformer

from tinyformer.checkpoint import load_model
from tinyformer.train_config import TrainConfig

pytestmark = pytest.mark.usefixtures("recall_on_eight_prompts", "short_samples",
                                     "loss_plots_left_out")


# --------------------------------------------------------------------------------------------
# d_head: GPT, BERT and the Transformer take it, and so does a run


def test_a_run_trains_heads_of_a_width_of_their_own_and_generates(tmp_path):
    # Three heads of 6 over a width of 16 (which 3 does not divide), with RoPE and one
    # key-value head: Qwen3's way of sizing heads.
    out = tmp_path / "run"
    result = tinyformer("train", *TINY, "--n-head", 3, "--d-head", 6, "--positions", "rope",
                        "--n-kv-head", 1, "--iters", 2, "--eval-every", 2, "--out", out)
    assert result.exit_code == 0, result.output
    model, _, saved = load_model(out)
    assert saved["model_config"]["d_head"] == 6 and saved["train"]["d_head"] == 6
    attn = model.decoder.layers[0].attn
    assert attn.q.weight.shape == (16, 18) and attn.k.weight.shape == (16, 6)
    result = tinyformer("generate", "--checkpoint", out, "--prompt", "eve",
                        "--max-new-tokens", 4, "--temperature", 0)
    assert result.exit_code == 0 and result.output.startswith("eve"), result.output


def test_d_head_comes_from_a_toml_file_for_bert_too(tmp_path):
    (tmp_path / "run.toml").write_text('model = "bert"\nd_head = 4\n')
    result = tinyformer("train", "--config", tmp_path / "run.toml", *TINY, "--iters", 1,
                        "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    model, _, saved = load_model(tmp_path / "run")
    assert saved["model_config"]["d_head"] == 4
    assert model.encoder.layers[0].attn.q.weight.shape == (16, 8)     # 2 heads of 4


def test_hugging_faces_name_for_it_is_answered_with_ours(tmp_path):
    (tmp_path / "run.toml").write_text("head_dim = 8\n")
    assert_input_error(tinyformer("train", "--config", tmp_path / "run.toml",
                                  "--out", tmp_path / "run"),
                       "unknown setting 'head_dim'", "did you mean 'd_head'?")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("settings, message", [
    # Given d_head, n_head need not divide d_model.
    (dict(n_head=3, d_model=64), "--n-head 3 does not divide --d-model 64: each head gets "
                                 "d_model / n_head dimensions; try --n-head 2 or 4, or give "
                                 "--d-head"),
    (dict(positions="rope", d_head=5), "--positions rope needs an even head size, got "
                                       "--d-head 5; try --d-head 4 or 6"),
    (dict(positions="rope", d_head=1), "got --d-head 1; try --d-head 2"),
    (dict(positions="rope", n_head=2, d_model=6), "--positions rope needs an even head size, "
                                                  "but d_model / n_head = 3; try --n-head 1 or "
                                                  "3, or give an even --d-head"),
    (dict(d_head=0), "--d-head must be a whole number >= 1, got 0"),
    (dict(d_head=2.5), "--d-head must be a whole number >= 1, got 2.5"),
])
def test_bad_head_widths_are_one_line(settings, message):
    with pytest.raises(ValueError) as error:
        TrainConfig(**settings).resolved()
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_head_width_of_its_own_frees_n_head_from_dividing_d_model():
    config = TrainConfig(n_head=3, d_model=64, d_head=8, positions="rope").resolved()
    assert (config.n_head, config.d_model, config.d_head) == (3, 64, 8)


def test_the_flag_is_refused_on_the_command_line_as_the_model_refuses_it(tmp_path):
    assert_input_error(tinyformer("train", *TINY, "--positions", "rope", "--d-head", 3,
                                  "--iters", 1, "--out", tmp_path / "run"),
                       "--positions rope needs an even head size, got --d-head 3")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------------------------
# share_embeddings: the Transformer takes it, and so does a run on a task


def test_a_task_run_shares_its_source_and_target_embeddings(tmp_path):
    out = tmp_path / "run"
    result = tinyformer("train", "--task", "copy", "--max-len", 4, "--share-embeddings",
                        "--positions", "learned", "--n-layer", 1, "--d-model", 16,
                        "--batch-size", 4, "--iters", 2, "--eval-every", 2, "--out", out)
    assert result.exit_code == 0, result.output
    model, _, saved = load_model(out)
    assert saved["model_config"]["share_embeddings"] is True
    assert model.tgt_embed is model.src_embed            # one table, one position table
    result = tinyformer("generate", "--checkpoint", out, "--prompt", "0123")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("model", ["gpt", "bert"])
def test_share_embeddings_is_refused_for_a_model_of_one_embedding(tmp_path, model):
    assert_input_error(tinyformer("train", "--model", model, "--no-share-embeddings",
                                  "--iters", 1, "--out", tmp_path / "run"),
                       f"--share-embeddings shares an encoder-decoder's source and target "
                       f"embeddings; a {model} has one: drop it, or give --task")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------------------------
# A switch set where it changes nothing is refused, in Python as on the command line


@pytest.mark.parametrize("switches, message", [
    (dict(rope_theta=500.0), "rope_theta 500.0 is the base of RoPE's rotations, and "
                             "positions={} has none; give positions='rope', or leave "
                             "rope_theta out"),
    (dict(positions="none", rope_theta=500.0), "and positions='none' has none"),
    (dict(rmsnorm_affine=False), "rmsnorm_affine=False drops RMS norms' weight, and "
                                 "normalization='layernorm' has none; give "
                                 "normalization='rmsnorm', or leave rmsnorm_affine out"),
])
def test_a_switch_that_would_change_nothing_is_refused_by_every_model(switches, message):
    from tinyformer import BERT, GPT, Transformer
    for cls, build, default_positions in [
            (GPT, lambda: GPT(11, 8, n_layer=1, d_model=16, **switches), "learned"),
            (BERT, lambda: BERT(11, 8, n_layer=1, d_model=16, **switches), "learned"),
            (Transformer, lambda: Transformer(11, 11, 8, n_layer=1, d_model=16, **switches),
             "sinusoidal")]:
        with pytest.raises(ValueError) as error:
            build()
        said = str(error.value)
        assert said.startswith(f"{cls.__name__}: ") and "\n" not in said
        assert message.format(repr(default_positions)) in said


def test_the_switches_are_taken_where_they_act(tmp_path):
    from tinyformer import GPT
    rope = GPT(11, 8, n_layer=1, d_model=16, positions="rope", rope_theta=500.0)
    assert rope.embed.rotary.base == 500.0
    plain = GPT(11, 8, n_layer=1, d_model=16, normalization="rmsnorm", rmsnorm_affine=False)
    assert not any("norm" in name for name, _ in plain.named_parameters())
    GPT(11, 8, n_layer=1, d_model=16, rope_theta=10000.0, rmsnorm_affine=True)  # the defaults
