"""Checkpoints: a run directory that holds everything needed to use a model or resume its run.

    runs/gpt/
      config.json             the model's class and arguments, the training settings, the step,
                              the optimizer's and random generators' small state, and the name
                              and SHA-256 of each file below. Written last: the commit point.
      tokenizer.json          the tokenizer (JSON)
      weights-000600.npz      the parameters by dotted name, one array each
      optimizer-000600.npz    the optimizer's arrays (Adam's moments), for --resume
      tokens.bin              the tokenised corpus (train, then validation), memory-mapped
      metrics.jsonl           one JSON line a step, appended as training goes

Saving is atomic. The step's weights and optimizer go to new files first; only then is
config.json replaced (write to a temporary file, rename over the old one) to point at them, and
only after that are the previous step's files removed. A crash or kill at any moment leaves a
config.json that names a complete, earlier or later, checkpoint.

Nothing here unpickles: arrays load with `allow_pickle=False`, the rest is JSON. A file that
holds pickled data is refused, since unpickling can run any code.

`load_model` also reads a Hugging Face GPT-2 directory (config.json with a "model_type",
model.safetensors, and the tokenizer as vocab.json + merges.txt): a real GPT-2 downloaded from
its model page, or a model of ours that `export_pretrained` wrote (tinyformer/pretrained.py has
the format). A character-level tokenizer has no GPT-2 form, so an exported character model
keeps its tokenizer as tinyformer-tokenizer.json beside the rest. It reads a Llama or Qwen3
directory (SmolLM's, say) too, with its tokenizer.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from typing import Any, Union

import numpy as np
from numpy.typing import ArrayLike

from tinyautograd import nn

from .bert import BERT
from .files import StrPath, current_umask, atomic_write
from .gpt import GPT
from .layers import default_d_ff
from .pretrained import is_llama_family, read_tokenizer_json
from .schema import Optional, Whole, check_settings
from .rundir import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from .tokenizers import END_OF_TEXT, BPETokenizer, Tokenizer, load_tokenizer
from .transformer import Transformer

FORMAT, VERSION = CHECKPOINT_FORMAT, CHECKPOINT_VERSION
MODELS = {"gpt": GPT, "bert": BERT, "transformer": Transformer}   # config.json's "model"
Model = Union[GPT, BERT, Transformer]                            # one of MODELS


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be used; the message says why and what to do."""


def sha256(path: StrPath) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_arrays(path: StrPath, arrays: dict[str, ArrayLike]) -> None:
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def checkpoint_files(step: int) -> dict[str, str]:
    """The names of the files a checkpoint at `step` is written as (its config.json aside)."""
    return {"weights": f"weights-{step:06d}.npz", "optimizer": f"optimizer-{step:06d}.npz",
            "tokenizer": "tokenizer.json"}


def save_checkpoint(directory: StrPath, config: dict[str, Any], weights: dict[str, np.ndarray],
                    optimizer_arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """Write one checkpoint into `directory` (which already holds tokenizer.json), its
    config.json last: until then the previous checkpoint is the one config.json names. The
    previous checkpoint's files are left for the caller, which knows what it owns, to remove.

    config: a JSON-able dict (the caller's: model, settings, step, small state).
    weights, optimizer_arrays: dicts of name -> numpy array."""
    files = checkpoint_files(config["step"])
    save_arrays(os.path.join(directory, files["weights"]), weights)
    save_arrays(os.path.join(directory, files["optimizer"]), optimizer_arrays)
    config = {"format": FORMAT, "version": VERSION, **config, "files": files,
              "sha256": {name: sha256(os.path.join(directory, name)) for name in files.values()}}
    with atomic_write(os.path.join(directory, "config.json")) as f:
        json.dump(config, f, indent=2)
    return files


def is_pretrained_dir(directory: StrPath) -> bool:
    """True when `directory` holds a Hugging Face model: its config.json names a "model_type"
    (a tinyformer checkpoint's names its "format" instead)."""
    try:
        with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError, RecursionError):   # read_config will say what is wrong
        return False
    return isinstance(config, dict) and "model_type" in config and "format" not in config


