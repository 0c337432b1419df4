"""Loading a model from a directory: a run directory of ours, or a Hugging Face GPT-2 folder.

`load_model(directory)` is the one way in, for the command line and for Python. It reads the
run's checkpoint (rundir.py owns those files), checks that config.json describes a model that
can be built and that fits its weights, renames the weights of checkpoints written before GPT,
BERT and the Transformer shared one stack, and builds the model. A run trained on a model with
modules of your own (Trainer.start's `model`) records them, and loads only into such a model,
given (model_to_load decides). A Hugging Face directory
(config.json with a "model_type", model.safetensors, and the tokenizer as vocab.json +
merges.txt) is read by pretrained.py's GPT-2 reader instead: a real GPT-2 downloaded from its
model page, or a model of ours that `export_pretrained` wrote. A character-level tokenizer has
no GPT-2 form, so an exported character model keeps its tokenizer as tinyformer-tokenizer.json.
A Llama or Qwen3 directory (SmolLM's, say) is read too, with its tokenizer.json; a GPT with
the modern block is exported as one, with its tokenizer as above.
"""

from __future__ import annotations

import math
import os
import shutil
import stat
import tempfile
from typing import Any, Iterable, Sequence, TypeVar, Union, overload

import numpy as np

from tinyautograd import nn

from .bert import BERT
from .files import (StrPath, current_umask, dangling_link, first_existing,
                    remove_made_folders, unreadable_folder, why_not_a_directory)
from .gpt import GPT
from .layers import MAX_SIZE, least_parameters, modules_of_your_own
from .pretrained import (MERGES_TXT, PRETRAINED_TOKENIZER, TOKENIZER_JSON, VOCAB_JSON,
                         PretrainedError, is_llama_family, load_gpt2_tokenizer, no_model_type,
                         pretrained_vocab_size, read_eos_ids, read_tokenizer_json,
                         save_gpt2_tokenizer)
from .schema import BadInput, Optional, Whole, check_settings
from .rundir import (CONFIG, MANIFEST, CheckpointError, array_shapes, before_first_checkpoint,
                     holds_pretrained_weights, is_ours, load_arrays, load_tokenizer_for,
                     read_config, read_config_json)
from .tokenizers import (END_OF_TEXT, TOKENIZER_MODEL, BPETokenizer, Tokenizer,
                         is_tokenizer_file, load_tokenizer, tokenizer_model_advice)
from .transformer import Transformer

MODELS = {"gpt": GPT, "bert": BERT, "transformer": Transformer}   # config.json's "model"
Model = Union[GPT, BERT, Transformer]                            # one of MODELS
ModuleT = TypeVar("ModuleT", bound=nn.Module)     # load_model's `model`, given back as its class
# config.json's list of the modules of your own its model holds, 'path (Class)' each, as
# layers.modules_of_your_own names them (empty, or missing in older runs: none). Such a model
# is no longer what "model" and "model_config" build: see model_to_load.
OWN_MODULES = "modules_of_your_own"


# The sizes in config.json's "model_config", checked before a model is built from them (the
# same rules as the training settings they came from; schema.py).
MODEL_SIZE_RULES = {name: Whole(1, MAX_SIZE) for name in (
    "vocab_size", "src_vocab_size", "tgt_vocab_size", "context", "n_layer", "n_head",
    "d_model")}
for name in ("d_ff", "n_kv_head", "d_head"):                   # None: from the others
    MODEL_SIZE_RULES[name] = Optional(Whole(1, MAX_SIZE))


