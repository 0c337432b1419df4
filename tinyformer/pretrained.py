"""GPT-2 in the Hugging Face format: load OpenAI's GPT-2 (or any `GPT2LMHeadModel` checkpoint)
into our GPT, and save our GPT so that transformers loads it.

Such a checkpoint is a directory of two files:

    config.json          a GPT2Config: the sizes and a few switches
    model.safetensors    the weights by name (tinyformer/safetensors.py reads and writes them)

Our GPT with positions="learned", norm="pre", activation="gelu" (the tanh approximation, which
transformers calls "gelu_new") and tied embeddings is GPT-2's architecture, so converting is
renaming, and splitting one matrix in three:

    GPT-2                                  ours
    wte.weight          (vocab, C)         embed.tok.weight
    wpe.weight          (context, C)       embed.pos.embedding.weight
    h.{i}.ln_1                             decoder.layers.{i}.attn_norm
    h.{i}.attn.c_attn   (C, 3C), (3C,)     decoder.layers.{i}.attn.q, .k, .v: columns [0, C),
                                           [C, 2C), [2C, 3C) of the weight, the same thirds of
                                           the bias
    h.{i}.attn.c_proj                      decoder.layers.{i}.attn.out
    h.{i}.ln_2                             decoder.layers.{i}.ffn_norm
    h.{i}.mlp.c_fc                         decoder.layers.{i}.ffn.fc1
    h.{i}.mlp.c_proj                       decoder.layers.{i}.ffn.fc2
    ln_f                                   decoder.final_norm
    lm_head.weight      (vocab, C)         head.weight (C, vocab), only when the head is untied

(each layer with a .weight and a .bias). GPT-2's layers are `Conv1D`s, a name from OpenAI's
code for a linear layer whose weight is (in, out), used as x @ W + b: our nn.Linear's layout, so
the weights copy as they are. Only lm_head is a torch nn.Linear, (out, in): it is transposed.

The keys in the file may start with "transformer." (transformers' save_pretrained) or not (the
original checkpoints on the GPT-2 model page), which also hold each layer's causal mask as
`h.{i}.attn.bias`: a constant, not a weight, ignored here as transformers ignores it.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING

import numpy as np

from tinyautograd import nn

from .files import StrPath, atomic_write
from .rundir import CHECKPOINT_FORMAT as TINYFORMER_FORMAT
from .safetensors import SafetensorsError, load_file, save_file

if TYPE_CHECKING:        # gpt.py imports this module: the class is only named, not imported
    from .gpt import GPT

CONFIG, WEIGHTS = "config.json", "model.safetensors"
# A large checkpoint comes in shards: this file maps each tensor to the shard that holds it.
SHARD_INDEX = "model.safetensors.index.json"
# transformers' names for the tanh approximation of GELU, the one function our GELU computes:
# gelu_new (GPT-2's), gelu_pytorch_tanh and gelu_python_tanh (torch's), gelu_fast (the same
# formula with sqrt(2/pi) rounded to 10 digits).
TANH_GELU = ("gelu_new", "gelu_pytorch_tanh", "gelu_python_tanh", "gelu_fast")
# GPT2Config's defaults, which transformers uses for any field config.json leaves out.
DEFAULTS = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                n_inner=None, activation_function="gelu_new", layer_norm_epsilon=1e-5,
                tie_word_embeddings=True, scale_attn_weights=True,
                scale_attn_by_inverse_layer_idx=False, add_cross_attention=False)
# Constants some checkpoints carry beside the weights: each layer's causal mask and the value
# of a masked score. We build our own masks.
BUFFER = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")


class PretrainedError(ValueError):
    """A checkpoint we cannot load, or a model GPT-2 cannot express; the message, one line,
    says which file or setting and why."""


# --------------------------------------------------------------------------------------------
# Names: ours <-> GPT-2's


def _renamed(n_layer):
    """(GPT-2 name, our name) of every tensor that converts by renaming alone."""
    pairs = [("wte.weight", "embed.tok.weight"), ("wpe.weight", "embed.pos.embedding.weight")]
    pairs += [(f"ln_f.{p}", f"decoder.final_norm.{p}") for p in ("weight", "bias")]
    for i in range(n_layer):
        for gpt2, ours in (("ln_1", "attn_norm"), ("attn.c_proj", "attn.out"), ("ln_2", "ffn_norm"),
                           ("mlp.c_fc", "ffn.fc1"), ("mlp.c_proj", "ffn.fc2")):
            pairs += [(f"h.{i}.{gpt2}.{p}", f"decoder.layers.{i}.{ours}.{p}")
                      for p in ("weight", "bias")]
    return pairs


def to_gpt2(model: GPT) -> dict[str, np.ndarray]:
    """GPT-2 name -> array, from our GPT's parameters."""
    ours = {name: p.data for name, p in model.named_parameters()}
    state = {gpt2: ours[name] for gpt2, name in _renamed(model.config["n_layer"])}
    for i in range(model.config["n_layer"]):
        attn = f"decoder.layers.{i}.attn"
        for p, axis in (("weight", 1), ("bias", 0)):       # q, k, v side by side: (C, 3C), (3C,)
            state[f"h.{i}.attn.c_attn.{p}"] = np.concatenate(
                [ours[f"{attn}.{qkv}.{p}"] for qkv in "qkv"], axis=axis)
    if model.head is not None:
        state["lm_head.weight"] = ours["head.weight"].T                  # (C, V) -> (V, C)
    return state


