"""GPT-2 checkpoints: a transformers GPT2LMHeadModel loads into our GPT and computes the same
logits and greedy continuations; our GPT saved loads into transformers and computes ours; the
original checkpoints' layout (no "transformer." prefix, mask buffers) and half precision load;
everything we cannot represent is refused in one line. All built here, no network."""

import errno
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import safetensors.torch
import torch
from transformers import AutoModelForCausalLM, GenerationConfig, GPT2Config, GPT2LMHeadModel

import tinyautograd as ta
import tinyautograd.functional as F
from full_disk import files_limited_to
from own_modules import TwoExperts
from tinyautograd import nn, optim
from tinyformer.gpt import GPT
from tinyformer.checkpoint import CheckpointError, check_export_dir, load_model
from tinyformer.pretrained import PretrainedError, read_eos_ids, read_tokenizer_json
from tinyformer.rundir import read_metrics
from tinyformer.safetensors import load_file, save_file

VOCAB, CONTEXT = 101, 40


def tokens(shape, seed=0):
    return np.random.default_rng(seed).integers(0, VOCAB, shape)


def our_logits(model, idx):
    with ta.no_grad():
        return model(idx).data


def their_logits(model, idx):
    with torch.no_grad():
        return model(torch.tensor(idx)).logits.numpy()


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    """(a random transformers GPT-2, the directory its save_pretrained wrote)."""
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=VOCAB,
                                       n_positions=CONTEXT)).eval()
    with torch.no_grad():      # away from the init (biases 0, norms 1), so each one matters
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    directory = tmp_path_factory.mktemp("hf")
    model.save_pretrained(directory)
    return model, directory


@pytest.fixture(scope="module")
def loaded(hf):
    return GPT.from_pretrained(hf[1])


def test_a_transformers_checkpoint_gives_the_same_logits(hf, loaded):
    assert not loaded.training
    idx = tokens((3, CONTEXT))
    np.testing.assert_allclose(our_logits(loaded, idx), their_logits(hf[0], idx), atol=1e-4)


@pytest.fixture(scope="module")
def prompt_and_continuation(hf):
    """Prompts (2, 8) and transformers' greedy continuation of them by 20 tokens (2, 28)."""
    idx = tokens((2, 8), seed=1)
    theirs = hf[0].generate(torch.tensor(idx), attention_mask=torch.ones(idx.shape, dtype=int),
                            do_sample=False, max_new_tokens=20, pad_token_id=0)
    return idx, theirs.numpy()


@pytest.mark.parametrize("use_cache", [True, False])
def test_and_the_same_greedy_continuation(loaded, prompt_and_continuation, use_cache):
    idx, theirs = prompt_and_continuation
    np.testing.assert_array_equal(loaded.generate(idx, 20, temperature=0, use_cache=use_cache),
                                  theirs)