def check_model_config(model_config: Any, held: int, where: str) -> None:
    """CheckpointError unless config.json's model can be built and can hold weights of `held`
    numbers in all: each size a whole number in range, and no more parameters than the weights
    have (a config.json edited to d_model 100000 would otherwise allocate tens of gigabytes
    before the shapes could disagree)."""
    if not isinstance(model_config, dict):
        raise CheckpointError(f"{where} has no model_config table; train again")
    try:
        check_settings({k: v for k, v in model_config.items() if k in MODEL_SIZE_RULES},
                       MODEL_SIZE_RULES, where=where)
        least = least_parameters(model_config)
    except (ValueError, KeyError) as e:
        # A KeyError's text is the key in quotes; a ValueError's is a sentence, as it is.
        problem = f"it has no {e.args[0]}" if isinstance(e, KeyError) else str(e)
        raise CheckpointError(f"{where} does not describe a model this tinyformer can build "
                              f"({problem}); put back the config.json this run wrote, or "
                              f"train again") from None
    if least > held:
        raise CheckpointError(f"{where} no longer matches its weights: it describes at least "
                              f"{least:,} parameters, the weights hold {held:,}; put back the "
                              f"config.json this run wrote, or train again")


def check_built_as(model: Any, kind: str, model_config: dict[str, Any], source: str,
                   keys: Sequence[str] | None = None) -> None:
    """ValueError, in one line naming the setting and both values, unless `model` is a model
    of `kind` ("gpt", "bert", "transformer": that class or a subclass of it) whose config is
    `model_config` (every argument, as that class's `config` holds them; with `keys`, those
    arguments alone): a model of your own that may stand in for the one those settings build,
    in the trainer or a checkpoint. `source` says in the message where `model_config` came
    from ("the settings give")."""
    check_model_class(model, kind, source)
    for key in keys or dict.fromkeys([*model_config, *model.config]):   # each once, in order
        mine, theirs = model.config.get(key), model_config.get(key)
        if mine != theirs:
            raise BadInput(f"model: its {key} is {mine!r}, where {source} {theirs!r}; build "
                           f"it with {key}={theirs!r}")


def check_model_class(model: Any, kind: str, source: str) -> None:
    """ValueError, in one line, unless `model` is a model of `kind` (that class or a subclass
    of it): check_built_as's first check, which needs no config."""
    cls = MODELS[kind]
    if not isinstance(model, cls):
        raise BadInput(f"model: {source} a {cls.__name__} (or a subclass of it), this is a "
                       f"{type(model).__name__}; pass a {cls.__name__}, or no model to have "
                       f"one built")


