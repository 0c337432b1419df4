"""Checkpoints in the Hugging Face format, and their tokenizers: this module owns their files.

    GPT-2               load OpenAI's GPT-2 (or any `GPT2LMHeadModel` checkpoint) into our GPT,
                        and save our GPT so that transformers loads it
    Llama, Qwen3        load a Llama (SmolLM) or a Qwen3 into our GPT with the modern block's
                        switches, and save such a GPT as one (`save_pretrained_gpt` picks the
                        format that expresses the model)
    GPT-2's tokenizer   vocab.json + merges.txt (+ tokenizer_config.json), or tokenizer.json,
                        to and from a BPETokenizer: `save_gpt2_tokenizer`, `load_gpt2_tokenizer`
    tokenizer.json      the tokenizers library's file, parsed in one place for both readers:
                        GPT-2's above, and `read_tokenizer_json`'s ByteLevelBPE for any model's
                        directory that has one (the end of this file)

A checkpoint's model is a directory of two files (beside its tokenizer's):

    config.json          a GPT2Config (LlamaConfig, Qwen3Config): the sizes and some switches
    model.safetensors    the weights by name (tinyformer/safetensors.py reads and writes them)

Our GPT with positions="learned", norm="pre", activation="gelu" (the tanh approximation, which
transformers calls "gelu_new") and tied embeddings is GPT-2's architecture, so converting is
renaming, and splitting one matrix in three. GPT-2's config names its activation, so ReLU and
the squared ReLU convert too (GPT2_ACTIVATIONS, below, pairs our names with transformers'):

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
import unicodedata
from collections import Counter
from typing import TYPE_CHECKING, Collection, Sequence, TypeVar

import numpy as np
import regex

from tinyautograd import nn

from .files import (NotRegularFile, StrPath, atomic_write, broken_link, first_existing,
                    folder_of, not_regular, open_regular, remove_made_folders,
                    shell_quoted, shown, why_not_a_directory)
from .layers import MAX_SIZE, least_parameters
from .rundir import hub_cache_advice, hub_snapshots, is_ours, read_config_json
from .schema import BadInput, check_whole
from .safetensors import (LFS_POINTER, SafetensorsError, lfs_pointer_message, load_file,
                          save_file)
from .tokenizers import (END_OF_TEXT, PRETRAINED_TOKENIZER, TOKENIZER_MODEL, TOKENIZERS,
                         BPETokenizer, Tokenizer, apply_merges, bytes_to_unicode,
                         lone_surrogate, pre_split, special_pattern, special_spans,
                         tokenizer_model_advice)

if TYPE_CHECKING:        # gpt.py imports this module: the class is only named, not imported
    from .gpt import GPT

GPTT = TypeVar("GPTT", bound="GPT")      # the class loaded into: a subclass of GPT stays one

CONFIG, WEIGHTS = "config.json", "model.safetensors"
# GPT-2's byte of each character that spells one: bytes_to_unicode read the other way.
BYTE_OF = {char: b for b, char in bytes_to_unicode().items()}
# A large checkpoint comes in shards: this file maps each tensor to the shard that holds it.
SHARD_INDEX = "model.safetensors.index.json"
# The shards themselves, as transformers' save_pretrained names them: model-00001-of-00003...
SHARD = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")
# PyTorch's weights, one file or shards: pickles, never read here.
PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# Our activations that GPT-2's feed-forward can have, each with transformers' names for the
# same function (GPT2Config's activation_function, a key of transformers' ACT2FN): the first is
# the one written, any of them is read. Our GELU is the tanh approximation: gelu_new (GPT-2's),
# gelu_pytorch_tanh and gelu_python_tanh (torch's), gelu_fast (the same formula with sqrt(2/pi)
# rounded to 10 digits), gelu_accurate (the same formula again); transformers' "gelu" is the
# exact one, with erf, which we do not compute. SwiGLU is gated, as GPT-2's feed-forward is not.
GPT2_ACTIVATIONS = {"gelu": ("gelu_new", "gelu_pytorch_tanh", "gelu_python_tanh", "gelu_fast",
                             "gelu_accurate"),
                    "relu": ("relu",), "relu2": ("relu2",)}
# GPT2Config's defaults, which transformers uses for any field config.json leaves out.
DEFAULTS = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                n_inner=None, activation_function="gelu_new", layer_norm_epsilon=1e-5,
                tie_word_embeddings=True, scale_attn_weights=True,
                scale_attn_by_inverse_layer_idx=False, add_cross_attention=False)
# GPT2Config's other names for four of its fields (its attribute_map), which a config.json
# written by hand or by a converter may use: transformers reads each as the field it names,
# in place of that field where both are given. Read otherwise, num_attention_heads would be
# left out, and the model built with GPT2Config's 12 heads: weights of the same shapes, so
# nothing would be refused, and every logit would be wrong.
GPT2_ALIASES = {"hidden_size": "n_embd", "max_position_embeddings": "n_positions",
                "num_attention_heads": "n_head", "num_hidden_layers": "n_layer"}
# Constants some checkpoints carry beside the weights: each layer's causal mask and the value
# of a masked score. We build our own masks.
BUFFER = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")


class PretrainedError(BadInput):
    """A checkpoint we cannot load, or a model no Hugging Face format expresses; the message,
    one line, says which file or setting and why."""


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


def load_pretrained_gpt(directory: StrPath, gpt: type[GPTT]) -> GPTT:
    """GPT.from_pretrained: a `gpt` (our GPT class, passed in so that this module needs no
    import of it), in eval mode, from a Hugging Face checkpoint directory (config.json and
    model.safetensors) whose model type is gpt2 (load_gpt2), llama or qwen3 (load_llama)."""
    directory = os.fspath(directory)            # a pathlib.Path is named as its text
    config, path = _read_config(directory)
    model_type = config.get("model_type")
    if model_type is None:              # transformers' AutoConfig refuses it too
        raise no_model_type(path)
    _check_token_ids(config, path)
    if model_type == "gpt2":
        return load_gpt2(directory, gpt, config)
    if model_type in LLAMA_FAMILY:
        return load_llama(directory, gpt, config)
    raise PretrainedError(f"{path}: model_type is {model_type!r}; tinyformer reads 'gpt2', "
                          f"'llama' and 'qwen3' checkpoints")


def no_model_type(path: str) -> PretrainedError:
    """The refusal of the Hugging Face config.json at `path` that names no model_type."""
    return PretrainedError(f"{path} has no model_type, which names the model's architecture; "
                           f"tinyformer reads 'gpt2', 'llama' and 'qwen3' checkpoints: add the "
                           f"model's (\"model_type\": \"gpt2\", say)")


def pretrained_vocab_size(config: dict) -> object:
    """The vocab_size of a Hugging Face model's config.json, as the model's reader builds it:
    GPT2Config's default (50257) where a GPT-2's leaves it out. Unchecked (the model's reader
    checks it), for a tokenizer to be padded to the model without reading its weights."""
    if config.get("model_type") == "gpt2":
        return config.get("vocab_size", DEFAULTS["vocab_size"])
    return config.get("vocab_size")


def load_gpt2(directory: StrPath, gpt: type[GPTT], config: dict | None = None) -> GPTT:
    """A `gpt` in eval mode from a GPT-2 checkpoint directory (config.json, read already if
    `config` is given, and model.safetensors). Weights in float16 or bfloat16 are loaded as
    float32. The model has no dropout: config.json's dropout rates matter to training only
    (nanoGPT fine-tunes GPT-2 without dropout too).

    Anything that our GPT cannot compute exactly is refused with a PretrainedError (a
    ValueError) of one line, rather than loaded into a model that computes something else."""
    path = os.path.join(directory, CONFIG)
    given = config if config is not None else _read_config(directory)[0]
    config = _gpt2_config(given, path)
    left_out = _left_out(given)
    n_embd, n_layer = config["n_embd"], config["n_layer"]
    d_ff = 4 * n_embd if config["n_inner"] is None else config["n_inner"]
    tensors, where, spelled = _read_tensors(directory, prefix="transformer.")
    state = {name: array for name, array in tensors.items() if not BUFFER.fullmatch(name)}
    if config["tie_word_embeddings"]:
        _drop_tied_head(state, "wte.weight", where)
    model = _build(gpt, dict(vocab_size=config["vocab_size"], context=config["n_positions"],
                             n_layer=n_layer, n_head=config["n_head"], d_model=n_embd, d_ff=d_ff,
                             activation=_our_activation(config["activation_function"]),
                             tie_weights=config["tie_word_embeddings"]), state, path, where,
                   left_out)
    for module in model.modules():                       # GPT-2 small: 1e-5, our default too
        if isinstance(module, nn.LayerNorm):
            module.eps = config["layer_norm_epsilon"]
    _check_tensors(state, to_gpt2(model), where, "GPT-2", spelled, "transformer.", left_out)
    model.load_state_dict(from_gpt2(state, n_layer))     # casts each array to float32
    return model.eval()


def _drop_tied_head(state, embedding, where):
    """Take lm_head.weight out of `state` for a config.json that ties it to the embedding
    (`embedding`, its name): a copy of it, which some checkpoints hold. A head that is another
    matrix is refused: transformers 5 then computes with it, untied, where earlier versions
    replaced it by the embedding; loading either would be one of them silently wrong."""
    head = state.pop("lm_head.weight", None)
    if head is not None and embedding in state and not np.array_equal(head, state[embedding]):
        raise PretrainedError(f"{where}: {CONFIG} ties the output layer to the embedding "
                              f"(tie_word_embeddings true), but lm_head.weight is another "
                              f"matrix; if the model has its own, set tie_word_embeddings to "
                              f"false in {CONFIG}")


# GPT2Config's sizes, which a config.json written by hand may leave out.
GPT2_SIZES = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")


def _left_out(config):
    """What to add to the line that refuses a GPT-2 config.json (as given, GPT2_ALIASES and
    all) with its weights: the sizes it leaves out, which transformers, and so this loader,
    takes to be GPT-2 small's (768 wide, 12 layers), where a config.json written by hand
    meant the model's own. "" where it gives them all."""
    given = {GPT2_ALIASES.get(name, name) for name in config}
    missing = [name for name in GPT2_SIZES if name not in given]
    if not missing:
        return ""
    defaults = ", ".join(f"{name} {DEFAULTS[name]}" for name in missing)
    return (f"; {CONFIG} leaves out {' and '.join(missing)}, which transformers takes as "
            f"GPT2Config's ({defaults}): write the model's there")


def _build(gpt, settings, state, path, where, left_out=""):
    """`gpt(**settings)` without its random initial weights (seconds of work for GPT-2: the
    checkpoint's replace them), unless the checkpoint's tensors (`state`, read from `where`)
    hold fewer than half the parameters it would have: then they cannot be its weights with a
    tensor or two missing (those are named once it is built), but another model's, as gpt2's
    weights beside gpt2-xl's config.json, which would take gigabytes to build only to be
    refused. `left_out` ends the line of a refusal (_left_out's)."""
    least, held = least_parameters(settings), sum(array.size for array in state.values())
    if least > 2 * held:
        raise PretrainedError(f"{path} describes a model of at least {least:,} parameters, but "
                              f"{where} holds {held:,} numbers: they are not one model's; put "
                              f"the config.json and the weights of one model together"
                              f"{left_out}")
    try:
        return nn.skip_init(gpt, **settings)
    except (TypeError, ValueError) as e:
        raise PretrainedError(f"{path} describes no GPT we can build: {e}{left_out}") from None


def _read_config(directory):
    """(config.json as a dict, its path), for a directory that also holds the weights."""
    if not os.path.isdir(directory):          # its model.safetensors or config.json, say
        raise PretrainedError(f"{why_not_a_directory(directory)}: give the directory of a "
                              f"Hugging Face checkpoint, which holds {CONFIG} and {WEIGHTS}")
    path = os.path.join(directory, CONFIG)
    snapshots = hub_snapshots(directory)
    if snapshots is not None and not os.path.exists(path):
        raise PretrainedError(hub_cache_advice(directory, snapshots))
    # Read once, before looking for the weights: a run of ours has a config.json but keeps its
    # weights in a file of its own, and "it needs model.safetensors" would send its user
    # looking for one.
    config = read_config_json(directory) if os.path.isfile(path) else None
    if config is not None and is_ours(config):
        raise PretrainedError(f"{directory!r} is a tinyformer checkpoint, not a Hugging Face "
                              f"one; load it with tinyformer.checkpoint.load_model, or write "
                              f"it in Hugging Face's format with `tinyformer export`")
    weights = [os.path.join(directory, name) for name in (WEIGHTS, SHARD_INDEX)]
    pickles = [name for name in PICKLES if os.path.isfile(os.path.join(directory, name))]
    if config is not None and pickles and not any(map(os.path.isfile, weights)):
        # The folder as a Python string inside the code, the code quoted for the shell: a
        # folder named with a quote or a space still makes one command that runs.
        folder = os.fspath(directory)
        convert = (f"import transformers as t; t.AutoModelForCausalLM.from_pretrained("
                   f"{folder!r}).save_pretrained({folder!r})")
        # The index of shards is JSON: the shards it names are the pickles.
        pickled = (f"{pickles[0]}, a pickle" if pickles[0] == PICKLES[0] else
                   f"the pickles that {pickles[0]} names")
        raise PretrainedError(f"{directory!r} holds its weights as {pickled}, which "
                              f"tinyformer never reads (unpickling can run code): take "
                              f"{WEIGHTS} from the model's page instead, or, trusting the "
                              f"files, convert them with transformers: "
                              f"python -c {shell_quoted(convert)}")
    if not (config is not None and any(os.path.isfile(file) for file in weights)):
        link = next(filter(None, map(broken_link, [path, *weights])), None)
        if link:                # there, as `ls` shows, but a link to nothing
            raise PretrainedError(link)
        for file in [path, *weights]:
            # there, but a folder (or a link to a device) in the file's place: "it needs
            # model.safetensors" would send its user looking for what `ls` shows
            what = not_regular(file) if os.path.exists(file) else None
            if what:
                raise PretrainedError(f"{file} is {what}, not a regular file; put the file "
                                      f"itself there")
        raise PretrainedError(f"{directory!r} is not a Hugging Face checkpoint: it needs "
                              f"{CONFIG} and {WEIGHTS}, as transformers' save_pretrained writes "
                              f"them or a model page offers them (pytorch_model.bin is never "
                              f"read: it is a pickle, and unpickling can run code)")
    return config, path


