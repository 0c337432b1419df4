"""help() has something to say about every public Tensor method and property, and every public
function of tinyautograd: each has a docstring."""

import importlib
import inspect
import re

import numpy as np

from tinyautograd import Function, Tensor, gradcheck

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



def _blank_help(cls, attribute, value):
    """Whether help(cls.attribute) would show no text (a docstring of its own or inherited)."""
    if isinstance(value, property):
        return not (value.__doc__ or "").strip()
    function = getattr(value, "__func__", value)
    return inspect.isfunction(function) and not inspect.getdoc(getattr(cls, attribute))


def test_an_ops_formula_as_the_graph_page_shows_it_names_no_private_helper():
    # The graph page shows a clicked op's docstring as its formula, to a reader of the page,
    # not of the source: layer norm's sent them to `_inverse_rms`.
    import pkgutil

    import tinyformer
    for module in pkgutil.walk_packages(tinyformer.__path__, "tinyformer."):
        importlib.import_module(module.name)      # every op the models define, registered

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)
    named = {f"{op.__module__}.{op.__name__}": re.findall(r"\b_[a-z]\w*", op.__doc__ or "")
             for op in subclasses(Function)
             if op.__module__.startswith(("tinyautograd.", "tinyformer."))}
    assert len(named) > 20 and {op: found for op, found in named.items() if found} == {}


def test_help_on_every_method_of_tinyautograds_public_classes_says_something():
    # help(nn.Module.parameters), help(Function.apply) and help(LRSchedule.lr_at) were blank:
    # who learns the engine from help() found nothing on what to call or to override.
    missing = [f"{module.__name__}.{name}.{attribute}" for module in MODULES
               for name, cls in vars(module).items()
               if not name.startswith("_") and inspect.isclass(cls)
               and cls.__module__ == module.__name__
               for attribute, value in vars(cls).items()
               if not attribute.startswith("_") and _blank_help(cls, attribute, value)]
    assert missing == []
    assert "integer arrays" in inspect.getdoc(Tensor.__getitem__)     # help(Tensor) on x[i]


# A setting (a parameter with a default) that help() never names is one whose meaning a reader
# cannot learn there.
SETTINGS_NAMED = ["tinyautograd.grad", "tinyautograd.zeros", "tinyautograd.ones",
                  "tinyautograd.zeros_like", "tinyautograd.ones_like", "tinyautograd.randn",
                  "tinyautograd.rand", "tinyautograd.arange", "tinyautograd.gradcheck",
                  "tinyautograd.gradgradcheck", "tinyautograd.functional.cross_entropy",
                  "tinyautograd.functional.layer_norm", "tinyautograd.nn.normal_",
                  "tinyautograd.nn.uniform_", "tinyautograd.nn.xavier_normal_",
                  "tinyautograd.nn.xavier_uniform_", "tinyautograd.nn.kaiming_normal_",
                  "tinyautograd.nn.kaiming_uniform_"]


def test_help_names_every_setting_of_the_engines_functions():
    unnamed = []
    for path in SETTINGS_NAMED:
        module, name = path.rsplit(".", 1)
        function = getattr(importlib.import_module(module), name)
        for parameter in inspect.signature(function).parameters.values():
            named = re.search(rf"\b{parameter.name}\b", function.__doc__)
            if parameter.default is not inspect.Parameter.empty and not named:
                unnamed.append(f"{path}: {parameter.name}")
    assert unnamed == []


class _Off(Function):
    """y = 2x, with a backward off by `gap`: a wrong gradient of a known size."""

    @staticmethod
    def forward(ctx, x, gap):
        ctx.gap = gap
        return 2 * x

    @staticmethod
    def backward(ctx, grad):
        return grad * (2 + ctx.gap)


def test_gradcheck_tolerance_is_the_one_its_help_states():
    doc = gradcheck.__doc__
    assert "float64" in doc and "|a - n| <= atol + rtol |n|" in doc
    x = Tensor(np.array([1.0]), requires_grad=True, dtype=np.float64)
    allowed = 1e-5 + 1e-3 * 2                     # atol + rtol |n|, at the defaults, n = 2
    assert gradcheck(lambda x: _Off.apply(x, gap=0.9 * allowed), x)
    assert not gradcheck(lambda x: _Off.apply(x, gap=1.1 * allowed), x, raise_exception=False)