def read_config(directory: StrPath) -> dict[str, Any]:
    """The checkpoint's config.json as a dict, with its files present and intact."""
    if not os.path.isdir(directory):
        raise CheckpointError(f"checkpoint {directory!r} is not a directory; give the --out "
                              f"directory of a `tinyformer train` run, or a GPT-2 directory")
    path = os.path.join(directory, "config.json")
    if not os.path.exists(path):
        raise CheckpointError(f"{directory!r} is not a checkpoint: it has no config.json; give "
                              f"the --out directory of a `tinyformer train` run, or a GPT-2 "
                              f"directory (config.json, model.safetensors, and vocab.json + "
                              f"merges.txt or tokenizer.json)")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(f"{path} is corrupted (not valid JSON); the checkpoint cannot be "
                              f"used, train again") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a tinyformer checkpoint config; give the --out "
                              f"directory of a `tinyformer train` run")
    if config.get("version") != VERSION:
        raise CheckpointError(f"{path} is checkpoint format version {config.get('version')}; "
                              f"this tinyformer reads version {VERSION}")
    files, digests = config.get("files"), config.get("sha256")
    if not (isinstance(files, dict) and isinstance(digests, dict)
            and {"weights", "tokenizer"} <= set(files)
            and all(isinstance(n, str) and n == os.path.basename(n) and n in digests
                    for n in files.values())
            and all(isinstance(d, str) for d in digests.values())
            and config.get("model") in MODELS):
        raise CheckpointError(f"{path} is damaged (its model, files or checksums are not as "
                              f"tinyformer wrote them); put back the config.json this run "
                              f"wrote, or train again")
    for name, digest in config["sha256"].items():
        file = os.path.join(directory, name)
        if not os.path.exists(file):
            raise CheckpointError(f"checkpoint {directory!r} is missing {name}; it is "
                                  f"incomplete, train again or restore the file")
        if name != "tokenizer.json" and sha256(file) != digest:   # the tokenizer: see below
            raise CheckpointError(f"{file} is truncated or corrupted (its SHA-256 differs from "
                                  f"the one config.json recorded); restore it or train again")
    return config


def load_arrays(path: StrPath) -> dict[str, np.ndarray]:
    """name -> array from an .npz file, refusing pickled data."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except ValueError as e:        # numpy refused it: pickled data, or a malformed array
        raise CheckpointError(f"{path} cannot be read ({e}); tinyformer never loads pickled "
                              f"data (unpickling can run code): use a checkpoint written by "
                              f"`tinyformer train`, or train again") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{path} is not a readable .npz archive ({e}); restore it or "
                              f"train again") from None


def load_tokenizer_for(directory: StrPath, config: dict[str, Any],
                       vocab_size: int) -> Tokenizer:
    """The checkpoint's tokenizer, checked against the model it belongs to."""
    path = os.path.join(directory, config["files"]["tokenizer"])
    tokenizer = load_tokenizer(path)
    if tokenizer.vocab_size != vocab_size:
        raise CheckpointError(f"{path} does not match the model: it has {tokenizer.vocab_size} "
                              f"tokens, the model {vocab_size}; put back the tokenizer.json "
                              f"this run was trained with")
    if sha256(path) != config["sha256"][config["files"]["tokenizer"]]:
        raise CheckpointError(f"{path} does not match the model: it is not the tokenizer this "
                              f"run was trained with (SHA-256 differs); put that one back")
    return tokenizer


# The sizes in config.json's "model_config", checked before a model is built from them (the
# same rules as the training settings they came from; schema.py).
MODEL_SIZE_RULES = {name: Whole(1, 1 << 22) for name in (
    "vocab_size", "src_vocab_size", "tgt_vocab_size", "context", "n_layer", "n_head",
    "d_model")}
for name in ("d_ff", "n_kv_head", "d_head"):                   # None: from the others
    MODEL_SIZE_RULES[name] = Optional(Whole(1, 1 << 22))