def _check_context(context, name, path):
    """PretrainedError unless the context length `context` (a whole number, config.json's
    `name`) is one our own models can have: the position tables are built for all of it."""
    if context > MAX_SIZE:
        raise PretrainedError(f"{path}: {name} is {context:,}; tinyformer builds models "
                              f"of a context up to {MAX_SIZE:,} positions")


def _gpt2_config(config, path):
    """A GPT-2 config.json with GPT2Config's defaults filled in, its fields under GPT2Config's
    own names (GPT2_ALIASES), checked."""
    config, written = dict(config), {}          # written: field -> its name in config.json
    for alias, name in GPT2_ALIASES.items():
        if alias in config:
            config[name], written[name] = config.pop(alias), alias
    # n_ctx, an older field (the hub's GPT-2 configs give it beside n_positions), is not read:
    # GPT2Config builds the position table from n_positions alone, 1024 where it is missing.
    # A config that sets n_ctx to another context and leaves n_positions out would build other
    # models here and in transformers (which refuses the weights of n_ctx positions): refused.
    context = DEFAULTS["n_positions"]
    if "n_positions" not in config and config.get("n_ctx", context) != context:
        raise PretrainedError(f"{path}: n_ctx is {config['n_ctx']!r} and n_positions is not "
                              f"set, so transformers reads a context of {context} (n_ctx is an "
                              f"older field it ignores); set n_positions to the number of "
                              f"positions the model has (the rows of wpe.weight)")
    config = {**DEFAULTS, **config}
    # The types first: a string "1e-5" or "false" would load, then fail or mislead later.
    for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
        if type(config[name]) is not int or config[name] < 1:
            raise PretrainedError(f"{path}: {written.get(name, name)} must be a whole number "
                                  f">= 1, got {config[name]!r}")
    _check_context(config["n_positions"], written.get("n_positions", "n_positions"), path)
    if config["n_inner"] is not None and (type(config["n_inner"]) is not int
                                          or config["n_inner"] < 1):
        raise PretrainedError(f"{path}: n_inner must be a whole number >= 1 or null, got "
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
        (_our_activation(config["activation_function"]) is None,
         f"activation_function {config['activation_function']!r}: our GPT computes "
         f"{', '.join(n for names in GPT2_ACTIVATIONS.values() for n in names)} (its GELU is "
         f"the tanh approximation; 'gelu' is the exact one, with erf)"),
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


def _our_activation(name):
    """Our activation that computes transformers' activation_function `name`, or None."""
    return next((ours for ours, names in GPT2_ACTIVATIONS.items() if name in names), None)


def _read_tensors(directory, prefix):
    """(name -> array of every tensor in model.safetensors or its shards, with `prefix` taken
    off the names; the path to name in messages; name -> the name as the file spells it, for
    messages). A name twice is refused, with or without the prefix."""
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
        if not all(isinstance(name, str) and os.path.basename(name) == name
                   and name not in ("", ".", "..") for name in shards):
            raise PretrainedError(f"{path}: every shard must be a file name in {directory!r}")
        missing = [file for file in files if not os.path.lexists(file)]
        if missing:                         # a download that fetched the index alone, say
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            shard = os.path.basename(missing[0])
            raise PretrainedError(f"{path} names the shard {shard!r}{more}, which is not in "
                                  f"{directory!r}: put every shard it names beside it")
    arrays = []                       # (name, array), from every file, names not yet unique
    for file in files:
        try:
            arrays += load_file(file).items()
        except SafetensorsError as e:
            raise PretrainedError(str(e)) from None
    state, spelled = {}, {}
    for spelling, array in arrays:
        name = spelling.removeprefix(prefix)
        if name in state:
            # Two shards holding one tensor, or it spelled with and without the prefix: which
            # one is the model's cannot be told.
            twice = (f"{spelling!r} is there twice" if spelling == spelled[name] else
                     f"{spelled[name]!r} is there twice, also as {spelling!r}")
            raise PretrainedError(f"{path}: tensor {twice}; keep one of them, or take the "
                                  f"files again from the model's page")
        state[name], spelled[name] = array, spelling
    return state, path, spelled


def _check_tensors(state, expected, path, family, spelled, prefix, left_out=""):
    """PretrainedError, one line, unless `state` holds exactly the tensors of `expected`
    (name -> array of the right shape): none missing, none left over, each of its shape and of
    floats. (The constants a checkpoint may carry beside them, of any dtype, are taken out of
    `state` before.) The tensors are named as the file names them (`spelled`, from
    _read_tensors), a missing one with the `prefix` that the file's names have, so that the
    name is found in the file, or in another model's. `left_out` ends the line (_left_out's)."""
    has_prefix = any(spelling != name for name, spelling in spelled.items())

    def as_in_file(name):                      # lm_head sits beside the prefixed model
        if name in spelled:
            return spelled[name]
        return prefix + name if has_prefix and name != "lm_head.weight" else name

    shapes = {name: np.shape(array) for name, array in expected.items()}
    missing = [name for name in shapes if name not in state]
    extra = [name for name in state if name not in shapes]
    wrong = [name for name in shapes if name in state and state[name].shape != shapes[name]]
    for names, problem in ((missing, "is missing"), (extra, f"is not part of {family}"),
                           (wrong, "has the wrong shape")):
        if names:
            name, more = names[0], f" (and {len(names) - 1} more)" if len(names) > 1 else ""
            if names is wrong:
                problem += f": {state[name].shape}, but {CONFIG} makes it {shapes[name]}"
            else:
                problem += f", given {CONFIG}"
            raise PretrainedError(f"{path}: tensor {as_in_file(name)!r}{more} {problem}; put "
                                  f"the {CONFIG} and the weights of one model together{left_out}")
    for name, array in state.items():
        if not np.issubdtype(array.dtype, np.floating):
            raise PretrainedError(f"{path}: tensor {as_in_file(name)!r} holds {array.dtype}, "
                                  f"not floats; tinyformer reads weights of floats "
                                  f"(16, 32 or 64 bits), not quantised ones")


# --------------------------------------------------------------------------------------------
# Llama and Qwen3
#
# A Llama (SmolLM, TinyLlama's architecture, Llama 2 and 3 without rope scaling) is our GPT
# with the modern block's switches: positions="rope" (rope_theta from the config),
# normalization="rmsnorm", activation="swiglu", n_kv_head (num_key_value_heads), bias=False
# (or True, with attention_bias and mlp_bias), pre-norm with a final norm; Qwen3 adds
# qk_norm=True and gives its own head_dim. The names:
#
#     Llama / Qwen3                                      ours
#     model.embed_tokens.weight       (vocab, C)         embed.tok.weight
#     model.layers.{i}.input_layernorm                   decoder.layers.{i}.attn_norm
#     model.layers.{i}.self_attn.q_proj  (H d, C)        decoder.layers.{i}.attn.q   (C, H d) *
#     model.layers.{i}.self_attn.k_proj  (KV d, C)       decoder.layers.{i}.attn.k   (C, KV d) *
#     model.layers.{i}.self_attn.v_proj  (KV d, C)       decoder.layers.{i}.attn.v   (C, KV d)
#     model.layers.{i}.self_attn.o_proj  (C, H d)        decoder.layers.{i}.attn.out (H d, C)
#     model.layers.{i}.self_attn.q_norm  (d,)  (Qwen3)   decoder.layers.{i}.attn.q_norm *
#     model.layers.{i}.self_attn.k_norm  (d,)  (Qwen3)   decoder.layers.{i}.attn.k_norm *
#     model.layers.{i}.post_attention_layernorm          decoder.layers.{i}.ffn_norm
#     model.layers.{i}.mlp.gate_proj  (F, C)  } side     decoder.layers.{i}.ffn.fc1  (C, 2F):
#     model.layers.{i}.mlp.up_proj    (F, C)  } by side    [gate | up], SwiGLU's halves
#     model.layers.{i}.mlp.down_proj  (C, F)             decoder.layers.{i}.ffn.fc2  (F, C)
#     model.norm                                         decoder.final_norm
#     lm_head.weight                  (vocab, C)         head.weight (C, vocab), when untied
#
# Their linear layers are torch's, (out, in): each is transposed. (*) Their RoPE turns feature
# i of a head with feature i + d/2 (the "rotate_half" of GPT-NeoX); ours turns 2i with 2i+1.
# Reordering each head's query and key features, ours[2i] = theirs[i] and ours[2i+1] =
# theirs[i + d/2], makes our rotation of every pair theirs; a dot product of two vectors
# reordered alike is unchanged, so the attention scores, and the model, are theirs exactly.

LLAMA_FAMILY = ("llama", "qwen3")
# The fields transformers fills in when a config.json leaves them out (LlamaConfig's and
# Qwen3Config's defaults); the sizes are not among them: a config.json must give those.
LLAMA_DEFAULTS = {
    "llama": dict(num_key_value_heads=None, head_dim=None, hidden_act="silu",
                  max_position_embeddings=2048, rms_norm_eps=1e-6, tie_word_embeddings=False,
                  attention_bias=False, mlp_bias=False),
    "qwen3": dict(num_key_value_heads=32, head_dim=128, hidden_act="silu",
                  max_position_embeddings=32768, rms_norm_eps=1e-6, tie_word_embeddings=False,
                  attention_bias=False),
}
# transformers' names for SiLU, x sigmoid(x), the gate of SwiGLU: "swish" is torch's SiLU too.
SILU = ("silu", "swish")
LLAMA_SIZES = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
               "num_attention_heads")
# Fields that would make the model another function than ours, when they are set.
# (A scaled RoPE is refused by _rope_theta, which reads rope_scaling: its type may be the
# default, no scaling.)
LLAMA_REFUSED = {
    "quantization_config": "quantised weights",
    "num_experts": "a mixture of experts", "num_local_experts": "a mixture of experts",
}
# Constants some checkpoints carry beside the weights: RoPE's frequencies. We compute our own.
LLAMA_BUFFER = re.compile(r"layers\.\d+\.self_attn\.rotary_emb\.inv_freq")


def is_llama_family(directory: StrPath) -> bool:
    """Whether `directory` holds a Llama or Qwen3 checkpoint (by its config.json)."""
    try:
        return _read_config(directory)[0].get("model_type") in LLAMA_FAMILY
    except PretrainedError:
        return False


def load_llama(directory: StrPath, gpt: type[GPTT], config: dict) -> GPTT:
    """A `gpt` in eval mode from a Llama or Qwen3 checkpoint directory, whose config.json is
    `config`. Weights in float16 or bfloat16 are loaded as float32."""
    path = os.path.join(directory, CONFIG)
    settings, eps = _llama_settings(config, path)
    tensors, where, spelled = _read_tensors(directory, prefix="model.")
    state = {name: array for name, array in tensors.items() if not LLAMA_BUFFER.fullmatch(name)}
    if settings["tie_weights"]:
        _drop_tied_head(state, "embed_tokens.weight", where)
    model = _build(gpt, settings, state, path, where)
    for module in model.modules():
        if isinstance(module, nn.RMSNorm):
            module.eps = eps
    expected = to_llama(model)
    _check_tensors(state, expected, where, config["model_type"], spelled, "model.")
    model.load_state_dict(from_llama(state, model))
    return model.eval()


