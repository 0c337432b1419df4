"""The public API carries type hints: every public function and method of tinyautograd names
the types of its parameters and of its result, and the hints resolve (no misspelt names).

Public: names without a leading underscore, defined in the package (not imported into it),
their public methods, `__init__` and `__call__`, and properties. The ops' Function classes are
left out: their forward and backward follow `Function`'s, which the check covers.
"""

import importlib
import inspect
import typing

import pytest

import tinyautograd

MODULES = [importlib.import_module(f"tinyautograd.{name}") for name in
           ("engine", "factories", "functional", "gradcheck", "nn", "optim", "random")]
ops = importlib.import_module("tinyautograd.ops")


def public_callables(module, classes=True):
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
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


CALLABLES = [pair for module in MODULES for pair in public_callables(module)] + \
    list(public_callables(ops, classes=False))


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


@pytest.mark.parametrize("name, fn", CALLABLES, ids=[name for name, _ in CALLABLES])
def test_public_callable_is_fully_annotated(name, fn):
    assert not missing_hints(fn), f"{name}: no type hint for {', '.join(missing_hints(fn))}"
    module = inspect.getmodule(fn)
    typing.get_type_hints(fn, vars(module) | vars(tinyautograd))     # every name resolves