def least_parameters(model_config: dict[str, Any]) -> int:
    """A lower bound on the parameters a model of this config has: its embeddings and its
    blocks' weight matrices (attention's four, the key and value ones narrower with fewer
    key-value heads; the feed-forward network's two, three with SwiGLU; an encoder-decoder's
    decoder has cross-attention's four more). Biases and norms are left out, so a model never
    has fewer."""
    c = model_config
    d = c["d_model"]
    activation = c.get("activation", "gelu")
    d_ff = c.get("d_ff") or default_d_ff(d, activation)
    d_head = c.get("d_head") or d // c["n_head"]
    n_kv_head = c.get("n_kv_head") or c["n_head"]
    attention = 2 * d * c["n_head"] * d_head + 2 * d * n_kv_head * d_head
    block = attention + (3 if activation == "swiglu" else 2) * d * d_ff
    if "src_vocab_size" in c:                         # the encoder-decoder
        return max(c["src_vocab_size"], c["tgt_vocab_size"]) * d + c["n_layer"] * (
            2 * block + attention)
    return c["vocab_size"] * d + c["n_layer"] * block


def check_model_config(model_config: Any, weights: dict[str, np.ndarray], where: str) -> None:
    """CheckpointError unless config.json's model can be built and can hold these weights:
    each size a whole number in range, and no more parameters than the weights have (a
    config.json edited to d_model 100000 would otherwise allocate tens of gigabytes before
    the shapes could disagree)."""
    if not isinstance(model_config, dict):
        raise CheckpointError(f"{where} has no model_config table; train again")
    try:
        check_settings({k: v for k, v in model_config.items() if k in MODEL_SIZE_RULES},
                       MODEL_SIZE_RULES, where=where)
        least = least_parameters(model_config)
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{where} does not describe a model this tinyformer can build "
                              f"({str(e).strip(chr(39))}); put back the config.json this run "
                              f"wrote, or train again") from None
    held = sum(array.size for array in weights.values())
    if least > held:
        raise CheckpointError(f"{where} no longer matches its weights: it describes at least "
                              f"{least:,} parameters, the weights hold {held:,}; put back the "
                              f"config.json this run wrote, or train again")


def check_finite_weights(model: nn.Module, where: StrPath) -> None:
    """CheckpointError if any weight is NaN or infinite: such a model writes nothing
    meaningful, and silently (a run that diverged, or a file written by something else)."""
    bad = [name for name, p in model.named_parameters() if not np.isfinite(p.data).all()]
    if bad:
        raise CheckpointError(f"{where}: the weights hold NaN or infinite values (in "
                              f"{', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); the run "
                              f"diverged before this checkpoint: train again with a lower --lr")


