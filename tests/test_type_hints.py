"""The public API carries type hints: every public function and method of tinyautograd and of
tinyformer names the types of its parameters and of its result, and the hints resolve (no
misspelt names).

Public: names without a leading underscore, defined in the package (not imported into it),
their public methods, `__init__` and `__call__`, and properties; a function behind a decorator
(`functools.lru_cache`) is checked as written. Exceptions are left out, and so are the ops'
Function classes (tinyformer's Attention among them): their forward and backward follow
`Function`'s, which the check covers. tinyformer.exercises, the course, is left out.

A hint resolves in its own module, or names a class of the checked modules: a module may
import such a class for its hints alone (`if TYPE_CHECKING:`), where a real import would be
circular.
"""

import importlib
import inspect
import pkgutil
import typing

import pytest

import tinyautograd
import tinyformer

MODULES = [importlib.import_module(f"tinyautograd.{name}") for name in
           ("engine", "factories", "functional", "gradcheck", "nn", "optim", "random")]
ops = importlib.import_module("tinyautograd.ops")
TINYFORMER = [tinyformer] + [importlib.import_module(f"tinyformer.{info.name}")
                             for info in pkgutil.iter_modules(tinyformer.__path__)
                             if info.name != "exercises"]


def public_callables(module, classes=True):
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if callable(obj) and not inspect.isclass(obj):
            obj = inspect.unwrap(obj)
        if inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj
        elif classes and inspect.isclass(obj):
            if issubclass(obj, BaseException) or \
                    issubclass(obj, tinyautograd.Function) and obj is not tinyautograd.Function:
                continue
            for attr, member in vars(obj).items():
                if attr.startswith("_") and attr not in ("__init__", "__call__"):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if isinstance(member, property):
                    member = member.fget
                if inspect.isfunction(member):
                    yield f"{module.__name__}.{name}.{attr}", member


CALLABLES = [pair for module in MODULES + TINYFORMER for pair in public_callables(module)] + \
    list(public_callables(ops, classes=False))

# The classes the checked modules define, by name: what a hint may name besides its module's own.
CLASSES = {name: obj for module in MODULES + TINYFORMER for name, obj in vars(module).items()
           if inspect.isclass(obj) and obj.__module__ == module.__name__}


def missing_hints(fn):
    signature = inspect.signature(fn)
    missing = [p.name for p in signature.parameters.values()
               if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
    if signature.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def test_the_check_sees_the_api():
    names = {name for name, _ in CALLABLES}
    assert {"tinyautograd.engine.Tensor.sum", "tinyautograd.engine.Tensor.shape",
            "tinyautograd.engine.grad", "tinyautograd.engine.Function.backward",
            "tinyautograd.nn.Module.parameters", "tinyautograd.optim.AdamW.__init__",
            "tinyautograd.functional.cross_entropy", "tinyautograd.gradcheck.gradcheck",
            "tinyautograd.ops.matmul"} <= names
    assert not any(".CrossEntropy." in name or ".Add." in name for name in names)
    assert {"tinyformer.gpt.GPT.generate", "tinyformer.gpt.GPT.__init__",
            "tinyformer.decoding.beam_search", "tinyformer.decoding.DecoderOnlySession.select",
            "tinyformer.tokenizers.Tokenizer.encode",
            "tinyformer.tokenizers.BPETokenizer.from_pretrained",
            "tinyformer.tokenizers.BPETokenizer.vocab_size",
            "tinyformer.attention.causal_mask", "tinyformer.files.atomic_write",
            "tinyformer.train.TrainConfig.__init__", "tinyformer.train.Trainer.resume",
            "tinyformer.safetensors.load_file", "tinyformer.schema.Number.why"} <= names
    assert not any(".Attention." in name or ".exercises." in name or "Error." in name
                   for name in names)


@pytest.mark.parametrize("name, fn", CALLABLES, ids=[name for name, _ in CALLABLES])
def test_public_callable_is_fully_annotated(name, fn):
    assert not missing_hints(fn), f"{name}: no type hint for {', '.join(missing_hints(fn))}"
    module = inspect.getmodule(fn)
    typing.get_type_hints(fn, CLASSES | vars(module) | vars(tinyautograd))   # every name resolves