def _llama_settings(config, path):
    """(our GPT's arguments, the RMS norms' eps) for a Llama or Qwen3 config.json, checked."""
    model_type = config["model_type"]
    missing = [name for name in LLAMA_SIZES if name not in config]
    if missing:
        raise PretrainedError(f"{path}: {missing[0]} is missing; a {model_type} config.json "
                              f"gives {', '.join(LLAMA_SIZES)}")
    for name, why in LLAMA_REFUSED.items():
        if config.get(name) not in (None, False, 0):
            raise PretrainedError(f"{path}: {name} is {json.dumps(config[name])}: {why}, which "
                                  f"tinyformer does not compute")
    c = {**LLAMA_DEFAULTS[model_type], **config}
    for name in (*LLAMA_SIZES, "max_position_embeddings"):
        if type(c[name]) is not int or c[name] < 1:
            raise PretrainedError(f"{path}: {name} must be a whole number >= 1, got "
                                  f"{c[name]!r}")
    _check_context(c["max_position_embeddings"], "max_position_embeddings", path)
    for name in ("num_key_value_heads", "head_dim"):
        if c[name] is not None and (type(c[name]) is not int or c[name] < 1):
            raise PretrainedError(f"{path}: {name} must be a whole number >= 1 or null, got "
                                  f"{c[name]!r}")
    # Qwen3's feed-forward has no biases: it has no mlp_bias to switch them on.
    biases = ("attention_bias", "mlp_bias") if model_type == "llama" else ("attention_bias",)
    for name in ("tie_word_embeddings", *biases):
        if type(c[name]) is not bool:
            raise PretrainedError(f"{path}: {name} must be true or false, got {c[name]!r}")
    eps = c["rms_norm_eps"]
    if type(eps) not in (int, float) or not eps > 0:
        raise PretrainedError(f"{path}: rms_norm_eps must be a number above 0, got {eps!r}")
    if c["hidden_act"] not in SILU:
        raise PretrainedError(f"{path}: hidden_act is {c['hidden_act']!r}: the feed-forward we "
                              f"compute is SwiGLU, whose gate is silu ({', '.join(SILU)})")
    if model_type == "qwen3" and c["attention_bias"]:
        raise PretrainedError(f"{path}: attention_bias is true, and Qwen3's feed-forward has "
                              f"no biases: our bias switch is one for every layer")
    if model_type == "llama" and c["attention_bias"] != c["mlp_bias"]:
        raise PretrainedError(f"{path}: attention_bias is {json.dumps(c['attention_bias'])} "
                              f"and mlp_bias {json.dumps(c['mlp_bias'])}: our bias switch is "
                              f"one for every layer")
    if model_type == "llama":
        _check_llamas_window(c, path)
    else:
        _check_qwen3s_windows(c, path)
    d_model, n_head = c["hidden_size"], c["num_attention_heads"]
    d_head = c["head_dim"] if c["head_dim"] is not None else d_model // n_head
    return dict(vocab_size=c["vocab_size"], context=c["max_position_embeddings"],
                n_layer=c["num_hidden_layers"], n_head=n_head, d_model=d_model,
                d_ff=c["intermediate_size"], positions="rope", norm="pre",
                activation="swiglu", tie_weights=c["tie_word_embeddings"],
                normalization="rmsnorm", n_kv_head=c["num_key_value_heads"],
                qk_norm=model_type == "qwen3", bias=c["attention_bias"],
                rope_theta=_rope_theta(c, path),
                d_head=None if d_head * n_head == d_model else d_head), eps


def _spans_the_context(window, config):
    """Whether a sliding window of `window` positions (an int, or null: none) is one that no
    text the model reads goes past: each of the max_position_embeddings positions sees all
    those before it, as in full attention, ours. (transformers' mask keeps the keys of the
    last `window` positions, the query's own included.)"""
    return window is None or (type(window) is int and window >= config["max_position_embeddings"])


def _check_llamas_window(config, path):
    """PretrainedError, one line, unless the Llama `config` (its defaults filled in) attends to
    every position, as ours. A Llama's sliding_window (a Mistral converted to the llama type
    keeps its 4096) is read by transformers' generate, whose cache then holds the last that
    many positions' keys alone, but not by its forward pass: the same model computes two
    functions, neither of them ours for long texts. So is its layer_types, the kind of each
    layer's cache. (use_sliding_window is Qwen3's switch: LlamaConfig reads none.)"""
    window = config.get("sliding_window")
    if not _spans_the_context(window, config):
        raise PretrainedError(f"{path}: sliding_window is {json.dumps(window)}: sliding-window "
                              f"attention, which tinyformer does not compute; if the model "
                              f"attends to every position, set it to null")
    _layer_types(config, path, computed=("full_attention",))


def _check_qwen3s_windows(config, path):
    """PretrainedError, one line, unless every layer of the Qwen3 `config` (its defaults filled
    in) attends to every position, as ours, where transformers' Qwen3Config reads it so: its
    sliding_window counts only where use_sliding_window is on, and then only in the layers
    that layer_types calls "sliding_attention", or where it leaves them out, the layers from
    max_window_layers on. So Qwen3's own configs, which switch it on below max_window_layers
    alone, load."""
    # Of the types Qwen3Config takes, switched on or not (its defaults where left out).
    switch = config.get("use_sliding_window", False)
    if type(switch) is not bool:
        raise PretrainedError(f"{path}: use_sliding_window must be true or false, got "
                              f"{switch!r}")
    window = config.get("sliding_window", 4096)
    if window is not None and type(window) is not int:
        raise PretrainedError(f"{path}: sliding_window must be a whole number or null, got "
                              f"{window!r}")
    first = config.get("max_window_layers", 28)
    if type(first) is not int:
        raise PretrainedError(f"{path}: max_window_layers must be a whole number, the first "
                              f"layer of a sliding window, got {first!r}")
    window = window if switch else None
    # transformers fails on a sliding layer without a window, and computes no other kind
    # (linear, chunked attention) as Qwen3.
    layer_types = _layer_types(config, path, computed=(
        "full_attention", *(["sliding_attention"] if window is not None else [])))
    if layer_types is None:
        layer_types = ["sliding_attention" if window is not None and i >= first
                       else "full_attention" for i in range(config["num_hidden_layers"])]
    for i, kind in enumerate(layer_types):
        if kind == "sliding_attention" and not _spans_the_context(window, config):
            raise PretrainedError(f"{path}: layer {i} attends through a sliding window of "
                                  f"{json.dumps(window)} positions (use_sliding_window, "
                                  f"sliding_window, max_window_layers, layer_types): "
                                  f"sliding-window attention, which tinyformer does not "
                                  f"compute; if the model attends to every position, set "
                                  f"use_sliding_window to false")


def _layer_types(config, path, computed):
    """config.json's layer_types (each layer's kind of attention), a list of one a layer, as
    transformers' configs check it, each of the kinds `computed` here, or None."""
    layer_types = config.get("layer_types")
    if layer_types is not None and not isinstance(layer_types, list):
        raise PretrainedError(f"{path}: layer_types must be a list of each layer's kind of "
                              f"attention, got {layer_types!r}")
    if layer_types is not None and len(layer_types) != config["num_hidden_layers"]:
        raise PretrainedError(f"{path}: layer_types names {len(layer_types)} layers' kinds of "
                              f"attention, and num_hidden_layers is "
                              f"{config['num_hidden_layers']}; give one a layer")
    other = next((kind for kind in layer_types or [] if kind not in computed), None)
    if other is not None:
        raise PretrainedError(f"{path}: layer_types holds {other!r}: only full attention is "
                              f"computed here, no sliding windows")
    return layer_types


def _rope_theta(config, path):
    """RoPE's base: rope_theta, or (transformers 5) rope_parameters' rope_theta, whose
    rope_type must be the default (any other rescales the frequencies). What rope_parameters
    leaves out, transformers takes from the older places: the base from the top-level
    rope_theta, the type from "type", the partial_rotary_factor from the top level's. An older
    config.json's rope_scaling, where it is set, is read in place of rope_parameters, as
    transformers 5 reads it: {"rope_type": "default"} scales nothing.

    A partial_rotary_factor below 1 (RoPE on that fraction of each head's features, GPT-NeoX's
    and Phi's) is refused, wherever it is given: ours rotates every feature. (transformers 5's
    Llama and Qwen3 ignore it, and rotate every feature too: a model trained with it would
    load there, and give other logits than it was trained to.)"""
    name = "rope_scaling" if config.get("rope_scaling") else "rope_parameters"
    parameters = config.get(name)
    theta = config.get("rope_theta", 10000.0)
    factor, said = config.get("partial_rotary_factor"), "partial_rotary_factor is"
    if parameters is not None:
        if not isinstance(parameters, dict):
            raise PretrainedError(f"{path}: {name} must be an object, got {parameters!r}")
        kind = parameters.get("rope_type", parameters.get("type", "default"))
        if kind != "default":
            raise PretrainedError(f"{path}: {name} has rope_type {kind!r}: a scaled RoPE "
                                  f"(longer contexts by rescaled frequencies), which "
                                  f"tinyformer does not compute")
        if parameters.get("partial_rotary_factor") is not None:
            factor = parameters["partial_rotary_factor"]
            said = f"{name} has partial_rotary_factor"
        theta = parameters.get("rope_theta", theta)
    if factor not in (None, 1):                          # (None: 1, as transformers takes it)
        raise PretrainedError(f"{path}: {said} {factor!r}: RoPE on part of each head's "
                              f"features, which tinyformer does not compute (it rotates them "
                              f"all)")
    if type(theta) not in (int, float) or not theta > 1:
        raise PretrainedError(f"{path}: rope_theta must be a number above 1, got {theta!r}")
    return float(theta)


def _rotary_order(d_head):
    """Where each of our features of a head comes from in theirs: ours[2i] = theirs[i],
    ours[2i+1] = theirs[i + d/2] (see the table above)."""
    half = d_head // 2
    return np.stack([np.arange(half), np.arange(half) + half], axis=1).reshape(-1)   # (d,)


def _per_head(array, d_head, order):
    """`array` with the features of each head (d_head of them, heads side by side along the
    last axis) taken in `order`: new[..., h d + m] = array[..., h d + order[m]]."""
    n_head = array.shape[-1] // d_head
    return array[..., (np.arange(n_head)[:, None] * d_head + order).reshape(-1)]


def from_llama(state: dict[str, np.ndarray], model: GPT) -> dict[str, np.ndarray]:
    """Our name -> array, from a Llama or Qwen3 checkpoint's tensors (names without
    "model.", already checked to be those `to_llama` gives for `model`)."""
    d_head = model.decoder.layers[0].attn.d_head
    order = _rotary_order(d_head)
    ours = {"embed.tok.weight": state["embed_tokens.weight"],
            "decoder.final_norm.weight": state["norm.weight"]}
    for i in range(model.config["n_layer"]):
        layer, theirs = f"decoder.layers.{i}", f"layers.{i}"
        ours[f"{layer}.attn_norm.weight"] = state[f"{theirs}.input_layernorm.weight"]
        ours[f"{layer}.ffn_norm.weight"] = state[f"{theirs}.post_attention_layernorm.weight"]
        for name, proj in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("out", "o_proj")):
            for p in ("weight", "bias"):
                array = state.get(f"{theirs}.self_attn.{proj}.{p}")
                if array is not None:
                    array = array.T                                   # (out, in) -> (in, out)
                    ours[f"{layer}.attn.{name}.{p}"] = (_per_head(array, d_head, order)
                                                        if name in ("q", "k") else array)
        for name in ("q_norm", "k_norm"):
            if f"{theirs}.self_attn.{name}.weight" in state:
                ours[f"{layer}.attn.{name}.weight"] = state[f"{theirs}.self_attn.{name}.weight"][
                    order]
        mlp = f"{theirs}.mlp"
        ours[f"{layer}.ffn.fc1.weight"] = np.concatenate(
            [state[f"{mlp}.gate_proj.weight"].T, state[f"{mlp}.up_proj.weight"].T], axis=1)
        ours[f"{layer}.ffn.fc2.weight"] = state[f"{mlp}.down_proj.weight"].T
        if f"{mlp}.gate_proj.bias" in state:
            ours[f"{layer}.ffn.fc1.bias"] = np.concatenate([state[f"{mlp}.gate_proj.bias"],
                                                            state[f"{mlp}.up_proj.bias"]])
            ours[f"{layer}.ffn.fc2.bias"] = state[f"{mlp}.down_proj.bias"]
    if "lm_head.weight" in state:
        ours["head.weight"] = state["lm_head.weight"].T                 # (V, C) -> (C, V)
    return ours


def to_llama(model: GPT) -> dict[str, np.ndarray]:
    """Llama name (without "model.") -> array, from our GPT's parameters: from_llama's
    inverse, and so the names and shapes a checkpoint of this model holds."""
    d_head = model.decoder.layers[0].attn.d_head
    back = np.argsort(_rotary_order(d_head))               # ours -> theirs, within a head
    ours = {name: p.data for name, p in model.named_parameters()}
    state = {"embed_tokens.weight": ours["embed.tok.weight"],
             "norm.weight": ours["decoder.final_norm.weight"]}
    for i in range(model.config["n_layer"]):
        layer, theirs = f"decoder.layers.{i}", f"layers.{i}"
        state[f"{theirs}.input_layernorm.weight"] = ours[f"{layer}.attn_norm.weight"]
        state[f"{theirs}.post_attention_layernorm.weight"] = ours[f"{layer}.ffn_norm.weight"]
        for name, proj in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("out", "o_proj")):
            for p in ("weight", "bias"):
                array = ours.get(f"{layer}.attn.{name}.{p}")
                if array is not None:
                    if name in ("q", "k"):
                        array = _per_head(array, d_head, back)
                    state[f"{theirs}.self_attn.{proj}.{p}"] = array.T
        for name in ("q_norm", "k_norm"):
            if f"{layer}.attn.{name}.weight" in ours:
                state[f"{theirs}.self_attn.{name}.weight"] = ours[f"{layer}.attn.{name}.weight"][
                    back]
        mlp, ffn = f"{theirs}.mlp", f"{layer}.ffn"
        gate, up = np.split(ours[f"{ffn}.fc1.weight"], 2, axis=1)
        state[f"{mlp}.gate_proj.weight"], state[f"{mlp}.up_proj.weight"] = gate.T, up.T
        state[f"{mlp}.down_proj.weight"] = ours[f"{ffn}.fc2.weight"].T
        if f"{ffn}.fc1.bias" in ours:
            state[f"{mlp}.gate_proj.bias"], state[f"{mlp}.up_proj.bias"] = np.split(
                ours[f"{ffn}.fc1.bias"], 2)
            state[f"{mlp}.down_proj.bias"] = ours[f"{ffn}.fc2.bias"]
    if model.head is not None:
        state["lm_head.weight"] = ours["head.weight"].T                 # (C, V) -> (V, C)
    return state