def load_model(directory: StrPath) -> tuple[Model, Tokenizer, dict[str, Any]]:
    """(model, tokenizer, config) from a checkpoint directory, the model in eval mode.

    CheckpointError (a ValueError) for anything wrong with the directory, in one line."""
    if is_pretrained_dir(directory):
        model, tokenizer, config = load_pretrained(directory)
        check_finite_weights(model, directory)
        return model, tokenizer, config
    config = read_config(directory)
    where = os.path.join(directory, "config.json")
    path = os.path.join(directory, config["files"]["weights"])
    weights = in_current_layout(config, load_arrays(path), path)
    check_model_config(config.get("model_config"), weights, where)
    try:
        model = nn.skip_init(MODELS[config["model"]], **config["model_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where} does not describe a model this tinyformer can build "
                              f"({e}); put back the config.json this run wrote, or train "
                              f"again") from None
    try:
        model.load_state_dict(weights)
    except (KeyError, ValueError, RuntimeError) as e:      # RuntimeError: names or shapes
        raise CheckpointError(f"{where} no longer matches its weights "
                              f"({' '.join(str(e).split())}); put back the config.json this "
                              f"run wrote, or train again") from None
    check_finite_weights(model, os.path.join(directory, config["files"]["weights"]))
    model.eval()
    model_config = config["model_config"]
    vocab_size = model_config.get("vocab_size", model_config.get("tgt_vocab_size"))
    return model, load_tokenizer_for(directory, config, vocab_size), config


# ---------------------------------------------------------------------------------------------
# Weights saved before GPT, BERT and the Transformer shared one stack
#
# Their parameters had other names then: a GPT's `blocks.0.self_attn.q.weight` is now
# `decoder.layers.0.attn.q.weight`. The parameters themselves are the same, so renaming is all
# it takes; the optimizer's state, kept with the parameters' names, follows the new names.

# Each model's top-level names in the current layout.
CURRENT_ROOTS = {"gpt": {"embed", "decoder", "head"}, "bert": {"embed", "encoder", "head"},
                 "transformer": {"src_embed", "tgt_embed", "encoder", "decoder", "head"}}
# The previous layout, module by module: previous path -> current path, `*` a layer's number.
PREVIOUS_LAYOUT = {
    "gpt": {
        "tok": "embed.tok", "pos": "embed.pos",
        "blocks.*.self_attn": "decoder.layers.*.attn",
        "blocks.*.norm1": "decoder.layers.*.attn_norm",
        "blocks.*.ffn": "decoder.layers.*.ffn",
        "blocks.*.norm3": "decoder.layers.*.ffn_norm",
        "norm": "decoder.final_norm", "head": "head"},
    "bert": {
        "tok": "embed.tok", "pos": "embed.pos", "embed_norm": "embed.norm",
        "layers.*.attn": "encoder.layers.*.attn",
        "layers.*.norm1": "encoder.layers.*.attn_norm",
        "layers.*.ffn": "encoder.layers.*.ffn",
        "layers.*.norm2": "encoder.layers.*.ffn_norm",
        "final_norm": "encoder.final_norm", "head": "head"},
    "transformer": {
        "src_embedding": "src_embed.tok", "src_positions": "src_embed.pos",
        "tgt_embedding": "tgt_embed.tok", "tgt_positions": "tgt_embed.pos",
        "encoder.layers.*.attn": "encoder.layers.*.attn",
        "encoder.layers.*.norm1": "encoder.layers.*.attn_norm",
        "encoder.layers.*.ffn": "encoder.layers.*.ffn",
        "encoder.layers.*.norm2": "encoder.layers.*.ffn_norm",
        "encoder.final_norm": "encoder.final_norm",
        "decoder.layers.*.self_attn": "decoder.layers.*.attn",
        "decoder.layers.*.norm1": "decoder.layers.*.attn_norm",
        "decoder.layers.*.cross_attn": "decoder.layers.*.cross_attn",
        "decoder.layers.*.norm2": "decoder.layers.*.cross_norm",
        "decoder.layers.*.ffn": "decoder.layers.*.ffn",
        "decoder.layers.*.norm3": "decoder.layers.*.ffn_norm",
        "decoder.final_norm": "decoder.final_norm", "head": "head"},
}


def in_current_layout(config: dict[str, Any], weights: dict[str, np.ndarray],
                      path: StrPath) -> dict[str, np.ndarray]:
    """The weights (name -> array) of the checkpoint whose config.json is `config`, under the
    current names: as they are if they have them, renamed if they have the previous layout's;
    then the optimizer's parameter names in `config` are renamed too (for --resume). The
    top-level names tell the layout; CheckpointError (one line) for names of neither."""
    kind = config["model"]
    if {name.split(".")[0] for name in weights} <= CURRENT_ROOTS[kind]:
        return weights
    current = {}                                       # previous name -> current name
    for name in weights:
        current[name] = _previous_to_current(name, PREVIOUS_LAYOUT[kind])
        if current[name] is None:
            raise CheckpointError(f"{path}: {name!r} is the name of no {kind} parameter, in "
                                  f"this layout or the previous one; these are not the weights "
                                  f"of the model config.json describes")
    for group in config.get("resume", {}).get("optimizer", {}).get("param_groups", []):
        group["param_names"] = [current.get(name, name) for name in group.get("param_names", [])]
    return {current[name]: array for name, array in weights.items()}


def _previous_to_current(name, layout):
    """The current name of parameter `name` ('blocks.0.norm1.weight'), given `layout`
    (previous module path -> current one); None if no module path of `layout` starts it."""
    parts = name.split(".")
    for old, new in layout.items():
        old = old.split(".")
        start, rest = parts[:len(old)], parts[len(old):]        # module path, parameter name
        if rest and all(o == p or (o == "*" and p.isdigit()) for o, p in zip(old, start)):
            for o, p in zip(old, start):
                if o == "*":                                    # the layer's number
                    new = new.replace("*", p)
            return ".".join([new] + rest)
    return None


# ---------------------------------------------------------------------------------------------
# Hugging Face GPT-2 directories

PRETRAINED_TOKENIZER = "tinyformer-tokenizer.json"   # a tokenizer with no GPT-2 form (char)


def load_pretrained(directory: StrPath) -> tuple[GPT, Tokenizer, dict[str, Any]]:
    """(model, tokenizer, config) from a Hugging Face GPT-2, Llama or Qwen3 directory, the
    model in eval mode; config is {"model": "gpt", "model_config": ...}, as a checkpoint's
    says."""
    model = GPT.from_pretrained(directory)
    if is_llama_family(directory):                             # tokenizer.json, any layout
        tokenizer = read_tokenizer_json(directory, model.config["vocab_size"])
    elif any(os.path.exists(os.path.join(directory, name))
             for name in ("vocab.json", "tokenizer.json")):    # GPT-2's, or transformers 5's
        tokenizer = BPETokenizer.from_pretrained(directory)
    elif os.path.exists(os.path.join(directory, PRETRAINED_TOKENIZER)):
        tokenizer = load_tokenizer(os.path.join(directory, PRETRAINED_TOKENIZER))
    else:
        raise CheckpointError(f"{directory!r} has a model but no tokenizer: it needs vocab.json "
                              f"and merges.txt (GPT-2's tokenizer files, on the same model "
                              f"page), or the tokenizer.json of transformers' save_pretrained")
    vocab_size = model.config["vocab_size"]
    if tokenizer.vocab_size != vocab_size:     # (a vocabulary padded to 50304, say, too)
        raise CheckpointError(f"{directory!r}: the tokenizer has {tokenizer.vocab_size} tokens, "
                              f"the model {vocab_size}; tinyformer needs them to match")
    return model, tokenizer, {"model": "gpt", "model_config": model.config}


def export_pretrained(model: nn.Module, tokenizer: Tokenizer,
                      directory: StrPath) -> None:
    """Write a GPT and its tokenizer as a Hugging Face GPT-2 directory, which
    `transformers.GPT2LMHeadModel.from_pretrained(directory)` loads (and so does `load_model`).

    The directory must not exist yet: everything is written into a temporary one beside it,
    renamed into place at the end, so a failure leaves nothing half-written."""
    if not isinstance(model, GPT):
        raise CheckpointError(f"only GPT models have the GPT-2 format; this is a "
                              f"{type(model).__name__}")
    if os.path.exists(directory):
        raise CheckpointError(f"{directory!r} exists; give a new directory to export into")
    parent = os.path.dirname(os.path.abspath(directory))
    if not os.path.isdir(parent):
        raise CheckpointError(f"cannot export to {directory!r}: {parent!r} does not exist")
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        os.chmod(staging, 0o777 & ~current_umask())      # mkdtemp makes it private
        # GPT-2's <|endoftext|> begins and ends its texts; transformers' generate stops at it.
        end_of_text = tokenizer.special_id(END_OF_TEXT)
        model.save_pretrained(staging, bos_token_id=end_of_text, eos_token_id=end_of_text)
        if isinstance(tokenizer, BPETokenizer):
            tokenizer.save_pretrained(staging)
        else:
            tokenizer.save(os.path.join(staging, PRETRAINED_TOKENIZER))
        os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