def model_to_load(config: dict[str, Any], directory: str, model: nn.Module | None,
                  held: int) -> nn.Module:
    """The model that a checkpoint's weights (config.json is `config`; `held` numbers in all)
    are loaded into: the one its config builds, its weights left zero; or `model`, one of your
    own built as the run's was (check_built_as), holding the same modules of your own as
    config.json records. The one place that decides whether a checkpoint's config alone builds
    its model: one that records modules of your own is refused without `model`
    (CheckpointError, one line saying how to load it in Python), never built plain to take
    weights that happen to fit."""
    where = os.path.join(directory, CONFIG)
    own = config.get(OWN_MODULES, [])
    if not (isinstance(own, list) and all(isinstance(name, str) for name in own)):
        raise CheckpointError(f"{where} is damaged (its {OWN_MODULES} is not a list of names); "
                              f"put back the config.json this run wrote, or train again")
    if model is None and own:
        weights = os.path.join(directory, config["files"]["weights"])
        raise CheckpointError(
            f"{directory!r} holds a model with modules of your own ({', '.join(own)}), which its "
            f"config.json alone does not build; in Python, build the model as you built it to "
            f"train, then `model.load_state_dict(tinyformer.rundir.load_arrays({weights!r}))`, "
            f"or to train on, `Trainer.resume({directory!r}, model=model)`")
    if model is None:
        check_model_config(config.get("model_config"), held, where)
        try:
            return nn.skip_init(MODELS[config["model"]], **config["model_config"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{where} does not describe a model this tinyformer can build "
                                  f"({e}); put back the config.json this run wrote, or train "
                                  f"again") from None
    mine = modules_of_your_own(model)       # first: what is no model of ours is a TypeError
    check_built_as(model, config["model"], config["model_config"], f"{where} has")
    check_same_modules(mine, own, directory)
    return model


def check_same_modules(mine: list[str], own: list[str], directory: str) -> None:
    """ValueError unless a model's modules of your own (`mine`) are those the run in
    `directory` records (`own`): a run goes on only with a model built as it was."""
    if mine != own:
        advice = "give a model built as that run's was" if own else "pass no model"
        raise BadInput(f"model: its modules of your own are {', '.join(mine) or 'none'}, "
                       f"where the run in {directory!r} holds {', '.join(own) or 'none'}; "
                       f"{advice}")


DIVERGED = "the run diverged before this checkpoint: train again with a lower --lr"
# A Hugging Face model's weights were trained elsewhere: no --lr of ours made them so.
DAMAGED = "the weights' file is damaged: download it again from the model's page"


def check_finite_weights(model: nn.Module, where: StrPath, advice: str = DIVERGED) -> None:
    """CheckpointError if any weight is NaN or infinite: such a model writes nothing
    meaningful, and silently (a run that diverged, or a file written by something else).
    `advice`: what to do, after the line's "; " (a run's, by default)."""
    bad = [name for name, p in model.named_parameters() if not np.isfinite(p.data).all()]
    if bad:
        raise CheckpointError(f"{where}: the weights hold NaN or infinite values (in "
                              f"{', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); "
                              f"{advice}")


# A type checker sees load_model's model as the caller's own when one is given (`model=m`
# gives m back, loaded, a MyGPT stays a MyGPT), and as one of MODELS when config.json builds it.
@overload
def load_model(directory: StrPath, pretrained: bool = True, model: None = None
               ) -> tuple[Model, Tokenizer, dict[str, Any]]: ...
@overload
def load_model(directory: StrPath, pretrained: bool = True, *, model: ModuleT
               ) -> tuple[ModuleT, Tokenizer, dict[str, Any]]: ...
@overload
def load_model(directory: StrPath, pretrained: bool, model: ModuleT
               ) -> tuple[ModuleT, Tokenizer, dict[str, Any]]: ...
def load_model(directory: StrPath, pretrained: bool = True, model: nn.Module | None = None
               ) -> tuple[nn.Module, Tokenizer, dict[str, Any]]:
    """(model, tokenizer, config) from a checkpoint `directory`, the model in eval mode, its
    weights in the dtype they were saved in; of a run that is still training, its latest
    complete checkpoint. config is the checkpoint's config.json ({"model": "gpt",
    "model_config": {...}, ...}). With `pretrained` (the default) a Hugging Face model's
    directory is read too (load_pretrained); False: a run's checkpoint only.

        model, tokenizer, config = load_model("runs/mine")       # a GPT run's
        ids = model.generate(np.array([tokenizer.encode("Once")]), max_new_tokens=50)
        print(tokenizer.decode(ids[0]))

    `model`: a model of your own to load a run's weights into, instead of the one its
    config.json builds; built as the run's was (its class, config and modules of your own:
    model_to_load), and keeping its own dtype. A run trained on such a model is refused
    without it.

    CheckpointError (a ValueError) for anything wrong with the directory, in one line, whose
    advice offers a Hugging Face model's directory where the caller takes one (`pretrained`)."""
    directory = os.fspath(directory)            # a pathlib.Path is named as its text
    config = read_config_json(directory, pretrained)
    # A Hugging Face model's: its config.json names its model_type, or, without one, it is
    # beside their weights, and pretrained.py says what is missing.
    if not is_ours(config) and ("model_type" in config
                                or (pretrained and holds_pretrained_weights(directory))):
        if model is not None:
            raise BadInput(f"model: {directory!r} is a Hugging Face model's directory, "
                           f"which builds its own model; load it without model=")
        model, tokenizer, config = load_pretrained(directory)
        check_finite_weights(model, directory, DAMAGED)
        return model, tokenizer, config
    # A run training now writes each checkpoint's files, then config.json, then removes the
    # previous checkpoint's files: those config.json named may go while they are read. Then
    # config.json names a newer, complete checkpoint, which is read instead.
    for _ in range(CHECKPOINT_READS - 1):
        written = _config_written(directory)
        try:
            return _load_checkpoint(directory, model)
        except (CheckpointError, OSError):
            if _config_written(directory) == written:      # no newer one: its own fault
                raise
    return _load_checkpoint(directory, model)   # (a run writing them faster than read)


CHECKPOINT_READS = 5          # tries at reading a run's checkpoint while newer ones come


def _config_written(directory):
    """Which config.json the directory holds: a new checkpoint's replaces it (another file,
    atomic_write's), so this changes whenever one is written. None without one."""
    try:
        found = os.stat(os.path.join(directory, CONFIG))
    except OSError:
        return None
    return found.st_ino, found.st_mtime_ns


def _load_checkpoint(directory, model=None):
    """load_model of a run's checkpoint, read once."""
    config = read_config(directory)
    where = os.path.join(directory, CONFIG)
    path = os.path.join(directory, config["files"]["weights"])
    # The model is built from config.json before the weights are read, for its shapes: an
    # array whose header claims another shape (gigabytes, say) is refused before it is read.
    stored = array_shapes(path)                            # the headers alone
    built = model is None                                  # from config.json, not given
    model = model_to_load(config, directory, model,
                          sum(math.prod(shape) for shape in stored.values()))
    # stored name -> the model's. Modules of your own came after the layout changed: a run
    # that has them has the names of its model, which current_names would refuse where one
    # is at the top level (a subclass's own module, of neither layout).
    current = ({name: name for name in stored} if config.get(OWN_MODULES)
               else current_names(config, stored, path))
    own = dict(model.named_parameters())
    expected = {name: own[current[name]].shape for name in stored if current[name] in own}
    weights = _renamed(config, load_arrays(path, expected), current)
    if built:
        # A model built from config.json holds its weights in the dtype they were saved in,
        # as the run trained them (a run cast to float64 goes on in float64, not rounded to
        # the float32 a model is built in); a model given keeps its own, as load_state_dict.
        for name, p in model.named_parameters():
            if name in weights and np.issubdtype(weights[name].dtype, np.floating):
                p.data = p.data.astype(weights[name].dtype, copy=False)
    try:
        model.load_state_dict(weights)
    except (KeyError, ValueError, RuntimeError) as e:      # RuntimeError: names or shapes
        raise CheckpointError(f"{where} no longer matches its weights "
                              f"({' '.join(str(e).split())}); put back the config.json this "
                              f"run wrote, or train again") from None
    check_finite_weights(model, os.path.join(directory, config["files"]["weights"]))
    model.eval()
    return model, load_tokenizer_for(directory, config, _vocab_size(config)), config


def load_tokenizer_at(path: StrPath, saveable: bool = True, pipe: bool = False) -> Tokenizer:
    """The tokenizer that a --tokenizer option names, for `tinyformer tokenize` and `train`
    alike: a tokenizer file (load_tokenizer's, a pipe too with `pipe`), or a directory's
    (load_checkpoint_tokenizer's, with `saveable` as it takes it). ValueError, one line,
    naming what is wrong."""
    return (load_checkpoint_tokenizer(path, saveable) if os.path.isdir(path)
            else load_tokenizer(path, pipe))


def load_checkpoint_tokenizer(directory: StrPath, saveable: bool = True) -> Tokenizer:
    """The tokenizer that load_model gives with a checkpoint directory's model, without
    reading the weights (a Hugging Face model's can be gigabytes), or that of a directory of a
    Hugging Face tokenizer alone (vocab.json and merges.txt, or tokenizer.json, as
    save_gpt2_tokenizer and transformers' save_pretrained write them): what `tinyformer
    tokenize` reads for a directory. A tokenizer.json alone is read as GPT-2's, a BPETokenizer
    that a run can save; one of another byte-level BPE (a normalizer, say, or its special
    tokens first) is refused, or with saveable=False read as read_tokenizer_json reads it
    (it encodes and decodes as the tokenizers library does, but cannot be saved).
    CheckpointError, one line, as load_model's."""
    directory = os.fspath(directory)
    unreadable = unreadable_folder(directory)     # not "holds no tokenizer"
    if unreadable:
        raise CheckpointError(unreadable)
    def has(name):
        return os.path.exists(os.path.join(directory, name))
    # A run of ours has a manifest.json from the start, beside its own tokenizer.json. Before
    # its first checkpoint (stopped before it, say) that tokenizer.json is the one its
    # checkpoints will hold: its tokenizer. After, the checkpoint's is, checked against its
    # model below; a run whose config.json went missing since is damaged (read_config_json).
    if not has(CONFIG) and has(MANIFEST) and has(TOKENIZER_JSON) \
            and before_first_checkpoint(directory):
        return load_tokenizer(os.path.join(directory, TOKENIZER_JSON))
    # A directory with neither a manifest.json nor a config.json is no checkpoint, but may
    # hold a tokenizer: ours, or a Hugging Face one.
    if not (has(CONFIG) or has(MANIFEST)):
        if has(TOKENIZER_JSON) and is_tokenizer_file(os.path.join(directory, TOKENIZER_JSON)):
            return load_tokenizer(os.path.join(directory, TOKENIZER_JSON))  # one of ours
        # (merges.txt alone is half of GPT-2's files: its reader names the other)
        if has(VOCAB_JSON) or has(MERGES_TXT) or has(TOKENIZER_JSON):
            try:
                return load_gpt2_tokenizer(directory)
            except PretrainedError:
                if saveable or not has(TOKENIZER_JSON):     # (read before vocab.json)
                    raise
            # Not GPT-2's shape; if read_tokenizer_json refuses it too, its reason is the one
            # that matters (it reads every tokenizer.json that GPT-2's reader reads).
            return read_tokenizer_json(directory)
        if has(TOKENIZER_MODEL):
            raise PretrainedError(tokenizer_model_advice(directory))
        raise CheckpointError(f"{directory!r} holds no tokenizer: give a tokenizer file, a "
                              f"checkpoint's directory (a run's, or a Hugging Face model's), or "
                              f"a Hugging Face tokenizer's (vocab.json and merges.txt, or "
                              f"tokenizer.json)")
    config = read_config_json(directory)
    # A Hugging Face model's, as load_model tells them: by its model_type, or beside their
    # weights (then its model's reader refuses it, and so does this, not as a run's).
    if not is_ours(config) and "model_type" not in config \
            and holds_pretrained_weights(directory):
        raise no_model_type(os.path.join(directory, CONFIG))
    if "model_type" in config and not is_ours(config):          # a Hugging Face model's
        # The model's, as load_model builds it (GPT-2's default where its config leaves it
        # out), so that the ids the model can generate decode here too. Checked as the
        # model's reader checks it: the tokenizer is padded to it, so 10**12 would fill the
        # memory, and 3.5 could pad nothing.
        vocab_size = pretrained_vocab_size(config)
        try:
            check_settings({"vocab_size": vocab_size}, MODEL_SIZE_RULES,
                           where=os.path.join(directory, CONFIG))
        except ValueError as e:
            raise CheckpointError(str(e)) from None
        return pretrained_tokenizer(directory, vocab_size)
    config = read_config(directory)
    return load_tokenizer_for(directory, config, _vocab_size(config))


def _vocab_size(config):
    """The vocabulary of our checkpoint's model (a Transformer's, its target's)."""
    model_config = config["model_config"]
    return model_config.get("vocab_size", model_config.get("tgt_vocab_size"))


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
    return _renamed(config, weights, current_names(config, weights, path))


def _renamed(config, weights, current):
    """in_current_layout, with the current name of each of the weights (`current`,
    current_names') known already."""
    if all(name == current[name] for name in weights):
        return weights
    for group in config.get("resume", {}).get("optimizer", {}).get("param_groups", []):
        group["param_names"] = [current.get(name, name) for name in group.get("param_names", [])]
    return {current[name]: array for name, array in weights.items()}


def current_names(config: dict[str, Any], names: Iterable[str],
                  path: StrPath) -> dict[str, str]:
    """Each of the weights' stored `names` -> its current name (in_current_layout's renaming,
    without the arrays)."""
    kind = config["model"]
    names = list(names)
    # An array whose top-level name is of neither layout is named as the one that is wrong:
    # the layout is told by the others (one stray array would make them all look previous).
    previous_roots = {old.split(".")[0] for old in PREVIOUS_LAYOUT[kind]}
    stray = [name for name in names
             if name.split(".")[0] not in CURRENT_ROOTS[kind] | previous_roots]
    if stray:
        more = f" (and {len(stray) - 1} more)" if len(stray) > 1 else ""
        raise CheckpointError(f"{path}: {stray[0]!r}{more} is the name of no {kind} parameter, "
                              f"in this layout or the previous one; these are not the weights "
                              f"of the model config.json describes")
    if {name.split(".")[0] for name in names} <= CURRENT_ROOTS[kind]:
        return {name: name for name in names}
    current = {}                                       # previous name -> current name
    for name in names:
        current[name] = _previous_to_current(name, PREVIOUS_LAYOUT[kind])
        if current[name] is None:
            raise CheckpointError(f"{path}: {name!r} is the name of no {kind} parameter, in "
                                  f"this layout or the previous one; these are not the weights "
                                  f"of the model config.json describes")
    return current


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


def load_pretrained(directory: StrPath) -> tuple[GPT, Tokenizer, dict[str, Any]]:
    """(model, tokenizer, config) from a Hugging Face GPT-2, Llama or Qwen3 directory, the
    model in eval mode; config is {"model": "gpt", "model_config": ...}, as a checkpoint's
    says, and "eos_ids": the ids that end its texts (pretrained.read_eos_ids), or None."""
    model = GPT.from_pretrained(directory)
    tokenizer = pretrained_tokenizer(directory, model.config["vocab_size"])
    return model, tokenizer, {"model": "gpt", "model_config": model.config,
                              "eos_ids": read_eos_ids(directory, model.config["vocab_size"])}


def pretrained_tokenizer(directory: str, vocab_size: int) -> Tokenizer:
    """The tokenizer beside a Hugging Face model, padded to its `vocab_size` (`pad_to`: a
    model may have more embedding rows than its tokenizer has tokens, as nanoGPT's GPT-2 has
    50304 for 50257); a CheckpointError of one line if the tokenizer has more tokens."""
    def has(name):
        return os.path.exists(os.path.join(directory, name))
    # transformers' AutoTokenizer reads tokenizer.json wherever there is one, whatever the
    # model (a GPT-2's may be in any layout: special tokens first, say); GPT-2's own files
    # otherwise (OpenAI's, or those `export_pretrained` writes beside any model).
    if has(TOKENIZER_JSON):
        tokenizer = read_tokenizer_json(directory, vocab_size)
    elif has(VOCAB_JSON):
        tokenizer = load_gpt2_tokenizer(directory)
    elif has(PRETRAINED_TOKENIZER):
        tokenizer = load_tokenizer(os.path.join(directory, PRETRAINED_TOKENIZER))
    elif has(TOKENIZER_MODEL):
        raise PretrainedError(tokenizer_model_advice(directory))
    elif is_llama_family(directory):                # their model pages give tokenizer.json
        raise CheckpointError(f"{directory!r} has a model but no tokenizer: a Llama or Qwen3 "
                              f"directory holds it in {TOKENIZER_JSON}, on the same model page")
    else:
        raise CheckpointError(f"{directory!r} has a model but no tokenizer: it needs vocab.json "
                              f"and merges.txt (GPT-2's tokenizer files, on the same model "
                              f"page), or the tokenizer.json of transformers' save_pretrained")
    try:
        tokenizer.pad_to(vocab_size)             # (read_tokenizer_json's is padded already)
    except ValueError as e:
        raise CheckpointError(f"{directory!r}: {e}; put the model's own tokenizer beside "
                              f"it") from None
    return tokenizer


def check_export_dir(directory: StrPath) -> str:
    """A directory to export into must be new; the folder it goes in (which is returned) is
    made if missing, as train's --out is and transformers' save_pretrained does, unless a file
    stands in its path. A one-line CheckpointError otherwise. Checked before loading anything,
    and again when writing."""
    directory = os.fspath(directory)
    if not directory.strip():
        raise CheckpointError("the directory to export into is empty (no name); give a new one")
    link = dangling_link(directory, "", "give a new directory to export into")
    if link:              # not followed, to make the folder it names: named as a link
        raise CheckpointError(link)
    if os.path.exists(directory):
        raise CheckpointError(f"{directory!r} exists; give a new directory to export into")
    parent = os.path.dirname(os.path.abspath(directory))
    if not os.path.isdir(first_existing(parent)):          # missing folders are made
        raise CheckpointError(f"cannot export to {directory!r}: {why_not_a_directory(parent)}")
    return parent


def check_exportable(directory: StrPath) -> None:
    """A checkpoint to export must be a run of tinyformer train: a Hugging Face model's is in
    that format already, and a copy of it keeps every file (its tokenizer's settings, its chat
    template, its generation settings), which an export, from the model, would not."""
    config = read_config_json(directory, pretrained=False)
    if "model_type" in config and not is_ours(config):
        raise CheckpointError(f"{os.fspath(directory)!r} is in Hugging Face's format already "
                              f"(a {config['model_type']} model): use it as it is, or copy it; "
                              f"export writes the runs of tinyformer train")


def export_pretrained(model: nn.Module, tokenizer: Tokenizer,
                      directory: StrPath) -> None:
    """Write a GPT and its tokenizer as a Hugging Face directory, which
    `transformers.AutoModelForCausalLM.from_pretrained(directory)` loads (and so does
    `load_model`): the model in the format that expresses it (GPT-2's, or Llama's or Qwen3's
    for the modern block; GPT.save_pretrained), a BPE tokenizer as GPT-2's files, any other in
    tinyformer's own file, which only tinyformer reads.

    The directory must not exist yet: everything is written into a temporary one beside it,
    renamed into place at the end, so a failure leaves nothing half-written."""
    if not isinstance(model, GPT):
        raise CheckpointError(f"only GPT models have a Hugging Face format here (GPT-2's, "
                              f"Llama's or Qwen3's); this is a {type(model).__name__}")
    parent = check_export_dir(directory)
    existing = first_existing(parent)           # the folders made below it go on a failure
    os.makedirs(parent, exist_ok=True)
    staging = None
    try:
        staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
        # mkdtemp makes it private; as mkdir would, it keeps the setgid bit of a group's
        # folder, so that the files written into it are the group's, not this user's own.
        os.chmod(staging, (0o777 & ~current_umask()) | (os.stat(staging).st_mode & stat.S_ISGID))
        # GPT-2's <|endoftext|> begins and ends its texts; transformers' generate stops at it.
        end_of_text = tokenizer.special_id(END_OF_TEXT)
        model.save_pretrained(staging, bos_token_id=end_of_text, eos_token_id=end_of_text)
        if isinstance(tokenizer, BPETokenizer):
            save_gpt2_tokenizer(tokenizer, staging)
        else:
            tokenizer.save(os.path.join(staging, PRETRAINED_TOKENIZER))
        os.rename(staging, directory)
    except BaseException as error:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        remove_made_folders(parent, existing)
        if isinstance(error, OSError) and error.filename is not None:
            # A full disk's or a read-only folder's error names the temporary folder (the one
            # mkdtemp could not make, or made) or a file in it, gone now: the user knows them
            # as the directory asked for, and its files.
            inside = "." if staging is None else os.path.relpath(error.filename, staging)
            if not inside.startswith(".."):
                named = os.path.normpath(os.path.join(directory, inside))
                raise OSError(error.errno, error.strerror, named) from None
        raise
