"""GPT, BERT and the encoder-decoder share one stack and one naming scheme: the same embeddings
module (which alone checks the context and hands RoPE to attention), the same layers and
stacks under the same names, so a tool finds every model's parts by one generic walk; and
weights saved under the previous names still load, giving the logits they gave then."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tinyautograd import nn
from tinyformer import BERT, GPT, MultiHeadAttention, Transformer
from tinyformer.blocks import Decoder, DecoderLayer, Encoder, EncoderLayer
from tinyformer.checkpoint import (CheckpointError, in_current_layout, load_arrays, load_model,
                                   save_checkpoint, sha256)
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


def test_every_model_refuses_a_sequence_longer_than_its_context_with_one_message():
    gpt, bert, seq2seq = models().values()
    fits, too_long = np.ones((1, 8), int), np.ones((1, 9), int)
    calls = [lambda: gpt(too_long), lambda: bert(too_long), lambda: seq2seq(too_long, fits),
             lambda: seq2seq(fits, too_long)]
    messages = set()
    for call in calls:
        with pytest.raises(ValueError) as error:
            call()
        messages.add(str(error.value))
    assert messages == {"sequence of 9 tokens exceeds the context of 8; give at most 8"}


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
# arguments, and KIND-logits.npz the logits it gave on some tokens.


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
    np.testing.assert_array_equal(logits(model, expected), expected["logits"])


def test_renaming_covers_every_parameter_and_keeps_their_order():
    # The optimizer's saved state follows the parameters' order or, for a run, their names.
    for kind in ("gpt", "bert"):
        config, weights, _ = previous(kind)
        renamed = in_current_layout({"model": kind}, weights, "w.npz")
        model = MODELS[kind](**config)
        assert list(renamed) == [name for name, _ in model.named_parameters()]
    config, weights, _ = previous("transformer")
    saved = {"model": "transformer",
             "resume": {"optimizer": {"param_groups": [{"param_names": list(weights)}]}}}
    renamed = in_current_layout(saved, weights, "w.npz")
    assert saved["resume"]["optimizer"]["param_groups"][0]["param_names"] == list(renamed)
    assert sorted(renamed) == sorted(n for n, _ in Transformer(**config).named_parameters())


def test_current_weights_pass_as_they_are():
    for kind, model in models(norm="pre", positions="learned").items():
        weights = model.state_dict()
        assert in_current_layout({"model": kind}, weights, "w.npz") is weights


@pytest.mark.parametrize("names", [["tok.weight", "encoder.layers.0.attn.q.weight"],
                                   ["blocks.0.norm2.weight"], ["wte.weight"]])
def test_names_of_neither_layout_are_one_line_error(names):
    weights = {name: np.zeros(3) for name in names}
    with pytest.raises(CheckpointError) as error:
        in_current_layout({"model": "gpt"}, weights, "w.npz")
    message = str(error.value)
    assert "\n" not in message and message.startswith("w.npz: ")
    assert "no gpt parameter" in message


def test_a_previous_layout_run_resumes(tmp_path):
    """A GPT run whose files carry the previous names (as an older tinyformer wrote them)
    resumes: the weights are renamed, and the optimizer's state finds its parameters."""
    from click.testing import CliRunner

    from cli import main
    out = tmp_path / "run"
    args = ["train", "--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context", "16",
            "--batch-size", "4", "--eval-iters", "1", "--eval-every", "2", "--out", str(out)]
    assert CliRunner().invoke(main, args + ["--iters", "2"]).exit_code == 0
    config = json.loads((out / "config.json").read_text())
    old = {"embed.tok": "tok", "embed.pos": "pos", "decoder.final_norm": "norm",
           "decoder.layers.0.attn_norm": "blocks.0.norm1",
           "decoder.layers.0.ffn_norm": "blocks.0.norm3",
           "decoder.layers.0.attn": "blocks.0.self_attn", "decoder.layers.0.ffn": "blocks.0.ffn"}

    def previous_name(name):
        prefix = max((p for p in old if name.startswith(p + ".")), key=len)
        return old[prefix] + name[len(prefix):]

    weights_file = out / config["files"]["weights"]
    weights = {previous_name(name): array for name, array in load_arrays(weights_file).items()}
    np.savez(weights_file, **weights)
    for group in config["resume"]["optimizer"]["param_groups"]:
        group["param_names"] = [previous_name(name) for name in group["param_names"]]
    config["sha256"][config["files"]["weights"]] = sha256(weights_file)
    config["train"]["iters"] = 4                         # two steps more to go
    (out / "config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["train", "--resume", str(out)])
    assert result.exit_code == 0, result.output
    model, _, saved = load_model(out)
    assert saved["step"] == 4
    assert all(name.startswith(("embed.", "decoder."))
               for group in saved["resume"]["optimizer"]["param_groups"]
               for name in group["param_names"])