def trained_gpt(tie_weights):
    """Our GPT, a few AdamW steps away from its initialisation; d_ff is not 4 d_model."""
    ta.manual_seed(0)
    model = GPT(VOCAB, CONTEXT, n_layer=2, n_head=2, d_model=32, d_ff=48,
                tie_weights=tie_weights)
    optimizer = optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(3):
        idx = tokens((4, 16), seed=step)
        loss = F.cross_entropy(model(idx[:, :-1]), idx[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module", params=[True, False], ids=["tied", "untied"])
def ours(request, tmp_path_factory):
    """(our trained GPT, the directory its save_pretrained wrote)."""
    model = trained_gpt(tie_weights=request.param)
    directory = tmp_path_factory.mktemp("ours") / "new"       # created by save_pretrained
    model.save_pretrained(directory)
    return model, directory


def test_transformers_loads_our_gpt_and_gives_our_logits(ours):
    model, directory = ours
    theirs, info = GPT2LMHeadModel.from_pretrained(directory, output_loading_info=True)
    assert all(not keys for keys in info.values()), info          # nothing missing or unused
    idx = tokens((3, CONTEXT))
    np.testing.assert_allclose(their_logits(theirs.eval(), idx), our_logits(model, idx),
                               atol=1e-4)


def test_ours_to_ours_is_exact(ours):
    model, directory = ours
    state = ta.random.get_state()
    again = GPT.from_pretrained(directory)
    assert ta.random.get_state() == state              # loading draws no random numbers
    assert {**again.config, "dropout": 0.0} == {**model.config, "dropout": 0.0}  # loads none
    for (name, p), (name_again, q) in zip(model.named_parameters(), again.named_parameters()):
        assert name == name_again and q.dtype == np.float32
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def test_saving_keeps_other_files_and_writes_token_ids(tmp_path):
    (tmp_path / "README.md").write_text("mine")
    trained_gpt(True).save_pretrained(tmp_path, bos_token_id=1, eos_token_id=2)
    assert (tmp_path / "README.md").read_text() == "mine"
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["bos_token_id"], config["eos_token_id"]) == (1, 2)
    assert sorted(os.listdir(tmp_path)) == ["README.md", "config.json",
                                            "generation_config.json", "model.safetensors"]


def test_saving_writes_the_generation_config_an_old_one_would_have_left_in_charge(tmp_path):
    # As transformers' save_pretrained writes it: an older generation_config.json, read before
    # config.json by transformers' generate and by ours, ended the texts at its own ids.
    (tmp_path / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": 1, "eos_token_id": [3, 4], "do_sample": True}))
    model = GPT(VOCAB, CONTEXT, n_layer=1, n_head=2, d_model=16)
    model.save_pretrained(tmp_path, bos_token_id=5, eos_token_id=[7, 9])
    assert read_eos_ids(tmp_path, VOCAB) == [7, 9]
    theirs = GenerationConfig.from_pretrained(tmp_path)
    assert (theirs.bos_token_id, theirs.eos_token_id, theirs.do_sample) == (5, [7, 9], None)
    model.save_pretrained(tmp_path)                     # no ids: none, not the last save's
    assert read_eos_ids(tmp_path, VOCAB) is None
    assert GenerationConfig.from_pretrained(tmp_path).eos_token_id is None


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_the_config_names_the_dtype_the_weights_are_saved_in(tmp_path, dtype):
    # A float16 model's said "float32": transformers' dtype="auto" loaded it at twice its size.
    model = GPT(vocab_size=11, context=8, n_layer=1, n_head=2, d_model=8)
    for p in model.parameters():
        p.data = p.data.astype(dtype)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    saved = {array.dtype for array in load_file(tmp_path / "model.safetensors").values()}
    assert saved == {np.dtype(dtype)} and config["dtype"] == np.dtype(dtype).name


def hub_layout(hf, directory, dtype=None):
    """hf's checkpoint as the original GPT-2 files lay it out: no "transformer." prefix, each
    layer's mask buffers, n_ctx beside n_positions in the config, and (as older saves had) a
    tied lm_head.weight; written with our own writer."""
    config = json.loads((hf[1] / "config.json").read_text())
    config["n_ctx"] = config["n_positions"]
    weights = {name.removeprefix("transformer."): array
               for name, array in load_file(hf[1] / "model.safetensors").items()}
    for i in range(2):
        weights[f"h.{i}.attn.bias"] = np.tril(np.ones((1, 1, CONTEXT, CONTEXT), np.float32))
        weights[f"h.{i}.attn.masked_bias"] = np.array(-1e4, np.float32)
    weights["lm_head.weight"] = weights["wte.weight"]
    if dtype is not None:
        weights = {name: array.astype(dtype) for name, array in weights.items()}
    write_checkpoint(directory, config, weights)
    return config, weights


def write_checkpoint(directory, config, weights):
    os.makedirs(directory, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    save_file(weights, directory / "model.safetensors", metadata={"format": "pt"})


def test_the_original_hub_layout_loads(hf, tmp_path):
    hub_layout(hf, tmp_path)
    idx = tokens((2, CONTEXT))
    np.testing.assert_allclose(our_logits(GPT.from_pretrained(tmp_path), idx),
                               their_logits(hf[0], idx), atol=1e-4)


def test_n_ctx_without_n_positions_is_refused_as_transformers_reads_another_context(hf,
                                                                                     tmp_path):
    # It was taken for n_positions: the model loaded, where transformers, which reads
    # n_positions alone (1024 where it is missing), builds another and refuses the weights.
    config, weights = hub_layout(hf, tmp_path)
    del config["n_positions"]
    write_checkpoint(tmp_path, config, weights)
    with pytest.raises(PretrainedError, match=rf"config\.json: n_ctx is {CONTEXT} and "
                                              rf"n_positions is not set, so transformers reads a "
                                              rf"context of 1024 .*; set n_positions to the "
                                              rf"number of positions the model has"):
        GPT.from_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match="mismatch"):
        GPT2LMHeadModel.from_pretrained(tmp_path)


def test_n_ctx_of_gpt2configs_own_context_without_n_positions_loads(tmp_path):
    # Both read 1024 positions, n_positions' default: no disagreement to refuse.
    torch.manual_seed(0)
    theirs = GPT2LMHeadModel(GPT2Config(vocab_size=11, n_positions=1024, n_embd=8, n_layer=1,
                                        n_head=2)).eval()
    theirs.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["n_ctx"] = config.pop("n_positions")
    (tmp_path / "config.json").write_text(json.dumps(config))
    ours = GPT.from_pretrained(tmp_path)
    assert ours.config["context"] == 1024
    idx = np.array([[1, 2, 3, 4]])
    with torch.no_grad():
        want = GPT2LMHeadModel.from_pretrained(tmp_path)(torch.from_numpy(idx)).logits.numpy()
    np.testing.assert_allclose(ours(idx).data, want, atol=1e-4)


def test_mask_buffers_of_integers_are_ignored_as_the_others(hf, tmp_path):
    # transformers 4.0 to 4.2x kept each layer's causal mask as uint8, and the checkpoints it
    # saved then kept it when converted to safetensors; transformers loads them
    config, weights = hub_layout(hf, tmp_path)
    for i in range(2):
        weights[f"h.{i}.attn.bias"] = weights[f"h.{i}.attn.bias"].astype(np.uint8)
    write_checkpoint(tmp_path, config, weights)
    idx = tokens((2, CONTEXT))
    np.testing.assert_allclose(our_logits(GPT.from_pretrained(tmp_path), idx),
                               their_logits(hf[0], idx), atol=1e-4)


def test_a_checkpoint_in_shards_loads(hf, tmp_path):
    hf[0].save_pretrained(tmp_path, max_shard_size="20KB")     # big models come in shards
    assert (tmp_path / "model.safetensors.index.json").exists()
    assert not (tmp_path / "model.safetensors").exists()
    idx = tokens((2, CONTEXT))
    np.testing.assert_allclose(our_logits(GPT.from_pretrained(tmp_path), idx),
                               their_logits(hf[0], idx), atol=1e-4)


# "" and "." name the folder itself, whose reader's advice ("give the file in it") would be
# no help: the index names the shard, not the user.
@pytest.mark.parametrize("shard", ["../elsewhere.safetensors", "", ".", ".."])
def test_shards_must_sit_beside_their_index(hf, tmp_path, shard):
    hf[0].save_pretrained(tmp_path, max_shard_size="20KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    index["weight_map"]["transformer.wte.weight"] = shard
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(PretrainedError, match="every shard must be a file name in"):
        GPT.from_pretrained(tmp_path)


def test_shards_load_beside_a_model_safetensors_that_links_to_nothing(hf, tmp_path):
    # As transformers: no model.safetensors file, so the index is read.
    hf[0].save_pretrained(tmp_path, max_shard_size="20KB")
    (tmp_path / "model.safetensors").symlink_to("../../blobs/gone")
    idx = tokens((1, 5))
    np.testing.assert_allclose(our_logits(GPT.from_pretrained(tmp_path), idx),
                               their_logits(hf[0], idx), atol=1e-4)


def test_a_missing_shard_is_named_with_what_to_do(hf, tmp_path):
    hf[0].save_pretrained(tmp_path, max_shard_size="20KB")
    shards = sorted(path.name for path in tmp_path.glob("model-*.safetensors"))
    for name in shards[1:]:
        (tmp_path / name).unlink()
    with pytest.raises(PretrainedError) as error:
        GPT.from_pretrained(tmp_path)
    assert str(error.value) == (
        f"{tmp_path / 'model.safetensors.index.json'} names the shard {shards[1]!r} (and "
        f"{len(shards) - 2} more), which is not in {str(tmp_path)!r}: put every shard it names "
        f"beside it")


def test_a_tensor_in_two_shards_is_refused(hf, tmp_path):
    hf[0].save_pretrained(tmp_path, max_shard_size="20KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    holder = index["weight_map"]["transformer.wte.weight"]
    other = next(shard for shard in shards if shard != holder)
    arrays = load_file(tmp_path / other)     # a copy of wte in another shard: which is it?
    arrays["transformer.wte.weight"] = load_file(tmp_path / holder)["transformer.wte.weight"]
    save_file(arrays, tmp_path / other, metadata={"format": "pt"})
    with pytest.raises(PretrainedError, match="tensor 'transformer.wte.weight' is there twice; "
                                              "keep one of them, or take the files again"):
        GPT.from_pretrained(tmp_path)


def test_saving_over_a_checkpoint_in_shards_removes_its_shards_and_nothing_else(hf, tmp_path):
    # As transformers' save_pretrained removes the shards it does not write again: left there
    # beside the new model.safetensors, they and their index described another model.
    hf[0].save_pretrained(tmp_path, max_shard_size="20KB")
    shards = sorted(path.name for path in tmp_path.glob("model-*-of-*.safetensors"))
    assert len(shards) > 1
    others = ["README.md", "model-notes.safetensors", "model-00001-of-00002.bin",
              "pytorch_model-00001-of-00002.bin", "model.safetensors.index.json.bak"]
    for name in others:
        (tmp_path / name).write_text("mine")
    (tmp_path / "model-00009-of-00009.safetensors").mkdir()      # a folder is no shard
    model = GPT.from_pretrained(tmp_path)
    model.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(
        others + ["model-00009-of-00009.safetensors", "config.json", "generation_config.json",
                  "model.safetensors"])
    assert all((tmp_path / name).read_text() == "mine" for name in others)
    idx = tokens((2, CONTEXT))
    np.testing.assert_allclose(our_logits(GPT.from_pretrained(tmp_path), idx),
                               their_logits(hf[0], idx), atol=1e-4)


def test_half_precision_checkpoints_load_as_float32(hf, tmp_path):
    _, weights = hub_layout(hf, tmp_path / "f16", np.float16)
    model = GPT.from_pretrained(tmp_path / "f16")
    assert model.embed.tok.weight.dtype == np.float32
    np.testing.assert_array_equal(model.embed.tok.weight.data,
                                  weights["wte.weight"].astype(np.float32))
    bf16 = {name: torch.from_numpy(array).to(torch.bfloat16)
            for name, array in load_file(hf[1] / "model.safetensors").items()}
    os.makedirs(tmp_path / "bf16")
    safetensors.torch.save_file(bf16, tmp_path / "bf16" / "model.safetensors",
                                metadata={"format": "pt"})
    (tmp_path / "bf16" / "config.json").write_bytes((hf[1] / "config.json").read_bytes())
    model = GPT.from_pretrained(tmp_path / "bf16")
    np.testing.assert_array_equal(model.embed.pos.embedding.weight.data,
                                  bf16["transformer.wpe.weight"].float().numpy())


def test_layer_norm_epsilon_comes_from_the_config_and_goes_back(hf, tmp_path):
    config, weights = hub_layout(hf, tmp_path)
    write_checkpoint(tmp_path, {**config, "layer_norm_epsilon": 1e-3}, weights)
    model = GPT.from_pretrained(tmp_path)
    assert {m.eps for m in model.modules() if isinstance(m, nn.LayerNorm)} == {1e-3}
    model.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text())["layer_norm_epsilon"] \
        == 1e-3


def test_the_fields_a_config_json_leaves_out_are_gpt2configs_as_transformers_reads_them(
        hf, tmp_path):
    # A config.json written by hand gives the sizes alone: the norms' epsilon, the
    # activation and the tied head are then GPT2Config's defaults, in transformers and here.
    written = json.loads((hf[1] / "config.json").read_text())
    sizes = {name: written[name] for name in ("vocab_size", "n_positions", "n_embd", "n_layer",
                                              "n_head")}
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", **sizes}))
    shutil.copy(hf[1] / "model.safetensors", tmp_path)
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ours = GPT.from_pretrained(tmp_path)
    assert {m.eps for m in ours.modules() if isinstance(m, nn.LayerNorm)} == {
        theirs.config.layer_norm_epsilon}
    idx = tokens((2, 9))
    np.testing.assert_allclose(our_logits(ours, idx), their_logits(theirs, idx), atol=1e-5)


@pytest.mark.parametrize("activation_function, activation", [
    ("relu", "relu"), ("relu2", "relu2"), ("gelu_pytorch_tanh", "gelu"), ("gelu_fast", "gelu"),
    ("gelu_accurate", "gelu")])
def test_a_gpt2_of_another_activation_loads_as_ours(hf, tmp_path, activation_function,
                                                     activation):
    # GPT2Config names its activation (a key of transformers' ACT2FN): any that computes one
    # of ours loads, and saves again under the name GPT-2's format gives it.
    config = GPT2Config(**{**hf[0].config.to_dict(), "activation_function": activation_function})
    theirs = GPT2LMHeadModel(config).eval()
    theirs.load_state_dict(hf[0].state_dict())
    theirs.save_pretrained(tmp_path)
    model = GPT.from_pretrained(tmp_path)
    assert model.config["activation"] == activation
    idx = tokens((2, CONTEXT))
    np.testing.assert_allclose(our_logits(model, idx), their_logits(theirs, idx), atol=1e-4)


@pytest.mark.parametrize("activation", ["relu", "relu2"])
def test_our_gpt_of_another_activation_saves_for_transformers(tmp_path, activation):
    ta.manual_seed(0)
    model = GPT(VOCAB, CONTEXT, n_layer=2, n_head=2, d_model=32, activation=activation).eval()
    for p in model.parameters():        # away from the init (biases 0), so each one matters
        p.data += 0.1 * np.random.default_rng(0).standard_normal(p.shape, np.float32)
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["activation_function"] \
        == activation
    theirs, info = GPT2LMHeadModel.from_pretrained(tmp_path, output_loading_info=True)
    assert all(not keys for keys in info.values()), info
    idx = tokens((2, CONTEXT))
    np.testing.assert_allclose(their_logits(theirs.eval(), idx), our_logits(model, idx),
                               atol=1e-4)
    assert GPT.from_pretrained(tmp_path).config["activation"] == activation


@pytest.mark.parametrize("renamed, also", [
    ({"n_embd": "hidden_size", "n_positions": "max_position_embeddings",
      "n_head": "num_attention_heads", "n_layer": "num_hidden_layers"}, {}),
    # Both given, transformers reads the other name. Read alone, n_head 12 (here, or
    # GPT2Config's default where it is left out) would build a model of the same weights'
    # shapes, wrong in every logit.
    ({"n_head": "num_attention_heads"}, {"n_head": 12}),
], ids=["all four", "beside n_head"])
def test_gpt2configs_other_names_for_its_sizes_are_read_as_transformers_reads_them(
        hf, tmp_path, renamed, also):
    config = json.loads((hf[1] / "config.json").read_text())
    for name, other_name in renamed.items():
        config[other_name] = config.pop(name)
    (tmp_path / "config.json").write_text(json.dumps({**config, **also}))
    shutil.copy(hf[1] / "model.safetensors", tmp_path)
    theirs = GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    assert theirs.config.n_head == 2
    idx = tokens((2, CONTEXT))
    np.testing.assert_allclose(our_logits(GPT.from_pretrained(tmp_path), idx),
                               their_logits(theirs, idx), atol=1e-4)


def test_reorder_and_upcast_attn_is_the_same_function_and_loads(hf, tmp_path):
    # It scales q before q k^T and takes softmax in float32: only float16 rounding changes.
    # transformers takes that path in its "eager" attention only.
    config = GPT2Config(**{**hf[0].config.to_dict(), "reorder_and_upcast_attn": True})
    theirs = GPT2LMHeadModel._from_config(config, attn_implementation="eager").eval()
    theirs.load_state_dict(hf[0].state_dict())
    theirs.save_pretrained(tmp_path)
    idx = tokens((2, CONTEXT))
    np.testing.assert_allclose(our_logits(GPT.from_pretrained(tmp_path), idx),
                               their_logits(theirs, idx), atol=1e-4)


def without(name):
    return lambda weights: weights.pop(name)


def reshaped(name, shape):
    return lambda weights: weights.update({name: np.zeros(shape, np.float32)})


REFUSALS = [    # (changes to config.json, a change to the weights, what the error says)
    ({"model_type": "gpt_neox"}, None, "config.json: model_type is 'gpt_neox'; tinyformer "
                                       "reads 'gpt2', 'llama' and 'qwen3'"),
    ({"activation_function": "gelu"}, None, "activation_function 'gelu': our GPT computes "
     "gelu_new, gelu_pytorch_tanh, gelu_python_tanh, gelu_fast, gelu_accurate, relu, relu2 "
     "(its GELU is the "
     "tanh approximation; 'gelu' is the exact one, with erf)"),
    ({"activation_function": "silu"}, None, "activation_function 'silu': our GPT computes"),
    ({"scale_attn_by_inverse_layer_idx": True}, None, "scale_attn_by_inverse_layer_idx true"),
    ({"scale_attn_weights": False}, None, "scale_attn_weights false"),
    ({"add_cross_attention": True}, None, "add_cross_attention true"),
    ({"layer_norm_epsilon": "1e-5"}, None, "layer_norm_epsilon must be a number above 0, got "
                                           "'1e-5'"),
    ({"layer_norm_epsilon": 0}, None, "layer_norm_epsilon must be a number above 0, got 0"),
    ({"tie_word_embeddings": "false"}, None, "tie_word_embeddings must be true or false"),
    ({"n_layer": "2"}, None, "n_layer must be a whole number >= 1, got '2'"),
    ({"n_head": 0}, None, "n_head must be a whole number >= 1, got 0"),
    ({"num_attention_heads": "2"}, None, "num_attention_heads must be a whole number >= 1, got "
                                         "'2'"),
    ({"n_positions": 20_000_000}, None, "n_positions is 20,000,000; tinyformer builds models "
                                        "of a context up to"),
    ({"n_head": 3}, None, "describes no GPT we can build: GPT: n_head 3 does not divide"),
    ({"format": "tinyformer-checkpoint"}, None, "is a tinyformer checkpoint, not a Hugging"),
    ({"tie_word_embeddings": False}, without("lm_head.weight"),
     "tensor 'lm_head.weight' is missing, given config.json"),
    # Tied, with a head of its own beside: transformers 5 unties them, earlier versions did not.
    ({}, lambda weights: weights.update({"lm_head.weight": 2 * weights["wte.weight"]}),
     "config.json ties the output layer to the embedding (tie_word_embeddings true), but "
     "lm_head.weight is another matrix; if the model has its own, set tie_word_embeddings to "
     "false in config.json"),
    ({}, without("h.1.mlp.c_fc.weight"), "tensor 'h.1.mlp.c_fc.weight' is missing"),
    ({}, reshaped("h.0.attn.c_attn.extra", (2,)), "tensor 'h.0.attn.c_attn.extra' is not part"),
    ({}, reshaped("wpe.weight", (39, 32)),
     "'wpe.weight' has the wrong shape: (39, 32), but config.json makes it (40, 32)"),
    ({}, lambda weights: weights.update({"ln_f.bias": np.zeros(32, np.int32)}),
     "tensor 'ln_f.bias' holds int32, not floats"),
]


@pytest.mark.parametrize("config_changes, change_weights, problem", REFUSALS,
                         ids=[problem[:40] for *_, problem in REFUSALS])
def test_what_we_cannot_represent_is_refused_in_one_line(hf, tmp_path, config_changes,
                                                         change_weights, problem):
    config, weights = hub_layout(hf, tmp_path)
    if change_weights is not None:
        change_weights(weights)
    write_checkpoint(tmp_path, {**config, **config_changes}, weights)
    with pytest.raises(PretrainedError) as error:
        GPT.from_pretrained(tmp_path)
    assert problem in str(error.value) and "\n" not in str(error.value)


def test_a_config_of_a_larger_model_than_its_weights_is_refused_before_building_it(
        hf, tmp_path, monkeypatch):
    # gpt2-xl's config.json beside these weights: building it first would take 6 GB
    config, weights = hub_layout(hf, tmp_path)
    write_checkpoint(tmp_path, {**config, "n_embd": 1600, "n_layer": 48, "n_head": 25}, weights)
    monkeypatch.setattr(nn, "skip_init", lambda *args, **kwargs: pytest.fail("model built"))
    with pytest.raises(PretrainedError) as error:
        GPT.from_pretrained(tmp_path)
    assert str(error.value) == (
        f"{tmp_path}/config.json describes a model of at least 1,474,785,600 parameters, but "
        f"{tmp_path}/model.safetensors holds 29,984 numbers: they are not one model's; put the "
        f"config.json and the weights of one model together")


@pytest.mark.parametrize("left_out, named", [
    (["n_head"], "n_head, which transformers takes as GPT2Config's (n_head 12)"),
    (["n_positions"], "n_positions, which transformers takes as GPT2Config's (n_positions 1024)"),
    # num_hidden_layers is GPT2Config's other name for n_layer: named as the field it sets.
    (["n_embd", "num_hidden_layers"],
     "n_embd and n_layer, which transformers takes as GPT2Config's (n_embd 768, n_layer 12)")])
def test_sizes_a_config_leaves_out_are_named_where_gpt2_smalls_do_not_fit(hf, tmp_path,
                                                                         left_out, named):
    # A config.json written by hand without n_head: transformers builds GPT-2 small's 12
    # heads, and so do we; "put the config.json and the weights of one model together" alone
    # would send the user looking for other weights.
    config, weights = hub_layout(hf, tmp_path)
    config["num_hidden_layers"] = config.pop("n_layer")
    del config["n_ctx"]                         # (it would be refused without n_positions)
    write_checkpoint(tmp_path, {k: v for k, v in config.items() if k not in left_out}, weights)
    with pytest.raises(PretrainedError) as error:
        GPT.from_pretrained(tmp_path)
    assert str(error.value).endswith(f"; config.json leaves out {named}: write the model's "
                                     f"there")


def test_missing_or_broken_files_are_refused_in_one_line(hf, tmp_path):
    # The checkpoint's weights given for its directory: the directory is asked for.
    with pytest.raises(PretrainedError, match="model.safetensors' is a file, not a directory: "
                                              "give the directory of a Hugging Face checkpoint"):
        GPT.from_pretrained(hf[1] / "model.safetensors")
    (tmp_path / "config.json").write_bytes((hf[1] / "config.json").read_bytes())
    with pytest.raises(PretrainedError, match="needs config.json and model.safetensors, as "
                                              "transformers' save_pretrained writes them"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 4)
    with pytest.raises(PretrainedError, match="is not a valid safetensors file"):
        GPT.from_pretrained(tmp_path)
    # The model's page has it, where a run of ours would be trained again.
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ValueError, match="config.json is corrupted: not valid JSON; download it "
                                         "again from the model's page, or restore it"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("[]")
    with pytest.raises(ValueError, match="config.json is not a JSON object; download it again"):
        GPT.from_pretrained(tmp_path)


DOWNLOAD_AGAIN = "download it again from the model's page, or restore it"
TRAIN_AGAIN = "restore it, or train again"


@pytest.mark.parametrize("files, advice", [
    ((), DOWNLOAD_AGAIN),                                # a download without its weights yet
    (("vocab.json", "merges.txt"), DOWNLOAD_AGAIN),
    (("manifest.json",), TRAIN_AGAIN),                   # a run of ours
    (("weights-000010.npz",), TRAIN_AGAIN),              # a run of ours, copied
], ids=["nothing", "tokenizer", "manifest", "our weights"])
def test_a_broken_config_json_without_weights_is_advised_by_what_the_folder_is(tmp_path, files,
                                                                               advice):
    (tmp_path / "config.json").write_text("{")
    for name in files:
        (tmp_path / name).write_text("")
    with pytest.raises(ValueError, match=f"config.json is corrupted: not valid JSON; "
                                         f"{re.escape(advice)}$"):
        GPT.from_pretrained(tmp_path)


def test_a_hugging_face_config_json_is_read_once(hf, monkeypatch):
    import tinyformer.pretrained as pretrained
    reads = []
    read = pretrained.read_config_json
    monkeypatch.setattr(pretrained, "read_config_json",
                        lambda *args, **kwargs: reads.append(args) or read(*args, **kwargs))
    GPT.from_pretrained(hf[1])
    assert len(reads) == 1


@pytest.mark.parametrize("folder, shards", [("gpt2", False), ("it's a \"model\"", False),
                                           ("gpt2", True)])
def test_pytorch_weights_are_refused_with_a_conversion_that_works(hf, tmp_path, folder,
                                                                  shards):
    directory = tmp_path / folder
    directory.mkdir()
    (directory / "config.json").write_bytes((hf[1] / "config.json").read_bytes())
    if shards:                  # the index is JSON; the one shard it names, a pickle
        shard = "pytorch_model-00001-of-00001.bin"
        torch.save(hf[0].state_dict(), directory / shard)
        (directory / "pytorch_model.bin.index.json").write_text(json.dumps(
            {"metadata": {}, "weight_map": {name: shard for name in hf[0].state_dict()}}))
        pickled = "the pickles that pytorch_model.bin.index.json names"
    else:
        torch.save(hf[0].state_dict(), directory / "pytorch_model.bin")
        pickled = "pytorch_model.bin, a pickle"
    with pytest.raises(PretrainedError) as error:
        GPT.from_pretrained(directory)
    message = str(error.value)
    assert message.startswith(f"{str(directory)!r} holds its weights as {pickled}, which "
                              f"tinyformer never reads")
    # The command it gives, read by a shell (whose `python` only prints the code it is given,
    # run here, where transformers is already imported).
    command = re.fullmatch(r".*convert them with transformers: (python -c .*)", message).group(1)
    code = subprocess.run(["sh", "-c", f'python() {{ printf %s "$2"; }}; {command}'],
                          capture_output=True, text=True, check=True).stdout
    exec(code)
    idx = tokens((2, CONTEXT))
    np.testing.assert_allclose(our_logits(GPT.from_pretrained(directory), idx),
                               their_logits(hf[0], idx), atol=1e-4)


@pytest.mark.parametrize("setting, problem", [
    # GPT-2's block with one change is nearer GPT-2 than Llama: the change is named.
    (dict(positions="sinusoidal"), "GPT-2, cannot express positions='sinusoidal' (it has "
                                   "'learned')"),
    (dict(positions="rope"), "positions='rope'"),
    (dict(positions="none"), "positions='none'"),
    (dict(norm="post"), "GPT-2, cannot express norm='post' (it has 'pre')"),
    (dict(activation="swiglu"), "GPT-2, cannot express activation='swiglu' (it has 'gelu' or "
                                "'relu' or 'relu2')"),
    (dict(normalization="rmsnorm"), "GPT-2, cannot express normalization='rmsnorm'"),
    (dict(n_kv_head=1), "GPT-2, cannot express n_kv_head=1 (it has None)"),
    (dict(d_head=4), "d_head=4 (it has None)"),
    (dict(qk_norm=True), "qk_norm=True"),
    (dict(logit_softcap=30.0), "logit_softcap=30.0"),
    (dict(bias=False), "bias=False"),
])
def test_a_gpt_that_gpt2_cannot_express_is_refused(tmp_path, setting, problem):
    model = GPT(VOCAB, CONTEXT, n_layer=1, n_head=2, d_model=16, **setting)
    with pytest.raises(PretrainedError, match=re.escape(problem)) as refused:
        model.save_pretrained(tmp_path / "out")
    # The advice names whose values export: "those settings" alone read as the refused ones.
    assert re.search(r"the nearest, (GPT-2|Llama|Qwen3), cannot express .*; a GPT trained with "
                     r"\1's values of those settings exports \(this one's checkpoint generates "
                     r"as it is\)$", str(refused.value))
    assert not (tmp_path / "out").exists()


class _OwnNorm(nn.LayerNorm):
    """A user's norm under LayerNorm's names: its weights would export as GPT-2's."""

    def forward(self, x):
        return super().forward(x) * 2


@pytest.mark.parametrize("replace, problem", [
    # Its weights have GPT-2's names and shapes: saved, it would load without the change.
    (lambda layer: setattr(layer.ffn, "act", nn.ReLU()), "decoder.layers.0.ffn.act (ReLU)"),
    (lambda layer: setattr(layer, "attn_norm", _OwnNorm(16)),
     "decoder.layers.0.attn_norm (_OwnNorm)"),
    # Other names: the export found no GPT-2 name for them (a KeyError).
    (lambda layer: setattr(layer, "ffn", TwoExperts(16)), "decoder.layers.0.ffn (TwoExperts), "
                                                          "in place of what GPT builds"),
])
def test_a_gpt_holding_a_module_of_your_own_is_refused(tmp_path, replace, problem):
    model = GPT(VOCAB, CONTEXT, n_layer=1, n_head=2, d_model=16)
    replace(model.decoder.layers[0])
    with pytest.raises(PretrainedError, match=re.escape(problem)):
        model.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_heads_given_as_the_plain_ones_are_gpt2s(tmp_path):
    model = GPT(VOCAB, CONTEXT, n_layer=1, n_head=2, d_model=16, n_kv_head=2, d_head=8)
    model.save_pretrained(tmp_path)
    assert GPT2Config.from_pretrained(tmp_path).model_type == "gpt2"


def test_a_run_directory_of_ours_is_named_as_such_not_sent_for_a_safetensors(tmp_path):
    # A run keeps its weights in weights-NNNNNN.npz beside its config.json: it has no
    # model.safetensors, and being told it needs one sent its user looking for a file
    (tmp_path / "config.json").write_text(json.dumps(
        {"format": "tinyformer-checkpoint", "files": {"weights": "weights-000010.npz"}}))
    np.savez(tmp_path / "weights-000010.npz", w=np.zeros(2))
    with pytest.raises(PretrainedError) as error:
        GPT.from_pretrained(tmp_path)
    assert "is a tinyformer checkpoint, not a Hugging Face one; load it with " \
           "tinyformer.checkpoint.load_model" in str(error.value)


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_a_file_that_is_a_folder_is_named_so_as_the_command_line_names_it(tmp_path, name):
    # GPT.from_pretrained said "it needs config.json and model.safetensors" of a folder named
    # config.json, which `ls` shows, where `tinyformer generate` names it a directory.
    for file in ("config.json", "model.safetensors"):
        (tmp_path / file).write_text("{}")
    (tmp_path / name).unlink()
    (tmp_path / name).mkdir()
    with pytest.raises(PretrainedError, match=rf"^{re.escape(str(tmp_path / name))} is a "
                                              rf"directory, not a regular file; put the file "
                                              rf"itself there$"):
        GPT.from_pretrained(tmp_path)


def test_a_pathlib_directory_is_named_in_messages_as_its_text(tmp_path):
    # not as "PosixPath('/tmp/...')"
    def refused(error, call, *args):
        with pytest.raises(error) as info:
            call(*args)
        return str(info.value)

    named = repr(str(tmp_path))
    assert refused(PretrainedError, GPT.from_pretrained, tmp_path).startswith(
        f"{named} is not a Hugging Face checkpoint")
    assert refused(CheckpointError, load_model, tmp_path).startswith(f"{named} is not a "
                                                                      f"checkpoint")
    assert refused(PretrainedError, read_tokenizer_json, tmp_path).startswith(
        f"{named} holds no tokenizer.json")
    assert refused(CheckpointError, check_export_dir, tmp_path) == (
        f"{named} exists; give a new directory to export into")
    assert refused(ValueError, read_metrics, tmp_path / "m.jsonl").startswith(
        f"metrics file {str(tmp_path / 'm.jsonl')!r} does not exist")
    (tmp_path / "config.json").write_text(json.dumps({"format": "tinyformer-checkpoint"}))
    model = GPT(VOCAB, CONTEXT, n_layer=1, n_head=2, d_model=16)
    assert refused(PretrainedError, model.save_pretrained, tmp_path).startswith(
        f"{named} holds a tinyformer checkpoint")


def test_a_chat_models_several_end_ids_are_saved_as_transformers_reads_them(tmp_path):
    # A model loaded with its end ids (load_model's config["eos_ids"], a list for a chat
    # model) saves them all, so that transformers' generate, and ours, stop at each.
    model = GPT(VOCAB, CONTEXT, n_layer=1, n_head=2, d_model=16)
    model.save_pretrained(tmp_path, eos_token_id=[np.int64(7), 9])
    assert GPT2Config.from_pretrained(tmp_path).eos_token_id == [7, 9]
    assert read_eos_ids(tmp_path, VOCAB) == [7, 9]
    for bad, message in (([7, VOCAB], "eos_token_id 101 is not a token"),
                         ([7, 1.5], "eos_token_id must be a whole number >= 0, got 1.5"),
                         ([], "eos_token_id is an empty list")):
        with pytest.raises(ValueError, match=re.escape(message)):
            model.save_pretrained(tmp_path / "bad", eos_token_id=bad)
        assert not (tmp_path / "bad").exists()


def test_saving_refuses_bad_token_ids_and_a_tinyformer_checkpoint(tmp_path):
    model = GPT(VOCAB, CONTEXT, n_layer=1, n_head=2, d_model=16)
    with pytest.raises(PretrainedError, match="eos_token_id 101 is not a token"):
        model.save_pretrained(tmp_path, eos_token_id=VOCAB)
    (tmp_path / "config.json").write_text(json.dumps({"format": "tinyformer-checkpoint"}))
    with pytest.raises(PretrainedError, match="holds a tinyformer checkpoint"):
        model.save_pretrained(tmp_path)


@pytest.mark.parametrize("text", ["{", "[1]"])
def test_saving_over_a_config_json_that_cannot_be_read_is_refused_with_a_writers_advice(
        tmp_path, text):
    # Whose it is cannot be told (a run's, damaged?); "download it again from the model's
    # page", a reader's advice, would not help a save.
    (tmp_path / "config.json").write_text(text)
    model = GPT(VOCAB, CONTEXT, n_layer=1, n_head=2, d_model=16)
    with pytest.raises(PretrainedError) as error:
        model.save_pretrained(tmp_path)
    assert str(error.value) == (
        f"{tmp_path / 'config.json'}, which this would overwrite, is no JSON object that can be "
        f"read, so whether it is a tinyformer checkpoint's cannot be told; move it away, or "
        f"choose another directory")
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_token_ids_are_whole_numbers_numpy_ones_too(tmp_path):
    model = GPT(VOCAB, CONTEXT, n_layer=1, n_head=2, d_model=16)
    for bad in (1.5, True, "5", -1):
        with pytest.raises(ValueError, match=rf"^save_pretrained: eos_token_id must be a whole "
                                             rf"number >= 0, got {bad!r}$"):
            model.save_pretrained(tmp_path / "bad", eos_token_id=bad)
        assert not (tmp_path / "bad").exists()
    # as an array of ids gives them: numpy's integers, which json cannot write as they are
    model.save_pretrained(tmp_path / "ok", bos_token_id=np.int64(3), eos_token_id=np.int32(4))
    config = GPT2Config.from_pretrained(tmp_path / "ok")
    assert (config.bos_token_id, config.eos_token_id) == (3, 4)


def test_a_save_that_fills_the_disk_leaves_no_folder_it_made(tmp_path):
    # As train and export: a failed save leaves nothing behind, not even an empty folder.
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "notes.txt").write_text("mine")
    model = GPT(VOCAB, CONTEXT, n_layer=1, n_head=2, d_model=16)
    with files_limited_to(5000), pytest.raises(OSError, match="too large"):
        model.save_pretrained(tmp_path / "runs" / "exports" / "new")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("full_on", ["config.json", "model.safetensors"])
def test_a_save_that_fills_the_disk_leaves_the_folders_earlier_save_whole(tmp_path, full_on,
                                                                          monkeypatch):
    # The weights went in place first: a disk full by config.json left new weights beside
    # the old config.json, a pair that loads as neither model.
    ta.manual_seed(0)
    GPT(VOCAB, CONTEXT, n_layer=1, n_head=2, d_model=16).save_pretrained(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    ta.manual_seed(1)
    new = GPT(VOCAB, CONTEXT, n_layer=1, n_head=2, d_model=16)

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    if full_on == "config.json":
        monkeypatch.setattr(json, "dump", no_room)
        with pytest.raises(OSError, match="No space left"):
            new.save_pretrained(tmp_path)
    else:
        with files_limited_to(5000), pytest.raises(OSError, match="too large"):
            new.save_pretrained(tmp_path)                  # config.json fits, the weights not
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
