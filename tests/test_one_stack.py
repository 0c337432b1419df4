"""GPT, BERT and the encoder-decoder share one stack and one naming scheme: the same embeddings
module (which alone checks the context and hands RoPE to attention), the same layers and
stacks under the same names, so a tool finds every model's parts by one generic walk; and
weights saved under the previous names still load, giving the logits they gave then."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinyautograd import nn
from tinyformer import BERT, GPT, MultiHeadAttention, Transformer
from tinyformer.blocks import Decoder, DecoderLayer, Encoder, EncoderLayer
from tinyformer.checkpoint import in_current_layout, load_model
from tinyformer.rundir import CheckpointError, load_arrays, save_checkpoint
from tinyformer.layers import Embeddings, RotaryPositions
from tinyformer.tokenizers import CharTokenizer

PREVIOUS = Path(__file__).parent / "data" / "previous_layout"
SIZES = dict(n_layer=2, n_head=2, d_model=8)


def models(**options):
    """One of each model, with `options` where it takes them."""
    return {"gpt": GPT(11, 8, **SIZES, **options),
            "bert": BERT(11, 8, **SIZES, **options),
            "transformer": Transformer(11, 11, 8, **SIZES, **options)}


def children(module):
    return {name for name, _ in module.named_children()}


def test_a_layer_takes_its_stacks_arguments_in_the_stacks_order():
    # DecoderLayer took cross_attention before rotary, the Decoder after it: the same
    # positional arguments meant different things to the layer and its stack.
    import inspect

    def arguments(cls, leading=()):
        return [name for name in inspect.signature(cls).parameters if name not in leading]
    assert arguments(DecoderLayer) == arguments(Decoder, ("n_layer",))
    assert arguments(EncoderLayer) == arguments(Encoder, ("n_layer",))


# --------------------------------------------------------------------------------------------
# One naming scheme


LAYER = {"attn", "attn_norm", "ffn", "ffn_norm", "drop"}


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("tie_weights", [True, False])
def test_every_model_is_embeddings_stacks_and_a_head_under_the_same_names(norm, tie_weights):
    gpt = GPT(11, 8, **SIZES, norm=norm, tie_weights=tie_weights)
    bert = BERT(11, 8, **SIZES, norm=norm)
    seq2seq = Transformer(11, 11, 8, **SIZES, norm=norm, tie_weights=tie_weights)
    head = set() if tie_weights else {"head"}
    assert children(gpt) == {"embed", "decoder"} | head
    assert children(bert) == {"embed", "encoder", "head"}
    assert children(seq2seq) == {"src_embed", "tgt_embed", "encoder", "decoder"} | head
    stack = {"layers", "final_norm"} if norm == "pre" else {"layers"}
    for model in (gpt, bert, seq2seq):
        for embed in (m for m in model.modules() if isinstance(m, Embeddings)):
            # BERT's embeddings alone have a norm
            assert children(embed) == {"tok", "pos", "drop"} | ({"norm"} if model is bert
                                                                else set())
        for module in model.modules():
            if isinstance(module, (Encoder, Decoder)):
                assert children(module) == stack
            if isinstance(module, EncoderLayer) or (isinstance(module, DecoderLayer)
                                                    and model is gpt):
                assert children(module) == LAYER
            elif isinstance(module, DecoderLayer):
                assert children(module) == LAYER | {"cross_attn", "cross_norm"}


def test_a_gpts_parameters_read_as_the_scheme_says():
    names = [name for name, _ in GPT(11, 8, n_layer=1, n_head=2, d_model=8).named_parameters()]
    assert names == ["embed.tok.weight", "embed.pos.embedding.weight"] + [
        f"decoder.layers.0.{part}.{p}" for part in
        ("attn.q", "attn.k", "attn.v", "attn.out", "attn_norm", "ffn.fc1", "ffn.fc2", "ffn_norm")
        for p in ("weight", "bias")] + ["decoder.final_norm.weight", "decoder.final_norm.bias"]


ATTENTION_PATH = re.compile(r"(encoder|decoder)\.layers\.\d+\.(attn|cross_attn)")


@pytest.mark.parametrize("kind", ["gpt", "bert", "transformer"])
def test_every_attention_is_found_by_one_walk_over_the_names(kind):
    model = models()[kind]
    found = {path: m for path, m in model.named_modules() if isinstance(m, MultiHeadAttention)}
    assert all(ATTENTION_PATH.fullmatch(path) for path in found)
    expected = {"gpt": 2, "bert": 2, "transformer": 6}[kind]     # 2 layers; 3 kinds in seq2seq
    assert len(found) == expected


def test_viz_finds_the_attention_layers_of_any_stack_without_knowing_the_model():
    pytest.importorskip("matplotlib")
    from viz.attention import attention_layers, choose_map
    gpt, bert, seq2seq = models().values()
    assert attention_layers(gpt) == {"self": [layer.attn for layer in gpt.decoder.layers]}
    assert attention_layers(bert) == {"self": [layer.attn for layer in bert.encoder.layers]}
    assert attention_layers(seq2seq) == {
        "cross": [layer.cross_attn for layer in seq2seq.decoder.layers],
        "encoder": [layer.attn for layer in seq2seq.encoder.layers],
        "decoder": [layer.attn for layer in seq2seq.decoder.layers]}
    # A model it has never seen: one stack inside a module of its own.
    class Tagger(nn.Module):
        def __init__(self):
            self.encoder = Encoder(3, 8, 2, 16)
    tagger = Tagger()
    assert attention_layers(tagger) == {"self": [layer.attn for layer in tagger.encoder.layers]}
    assert choose_map(tagger, "encoder") == "self"
    with pytest.raises(ValueError, match="self-attention only"):
        choose_map(tagger, "cross")


# --------------------------------------------------------------------------------------------
# RoPE and the context: the embeddings' business, for every model


def test_rope_reaches_every_self_attention_from_the_embeddings_and_never_cross_attention():
    for model in models(positions="rope").values():
        rotaries = {id(m.rotary) for m in model.modules() if isinstance(m, Embeddings)}
        for path, module in model.named_modules():
            if isinstance(module, MultiHeadAttention):
                if path.endswith("cross_attn"):
                    assert module.rotary is None
                else:
                    assert isinstance(module.rotary, RotaryPositions)
                    assert id(module.rotary) in rotaries


@pytest.mark.parametrize("positions", ["rope", "learned"])
def test_every_model_blames_an_n_head_that_does_not_divide_d_model(positions):
    # With RoPE, a width of 12 // 8 = 1 would otherwise reach RotaryPositions first, which
    # could only say that 1 is not even: a consequence, not the cause.
    sizes = dict(n_layer=1, n_head=8, d_model=12, positions=positions)
    for name, build in [("GPT", lambda: GPT(11, 8, **sizes)),
                        ("BERT", lambda: BERT(11, 8, **sizes)),
                        ("Transformer", lambda: Transformer(11, 11, 8, **sizes))]:
        with pytest.raises(ValueError) as error:
            build()
        assert str(error.value) == (f"{name}: n_head 8 does not divide d_model 12; choose an "
                                    f"n_head that does, or give d_head")


def test_every_model_refuses_a_sequence_longer_than_its_context_with_one_message():
    gpt, bert, seq2seq = models().values()
    fits, too_long = np.ones((1, 8), int), np.ones((1, 9), int)
    calls = [lambda: gpt(too_long), lambda: bert(too_long), lambda: seq2seq(too_long, fits),
             lambda: seq2seq(fits, too_long)]
    messages = []
    for call in calls:
        with pytest.raises(ValueError) as error:
            call()
        messages.append(str(error.value))
    assert messages == [f"{name}: sequence of 9 tokens exceeds the context of 8; give at most 8"
                        for name in ("tokens", "tokens", "src", "tgt")]


def test_the_context_is_checked_in_one_place():
    source = Path(__file__).parent.parent / "tinyformer"
    checks = [path.name for path in source.rglob("*.py") for line in path.open()
              if "exceeds the context" in line]
    assert checks == ["layers.py"]


# --------------------------------------------------------------------------------------------
# Weights saved by the previous layout
#
# tests/data/previous_layout/KIND.npz holds the weights of a small model as the tinyformer
# before the one stack saved them (`state_dict()`, e.g. `blocks.0.norm1.weight`), KIND.json its
# arguments, and KIND-logits.npz the logits it gave on some tokens. Every parameter was drawn
# at random, the norms' too, so that loading one in another's place changes the logits.


def previous(kind):
    config = json.loads((PREVIOUS / f"{kind}.json").read_text())
    expected = np.load(PREVIOUS / f"{kind}-logits.npz")
    return config, load_arrays(PREVIOUS / f"{kind}.npz"), expected


def logits(model, expected):
    if isinstance(model, Transformer):
        return model(expected["idx"], expected["tgt"]).data
    return model(expected["idx"]).data


MODELS = {"gpt": GPT, "bert": BERT, "transformer": Transformer}


@pytest.mark.parametrize("kind", ["gpt", "bert", "transformer"])
def test_previous_layout_weights_load_and_give_the_same_logits(kind, tmp_path):
    config, weights, expected = previous(kind)
    assert any(name.split(".")[0] in ("blocks", "layers", "src_embedding") for name in weights)
    # Saved as a checkpoint directory, then loaded as `tinyformer generate` loads one.
    tokenizer = CharTokenizer("abcdefghijk")                  # 11 tokens, as the model's
    tokenizer.save(tmp_path / "tokenizer.json")
    save_checkpoint(tmp_path, {"model": kind, "model_config": config, "step": 1}, weights, {})
    model, _, _ = load_model(tmp_path)
    assert not model.training                                 # no dropout when generating
    # The same to float32's rounding: the kernels' order of operations may change since these
    # logits were saved (GELU's did), and another kind of processor rounds otherwise: up to
    # 1.2e-6 apart on an Intel Xeon and with OpenBLAS's AVX2 or AVX kernels, five ulps of the
    # largest logits (near 3), three quarters of what 1e-6 + 1e-5 |logit| allowed. A misplaced
    # weight changes them entirely: two parameters of the same shape swapped move a logit by
    # 4.6e-2 at least (but for the keys' biases, which attention's softmax cancels).
    np.testing.assert_allclose(logits(model, expected), expected["logits"], rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("kind", ["gpt", "bert", "transformer"])
def test_renaming_covers_every_parameter_and_the_optimizers_names(kind):
    config, weights, _ = previous(kind)
    saved = {"model": kind,
             "resume": {"optimizer": {"param_groups": [{"param_names": list(weights)}]}}}
    renamed = in_current_layout(saved, weights, "w.npz")
    assert sorted(renamed) == sorted(n for n, _ in MODELS[kind](**config).named_parameters())
    # the optimizer's state, kept by parameter name, finds its parameters (on --resume)
    assert saved["resume"]["optimizer"]["param_groups"][0]["param_names"] == list(renamed)


def test_current_weights_pass_as_they_are():
    for kind, model in models(norm="pre", positions="learned").items():
        weights = model.state_dict()
        assert in_current_layout({"model": kind}, weights, "w.npz") is weights


@pytest.mark.parametrize("names", [["tok.weight", "encoder.layers.0.attn.q.weight"],
                                   ["blocks.0.norm2.weight"], ["wte.weight"],
                                   ["blocks.x.norm1.weight"],      # a layer's number is digits
                                   ["blocks.0.norm1"]])            # a module, no parameter
def test_names_of_neither_layout_are_one_line_error(names):
    weights = {name: np.zeros(3) for name in names}
    with pytest.raises(CheckpointError) as error:
        in_current_layout({"model": "gpt"}, weights, "w.npz")
    message = str(error.value)
    assert "\n" not in message and message.startswith("w.npz: ")
    assert "no gpt parameter" in message


@pytest.mark.parametrize("kind", ["gpt", "bert", "transformer"])
def test_a_stray_array_beside_current_weights_is_the_one_named(kind):
    # Its top-level name is of neither layout; the others are the current layout's, and none
    # of them is to blame.
    weights = {**models(norm="pre", positions="learned")[kind].state_dict(),
               "extra.weight": np.zeros(3)}
    with pytest.raises(CheckpointError) as error:
        in_current_layout({"model": kind}, weights, "w.npz")
    assert str(error.value).startswith(f"w.npz: 'extra.weight' is the name of no {kind} "
                                       f"parameter")


# seq2seq-run/ is a run of the previous tinyformer (`tinyformer train --task reverse --min-len 3
# --max-len 5 --n-layer 1 --n-head 2 --d-model 16 --positions learned --iters 4 --batch-size 4
# --eval-iters 2 --seed 3`) stopped after step 2, as Ctrl-C stops one. Resumed by that same
# tinyformer, its steps 3 and 4 had these losses. Its parameters came in another order then
# (the source's and the target's embeddings, the layers' norms), so the optimizer's state must
# find its parameters by name. Another kind of processor rounds float32 products otherwise in
# the last bits (step 3 came out 1.2e-7 apart on an Intel Xeon), while a state given to the
# wrong one of two norms moves step 4 by 1.7e-6: hence the tolerance.
RESUMED_LOSSES = [4.077972888946533, 3.428802490234375]


def test_a_run_of_the_previous_layout_resumes_exactly(tmp_path):
    from click.testing import CliRunner

    from tinyformer_cli import main
    run = tmp_path / "run"
    shutil.copytree(PREVIOUS / "seq2seq-run", run)
    result = CliRunner().invoke(main, ["train", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert [m["train_loss"] for m in metrics[2:]] == pytest.approx(RESUMED_LOSSES, rel=1e-6, abs=0)
    # saved again under the current names, the optimizer's included
    _, _, saved = load_model(run)
    assert all(name.split(".")[0] in ("src_embed", "tgt_embed", "encoder", "decoder")
               for group in saved["resume"]["optimizer"]["param_groups"]
               for name in group["param_names"])


# The options every model takes (the contract's list): help(GPT) named none of the first four.
EVERY_MODELS_OPTIONS = ("positions", "norm", "dropout", "tie_weights", "normalization",
                        "rmsnorm_affine", "activation", "n_kv_head", "qk_norm", "logit_softcap",
                        "bias", "rope_theta")


@pytest.mark.parametrize("model", [GPT, BERT, Transformer])
def test_help_on_every_model_names_every_option_it_takes(model):
    unnamed = [option for option in EVERY_MODELS_OPTIONS
               if not re.search(rf"\b{option}\b", model.__doc__)]
    assert unnamed == []
