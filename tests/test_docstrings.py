"""help() has something to say about every public Tensor method and property, and every public
function of tinyautograd: each has a docstring."""

import importlib
import inspect
import re
import textwrap

import numpy as np

from tinyautograd import Function, Tensor, gradcheck, manual_seed

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


def _tinyformer_modules():
    """tinyformer's modules, without the exercises' graders and workspace (the `exercises`
    command's, which a student meets through that command, not help())."""
    import pkgutil

    import tinyformer
    return [importlib.import_module(module.name)
            for module in pkgutil.iter_modules(tinyformer.__path__, "tinyformer.")]


def test_help_on_every_public_function_class_and_method_of_tinyformer_says_something():
    # help(TrainConfig.job), help(Progress), help(SequencesSoFar.select) (what a session of
    # one's own writes) and the jobs' methods were blank.
    missing = []
    for module in _tinyformer_modules():
        for name, obj in vars(module).items():
            if (name.startswith("_") or getattr(obj, "__module__", None) != module.__name__
                    or not (inspect.isfunction(obj) or inspect.isclass(obj))):
                continue
            # A class's own docstring: inspect.getdoc would lend it its base class's.
            own_doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
            if not (own_doc or "").strip():
                missing.append(f"{module.__name__}.{name}")
            if inspect.isclass(obj):
                missing += [f"{module.__name__}.{name}.{attribute}"
                            for attribute, value in vars(obj).items()
                            if not attribute.startswith("_")
                            and _blank_help(obj, attribute, value)]
    assert missing == []


def _arguments_not_named(obj):
    """The arguments of `obj` (a class: its constructor's) that its help never names: a class's
    own docstring and its __init__'s are read together, as help(cls) shows them."""
    if inspect.isclass(obj):
        init = vars(obj).get("__init__")
        text = (vars(obj).get("__doc__") or "") + ((init and init.__doc__) or "")
    else:
        text = obj.__doc__ or ""
    return [parameter.name for parameter in inspect.signature(obj).parameters.values()
            if parameter.name not in ("self", "cls")
            and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
            and not re.search(rf"\b{parameter.name}\b", text)]


def _public_api():
    """What a student reads with help(): the engine's functions, layers and optimizers, and
    tinyformer's models, blocks, tokenizers, sampling, checkpoints and trainer, with the
    public methods of the classes they use most."""
    import tinyautograd as ta
    import tinyformer
    from tinyautograd import functional, nn, optim
    from tinyformer import bert, checkpoint, layers, sampling, tokenizers, train, train_config

    api = {f"tinyautograd.{name}": getattr(ta, name) for name in ta.__all__}
    api.update({f"tinyformer.{name}": getattr(tinyformer, name) for name in tinyformer.__all__})
    for module in (functional, nn, optim):
        api.update({f"{module.__name__}.{name}": obj for name, obj in vars(module).items()
                    if not name.startswith("_") and getattr(obj, "__module__", None)
                    == module.__name__ and (inspect.isfunction(obj) or inspect.isclass(obj))})
    for obj in (bert.MLMHead, layers.Embeddings, layers.FeedForward,
                layers.SinusoidalPositions, layers.RotaryPositions, layers.TokenEmbedding,
                sampling.sample_next, sampling.draw_next, checkpoint.load_model,
                checkpoint.load_pretrained, checkpoint.export_pretrained,
                tokenizers.CharTokenizer, tokenizers.BPETokenizer, tokenizers.train_tokenizer,
                tokenizers.load_tokenizer, tokenizers.encode_prompt, train.Trainer,
                train_config.TrainConfig):
        api[f"{obj.__module__}.{obj.__qualname__}"] = obj
    classes = [obj for obj in api.values() if inspect.isclass(obj)]
    for cls in (*classes, Tensor, tokenizers.Tokenizer):
        for attribute, value in vars(cls).items():
            function = getattr(value, "__func__", value)
            # An override without a docstring of its own (Linear.forward, Adam.update) shows
            # the hook's in help(), which names the hook's arguments.
            if (not attribute.startswith("_") and inspect.isfunction(function)
                    and function.__doc__):
                api[f"{cls.__module__}.{cls.__qualname__}.{attribute}"] = function
    return {path: obj for path, obj in api.items() if inspect.isfunction(obj)
            or (inspect.isclass(obj) and not issubclass(obj, BaseException))}


def test_help_names_every_argument_of_the_public_api():
    # BERT's help never said what n_layer, n_head or d_model meant (nor their small defaults),
    # WarmupCosine's formula spoke of `warmup` and `total`, not warmup_steps and total_steps,
    # and Tensor.sum's of no keepdims.
    api = _public_api()
    assert len(api) > 200
    unnamed = {path: names for path, obj in api.items()
               for names in [_arguments_not_named(obj)] if names}
    assert unnamed == {}


def _indented_blocks(doc):
    """The blocks indented under a docstring's text (help() shows them as they are): code
    examples, formulas and diagrams."""
    blocks, lines = [], []
    for line in doc.splitlines() + ["(the end)"]:
        if line.startswith("    ") or (lines and not line.strip()):
            lines.append(line)
        elif lines:
            blocks.append(textwrap.dedent("\n".join(lines)).strip("\n"))
            lines = []
    return blocks


def test_the_code_examples_in_help_on_tinyformers_top_level_names_run_as_written():
    # GPT's help ends on the few lines that train a tokenizer, build a GPT and generate, and
    # beam_search's on how a session is made for it: no test ran them. An indented block that
    # parses as Python is an example (the formulas and diagrams do not parse); it runs with
    # the names its comments and the text around it give.
    import tinyformer
    from tinyformer.data import builtin_corpus
    from tinyformer.tokenizers import BPETokenizer

    manual_seed(0)
    given = {name: getattr(tinyformer, name) for name in tinyformer.__all__}
    given.update(np=np, builtin_corpus=builtin_corpus, BPETokenizer=BPETokenizer, eos=2, bos_id=1,
                 gpt=tinyformer.GPT(11, context=32, n_layer=1, n_head=2, d_model=16),
                 prompt=np.array([[3, 4, 5]]),
                 transformer=tinyformer.Transformer(11, 11, context=32, n_layer=1, n_head=2,
                                                    d_model=16),
                 src=np.array([[3, 4, 5, 6]]))
    ran = {}
    for name in tinyformer.__all__:
        obj = getattr(tinyformer, name)
        members = [(f"{name}.{attribute}", value) for attribute, value in vars(obj).items()
                   if not attribute.startswith("_") and inspect.isfunction(value)
                   ] if inspect.isclass(obj) else []
        for path, documented_obj in [(name, obj), *members]:
            for block in _indented_blocks(inspect.getdoc(documented_obj) or ""):
                try:
                    code = compile(block, f"help({path})", "exec")
                except SyntaxError:
                    continue
                namespace = dict(given)
                exec(code, namespace)
                ran[path] = namespace
    assert {"GPT", "beam_search"} <= set(ran)
    # The shapes the comments of GPT's example give, B and T the prompt's.
    example = ran["GPT"]
    sizes = dict(zip("BT", example["idx"].shape))
    shapes = re.findall(r"^(\w+) = .*# (\([^)]*\))", _indented_blocks(inspect.getdoc(
        tinyformer.GPT))[0], re.M)
    assert [name for name, _ in shapes] == ["idx", "logits", "out"]
    for name, shape in shapes:
        assert example[name].shape == eval(shape, dict(sizes)), (name, shape)
    best = ran["beam_search"]["best"]
    assert best.tokens[0] == given["bos_id"] and np.isfinite(best.score)