def from_gpt2(state: dict[str, np.ndarray], n_layer: int) -> dict[str, np.ndarray]:
    """Our name -> array, from GPT-2's names (already checked to be those `to_gpt2` gives)."""
    ours = {name: state[gpt2] for gpt2, name in _renamed(n_layer)}
    for i in range(n_layer):
        for p in ("weight", "bias"):                     # (C, 3C) -> three (C, C); (3C,) -> (C,)
            thirds = np.split(state[f"h.{i}.attn.c_attn.{p}"], 3, axis=-1)
            ours.update({f"decoder.layers.{i}.attn.{qkv}.{p}": t
                         for qkv, t in zip("qkv", thirds)})
    if "lm_head.weight" in state:
        ours["head.weight"] = state["lm_head.weight"].T                  # (V, C) -> (C, V)
    return ours


# --------------------------------------------------------------------------------------------
# Loading


def load_pretrained_gpt(directory: StrPath, gpt: type[GPT]) -> GPT:
    """GPT.from_pretrained: a GPT-2 checkpoint (see load_gpt2)."""
    return load_gpt2(directory, gpt)


def load_gpt2(directory: StrPath, gpt: type[GPT]) -> GPT:
    """A `gpt` (our GPT class: GPT.from_pretrained passes itself, so that this module needs no
    import of it), in eval mode, from a GPT-2 checkpoint directory (config.json and
    model.safetensors). Weights in float16 or bfloat16 are loaded as float32. The model has
    no dropout: config.json's dropout rates matter to training only (nanoGPT fine-tunes
    GPT-2 without dropout too).

    Anything that our GPT cannot compute exactly is refused with a PretrainedError (a
    ValueError) of one line, rather than loaded into a model that computes something else."""
    config = _read_config(directory)
    n_embd, n_layer = config["n_embd"], config["n_layer"]
    d_ff = 4 * n_embd if config["n_inner"] is None else config["n_inner"]
    try:
        # No random initial weights (seconds of work for GPT-2): the checkpoint's replace them.
        model = nn.skip_init(gpt, config["vocab_size"], config["n_positions"], n_layer,
                             config["n_head"], n_embd, d_ff,
                             tie_weights=config["tie_word_embeddings"])
    except (TypeError, ValueError) as e:
        raise PretrainedError(f"{directory}/{CONFIG} describes no GPT we can build: {e}") from None
    for module in model.modules():                       # GPT-2 small: 1e-5, our default too
        if isinstance(module, nn.LayerNorm):
            module.eps = config["layer_norm_epsilon"]
    state = _read_weights(directory, model)
    model.load_state_dict(from_gpt2(state, n_layer))     # casts each array to float32
    return model.eval()