GENERATION_CONFIG = "generation_config.json"


def read_eos_ids(directory: StrPath, vocab_size: int) -> list[int] | None:
    """The ids that end a text, as transformers' generate reads them: generation_config.json's
    eos_token_id where there is that file, else config.json's; one id or a list (a chat
    model's answer ends at <|im_end|>, a text at <|endoftext|>). None where the file read
    names none of the vocabulary's: an empty list, as transformers reads it, ends nothing, as
    no eos_token_id; GPT2Config's default 50256 beside a small vocabulary can never be
    written, and ends nothing in transformers too. PretrainedError, one line, for a
    bos_token_id or eos_token_id in the file read that is no token id (_check_token_ids)."""
    for name in (GENERATION_CONFIG, CONFIG):
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            continue
        # The first file there decides: transformers takes a generation_config.json as it
        # is, and never looks in config.json for an eos_token_id that it leaves out.
        config = _read_hf_file(path, GENERATION) if name == GENERATION_CONFIG else \
            read_config_json(directory)
        if not isinstance(config, dict):
            return None
        _check_token_ids(config, path)
        ids = config.get("eos_token_id")
        if ids is None:
            return None
        ids = ids if isinstance(ids, list) else [ids]
        return [i for i in ids if i < vocab_size] or None
    return None


def _check_token_ids(config: dict, path: str) -> None:
    """PretrainedError, one line, unless the config read from `path` (config.json or
    generation_config.json) gives its bos_token_id as one token id or null and its
    eos_token_id as one, a list of them, or null, as transformers' configs take them: it
    refuses a string or a fraction there, config.json's as it loads the model, a generation
    config's as generate starts.

    An id beyond the vocabulary passes, as in transformers, which at most warns of it and
    loads the model all the same (GPT2Config's default 50256 stands beside many a small
    vocabulary): no text ends at a token that is never written, and our generate never
    begins one with bos_token_id. A negative one is refused: transformers' generate warns
    that it may crash on one."""
    for name, several in (("bos_token_id", False), ("eos_token_id", True)):
        value = config.get(name)
        ids = value if several and isinstance(value, list) else [value]
        if value is None or all(type(i) is int and i >= 0 for i in ids):
            continue
        what, fix = (("one token id or a list of them", "the id of the token that ends a text "
                      "(a list of ids, where several do)") if several else
                     ("one token id", "the id of the token that begins a text"))
        raise PretrainedError(f"{path}: {name} {value!r} is not {what}; write {fix} there, "
                              f"or null for none")



# --------------------------------------------------------------------------------------------
# Saving
#
# A GPT is saved in the Hugging Face format that computes exactly what it computes: GPT-2's
# for the 2017 block, Llama's for the modern block as Llama has it, Qwen3's for that block
# with QK-norm. Each format fixes some of our settings; the others (the sizes, tie_weights,
# rope_theta, the number of key-value heads in Llama and Qwen3) take any value. A model that
# no format fits is refused before anything is written.

LLAMA_BLOCK = dict(positions="rope", norm="pre", normalization="rmsnorm", rmsnorm_affine=True,
                   activation="swiglu", qk_norm=False, logit_softcap=None)
# Each format's model, setting by setting, as GPT() takes them (a tuple: any of its values):
# n_kv_head and d_head are None for the plain ones (every head its own keys and values; heads of
# width d_model / n_head).
# Qwen3 comes before Llama so that, where a model is as far from both, the setting named is
# the one Qwen3 lacks: a model with QK-norm is closer to it.
FORMATS = {
    "gpt2": ("GPT-2", dict(positions="learned", norm="pre", normalization="layernorm",
                           activation=tuple(GPT2_ACTIVATIONS), n_kv_head=None, d_head=None,
                           qk_norm=False, logit_softcap=None, bias=True)),
    # Qwen3's feed-forward has no biases, and our bias switch is one for every layer.
    "qwen3": ("Qwen3", {**LLAMA_BLOCK, "qk_norm": True, "bias": False}),
    "llama": ("Llama", LLAMA_BLOCK),
}
ARCHITECTURES = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM",
                 "qwen3": "Qwen3ForCausalLM"}


def pretrained_format(model: GPT) -> str:
    """The Hugging Face format that expresses `model` exactly: "gpt2", "llama" or "qwen3".
    Otherwise a PretrainedError, one line, naming the settings that the nearest format (the
    one that differs in fewest) cannot express."""
    config = model.config
    settings = {name: config[name] for name in ("positions", "norm", "normalization",
                                                "rmsnorm_affine", "activation", "qk_norm",
                                                "logit_softcap", "bias")}
    # Given as the plain ones (a loaded Llama's n_kv_head may equal n_head), they are those.
    n_kv_head, d_head = config["n_kv_head"], config["d_head"]
    plain_head = d_head is None or d_head * config["n_head"] == config["d_model"]
    settings["n_kv_head"] = None if n_kv_head == config["n_head"] else n_kv_head
    settings["d_head"] = None if plain_head else d_head
    differences = {family: [name for name, value in fixed.items()
                            if settings[name] not in _choices(value)]
                   for family, (_, fixed) in FORMATS.items()}
    nearest = min(differences, key=lambda family: len(differences[family]))  # the first of ties
    if differences[nearest]:
        title, fixed = FORMATS[nearest]
        named = ", ".join(f"{name}={settings[name]!r} (it has "
                          f"{' or '.join(map(repr, _choices(fixed[name])))})"
                          for name in differences[nearest])
        raise PretrainedError(f"no Hugging Face format expresses this GPT: the nearest, {title}, "
                              f"cannot express {named}; a GPT trained with {title}'s values "
                              f"of those settings exports (this one's checkpoint generates as "
                              f"it is)")
    return nearest


def _choices(value):
    """The values a setting of FORMATS allows: those of a tuple, else the one."""
    return value if isinstance(value, tuple) else (value,)


def save_pretrained_gpt(model: GPT, directory: StrPath, bos_token_id: int | None = None,
                        eos_token_id: int | Sequence[int] | None = None) -> None:
    """GPT.save_pretrained: write `model` in the format that expresses it (pretrained_format:
    GPT-2's, Llama's or Qwen3's), which transformers' AutoModelForCausalLM.from_pretrained
    (directory) loads, and GPT.from_pretrained too: model.safetensors, generation_config.json,
    then config.json.

    The directory is created if needed (and removed again, with the folders made for it, if
    the save fails); other files in it are left alone (mind an old tokenizer, which
    transformers would read too), but for the shards of an earlier save in shards
    (model-00001-of-00002.safetensors, ...) and their model.safetensors.index.json, removed
    once the new weights are in place, as transformers' save_pretrained removes the shards it
    does not write again, and an old generation_config.json, written again as transformers'
    save_pretrained writes it: left there, its ids, not the ones given, would end the texts,
    in transformers' generate and in ours (read_eos_ids). Each file is written atomically,
    config.json put in place last, so a directory with a config.json has its weights, and a
    save that fails (a full disk) leaves an earlier save there whole. A model knows nothing of
    its tokenizer: pass the ids of the tokenizer's begin and end of text tokens, if it has
    them, for transformers' generate to use; the end may be a list of ids, as read_eos_ids
    gives a chat model's."""
    directory = os.fspath(directory)
    family = pretrained_format(model)
    vocab_size = model.config["vocab_size"]
    token_ids = {"bos_token_id": bos_token_id, "eos_token_id": eos_token_id}
    for what, token in token_ids.items():
        if token is None:
            continue
        # The end may be several ids, as a chat model's (<|im_end|> and <|endoftext|>): a
        # list, as transformers' configs and read_eos_ids have it.
        several = what == "eos_token_id" and isinstance(token, (list, tuple, np.ndarray))
        ids = list(token) if several else [token]
        if not ids:
            raise PretrainedError(f"save_pretrained: {what} is an empty list; give an id, a "
                                  f"list of ids, or None")
        for i in ids:
            check_whole("save_pretrained", 0, **{what: i})     # numpy's integers too
            if not i < vocab_size:
                raise PretrainedError(f"{what} {i} is not a token of the model's vocabulary "
                                      f"(0..{vocab_size - 1})")
        ids = [int(i) for i in ids]                            # for json: not np.int64
        token_ids[what] = ids if several else ids[0]
    path = os.path.join(directory, CONFIG)
    if os.path.exists(path):
        try:
            ours = is_ours(read_config_json(directory))
        except BadInput:            # its advice is a reader's: download it again, restore it
            raise PretrainedError(f"{path}, which this would overwrite, is no JSON object "
                                  f"that can be read, so whether it is a tinyformer "
                                  f"checkpoint's cannot be told; move it away, or choose "
                                  f"another directory") from None
        if ours:
            raise PretrainedError(f"{directory!r} holds a tinyformer checkpoint, whose {CONFIG} "
                                  f"this would overwrite; choose another directory")
    fields, tensors = _gpt2_files(model) if family == "gpt2" else _llama_files(model, family)
    config = {
        "model_type": family, "architectures": [ARCHITECTURES[family]], **fields,
        # Written even when unknown: left out, the config classes would make them their own
        # models' (GPT-2's 50256, Llama's 1 and 2), which are no tokens of this vocabulary.
        **token_ids,
        # The weights' (the widest of them), in which transformers' dtype="auto" loads them:
        # a float16 model's said "float32", and was loaded at twice its size.
        "dtype": np.result_type(*tensors.values()).name,
    }
    existing = first_existing(directory)      # the folders made below it go on a failure
    os.makedirs(directory, exist_ok=True)
    try:
        # config.json is written first and put in place last: a disk that fills up on either
        # file leaves a folder's earlier save whole, never new weights beside an old config.
        with atomic_write(path) as f:
            json.dump(config, f, indent=2)
            f.write("\n")
            f.flush()                   # on disk now: after the weights, only a rename is left
            os.fsync(f.fileno())
            # transformers reads the "format" metadata to know the names are PyTorch's.
            save_file(tensors, os.path.join(directory, WEIGHTS), metadata={"format": "pt"})
            # As transformers' save_pretrained, which writes the generation settings of the
            # model it saves: a model built here has none but the ids that begin and end its
            # texts. An old file left there would stay in charge of them (transformers and
            # read_eos_ids read it before config.json), whatever ids were given.
            with atomic_write(os.path.join(directory, GENERATION_CONFIG)) as generation:
                json.dump(token_ids, generation, indent=2)
                generation.write("\n")
    except BaseException:
        remove_made_folders(directory, existing)      # a folder it made goes, left empty
        raise
    _remove_old_shards(directory)


def _remove_old_shards(directory):
    """Remove the shards of an earlier save in `directory` and their index, now that its
    model.safetensors holds the weights: left there, they took the disk of a second model, and
    the index named weights that are not these to whatever reads it. Only the files of that
    layout go: a shard's name as transformers writes it, and the index's."""
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if (name == SHARD_INDEX or SHARD.fullmatch(name)) and os.path.isfile(path):
            os.remove(path)


def _one_eps(model, norm, title, field):
    """The eps of the norms of the kind `norm` in `model`, which must all have the same one:
    the format `title` has one, its config's `field`."""
    eps = {m.eps for m in model.modules() if isinstance(m, norm)}
    if len(eps) != 1:
        raise PretrainedError(f"{title} has one {field}; this model's norms use {sorted(eps)}")
    return eps.pop()


def _gpt2_files(model):
    """(GPT2Config's fields, the tensors by name) of a GPT-2 checkpoint of `model`."""
    config = model.config
    d_model, d_ff = config["d_model"], config["d_ff"]
    return {
        "vocab_size": config["vocab_size"], "n_positions": config["context"],
        "n_embd": d_model, "n_layer": config["n_layer"], "n_head": config["n_head"],
        "n_inner": None if d_ff == 4 * d_model else d_ff,      # None: 4 n_embd, as GPT-2's own
        "activation_function": GPT2_ACTIVATIONS[config["activation"]][0],
        "layer_norm_epsilon": _one_eps(model, nn.LayerNorm, "GPT-2", "layer_norm_epsilon"),
        "tie_word_embeddings": config["tie_weights"],
        # Our one dropout rate, for anyone who trains the model on in transformers.
        "resid_pdrop": config["dropout"], "embd_pdrop": config["dropout"],
        "attn_pdrop": config["dropout"],
    }, to_gpt2(model)


