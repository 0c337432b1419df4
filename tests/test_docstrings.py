"""help() has something to say about every public Tensor method and property, and every public
function of tinyautograd: each has a docstring."""

import importlib
import inspect

from tinyautograd import Tensor

MODULES = [importlib.import_module(f"tinyautograd.{name}") for name in
           ("engine", "factories", "functional", "gradcheck", "kernels", "modes", "nn", "ops",
            "optim", "random")]

def documented(obj):
    return bool((obj.__doc__ or "").strip())


def test_every_public_tensor_method_and_property_has_a_docstring():
    missing = [name for name, obj in vars(Tensor).items()
               if not name.startswith("_")
               and (inspect.isfunction(obj) or isinstance(obj, property))
               and not documented(obj)]
    assert missing == []


def test_every_public_function_of_tinyautograd_has_a_docstring():
    missing = [f"{module.__name__}.{name}" for module in MODULES
               for name, obj in vars(module).items()
               if not name.startswith("_") and inspect.isfunction(obj)
               and obj.__module__ == module.__name__ and not documented(obj)]
    assert missing == []


def test_gelu_says_it_is_the_tanh_approximation_unlike_torchs_default():
    from tinyautograd import functional
    for gelu in (Tensor.gelu, functional.gelu):
        assert "tanh approximation" in gelu.__doc__ and "torch's default" in gelu.__doc__