def _read_config(directory):
    """config.json as a dict with GPT2Config's defaults filled in, checked."""
    path = os.path.join(directory, CONFIG)
    weights = [os.path.join(directory, name) for name in (WEIGHTS, SHARD_INDEX)]
    if not (os.path.isfile(path) and any(os.path.isfile(file) for file in weights)):
        raise PretrainedError(f"{directory!r} is not a GPT-2 checkpoint: it needs {CONFIG} and "
                              f"{WEIGHTS}, as transformers' save_pretrained writes them or the "
                              f"GPT-2 model page offers them (pytorch_model.bin is never read: "
                              f"it is a pickle, and unpickling can run code)")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except OSError as e:
        raise PretrainedError(f"{path} cannot be read ({e.strerror})") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise PretrainedError(f"{path} is not valid JSON ({type(e).__name__})") from None
    if not isinstance(config, dict):
        raise PretrainedError(f"{path} is not a JSON object")
    if config.get("format") == TINYFORMER_FORMAT:
        raise PretrainedError(f"{directory!r} is a tinyformer checkpoint, not a Hugging Face "
                              f"one; load it with tinyformer.checkpoint.load_model")
    if config.get("model_type") != "gpt2":
        raise PretrainedError(f"{path}: model_type is {config.get('model_type')!r}; only "
                              f"'gpt2' checkpoints can be loaded")
    if "n_positions" not in config and "n_ctx" in config:     # older configs name it n_ctx
        config["n_positions"] = config["n_ctx"]
    config = {**DEFAULTS, **config}
    # The types first: a string "1e-5" or "false" would load, then fail or mislead later.
    for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
        if type(config[name]) is not int:
            raise PretrainedError(f"{path}: {name} must be a whole number, got "
                                  f"{config[name]!r}")
    if config["n_inner"] is not None and type(config["n_inner"]) is not int:
        raise PretrainedError(f"{path}: n_inner must be a whole number or null, got "
                              f"{config['n_inner']!r}")
    epsilon = config["layer_norm_epsilon"]
    if type(epsilon) not in (int, float) or not epsilon > 0:
        raise PretrainedError(f"{path}: layer_norm_epsilon must be a number above 0, got "
                              f"{epsilon!r}")
    for name in ("tie_word_embeddings", "scale_attn_weights", "scale_attn_by_inverse_layer_idx",
                 "add_cross_attention"):
        if type(config[name]) is not bool:
            raise PretrainedError(f"{path}: {name} must be true or false, got {config[name]!r}")
    refusals = [
        (config["activation_function"] not in TANH_GELU,
         f"activation_function {config['activation_function']!r}: our GELU is the tanh "
         f"approximation ({', '.join(TANH_GELU)})"),
        (not config["scale_attn_weights"], "scale_attn_weights false: we always divide the "
         "attention scores by sqrt(d_head)"),
        (config["scale_attn_by_inverse_layer_idx"], "scale_attn_by_inverse_layer_idx true: we "
         "do not scale scores by layer"),
        (config["add_cross_attention"], "add_cross_attention true: our GPT has no "
         "cross-attention"),
    ]
    # reorder_and_upcast_attn is accepted: it scales before the product and computes softmax in
    # float32, which changes only float16 rounding; the function is the same.
    for refused, setting in refusals:
        if refused:
            raise PretrainedError(f"{path}: {setting}")
    return config


def _read_weights(directory, model):
    """GPT-2 name -> array from model.safetensors, checked against the names and shapes of
    `model`: no tensor missing, none left over, each of the right shape."""
    path = os.path.join(directory, WEIGHTS)
    if os.path.isfile(path):
        files = [path]
    else:                                   # shards: the files the index names, each once
        path = os.path.join(directory, SHARD_INDEX)
        try:
            with open(path, encoding="utf-8") as f:
                shards = set(json.load(f)["weight_map"].values())
            files = [os.path.join(directory, name) for name in sorted(shards)]
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            raise PretrainedError(f"{path} is not a shard index (JSON with a \"weight_map\" "
                                  f"of tensor -> file): {type(e).__name__}") from None
        # Shards sit beside the index: a name with a folder in it could reach anywhere.
        if not all(isinstance(name, str) and os.path.basename(name) == name for name in shards):
            raise PretrainedError(f"{path}: every shard must be a file name in {directory!r}")
    arrays = []                       # (name, array), from every file, names not yet unique
    for file in files:
        try:
            arrays += load_file(file).items()
        except SafetensorsError as e:
            raise PretrainedError(str(e)) from None
    state = {}
    for name, array in arrays:
        name = name.removeprefix("transformer.")
        if name in state:
            raise PretrainedError(f"{path}: tensor {name!r} is there twice")
        if BUFFER.fullmatch(name):
            continue
        if name == "lm_head.weight" and model.head is None:   # tied: the head is wte
            continue
        if not np.issubdtype(array.dtype, np.floating):
            raise PretrainedError(f"{path}: tensor {name!r} holds {array.dtype}, not floats")
        state[name] = array
    expected = {name: array.shape for name, array in to_gpt2(model).items()}
    missing = [name for name in expected if name not in state]
    extra = [name for name in state if name not in expected]
    wrong = [name for name in expected if name in state and state[name].shape != expected[name]]
    for names, problem in ((missing, "is missing"), (extra, "is not part of GPT-2"),
                           (wrong, "has the wrong shape")):
        if names:
            name, more = names[0], f" (and {len(names) - 1} more)" if len(names) > 1 else ""
            if problem == "has the wrong shape":
                problem += f": {state[name].shape}, but {CONFIG} makes it {expected[name]}"
            else:
                problem += f", given {CONFIG}"
            raise PretrainedError(f"{path}: tensor {name!r}{more} {problem}")
    return state