def _llama_files(model, model_type):
    """(LlamaConfig's or Qwen3Config's fields, the tensors by name) of a checkpoint of
    `model` of `model_type`: the fields that _llama_settings reads back to this model (and
    transformers to the same one: head_dim and num_key_value_heads are written always, for
    Qwen3Config's defaults are no model's here), the tensors to_llama's, with the "model."
    in front that transformers writes."""
    config = model.config
    theta = float(config["rope_theta"])
    fields = {
        "vocab_size": config["vocab_size"], "hidden_size": config["d_model"],
        "intermediate_size": config["d_ff"], "num_hidden_layers": config["n_layer"],
        "num_attention_heads": config["n_head"],
        "num_key_value_heads": config["n_kv_head"] or config["n_head"],
        "head_dim": model.decoder.layers[0].attn.d_head,
        "hidden_act": "silu",                                   # SwiGLU's gate
        "max_position_embeddings": config["context"],
        "rms_norm_eps": _one_eps(model, nn.RMSNorm, FORMATS[model_type][0], "rms_norm_eps"),
        # transformers 5 reads rope_parameters, earlier versions rope_theta: both, alike.
        "rope_parameters": {"rope_type": "default", "rope_theta": theta}, "rope_theta": theta,
        "tie_word_embeddings": config["tie_weights"],
        "attention_bias": config["bias"],
    }
    if model_type == "llama":               # Qwen3's feed-forward has no biases to switch on
        fields["mlp_bias"] = config["bias"]
    tensors = {(name if name == "lm_head.weight" else f"model.{name}"): array
               for name, array in to_llama(model).items()}
    return fields, tensors


# --------------------------------------------------------------------------------------------
# GPT-2's tokenizer: vocab.json, merges.txt and tokenizer_config.json, or tokenizer.json
#
# OpenAI's GPT-2 keeps its BPE in two files: vocab.json (token -> id) and merges.txt (one merge
# "a b" a line, in the order learned, after a "#version" line), each token spelled in
# bytes_to_unicode's characters (the space is "Ġ"). transformers adds tokenizer_config.json: the
# class that reads them, and the added tokens. transformers 5 writes the same vocabulary and
# merges as one tokenizer.json instead (parsed as the Llama family's is, below). Our BPETokenizer
# is this BPE exactly, when the vocabulary has its shape: ids 0-255 the single bytes (in any
# order: GPT-2's is bytes_to_unicode's), id 256 + k made by merge k, then the special tokens.

VOCAB_JSON, MERGES_TXT, TOKENIZER_CONFIG = "vocab.json", "merges.txt", "tokenizer_config.json"