# --------------------------------------------------------------------------------------------
# Saving


def save_gpt2(model: nn.Module, directory: StrPath, bos_token_id: int | None = None,
              eos_token_id: int | None = None) -> None:
    """Write our GPT as a GPT-2 checkpoint that transformers loads with
    `GPT2LMHeadModel.from_pretrained(directory)`: model.safetensors, then config.json.

    The directory is created if needed; other files in it are left alone (mind an old
    generation_config.json or tokenizer, which transformers would read too). Each file is written
    atomically, config.json last, so a directory with a config.json has its weights. A model
    knows nothing of its tokenizer: pass the ids of the tokenizer's begin and end of text
    tokens, if it has them, for transformers' generate to use."""
    config = model.config
    # GPT-2's block is the 2017 one: any of the modern switches takes a model out of its reach.
    n_kv_head = config.get("n_kv_head") or config["n_head"]
    for setting, gpt2 in (("positions", "learned"), ("norm", "pre"), ("activation", "gelu"),
                          ("normalization", "layernorm"), ("qk_norm", False),
                          ("logit_softcap", None), ("bias", True), ("d_head", None)):
        if config.get(setting, gpt2) != gpt2:
            raise PretrainedError(f"GPT-2 cannot express {setting}={config[setting]!r}: it has "
                                  f"{setting}={gpt2!r} only")
    if n_kv_head != config["n_head"]:
        raise PretrainedError(f"GPT-2 cannot express n_kv_head={n_kv_head}: every head of its "
                              f"attention has its own keys and values")
    eps = {m.eps for m in model.modules() if isinstance(m, nn.LayerNorm)}
    if len(eps) != 1:
        raise PretrainedError(f"GPT-2 has one layer_norm_epsilon; this model's layer norms use "
                              f"{sorted(eps)}")
    for what, token in (("bos_token_id", bos_token_id), ("eos_token_id", eos_token_id)):
        if token is not None and not 0 <= token < config["vocab_size"]:
            raise PretrainedError(f"{what} {token} is not a token of the model's vocabulary "
                                  f"(0..{config['vocab_size'] - 1})")
    path = os.path.join(directory, CONFIG)
    if _is_tinyformer_checkpoint(path):
        raise PretrainedError(f"{directory!r} holds a tinyformer checkpoint, whose {CONFIG} "
                              f"this would overwrite; choose another directory")
    d_model, d_ff = config["d_model"], config["d_ff"]
    gpt2_config = {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
        "vocab_size": config["vocab_size"], "n_positions": config["context"],
        "n_embd": d_model, "n_layer": config["n_layer"], "n_head": config["n_head"],
        "n_inner": None if d_ff == 4 * d_model else d_ff,      # None: 4 n_embd, as GPT-2's own
        "activation_function": "gelu_new", "layer_norm_epsilon": eps.pop(),
        "tie_word_embeddings": config["tie_weights"],
        # Written even when unknown: left out, GPT2Config would make them 50256, GPT-2's
        # <|endoftext|>, which is no token of a smaller vocabulary.
        "bos_token_id": bos_token_id, "eos_token_id": eos_token_id,
        # Our one dropout rate, for anyone who trains the model on in transformers.
        "resid_pdrop": config["dropout"], "embd_pdrop": config["dropout"],
        "attn_pdrop": config["dropout"],
        "dtype": "float32",                 # the weights', in which transformers loads them
    }
    os.makedirs(directory, exist_ok=True)
    # transformers reads the "format" metadata to know the names are PyTorch's.
    save_file(to_gpt2(model), os.path.join(directory, WEIGHTS), metadata={"format": "pt"})
    with atomic_write(path) as f:
        json.dump(gpt2_config, f, indent=2)
        f.write("\n")


def _is_tinyformer_checkpoint(path):
    """Whether `path` is the config.json of one of our own checkpoints (tinyformer.checkpoint)."""
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):             # no file, or not JSON: not ours
        return False
    return isinstance(config, dict) and config.get("format") == TINYFORMER_FORMAT