def save_gpt2_tokenizer(tokenizer: BPETokenizer, directory: StrPath) -> None:
    """Write `tokenizer` as GPT-2's files into `directory` (made if missing; other files in it
    are left alone), each all or nothing: vocab.json (token -> id), merges.txt (one merge "a b"
    a line, in order) and tokenizer_config.json, which tells transformers' AutoTokenizer to
    read them with GPT2Tokenizer and which ids are special tokens. PretrainedError, one line,
    and nothing written, for a tokenizer that transformers would not read back as it is, or
    a directory holding another tokenizer's tokenizer.json, which transformers would read in
    place of these files."""
    if not isinstance(tokenizer, BPETokenizer):
        raise PretrainedError(f"GPT-2's tokenizer files hold a byte-level BPE, not a "
                              f"{type(tokenizer).__name__}; save it with its own save(path)")
    spelling = bytes_to_unicode()
    tokens = ["".join(spelling[b] for b in tokenizer.id_to_bytes(i))      # the bytes, then
              for i in range(256 + len(tokenizer.merges))]                 # each merge's
    specials = tokenizer.special_tokens
    vocab = {token: i for i, token in enumerate(tokens + specials)}
    # Its own tokens only: a padded tokenizer's padding ids (`pad_to`) are none, and
    # transformers reads a model with more rows than its vocab.json has tokens as it is.
    if len(vocab) < len(tokens) + len(specials):  # two merge orders built the same bytes, say
        token, count = Counter(tokens + specials).most_common(1)[0]
        raise PretrainedError(f"cannot save in GPT-2's format: {count} ids are the token "
                              f"{token!r}, and vocab.json gives each token one id")
    for token in specials:        # ours decodes a special token as its text; transformers may not
        theirs = _decoded_otherwise(token)
        if theirs is not None:
            raise PretrainedError(f"cannot save in GPT-2's format: transformers would decode "
                                  f"special token {shown(token)} as {shown(theirs)}, reading "
                                  f"each character as the byte it spells in GPT-2's "
                                  f"vocabulary; name it with ASCII characters alone")
    _check_no_other_tokenizer_json(tokenizer, directory)
    os.makedirs(directory, exist_ok=True)
    # transformers' GPT2Tokenizer takes GPT-2's <|endoftext|> as its bos, eos and unk token
    # unless told otherwise, and would add it as a new id to a vocabulary without it.
    eot = END_OF_TEXT if END_OF_TEXT in specials else None
    config = {
        "tokenizer_class": "GPT2Tokenizer",
        "added_tokens_decoder": {
            str(tokenizer.special_id(token)): {
                "content": token, "special": True,
                "lstrip": token in tokenizer.lstrip_tokens,
                "rstrip": token in tokenizer.rstrip_tokens,
                "normalized": False, "single_word": False}
            for token in specials},
        "bos_token": eot, "eos_token": eot, "unk_token": eot,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,     # decode gives the text back as it was
    }
    with atomic_write(os.path.join(directory, VOCAB_JSON), encoding="utf-8") as f:
        json.dump(vocab, f)
    with atomic_write(os.path.join(directory, MERGES_TXT), encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.writelines(f"{tokens[a]} {tokens[b]}\n" for a, b in tokenizer.merges)
    with atomic_write(os.path.join(directory, TOKENIZER_CONFIG), encoding="utf-8") as f:
        json.dump(config, f, indent=2)


def _check_no_other_tokenizer_json(tokenizer, directory):
    """PretrainedError, one line, if `directory` holds a tokenizer.json of another tokenizer
    than `tokenizer`: transformers' AutoTokenizer reads a tokenizer.json in place of GPT-2's
    files beside it (so does load_model, as transformers does), so the tokenizer saved there
    would not be the one read. A tokenizer.json of this very tokenizer (GPT-2's model page
    has both layouts of its one tokenizer) is left there."""
    path = os.path.join(os.fspath(directory), TOKENIZER_JSON)
    if not os.path.lexists(path):
        return
    try:
        there = _gpt2_tokenizer(directory, *_gpt2_tokenizer_json(path))
        same = (there.merges, there.special_tokens, there.byte_order) == \
            (tokenizer.merges, tokenizer.special_tokens, tokenizer.byte_order)
    except PretrainedError:                 # not GPT-2's, or not readable: not this tokenizer
        same = False
    if not same:
        raise PretrainedError(f"{path} holds another tokenizer, which transformers reads in "
                              f"place of the {VOCAB_JSON} and {MERGES_TXT} that this would "
                              f"write beside it; remove it, or save into another directory")


def load_gpt2_tokenizer(directory: StrPath) -> BPETokenizer:
    """GPT-2's tokenizer from `directory`: vocab.json and merges.txt (as OpenAI's GPT-2 and
    `save_gpt2_tokenizer` write them) with the added tokens of tokenizer_config.json if there
    is one (of added_tokens.json where it lists none, as older transformers wrote), or
    tokenizer.json (what transformers 5's save_pretrained writes, the same vocabulary and
    merges in one file), which is read where there are both, as transformers reads it. The
    vocabulary must have our shape: ids 0-255 the
    single bytes (in any order), id 256 + k made by merge k, then only special tokens, each
    <|endoftext|> or named special by the files beside it, as transformers takes them, and
    each decoded by transformers as its text (as save_gpt2_tokenizer writes only such: not
    "<|café|>", whose characters transformers reads as bytes); a PretrainedError (a
    ValueError) of one line names the file and what is wrong."""
    tokenizer_json = os.path.join(directory, TOKENIZER_JSON)
    if os.path.exists(os.path.join(directory, TOKENIZER_MODEL)) and not any(
            os.path.exists(os.path.join(directory, name))
            for name in (VOCAB_JSON, MERGES_TXT, TOKENIZER_JSON)):
        raise PretrainedError(tokenizer_model_advice(directory))
    # Where there are both, transformers' AutoTokenizer reads the tokenizer.json (and so does
    # load_model): so does this, whatever vocab.json says.
    if os.path.exists(tokenizer_json):
        return _gpt2_tokenizer(directory, *_gpt2_tokenizer_json(tokenizer_json))
    return _gpt2_tokenizer(directory, *_read_vocab_and_merges(directory))


def _gpt2_tokenizer(directory, vocab, merges, added, where):
    """load_gpt2_tokenizer's BPETokenizer from the parts of one of GPT-2's layouts (as
    _read_vocab_and_merges or _gpt2_tokenizer_json give them), checked."""
    if not (isinstance(vocab, dict) and all(type(i) is int for i in vocab.values())):
        raise PretrainedError(f"{where['vocab']}: expected a JSON object of token -> id")
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise PretrainedError(f"{where['vocab']}: the ids must be 0, 1, 2, ... each once, with "
                              f"no gaps")
    tokens = sorted(vocab, key=vocab.get)                               # id -> token
    if len(tokens) < 256:
        raise PretrainedError(f"{where['vocab']}: ids 0-255 must be the 256 single bytes, "
                              f"spelled as GPT-2's bytes_to_unicode spells them; it has "
                              f"{len(tokens)} ids")
    for i, token in enumerate(tokens[:256]):
        if token not in BYTE_OF:
            made = {"".join(parts) for _, parts in merges if isinstance(parts, list)
                    and all(isinstance(part, str) for part in parts)}
            # No merge makes it: a special token. The tokenizers library's trainer puts those
            # it is given first, GPT-2 and add_special_tokens after the merges.
            advice = ("" if token in made else "; a trainer given special tokens puts them "
                      "first: train without them, then add them with add_special_tokens, which "
                      "gives them the last ids")
            raise PretrainedError(f"{where['vocab']}: id {i} is {shown(token)}, where ids "
                                  f"0-255 must be the 256 single bytes, spelled as GPT-2's "
                                  f"bytes_to_unicode spells them{advice}")

    merge_ids = []
    for k, (place, parts) in enumerate(merges):
        new_id = 256 + k
        if not (isinstance(parts, list) and len(parts) == 2
                and all(isinstance(part, str) and vocab.get(part, new_id) < new_id
                        for part in parts)):
            raise PretrainedError(f"{where['merges']}, {_place(place)} is not two tokens of the "
                                  f"vocabulary with ids below {new_id}")
        if vocab.get("".join(parts)) != new_id:
            raise PretrainedError(f"{where['merges']}, {_place(place)} makes merge {k}, so the "
                                  f"vocabulary should give {shown(''.join(parts))} the id "
                                  f"{new_id}, not {vocab.get(''.join(parts))}")
        merge_ids.append([vocab[part] for part in parts])

    # After the merges come the special tokens: those of the vocabulary, then any added
    # tokens it lacks (each must take the next id).
    special_tokens = tokens[256 + len(merges):]
    _check_tokens_after_the_merges(vocab, merges, special_tokens,
                                   {token for _, token, *_ in added} | _named_special(directory),
                                   where)
    for i, token, special, _ in added:
        if type(i) is not int or not isinstance(token, str):
            raise PretrainedError(f"{where['added']}: added token {shown(token)} has id "
                                  f"{shown(i)}; expected a string and a whole number")
        if not special:
            raise PretrainedError(f"{where['added']}: added token {shown(token)} is not special; "
                                  f"tinyformer reads only special added tokens")
    for i, token, *_ in sorted(added):
        if i == len(tokens):
            tokens.append(token)
            special_tokens.append(token)
        elif not (256 + len(merges) <= i < len(tokens) and tokens[i] == token):
            raise PretrainedError(f"{where['added']}: added token {shown(token)} has id {i}; only "
                                  f"special tokens after the merges are supported")
    # As save_gpt2_tokenizer refuses to write it: a special token that transformers decodes
    # otherwise than as its text, as ours decodes it. Read, its id would decode differently
    # in each.
    for token in special_tokens:
        theirs = _decoded_otherwise(token)
        if theirs is not None:
            path = where["vocab"] if token in vocab else where["added"]
            instead = ("read_tokenizer_json reads its folder as transformers does, but "
                       "cannot save it" if path.endswith(TOKENIZER_JSON)
                       else "rename the token in the files with ASCII characters alone")
            raise PretrainedError(f"{path}: transformers decodes special token {shown(token)} "
                                  f"as {shown(theirs)}, reading each character as the byte it "
                                  f"spells in GPT-2's vocabulary, where tinyformer's BPE "
                                  f"decodes a special token as its text; {instead}")
    lstrip = [token for _, token, _, sides in added if "lstrip" in sides]
    rstrip = [token for _, token, _, sides in added if "rstrip" in sides]
    try:
        return BPETokenizer(merge_ids, special_tokens, [BYTE_OF[token] for token in tokens[:256]],
                            lstrip, rstrip)
    except ValueError as e:
        raise PretrainedError(f"{directory}: not a valid GPT-2 tokenizer: {e}") from None


def _decoded_otherwise(special_token):
    """What transformers' GPT-2 tokenizer decodes `special_token` as, where that is not its
    text; None where it is. Its decoder reads a token whose characters all spell bytes in
    GPT-2's vocabulary as those bytes, a special token too: "<|café|>" comes back
    "<|caf\ufffd|>" (é spells the byte 0xe9). An ASCII token, or one with a character that
    spells no byte (a space, "東"), is its text either way."""
    decoded = _byte_level_decoded(special_token)
    if decoded == special_token.encode("utf-8"):
        return None
    return decoded.decode("utf-8", errors="replace")


def _check_tokens_after_the_merges(vocab, merges, special_tokens, named, where):
    """PretrainedError, one line, unless every token of the vocabulary after the merges is one
    that transformers' GPT2Tokenizer takes as special (<|endoftext|>, or one `named` so): it
    reads any other as plain text, which no merge makes, so that text never encodes to it;
    tinyformer's BPE has no such tokens, and would give it its id. The first such token is most
    often a merge's: a merges.txt cut short, or empty, leaves the vocabulary's later merged
    tokens after the merges. A merge makes a token of two earlier ones joined, which no special
    token is (but an added one may be)."""
    named = {END_OF_TEXT, *named}
    unnamed = [token for token in special_tokens if token not in named]
    if not unnamed:
        return
    first, new_id = special_tokens[0], 256 + len(merges)
    if first not in named and any(vocab.get(first[:k], new_id) < new_id
                                  and vocab.get(first[k:], new_id) < new_id
                                  for k in range(1, len(first))):
        raise PretrainedError(f"{where['merges']} ends after {len(merges)} merges, but "
                              f"{where['vocab']} goes on with id {new_id} {shown(first)}, two "
                              f"earlier tokens joined, as a merge makes: the merges are cut "
                              f"short; fetch the files again, both from the same model page")
    raise PretrainedError(f"{where['vocab']}: id {vocab[unnamed[0]]} {shown(unnamed[0])} comes "
                          f"after the merges, but no file names it a special token, so "
                          f"transformers reads it as plain text; name it in "
                          f"{TOKENIZER_CONFIG}'s \"additional_special_tokens\" (or fetch the "
                          f"model's {TOKENIZER_CONFIG})")


# The settings of tokenizer_config.json and special_tokens_map.json that make a token special
# to transformers' tokenizers: each one ending in _token (eos_token, ...), a token or an
# AddedToken ({"content": token, ...}), and the lists of others.
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
SPECIAL_TOKEN_LISTS = ("additional_special_tokens", "extra_special_tokens")


def _named_special(directory):
    """The tokens that `directory`'s tokenizer_config.json and special_tokens_map.json name
    special, as transformers reads them (a file that is not a JSON object names none)."""
    named = set()
    for name in (TOKENIZER_CONFIG, SPECIAL_TOKENS_MAP):
        path = os.path.join(directory, name)
        settings = _read_hf_file(path) if os.path.exists(path) else {}
        if not isinstance(settings, dict):
            continue
        for key, value in settings.items():
            if key in SPECIAL_TOKEN_LISTS:          # a list, or a dict of name: token
                values = (value.values() if isinstance(value, dict)
                          else value if isinstance(value, list) else [])
            elif key.endswith("_token"):             # eos_token, bos_token, ...
                values = [value]
            else:
                continue
            for token in values:
                token = token.get("content") if isinstance(token, dict) else token
                if isinstance(token, str):
                    named.add(token)
    return named


def _place(place):
    """Where a merge is, for a message: ("line", 5, "a b") is "line 5: 'a b'", ("merge", 3,
    "a b") "merge 3 'a b'". Kept apart until a message needs it, and then cut short: a line
    of a stranger's file may be megabytes long, and a tokenizer has many merges."""
    what, number, written = place
    return f"{what} {number}{':' if what == 'line' else ''} {shown(written)}"


def _read_vocab_and_merges(directory):
    """GPT-2's own files: (vocab, merges as (_place's place, [a, b]), added tokens as (id, token,
    special), {what: which file})."""
    vocab_path, merges_path = (os.path.join(directory, name) for name in (VOCAB_JSON, MERGES_TXT))
    config_path = os.path.join(directory, TOKENIZER_CONFIG)
    vocab = _read_hf_file(vocab_path)
    lines = _read_hf_file(merges_path).splitlines()
    skip = 1 if lines and lines[0].startswith("#version") else 0
    merges = [(("line", n, line), line.split(" "))
              for n, line in enumerate(lines[skip:], start=skip + 1) if line]
    config = _read_hf_file(config_path) if os.path.exists(config_path) else {}
    # (Beside a tokenizer.json, which is read instead, add_prefix_space alone is heeded.)
    _refuse_additions(directory, ADDED_TO_THE_TEXT)
    added_path = os.path.join(directory, ADDED_TOKENS_JSON)
    if isinstance(config, dict) and "added_tokens_decoder" not in config \
            and os.path.exists(added_path):
        return vocab, merges, _legacy_added_tokens(directory, added_path), {
            "vocab": vocab_path, "merges": merges_path, "added": added_path}
    try:
        added = [(int(i), entry["content"], entry)
                 for i, entry in config.get("added_tokens_decoder", {}).items()]
    except (AttributeError, KeyError, TypeError, ValueError):
        raise PretrainedError(f"{config_path}: expected an object whose "
                              f"\"added_tokens_decoder\" maps each id to "
                              f"{{\"content\": token, ...}}") from None
    for _, token, entry in added:
        check_added_token(config_path, token, entry)
    named = _gpt2_special(directory)
    added = [(i, token, _is_special(entry, token, named), _sides_taken(entry))
             for i, token, entry in added]
    return vocab, merges, added, {"vocab": vocab_path, "merges": merges_path,
                                  "added": config_path}


# Where transformers before 4.34 kept the tokens added to GPT-2's vocabulary ({token: id}),
# and where transformers still reads them from when tokenizer_config.json has no
# "added_tokens_decoder": a fine-tuned model's <pad>, say, whose id its embedding has.
ADDED_TOKENS_JSON = "added_tokens.json"


def _legacy_added_tokens(directory, path):
    """The added tokens of added_tokens.json, as (id, token, special, ()), each special, as
    transformers takes it, where the files beside it name it so (or it is <|endoftext|>)."""
    tokens = _read_hf_file(path)
    if not (isinstance(tokens, dict) and all(type(i) is int for i in tokens.values())):
        raise PretrainedError(f"{path}: expected a JSON object of token -> id")
    named = _gpt2_special(directory)
    return [(i, token, token in named, ()) for token, i in tokens.items()]


def _gpt2_special(directory):
    """The tokens transformers' GPT-2 tokenizer takes as special whatever its added tokens
    say: those `directory`'s files name special, and <|endoftext|>, its default eos_token."""
    return {END_OF_TEXT, *_named_special(directory)}


def _is_special(entry, token, named):
    """Whether transformers takes the added token `token` of `entry` as special: as its
    "special" says; where the entry has none, as transformers' AddedToken defaults (False),
    unless `named` (_gpt2_special's) holds it."""
    return entry["special"] if "special" in entry else token in named


def _sides_taken(entry):
    """The sides, of "lstrip" and "rstrip", whose whitespace the added token of `entry` (as
    tokenizer_config.json or tokenizer.json writes it) takes into it."""
    return tuple(side for side in ("lstrip", "rstrip") if entry.get(side))


def _gpt2_tokenizer_json(path):
    """The same from a tokenizer.json, which must describe GPT-2's byte-level BPE (other BPEs
    cut and spell text differently): its stages are judged as read_tokenizer_json judges them,
    then those that GPT-2's lacks are refused, the first named."""
    data, vocab, merges, added = _parse_tokenizer_json(path)
    try:
        normalization, steps = _stages(data, path)
        pre_tokenizer = data["pre_tokenizer"]
        stages = [stage.get("type") for stage in pre_tokenizer.get("pretokenizers",
                                                                  [pre_tokenizer])]
        ignore_merges = data["model"].get("ignore_merges")
    except MALFORMED as e:
        raise _malformed(path, e) from None
    # BPETokenizer does GPT-2's stages alone: no normaliser, GPT-2's pattern alone to cut the
    # text into words, every word merged (ignore_merges takes those of the vocabulary whole).
    if normalization is not None:
        _not_gpt2(path, f"normalizer {normalization!r}", "GPT-2's BPE changes no text")
    if steps == [("bytelevel", False)]:
        _not_gpt2(path, "pre_tokenizer ByteLevel has use_regex false", "GPT-2's BPE cuts the "
                  "text into words by its pattern first")
    if steps != [("bytelevel", True)]:
        _not_gpt2(path, f"pre_tokenizer {' then '.join(map(repr, stages))}", "GPT-2's BPE "
                  "cuts the text by its own pattern alone")
    if ignore_merges:
        _not_gpt2(path, "model ignore_merges is true", "GPT-2's BPE merges every word, even "
                  "one of the vocabulary")
    # With a tokenizer.json, transformers' GPT2Tokenizer heeds add_prefix_space alone.
    _refuse_additions(os.path.dirname(path), ["add_prefix_space"])
    for _, token, entry in added:
        check_added_token(path, token, entry)
    named = _gpt2_special(os.path.dirname(path))
    added = [(i, token, _is_special(entry, token, named), _sides_taken(entry))
             for i, token, entry in added]
    return vocab, merges, added, {"vocab": path, "merges": path, "added": path}


def _not_gpt2(path, what, why):
    raise PretrainedError(f"{path}: {what}: {why}; tinyformer's own BPE (BPETokenizer, which a "
                          f"run saves) is GPT-2's alone: `tinyformer tokenize` and "
                          f"read_tokenizer_json read such a tokenizer, but cannot save it")


# What a Hugging Face file read by _read_hf_file is, to the user: (what to do when it cannot
# be read, what it is not when it cannot be parsed).
GPT2_TOKENIZER = ("a GPT-2 tokenizer directory holds vocab.json and merges.txt "
                  "(save_gpt2_tokenizer and `tinyformer export` write them), or tokenizer.json",
                  "a GPT-2 tokenizer file")
GENERATION = ("restore it from the model's page, or delete it (config.json then says where a "
              "text ends)", "a generation config")


def _read_hf_file(path, kind=GPT2_TOKENIZER):
    """The text of a Hugging Face file (parsed, for .json), or a one-line PretrainedError
    naming it, in the words of its `kind`."""
    advice, what = kind
    try:
        # Not a pipe or a device (a link to /dev/zero): reading one waits or fills the memory.
        with open_regular(path, "r", encoding="utf-8") as f:
            text = f.read()
        return json.loads(text) if path.endswith(".json") else text
    except NotRegularFile as e:             # a ValueError, but not the JSON's
        raise PretrainedError(str(e)) from None
    except OSError as e:
        raise PretrainedError(f"{path}: cannot read it ({e.strerror}); {advice}") from None
    # ValueError: not UTF-8, not JSON, or a whole number of more digits than Python converts
    except (ValueError, RecursionError) as e:
        raise PretrainedError(f"{path}: not {what} ({e}); {advice}") from None


# tokenizer_config.json's switches for what transformers' tokenizer adds to every text beyond
# what the vocabulary and merges say (GPT2Tokenizer and Qwen2Tokenizer heed them): its ids would
# be other than ours, so a tokenizer that turns one on is refused rather than read without it.
# Each: (what transformers adds, what the user writes instead to get its ids with the switch
# off: the same text, so the same ids).
ADDED_TO_THE_TEXT = {
    "add_prefix_space": ("a space in front of each text", "begin each text with a space"),
    "add_bos_token": ("the begin-of-text token in front of each text",
                      "begin each text with its bos_token, read as one token (--allow-special, "
                      "where a command takes it; allow_special=True in Python)"),
    "add_eos_token": ("the end-of-text token after each text",
                      "end each text with its eos_token, read as one token (--allow-special, "
                      "where a command takes it; allow_special=True in Python)")}


def _refuse_additions(directory, settings):
    """PretrainedError, one line, if `directory`'s tokenizer_config.json turns on any of
    `settings` (names in ADDED_TO_THE_TEXT)."""
    path = os.path.join(directory, TOKENIZER_CONFIG)
    config = _read_hf_file(path) if os.path.exists(path) else {}
    for setting in settings:
        if isinstance(config, dict) and config.get(setting) is True:
            added, instead = ADDED_TO_THE_TEXT[setting]
            raise PretrainedError(f"{path}: {setting} is true: transformers' tokenizer adds "
                                  f"{added}, which tinyformer's does not; set it to false "
                                  f"there, and {instead}")


# An added token's settings that change which text it matches, in transformers' tokenizers
# (GPT-2's, Llama's, Qwen's): their ids would be other than ours, which match the token
# anywhere. ("normalized" is reproduced: ByteLevelBPE finds such a token in the normalised
# text, as the library does. GPT-2's files have no normaliser, so there it changes nothing.
# "lstrip" and "rstrip", the whitespace taken into the token, are read: special_spans.)
MATCHED_OTHERWISE = {"single_word": "it matches the token only as a whole word"}


def check_added_token(path: StrPath, token: str, entry: dict) -> None:
    """PretrainedError, one line naming the file at `path`, if the added token `token`'s
    `entry` (its settings, as tokenizer.json or tokenizer_config.json writes them) turns on
    any of MATCHED_OTHERWISE; false or absent is as tinyformer reads it."""
    for setting, effect in MATCHED_OTHERWISE.items():
        if isinstance(entry, dict) and entry.get(setting):
            raise PretrainedError(f"{path}: added token {shown(token)} has {setting}: {effect}, "
                                  f"which tinyformer's tokenizers do not")


# --------------------------------------------------------------------------------------------
# tokenizer.json: the tokenizers library's file, GPT-2's (transformers 5 writes it) and every
# Llama's and Qwen's. Both readers take its parts from here, then check and build their own.

TOKENIZER_JSON = "tokenizer.json"
# What a tokenizer.json without a part its reader looks for raises: a missing key, a list
# where an object should be, ...
MALFORMED = (KeyError, TypeError, AttributeError, IndexError)


def _parse_tokenizer_json(path):
    """(the whole file as a dict, for its pipeline's stages; the BPE's vocabulary, token -> id;
    its merges as (_place's place, [a, b]), in order; its added tokens as (id, token, the
    entry, with "special", "lstrip", ...)), as written but for the added tokens' ids, which
    are those the tokenizers library gives them: each reader checks what it needs of them. A
    PretrainedError of one line, naming the file, if it cannot be read, is not JSON, or lacks
    these parts."""
    try:
        # A folder, a pipe or a device (a link to /dev/zero) is no tokenizer.json, whatever
        # the model: reading one would fail, wait forever, or never end.
        with open_regular(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except NotRegularFile as e:             # a ValueError, but not the JSON's
        raise PretrainedError(str(e)) from None
    except OSError as e:
        raise PretrainedError(f"{path} cannot be read ({e.strerror})") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        try:                                        # Qwen's tokenizer.json is kept in LFS
            with open(path, "rb") as f:
                pointer = f.read(len(LFS_POINTER)) == LFS_POINTER
        except OSError:                             # (gone since it was read: not JSON)
            pointer = False
        if pointer:
            raise PretrainedError(lfs_pointer_message(path)) from None
        raise PretrainedError(f"{path} is not valid JSON ({type(e).__name__})") from None
    kind = data.get("type") if isinstance(data, dict) else None
    if isinstance(kind, str) and kind in TOKENIZERS:    # as a run or `tokenize train` saves one
        raise PretrainedError(f"{path} is a tokenizer file of tinyformer's, not the tokenizers "
                              f"library's: read it with load_tokenizer, or beside a model name "
                              f"it {PRETRAINED_TOKENIZER}, as `tinyformer export` does")
    try:
        model = data["model"]
        if model.get("type") not in ("BPE", None):         # a WordPiece's has no merges
            _refuse(path, f"model type {model.get('type')!r}", "not byte-pair encoding")
        # Merges are "a b" strings in older files, [a, b] pairs in newer ones.
        merges = [(("merge", k, pair), pair.split(" ") if isinstance(pair, str) else pair)
                  for k, pair in enumerate(model["merges"])]
        # An added token of no text would be found between every two characters: the
        # library skips it, special or not, and gives it no id.
        added = [(entry["id"], entry["content"], entry)
                 for entry in data.get("added_tokens", []) if entry["content"] != ""]
        return data, model["vocab"], merges, _numbered_as_the_library_does(model["vocab"], added)
    except MALFORMED as e:
        raise _malformed(path, e) from None


def _numbered_as_the_library_does(vocab, added):
    """`added`, as (id, token, entry), with the ids the tokenizers library gives them. It does
    not take them from the file (it only warns where they differ): a token of the vocabulary
    has its id there, and each other the next id from the vocabulary's count of tokens on, in
    the file's order. What the library refuses (an id that is not a whole number from 0 to
    2**32 - 1, a token that is not a string, a vocabulary that is not an object) is left as it
    is, for the reader to refuse."""
    if not isinstance(vocab, dict):
        return added
    given, next_id, numbered = {}, len(vocab), []
    for i, token, entry in added:
        if type(i) is int and 0 <= i < 2**32 and isinstance(token, str):
            if token not in given:                   # a token listed twice has one id
                given[token] = vocab[token] if token in vocab else next_id
                next_id += token not in vocab
            i = given[token]
        numbered.append((i, token, entry))
    return numbered


def _byte_level_settings(stage, path):
    """A ByteLevel pre-tokenizer's (add_prefix_space, use_regex). The tokenizers library
    refuses a file where either is anything but true or false ("yes", 1, null), or where
    add_prefix_space is left out (use_regex left out is true); so does this, in one line."""
    written = {"use_regex": True, **stage}
    for name in ("add_prefix_space", "use_regex"):
        if not isinstance(written.get(name), bool):
            got = json.dumps(written[name]) if name in written else "nothing"
            raise PretrainedError(f"{path}: pre_tokenizer ByteLevel's {name} must be true or "
                                  f"false, got {got}")
    return written["add_prefix_space"], written["use_regex"]


def _malformed(path, error):
    """The one-line error for a tokenizer.json that lacks a part (one of MALFORMED's)."""
    return PretrainedError(f"{path} is not a tokenizers-library tokenizer.json "
                           f"({type(error).__name__}: {error})")


# --------------------------------------------------------------------------------------------
# The tokenizer in a model's directory, whatever the model: tokenizer.json
#
# The tokenizers library describes a tokenizer as a pipeline, and tokenizer.json holds each
# stage. SmolLM's and Qwen's are byte-level BPEs like GPT-2's, with other stages around the
# merges:
#
#     added tokens    split the text at them first: "<|im_start|>" is one token, never merged
#                     (those marked "normalized" after the normalizer, in the normalised text)
#     normalizer      none (SmolLM), or NFC (Qwen): one Unicode spelling of each character
#     pre-tokenizer   cut the text into chunks that merges never cross: GPT-2's pattern
#                     (ByteLevel with use_regex), after each digit on its own (SmolLM's
#                     Digits), or a pattern of its own (Qwen's and Llama 3's Split)
#     model           byte-level BPE: each chunk's UTF-8 bytes, merged by the merges' ranks
#     decoder         ByteLevel: the tokens' bytes joined and read as UTF-8
#
# tokenizers.py's BPETokenizer holds the vocabulary in our order (bytes first, merge k making
# id 256 + k); these vocabularies put their ids anywhere (SmolLM's special tokens come first)
# and their merges make tokens whose ids are not their ranks. ByteLevelBPE keeps both maps,
# and does every stage above exactly; a tokenizer.json with any other stage, or a setting
# that changes what one does, is refused in one line naming it.


class ByteLevelBPE(Tokenizer):
    """A byte-level BPE read from a tokenizers-library tokenizer.json (`read_tokenizer_json`),
    encoding and decoding as the tokenizers library does. Special tokens written in the text
    are recognised with allow_special=True (as for every tokenizer here); other added tokens
    (Qwen's <think>, say) always, as the tokenizers library does. A lone surrogate in the text
    is refused in one line naming its position, as BPETokenizer refuses it."""

    kind = "tokenizer.json"
    byte_level = True
    CACHE_LIMIT = 100_000          # chunks whose encoding is remembered (bounds the memory)

    def __init__(self, pieces: list[bytes], byte_ids: list[int],
                 ranks: dict[tuple[int, int], tuple[int, int]], added: dict[str, int],
                 special: list[str], steps: list[tuple], normalization: str | None,
                 ignore_merges: bool, normalized: set[str], lstrip: Collection[str] = frozenset(),
                 rstrip: Collection[str] = frozenset()) -> None:
        super().__init__(special, 0, [token for token in special if token in lstrip],
                         [token for token in special if token in rstrip])
        self._special_ids = {token: added[token] for token in special}    # their own ids
        self._normalization = normalization            # "NFC", ..., or None
        # The added tokens to find, with special_tokens allowed or not: the other added tokens
        # are found in any text, special ones only when allowed. Those marked "normalized" are
        # found, as the library finds them, in the normalised text, as normalised themselves;
        # the others in the text as written. Each kind: (token -> id, its pattern, those of
        # its tokens that take the whitespace before them (lstrip), and after them (rstrip)).
        self._marked = {}
        lstrip_ids = {added[token] for token in lstrip}
        rstrip_ids = {added[token] for token in rstrip}
        for allow in (False, True):
            tokens = {token: i for token, i in added.items() if allow or token not in special}
            as_written = {token: i for token, i in tokens.items() if token not in normalized}
            in_normal = {_normalized(self._normalization, token): i for token, i in tokens.items()
                         if token in normalized}
            # (each pattern tries the longest token first, as the library matches)
            self._marked[allow] = [
                (found, special_pattern(list(found), "added token"),
                 {form for form, i in found.items() if i in lstrip_ids},
                 {form for form, i in found.items() if i in rstrip_ids})
                for found in (as_written, in_normal)]
        self._pieces = pieces                          # id -> its bytes
        self._byte_ids = byte_ids                      # byte -> id
        self._ranks = ranks                            # (id, id) -> (rank, merged id)
        self._steps = steps                            # the pre-tokenizer's, in order
        self._whole = {piece: i for i, piece in enumerate(pieces)
                       if i not in added.values()} if ignore_merges else None
        self._cache = {}

    @property
    def _own_size(self) -> int:
        return len(self._pieces)

    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        try:        # before normalising, which would move the position the error names
            text.encode("utf-8")
        except UnicodeEncodeError as e:     # (a chunk's, raw, gave the chunk's index)
            raise lone_surrogate(text[e.start], e.start) from None
        # The library's two passes: the added tokens found in the text as written first; then
        # each piece between them normalised, and the "normalized" ones found in that.
        as_written, in_normal = self._marked[allow_special]
        ids = []
        for piece, token_id in _marked_pieces(text, *as_written):
            if token_id is not None:
                ids.append(token_id)
                continue
            normal = _normalized(self._normalization, piece)
            for part, part_id in _marked_pieces(normal, *in_normal):
                ids += [part_id] if part_id is not None else self._encode_normalized(part)
        return ids

    def _encode_normalized(self, text):
        ids = []
        for chunk in self._chunks(text):
            if chunk not in self._cache:
                if len(self._cache) >= self.CACHE_LIMIT:
                    self._cache.clear()
                self._cache[chunk] = self._encode_chunk(chunk)
            ids.extend(self._cache[chunk])
        return ids

    def _chunks(self, text):
        """The pre-tokenizer: each step cuts every chunk so far into smaller ones."""
        chunks = [text] if text else []
        for kind, setting in self._steps:
            if kind == "split":          # the pattern's matches, and what lies between them
                chunks = [piece for chunk in chunks for piece, _ in _isolated(setting, chunk)]
            elif kind == "digits":       # digits (any Unicode number) alone, or in runs
                chunks = [piece for chunk in chunks for piece in _digit_runs(chunk, setting)]
            elif setting:                # ByteLevel with use_regex: GPT-2's chunks
                chunks = [piece for chunk in chunks for piece in pre_split(chunk)]
        return chunks

    def _encode_chunk(self, chunk):
        data = chunk.encode("utf-8")
        if self._whole is not None and data in self._whole:     # ignore_merges: a whole word
            return [self._whole[data]]
        return apply_merges([self._byte_ids[b] for b in data], self._ranks)

    def _piece(self, i):
        return self._pieces[i]

    @staticmethod
    def _join(pieces):
        return b"".join(pieces).decode("utf-8", errors="replace")

    @staticmethod
    def _readable(piece):
        return piece.decode("utf-8", errors="backslashreplace")

    def save(self, path: StrPath) -> None:
        raise ValueError(f"a tokenizer read from a tokenizer.json is not saved as {path}: keep "
                         f"the tokenizer.json it was read from")


def _normalized(normalization, text):
    """`text` in the Unicode normal form `normalization` ("NFC", ...; None: as it is)."""
    return text if normalization is None else unicodedata.normalize(normalization, text)


def _marked_pieces(text, tokens, pattern, lstrip, rstrip):
    """`text` cut at the added tokens that `pattern` finds (None: there are none): a list of
    (piece, None) for the text between them and (token, its id from `tokens`) for each, the
    whitespace it takes (`lstrip`, `rstrip`: special_spans') in the token's piece."""
    pieces, start = [], 0
    for begin, end, token in special_spans(pattern, text, lstrip, rstrip):
        pieces += [(text[start:begin], None), (text[begin:end], tokens[token])]
        start = end
    pieces.append((text[start:], None))
    return [(piece, token_id) for piece, token_id in pieces if piece]


def _isolated(pattern, text):
    """`text` cut at the matches of `pattern` (None: there are none), each match a piece of
    its own (the tokenizers library's Split with behavior "Isolated"): a list of (piece,
    whether it is a match), empty pieces left out. A match of no characters cuts there too,
    as in the library."""
    pieces, start = [], 0
    for match in (pattern.finditer(text) if pattern is not None else ()):
        pieces += [(text[start:match.start()], False), (match.group(), True)]
        start = match.end()
    pieces.append((text[start:], False))
    return [(piece, found) for piece, found in pieces if piece]


def _digit_runs(text, individual):
    """`text` with its numbers cut out (categories Nd, Nl, No, as Rust's char::is_numeric):
    each alone if `individual`, else each run of them together."""
    pieces = []
    for c in text:
        numeric = unicodedata.category(c)[0] == "N"
        if pieces and not numeric and not pieces[-1][1]:
            pieces[-1][0] += c
        elif pieces and numeric and pieces[-1][1] and not individual:
            pieces[-1][0] += c
        else:
            pieces.append([c, numeric])
    return [piece for piece, _ in pieces]


def read_tokenizer_json(directory: StrPath, vocab_size: int | None = None) -> ByteLevelBPE:
    """The ByteLevelBPE of `directory`'s tokenizer.json, with ids up to `vocab_size` (a model's
    embedding may have more rows than the tokenizer has tokens, as Qwen's does: those ids
    decode to nothing). PretrainedError, one line, for a tokenizer it cannot reproduce."""
    directory = os.fspath(directory)
    path = os.path.join(directory, TOKENIZER_JSON)
    if not os.path.lexists(path):
        raise _no_tokenizer_json(directory)
    data, vocab, merges, added = _parse_tokenizer_json(path)
    _refuse_additions(directory, ["add_prefix_space"])
    try:
        tokenizer = _byte_level_bpe(data, vocab, merges, added, path, vocab_size)
    except MALFORMED as e:
        raise _malformed(path, e) from None
    if vocab_size is not None:
        try:
            tokenizer.pad_to(vocab_size)
        except ValueError as e:
            raise PretrainedError(f"{path}: {e}; they must belong together") from None
    return tokenizer


def _no_tokenizer_json(directory):
    """The one-line error for a `directory` without a tokenizer.json: what it holds instead
    (GPT-2's tokenizer files, a tokenizer.model, a file of ours, a model alone) and what to
    give."""
    def has(name):
        return os.path.exists(os.path.join(directory, name))
    if os.path.isfile(directory):
        return PretrainedError(f"{directory!r} is a file; give its folder, "
                               f"{folder_of(directory)!r}")
    if not os.path.isdir(directory):
        return PretrainedError(f"{why_not_a_directory(directory)}; give the folder of a "
                               f"{TOKENIZER_JSON}")
    if has(VOCAB_JSON) or has(MERGES_TXT):
        return PretrainedError(f"{directory!r} holds GPT-2's tokenizer files ({VOCAB_JSON} and "
                               f"{MERGES_TXT}), not a {TOKENIZER_JSON}: read them with "
                               f"load_gpt2_tokenizer")
    if has(TOKENIZER_MODEL):
        return PretrainedError(tokenizer_model_advice(directory))
    if has(PRETRAINED_TOKENIZER):
        return PretrainedError(f"{directory!r} holds a tokenizer file of tinyformer's, not a "
                               f"{TOKENIZER_JSON}: read it with load_tokenizer("
                               f"{os.path.join(directory, PRETRAINED_TOKENIZER)!r})")
    what = "has a model but no tokenizer" if has(CONFIG) else f"holds no {TOKENIZER_JSON}"
    return PretrainedError(f"{directory!r} {what}: put the model's {TOKENIZER_JSON} there, "
                           f"from its model page")


def _refuse(path, what, why):
    raise PretrainedError(f"{path}: {what}: {why}; tinyformer reads byte-level BPE tokenizers "
                          f"(as GPT-2's, SmolLM's and Qwen's) only")


def _stages(data, path):
    """A tokenizer.json's stages around its merges, each checked in turn to be one that
    ByteLevelBPE reproduces (_refuse names the first that is not): (the normalizer's Unicode
    form, "NFC", ..., or None; the pre-tokenizer's steps, as _pre_tokenizer_steps gives them).
    Both readers judge a file here; GPT-2's then asks more of it."""
    model = data["model"]
    if model.get("type") != "BPE":                     # (only None is left, read above)
        _refuse(path, f"model type {model.get('type')!r}", "not byte-pair encoding")
    for setting in ("dropout", "byte_fallback", "continuing_subword_prefix",
                    "end_of_word_suffix"):
        # byte_fallback spells a character the vocabulary lacks as <0x..> tokens of its bytes.
        # After a ByteLevel pre-tokenizer every character is one of the 256 bytes' own, which
        # the vocabulary must hold (both readers check it): there it changes nothing, and a
        # file may set it all the same. Elsewhere it is a SentencePiece-style BPE's (Llama 2's).
        if model.get(setting) and not (setting == "byte_fallback" and _has_byte_level(data)):
            _refuse(path, f"model {setting} is {json.dumps(model[setting])}",
                    "it changes how words are cut")
    normalizer = data.get("normalizer")
    # A Sequence applies its normalizers in turn: one of none changes nothing (some models'
    # files write one), one of one is that one; each is read as such, a Sequence in a
    # Sequence too.
    while normalizer is not None and normalizer.get("type") == "Sequence":
        inner = normalizer["normalizers"]
        if inner == []:
            normalizer = None
        elif isinstance(inner, list) and len(inner) == 1 and isinstance(inner[0], dict):
            normalizer = inner[0]
        else:
            break                   # several: refused below, naming them
    normalization = None
    if normalizer is not None:
        normalization = normalizer.get("type")
        if normalization not in ("NFC", "NFD", "NFKC", "NFKD"):
            if normalization == "Sequence":
                inner = [stage.get("type") for stage in normalizer["normalizers"]]
                _refuse(path, f"normalizer 'Sequence' of {', '.join(map(repr, inner))}",
                        "a sequence of several normalizers is not reproduced here")
            _refuse(path, f"normalizer {normalization!r}", "it changes the text in a way not "
                    "reproduced here")
    steps = _pre_tokenizer_steps(data.get("pre_tokenizer"), path)
    post = data.get("post_processor")
    for stage in ([] if post is None else post.get("processors", [post])):
        kind = stage.get("type")
        adds = kind == "TemplateProcessing" and any("Sequence" not in part
                                                    for part in stage["single"])
        if kind not in ("ByteLevel", "TemplateProcessing") or adds:
            _refuse(path, f"post_processor {kind!r}", "it adds tokens around the text")
    decoder = data.get("decoder")
    if decoder is None or decoder.get("type") != "ByteLevel":
        _refuse(path, f"decoder {None if decoder is None else decoder.get('type')!r}",
                "not byte-level decoding")
    return normalization, steps


def _has_byte_level(data):
    """Whether the pre-tokenizer of the tokenizer.json `data` has a ByteLevel step (which
    _pre_tokenizer_steps then requires to be its last)."""
    pre_tokenizer = data.get("pre_tokenizer") or {}
    stages = [pre_tokenizer]
    if pre_tokenizer.get("type") == "Sequence":
        stages = pre_tokenizer.get("pretokenizers", [])
    return any(isinstance(stage, dict) and stage.get("type") == "ByteLevel" for stage in stages)


def _byte_level_bpe(data, vocab, merges, added, path, vocab_size=None):
    """The ByteLevelBPE of a tokenizer.json's parts (as _parse_tokenizer_json gives them), each
    stage checked to be one reproduced here, its ids below the model's `vocab_size` (if known)."""
    model = data["model"]
    normalization, steps = _stages(data, path)
    # The pieces are a list as long as the largest id, so an id is bounded before it is built
    # (one damaged id must not ask for gigabytes): by the model's vocabulary where there is a
    # model (a tokenizer with more tokens than it is refused in read_tokenizer_json, in words
    # that say so); else by twice the file's count of tokens: the library lets a vocabulary
    # skip ids, but one that skips more than it holds is damaged.
    count = len(vocab) + len(added)
    limit = 2 * count if vocab_size is None else max(count, vocab_size)
    added_tokens = {token for _, token, _ in added if isinstance(token, str)}
    pieces = {}
    for token, i in vocab.items():
        if type(i) is not int or i < 0 or i in pieces:
            _refuse(path, f"vocabulary id {shown(i)} of {shown(token)}", "ids must be "
                    "distinct whole numbers")
        if i >= limit:
            raise PretrainedError(
                f"{path}: vocabulary id {i} of {shown(token)} is past " + (
                    f"twice the file's {count} tokens; number the vocabulary 0, 1, 2, ..."
                    if vocab_size is None else f"the model's {vocab_size} ids; the tokenizer "
                    f"and the model must belong together"))
        if not all(char in BYTE_OF for char in token) and token not in added_tokens:
            _refuse(path, f"vocabulary token {shown(token)}", "not spelled in bytes")
        # An added token may have characters that spell no byte ("<|café|> ": the space): the
        # library finds it in the text before the merges, and decodes it as its text.
        pieces[i] = _byte_level_decoded(token)
    added_ids, special, normalized = {}, [], set()
    stripped = {"lstrip": set(), "rstrip": set()}     # the tokens that take the whitespace
    for i, token, entry in added:             # numbered as the library numbers them
        if not isinstance(token, str):
            raise PretrainedError(f"{path}: an added token's content is {json.dumps(token)}; "
                                  f"it must be text (a JSON string)")
        check_added_token(path, token, entry)
        if type(i) is not int or not 0 <= i < 2**32:
            _refuse(path, f"added token {shown(token)} has id {shown(i)}", "not a whole "
                    "number from 0 to 4294967295")
        if token in added_ids:                           # listed twice: one token
            continue
        if i in pieces and vocab.get(token) != i:        # the vocabulary's ids skip a number
            raise PretrainedError(f"{path}: the tokenizers library gives added token "
                                  f"{shown(token)} the id {i}, which the vocabulary gives "
                                  f"another token; number the vocabulary 0, 1, 2, ... with no "
                                  f"gaps")
        # The library keeps a "normalized" token as normalised ("café" under NFD as
        # "cafe\u0301"), in the vocabulary or not, and decodes it as its ByteLevel decoder
        # decodes any token.
        pieces[i] = _byte_level_decoded(
            _normalized(normalization, token) if entry.get("normalized") else token)
        added_ids[token] = i
        if entry.get("special"):
            special.append(token)
        if entry.get("normalized"):
            normalized.add(token)
        for side, tokens in stripped.items():
            if entry.get(side):
                tokens.add(token)
    # Two tokens marked "normalized" that normalise alike ("A\u030a" and "\u212b", both
    # "\u00c5" under NFC) are one pattern to find: the library finds either, from one run to
    # the next, so no reading of the file gives its ids.
    found_as = {}
    for token in added_ids:
        if token in normalized:
            form = _normalized(normalization, token)
            if form in found_as:
                # (ascii: the two look alike, written as they are)
                raise PretrainedError(f"{path}: added tokens {ascii(found_as[form])} and "
                                      f"{ascii(token)} are both {ascii(form)} once normalised "
                                      f"({normalization}): "
                                      f"the tokenizers library finds either one, from run to "
                                      f"run; keep one of them")
            found_as[form] = token
    missing = [b for b, char in bytes_to_unicode().items() if char not in vocab]
    if missing:
        _refuse(path, f"the vocabulary lacks the byte 0x{missing[0]:02x}",
                "some texts could not be encoded")
    byte_ids = [vocab[bytes_to_unicode()[b]] for b in range(256)]
    ranks = {}
    for rank, (place, parts) in enumerate(merges):
        if len(parts) != 2 or not all(part in vocab for part in parts) \
                or "".join(parts) not in vocab:
            _refuse(path, _place(place), "its tokens and their join must be in the vocabulary")
        ranks[vocab[parts[0]], vocab[parts[1]]] = (rank, vocab["".join(parts)])
    size = max(pieces) + 1
    try:
        return ByteLevelBPE([pieces.get(i, b"") for i in range(size)], byte_ids, ranks,
                            added_ids, special, steps, normalization,
                            bool(model.get("ignore_merges")), normalized,
                            stripped["lstrip"], stripped["rstrip"])
    except ValueError as e:             # its added tokens: too long, say
        raise PretrainedError(f"{path}: {e}") from None


def _byte_level_decoded(token):
    """The bytes of `token` as the tokenizers library's ByteLevel decoder gives them: the byte
    of each character where every one spells a byte (bytes_to_unicode's, so "\u00ef" is the
    byte 0xef, not the UTF-8 of "ï"), else the token's UTF-8. Only added tokens can be either."""
    if all(char in BYTE_OF for char in token):
        return bytes(BYTE_OF[char] for char in token)
    return token.encode("utf-8")


def _pre_tokenizer_steps(pre_tokenizer, path):
    """The pre-tokenizer as a list of steps ("split", compiled pattern), ("digits",
    individual) and, last, ("bytelevel", use_regex)."""
    if pre_tokenizer is None:
        _refuse(path, "no pre_tokenizer", "a byte-level BPE has a ByteLevel one")
    stages = pre_tokenizer.get("pretokenizers", [pre_tokenizer]) \
        if pre_tokenizer.get("type") == "Sequence" else [pre_tokenizer]
    steps = []
    for stage in stages:
        kind = stage.get("type")
        if steps and steps[-1][0] == "bytelevel":
            _refuse(path, f"pre_tokenizer {kind!r} after ByteLevel", "its chunks would be of "
                    "bytes' characters")
        if kind == "ByteLevel":
            add_prefix_space, use_regex = _byte_level_settings(stage, path)
            if add_prefix_space:
                _refuse(path, "pre_tokenizer ByteLevel has add_prefix_space", "it adds a space "
                        "in front of the text")
            steps.append(("bytelevel", use_regex))
        elif kind == "Digits":
            steps.append(("digits", bool(stage.get("individual_digits"))))
        elif kind == "Split":
            pattern = stage["pattern"]
            if stage.get("behavior") != "Isolated" or stage.get("invert"):
                _refuse(path, f"pre_tokenizer Split with behavior {stage.get('behavior')!r}"
                        f"{' inverted' if stage.get('invert') else ''}", "only Isolated is "
                        "reproduced")
            try:
                compiled = regex.compile(pattern["Regex"] if "Regex" in pattern
                                         else regex.escape(pattern["String"]))
            # A pattern nested thousands deep exhausts the compiler's recursion; one with a
            # count too large for it overflows: neither compiles, as a malformed one does not.
            except (regex.error, RecursionError, OverflowError) as e:
                _refuse(path, "pre_tokenizer Split's pattern", f"it does not compile "
                        f"({e or type(e).__name__})")
            steps.append(("split", compiled))
        else:
            _refuse(path, f"pre_tokenizer {kind!r}", "not a step reproduced here")
    if not steps or steps[-1][0] != "bytelevel":
        _refuse(path, "the pre_tokenizer has no ByteLevel step", "not a byte-level BPE")
    return steps
