"""The public API carries type hints: every public function and method of tinyautograd, of
tinyformer, the course (tinyformer.exercises) included, and of viz (the pictures and pages)
names the types of its parameters and of its result, and the hints resolve (no misspelt names).

Public: names without a leading underscore, defined in the package (not imported into it),
their public methods, `__init__` and `__call__`, the special methods the module writes itself
(`__getitem__`, `__iter__`, `__enter__`: a type checker reads them at `x[i]`, `for` and `with`),
and properties; a function behind a decorator
(`functools.lru_cache`) is checked as written. Exceptions are left out, and so are the ops'
Function classes (tinyformer's Attention among them): their forward and backward follow
`Function`'s, which the check covers.

The course's modules are checked: the catalogue, checking, the runner, the workspace, the
isolated process, the pictures, and the per-chapter checkers under checks/. The checkers are
in because they are not only called by the catalogue: their reference computations and helpers
are used by other chapters, by pictures.py and by the tests, and a checker's own signature,
check(learner: Learner) -> None, is the catalogue's `Checker`. Left out are the files under
course/ and solutions/: they are the learner's exercise files and their answers, written as a
learner would write them (not importable as modules: their folders start with a digit).

A hint resolves in its own module, or names a class of the checked modules: a module may
import such a class for its hints alone (`if TYPE_CHECKING:`), where a real import would be
circular (the catalogue names checking.py's Learner so), or where it would be slow: viz imports
matplotlib only when it draws, and names its Figure for its hints alone. The check imports
what a module imports under `if TYPE_CHECKING:`, so those names must resolve too.
"""

import ast
import collections.abc
import configparser
import functools
import importlib
import inspect
import pathlib
import pkgutil
import types
import typing

import numpy as np
import pytest
from numpy.typing import ArrayLike

import tinyautograd
import tinyformer
import tinyformer.exercises
import tinyformer.exercises.checks
import viz
from tinyautograd import nn
from tinyformer.exercises import exercises
from tinyformer.attention import MultiHeadAttention
from tinyformer.checkpoint import Model, load_model
from tinyformer.tokenizers import BPETokenizer, CharTokenizer, Tokenizer
from viz.graph import Graph

# Every module of the engine, found rather than listed (a new one is checked the day it is
# written); ops.py for its functions alone, its classes being the ops' Functions.
ops = importlib.import_module("tinyautograd.ops")
MODULES = [tinyautograd] + [importlib.import_module(f"tinyautograd.{info.name}")
                            for info in pkgutil.iter_modules(tinyautograd.__path__)
                            if info.name != "ops"]
TINYFORMER = [tinyformer] + [importlib.import_module(f"tinyformer.{info.name}")
                             for info in pkgutil.iter_modules(tinyformer.__path__)
                             if info.name != "exercises"]
# The course: its modules and the checkers' (course/ and solutions/ hold no modules: the
# learner's files are loaded by path).
EXERCISES = [tinyformer.exercises] + [
    importlib.import_module(f"{package.__name__}.{info.name}")
    for package in (tinyformer.exercises, tinyformer.exercises.checks)
    for info in pkgutil.iter_modules(package.__path__) if not info.ispkg]
VIZ = [viz] + [importlib.import_module(f"viz.{info.name}")
               for info in pkgutil.iter_modules(viz.__path__)]


def written_dunder(attr, member, module):
    """Whether `attr` is a special method written in `module` (not one that namedtuple or
    dataclass generates): a user calls it through an operator, len(), iteration, indexing or
    `with`, and a type checker reads its hints there as anywhere."""
    return (attr.startswith("__") and attr.endswith("__") and inspect.isfunction(member)
            and member.__code__.co_filename == module.__file__)


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
                if attr.startswith("_") and attr not in ("__init__", "__call__") \
                        and not written_dunder(attr, member, module):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if isinstance(member, property):
                    member = member.fget
                # (typing.Protocol puts an __init__ of its own into a protocol class: not ours)
                if inspect.isfunction(member) and member.__module__ != "typing":
                    yield f"{module.__name__}.{name}.{attr}", member


CHECKED = MODULES + TINYFORMER + EXERCISES + VIZ


@functools.cache
def source_tree(module):
    """The parsed source of `module`, parsed once for all the tests that read it (a second
    each time for the whole package)."""
    return ast.parse(inspect.getsource(module))
CALLABLES = [pair for module in CHECKED for pair in public_callables(module)] + \
    list(public_callables(ops, classes=False))

# The classes the checked modules define, by name: what a hint may name besides its module's own.
CLASSES = {name: obj for module in CHECKED for name, obj in vars(module).items()
           if inspect.isclass(obj) and obj.__module__ == module.__name__}


@functools.cache
def hint_imports(module):
    """What `module` imports under `if TYPE_CHECKING:` (for its hints alone), imported now."""
    names = {"__name__": module.__name__, "__package__": module.__package__}
    for node in source_tree(module).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            exec(compile(ast.Module(node.body, type_ignores=[]), module.__file__, "exec"), names)
    return names


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
            "tinyautograd.modes.no_grad", "tinyautograd.kernels.usable",
            "tinyautograd.engine.grad", "tinyautograd.engine.Function.backward",
            "tinyautograd.nn.Module.parameters", "tinyautograd.optim.AdamW.__init__",
            "tinyautograd.functional.cross_entropy", "tinyautograd.gradcheck.gradcheck",
            "tinyautograd.ops.matmul"} <= names
    assert not any(".CrossEntropy." in name or ".Add." in name for name in names)
    assert {"tinyformer.gpt.GPT.generate", "tinyformer.gpt.GPT.__init__",
            "tinyformer.decoding.beam_search", "tinyformer.decoding.SequencesSoFar.select",
            "tinyformer.tokenizers.Tokenizer.encode",
            "tinyformer.pretrained.load_gpt2_tokenizer",
            "tinyformer.tokenizers.Tokenizer.id_to_bytes",
            "tinyformer.tokenizers.Tokenizer.vocab_size",
            "tinyformer.attention.causal_mask", "tinyformer.files.atomic_write",
            "tinyformer.train_config.TrainConfig.__init__", "tinyformer.train.Trainer.resume",
            "tinyformer.safetensors.load_file", "tinyformer.schema.Number.why"} <= names
    assert not any(".Attention." in name or "Error." in name for name in names)


def test_the_check_sees_the_course():
    names = {name for name, _ in CALLABLES}
    assert {"tinyformer.exercises.catalogue.find", "tinyformer.exercises.catalogue.exercise",
            "tinyformer.exercises.catalogue.Exercise.__init__",
            "tinyformer.exercises.catalogue.Exercise.solved_text",
            "tinyformer.exercises.catalogue.Exercise.source",
            "tinyformer.exercises.checking.Learner.function",
            "tinyformer.exercises.checking.Call.__call__",
            "tinyformer.exercises.checking.expect_array", "tinyformer.exercises.checking.run_check",
            "tinyformer.exercises.workspace.Workspace.check",
            "tinyformer.exercises.workspace.init_workspace", "tinyformer.exercises.runner.draw",
            "tinyformer.exercises.runner.same_output",
            "tinyformer.exercises.isolated.check_in_subprocess",
            "tinyformer.exercises.pictures.render", "tinyformer.exercises.pictures.Panel.__init__",
            "tinyformer.exercises.checks.ch02_counting.vocabulary",
            "tinyformer.exercises.checks.ch06_attention.expect_output",
            "tinyformer.exercises.checks.ch09_generation.Model.__call__",
            "tinyformer.exercises.checks.ch15_learned_induction.shipped_model"} <= names
    assert not any(".course." in name or ".solutions." in name or "Error." in name
                   for name in names)
    # Every exercise's checker, whichever chapter registers it.
    assert {ex.check for ex in exercises()} <= {fn for _, fn in CALLABLES}


def test_the_check_sees_viz():
    names = {name for name, _ in CALLABLES}
    assert {"viz.graph.draw_graph", "viz.graph.Graph.save_html", "viz.graph.render",
            "viz.graph_page.graph_page", "viz.attention.attention_maps",
            "viz.attention_page.attention_page", "viz.lens.lens_figure",
            "viz.lens_page.lens_page", "viz.plots.metrics_figure", "viz.plots.new_figure",
            "viz.report_page.follow_run", "viz.html.Page.save", "viz.write.write_graph",
            "viz.examples.Example.__init__"} <= names
    assert not any(name.startswith("viz.") and "Error." in name for name in names)


@pytest.mark.parametrize("name, fn", CALLABLES, ids=[name for name, _ in CALLABLES])
def test_public_callable_is_fully_annotated(name, fn):
    assert not missing_hints(fn), f"{name}: no type hint for {', '.join(missing_hints(fn))}"
    module = inspect.getmodule(fn)
    namespace = CLASSES | hint_imports(module) | vars(module) | vars(tinyautograd)
    typing.get_type_hints(fn, namespace)                # every name resolves


@pytest.mark.parametrize("package", [tinyautograd, tinyformer, viz], ids=lambda p: p.__name__)
def test_the_package_is_marked_typed_and_ships_the_mark(package):
    """Without py.typed in the installed package (PEP 561), mypy skips it ("missing library
    stubs or py.typed marker") and pyright infers instead of reading the hints: every name of
    ours is Any in a user's code, and none of the hints above reaches them."""
    folder = pathlib.Path(package.__file__).parent
    assert (folder / "py.typed").is_file(), f"{package.__name__} has no py.typed"
    setup = configparser.ConfigParser()
    setup.read(folder.parent / "setup.cfg")
    shipped = setup["options.package_data"].get(package.__name__, "")
    assert "py.typed" in [name.strip() for name in shipped.split(",")], \
        f"setup.cfg's package_data does not ship {package.__name__}/py.typed"


def hints_of(fn):
    module = inspect.getmodule(fn)
    return typing.get_type_hints(fn, CLASSES | hint_imports(module) | vars(module)
                                 | vars(tinyautograd))


def returned_class(fn, receiver):
    """The class a type checker gives `receiver.fn(...)` from fn's hints: a TypeVar that also
    annotates `self` (or `cls` as type[T]) is the receiver's own class."""
    hints = hints_of(fn)
    result = hints["return"]
    if isinstance(result, typing.TypeVar) and (result == hints.get("self")
                                               or type[result] == hints.get("cls")):
        return receiver if inspect.isclass(receiver) else type(receiver)
    return result


def tokenizer_file(tmp_path, tokenizer):
    tokenizer.save(tmp_path / "tok.json")
    return tmp_path / "tok.json"


class MyGPT(tinyformer.GPT):
    """A user's subclass of GPT, as from_pretrained loads into one."""


def pretrained_folder(tmp_path):
    tinyformer.GPT(vocab_size=8, context=4, n_layer=1, n_head=1, d_model=8).save_pretrained(
        tmp_path)
    return tmp_path


# Calls a user makes on a subclass whose result is the receiver itself or of its class, with
# what they return: `model = GPT(...).eval()` must still be a GPT to mypy and pyright, so that
# `model.generate` type-checks (an annotation `-> Module` made it a Module, without generate).
SELF_RETURNING = {
    "Module.train": lambda tmp: (nn.Sequential(nn.ReLU()), "train", ()),
    "Module.eval": lambda tmp: (nn.Sequential(nn.ReLU()), "eval", ()),
    "Module.apply": lambda tmp: (nn.Sequential(nn.ReLU()), "apply", (lambda m: None,)),
    "Module.requires_grad_": lambda tmp: (nn.Linear(2, 2), "requires_grad_", (False,)),
    "ModuleList.append": lambda tmp: (nn.Sequential(), "append", (nn.ReLU(),)),
    "ModuleList.extend": lambda tmp: (nn.Sequential(), "extend", ([nn.ReLU()],)),
    "Tensor.requires_grad_": lambda tmp: (nn.Parameter(np.zeros(2)), "requires_grad_", ()),
    "GPT.from_pretrained": lambda tmp: (MyGPT, "from_pretrained", (pretrained_folder(tmp),)),
    "Tokenizer.load (char)": lambda tmp: (
        CharTokenizer, "load", (tokenizer_file(tmp, CharTokenizer.train("ab")),)),
    "Tokenizer.load (bpe)": lambda tmp: (
        BPETokenizer, "load", (tokenizer_file(tmp, BPETokenizer.train("abab", 257)),)),
}


@pytest.mark.parametrize("case", SELF_RETURNING)
def test_a_method_that_returns_its_own_object_is_hinted_with_its_class(case, tmp_path):
    receiver, name, args = SELF_RETURNING[case](tmp_path)
    method = getattr(receiver, name)                # bound to the instance, or to the class
    result = method(*args)
    assert returned_class(method.__func__, receiver) is type(result), \
        f"{case} returns a {type(result).__name__}, hinted otherwise"



def test_load_state_dict_is_hinted_to_take_what_the_readme_gives_it(tmp_path):
    """`model.load_state_dict(np.load("model.npz"))`, as the README loads weights: np.load
    gives an NpzFile, a Mapping and no dict, which a hint of dict refused in a type checker."""
    model = nn.Linear(2, 3)
    np.savez(tmp_path / "model.npz", **model.state_dict())
    state = np.load(tmp_path / "model.npz")
    hint = hints_of(nn.Module.load_state_dict)["state"]
    assert isinstance(state, typing.get_origin(hint)), f"hinted {hint}, given an NpzFile"
    model.load_state_dict(state)


def parts(hint):
    yield hint
    for arg in typing.get_args(hint):
        yield from parts(arg)


def test_a_container_of_a_union_is_taken_read_only():
    """dict and list are invariant: a parameter hinted dict[str, ArrayLike] refuses the
    dict[str, np.ndarray] a caller holds (model.state_dict(), for safetensors.save_file), and
    list[Tensor | np.ndarray] a list[Tensor]; Mapping and Sequence, read-only, take both."""
    invariant = [f"{name}: {parameter} is hinted {part}"
                 for name, fn in CALLABLES for parameter, hint in hints_of(fn).items()
                 if parameter != "return" for part in parts(hint)
                 if typing.get_origin(part) in (dict, list) and typing.get_args(part)
                 and typing.get_origin(typing.get_args(part)[-1]) in (typing.Union,
                                                                      types.UnionType)]
    assert not invariant, "; ".join(invariant) + " (a Mapping or Sequence takes what callers hold)"


def test_an_op_of_ones_own_overrides_forward_as_a_type_checker_accepts():
    """The README's Cube writes forward(ctx, x). mypy and pyright accept any override of a
    method whose parameters are `*args: Any, **kwargs: Any` alone, and reported one of
    forward(ctx, *arrays, **settings) as incompatible (it takes fewer arguments)."""
    parameters = inspect.signature(tinyautograd.Function.forward).parameters.values()
    hints = hints_of(tinyautograd.Function.forward)
    assert [p.kind for p in parameters] == [inspect.Parameter.VAR_POSITIONAL,
                                            inspect.Parameter.VAR_KEYWORD]
    assert all(hints[p.name] is typing.Any for p in parameters)


def defines_getattr(node):
    return (isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
            or isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__getattr__" for t in node.targets))


def visible_getattrs(body):
    """The `__getattr__`s among `body`'s statements that a type checker reads: those not inside
    `if not TYPE_CHECKING:`, the block that mypy and pyright skip."""
    for node in body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "not TYPE_CHECKING":
            continue
        if defines_getattr(node):
            yield node
        elif isinstance(node, ast.If):
            yield from visible_getattrs(node.body + node.orelse)


# A module's or a class's __getattr__ that only words an error (a PyTorch name gets ours)
# would tell a type checker that every name is there: `ta.tensr(...)`, `nn.Linar` and `x.shap`
# were Any to mypy, and NoReturn to pyright, which then took the rest of the function for
# unreachable and checked none of it. (Module's stays, as torch's: a model's attributes.)
WORDING_ONLY = [module for module in CHECKED if "__getattr__" in vars(module)] + \
    [tinyautograd.Tensor]


@pytest.mark.parametrize("owner", WORDING_ONLY, ids=lambda owner: owner.__name__)
def test_a_misspelt_name_is_an_error_to_a_type_checker(owner):
    source = source_tree(inspect.getmodule(owner))
    if inspect.isclass(owner):
        source = next(node for node in source.body
                      if isinstance(node, ast.ClassDef) and node.name == owner.__name__)
    assert not list(visible_getattrs(source.body)), \
        f"{owner.__name__}'s __getattr__ is read by type checkers: define it under " \
        f"`if not TYPE_CHECKING:`"


def test_grad_is_hinted_to_give_tensors_as_torchs_is():
    """The README's Hessian-vector product, `(g,) = ta.grad(...)` then `g * v`: with a hint of
    tuple[Tensor | None, ...], mypy and pyright refused `g * v` and `g.data` (g may be None)."""
    x = tinyautograd.Tensor([1.0, 2.0], requires_grad=True)
    (g,) = tinyautograd.grad((x ** 3).sum(), [x], create_graph=True)
    assert isinstance(g * 2, tinyautograd.Tensor)
    assert hints_of(tinyautograd.grad)["return"] == tuple[tinyautograd.Tensor, ...]


def test_a_class_attribute_that_starts_as_none_names_its_type():
    """`grad_fn = None` on Tensor's class made a type checker take every tensor's grad_fn for
    None: pyright refused `y.grad_fn.inputs`, and a user's `t.name = "x"` or
    `attn.last_weights = weights` (as the README has an attention of one's own do) was refused
    as not None. A public attribute whose class default is None is declared with its type."""
    undeclared = [f"{cls.__module__}.{name}.{attr}"
                  for name, cls in CLASSES.items()
                  if not name.startswith("_") and not issubclass(cls, BaseException)
                  for attr, value in vars(cls).items()
                  if not attr.startswith("_") and value is None
                  and attr not in inspect.get_annotations(cls)]
    assert not undeclared, f"declare the type of {', '.join(undeclared)} (`name: T | None = None`)"
    for cls in (tinyautograd.Tensor, tinyautograd.Context, MultiHeadAttention, Tokenizer, Graph):
        module = inspect.getmodule(cls)
        typing.get_type_hints(cls, CLASSES | hint_imports(module) | vars(module))   # resolve


def overload_called(fn, *args, **kwargs):
    """The hints of the first of fn's overloads that takes these arguments, as a type checker
    picks one: the arguments bind to its parameters, and its `model` (the one parameter the
    overloads below tell apart) is of the class it is hinted (None, or a TypeVar's bound)."""
    for candidate in typing.get_overloads(fn):
        try:
            bound = inspect.signature(candidate).bind(*args, **kwargs)
        except TypeError:
            continue
        bound.apply_defaults()
        hints = hints_of(candidate)
        hint = hints["model"]
        given = bound.arguments["model"]
        if isinstance(hint, typing.TypeVar) and isinstance(given, hint.__bound__) \
                or hint is type(None) and given is None:
            return hints
    raise AssertionError(f"no overload of {fn.__name__} takes {args}, {kwargs}")


@pytest.mark.parametrize("call", ["model=m", "positional"])
def test_load_model_is_hinted_to_give_back_the_class_of_the_model_it_is_given(call):
    """`model, tokenizer, config = load_model(run, model=m)` loads the run's weights into m and
    gives m back: hinted as GPT | BERT | Transformer, a MyGPT's own methods were unknown to mypy
    and pyright; overloads give a model given as its own class, and one built as one of those."""
    m = MyGPT(vocab_size=8, context=4, n_layer=1, n_head=1, d_model=8)
    args, kwargs = (("run",), {"model": m}) if call == "model=m" else (("run", True, m), {})
    hints = overload_called(load_model, *args, **kwargs)
    returned = typing.get_args(hints["return"])[0]
    assert returned == hints["model"], f"load_model({call}) is hinted to give {returned}"
    hints = overload_called(load_model, "run")                   # config.json builds it
    assert typing.get_args(hints["return"])[0] == Model


def admits_none(hint):
    """Whether a parameter hinted `hint` takes None, as a type checker reads it."""
    if hint in (typing.Any, object, type(None), None):
        return True
    if isinstance(hint, typing.TypeVar):
        return hint.__bound__ is None or admits_none(hint.__bound__)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(admits_none(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is typing.Literal:
        return None in typing.get_args(hint)
    return False


def test_a_parameter_whose_default_is_none_is_hinted_to_take_none():
    """`dtype: DTypeLike = None` (Tensor, Parameter, zeros_like, arange): numpy 2.3 took None
    out of DTypeLike, so `ta.Tensor(a, dtype=None)`, or passing on a dtype that may be None,
    as the default itself is, was refused by mypy and pyright. The default is a value the
    caller may pass: its hint takes it."""
    refused = [f"{name}({parameter.name}: {hints_of(fn)[parameter.name]} = None)"
               for name, fn in CALLABLES
               for parameter in inspect.signature(fn).parameters.values()
               if parameter.default is None and parameter.name in hints_of(fn)
               and not admits_none(hints_of(fn)[parameter.name])]
    assert not refused, "; ".join(refused) + " (hint it `T | None`)"


def decorators_of_ours(module):
    """The decorators on the module's functions and methods that the packages define
    themselves, resolved: each as (where it is used, the decorator, whether it is called with
    arguments first, as `@exercise(slug, ...)`)."""
    for node in ast.walk(source_tree(module)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for decorator in node.decorator_list:
            called = isinstance(decorator, ast.Call)
            target = decorator.func if called else decorator
            if not isinstance(target, ast.Name):
                continue                    # functools.cache, x.setter: not ours
            found = vars(module).get(target.id)
            # (one behind a decorator of the standard library's, as @contextlib.contextmanager
            # makes a context decorator, is typed by the library's own hints)
            if inspect.isfunction(found) and not hasattr(found, "__wrapped__") \
                    and found.__module__.split(".")[0] in ("tinyautograd", "tinyformer", "viz"):
                yield f"{module.__name__}.{node.name}", found, called


def test_a_decorator_of_ours_gives_back_what_it_decorates_as_hinted():
    """An unhinted decorator makes what it decorates Any to a type checker: `_numpy_keywords`
    made x.sum(), x.mean(), x.max(), ta.concat and F.softmax Any to mypy and pyright, so that
    `loss = x.sum()` then `loss.bakward()` passed unflagged. A decorator of ours hands back
    the type it is given (a TypeVar), or a decorator factory a Callable[[T], T]."""
    found = [(where, decorator, called) for module in CHECKED
             for where, decorator, called in decorators_of_ours(module)]
    assert any(decorator.__name__ == "_numpy_keywords" for _, decorator, _ in found)
    for where, decorator, called in found:
        hints = hints_of(decorator)
        if called:
            assert typing.get_origin(hints.get("return")) is collections.abc.Callable, \
                f"{where}: @{decorator.__name__}(...) is not hinted to give a decorator"
            (given,), returned = typing.get_args(hints["return"])
        else:
            given = hints.get(next(iter(inspect.signature(decorator).parameters)))
            returned = hints.get("return")
        assert given is not None and given == returned, \
            f"{where}: @{decorator.__name__} is not hinted to give back what it decorates"


def visible_definitions(body, name):
    """The definitions of `name` among a class body's statements that a type checker reads
    (those not inside `if not TYPE_CHECKING:`)."""
    for node in body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "not TYPE_CHECKING":
            continue
        if isinstance(node, ast.FunctionDef) and node.name == name:
            yield node
        elif isinstance(node, ast.If):
            yield from visible_definitions(node.body + node.orelse, name)


def class_body(cls):
    source = source_tree(inspect.getmodule(cls))
    return next(node for node in source.body
                if isinstance(node, ast.ClassDef) and node.name == cls.__name__).body


def test_an_array_on_the_left_of_a_tensor_gives_a_tensor_to_a_type_checker_too():
    """`a * x`, an array times a Tensor, is a Tensor (numpy hands the operator to Tensor's
    __rmul__). numpy's hints take any object with an __array__ for an array, and give an
    ndarray: with Tensor's __array__ in their sight, mypy and pyright took `a * x` for an
    ndarray and refused `(a * x).sum().backward()`."""
    a, x = np.ones(3, dtype=np.float32), tinyautograd.Tensor(np.ones(3), requires_grad=True)
    for result in (a + x, a - x, a * x, a / x, a ** x, a @ x, a == x):
        assert isinstance(result, tinyautograd.Tensor)
    assert not list(visible_definitions(class_body(tinyautograd.Tensor), "__array__")), \
        "Tensor's __array__ is read by type checkers: define it under `if not TYPE_CHECKING:`"
    assert np.asarray(x.detach()).shape == (3,)         # numpy still reads it


def test_a_function_of_ones_own_keeps_its_apply_to_a_type_checker():
    """The README's `ta.gradcheck(Cube.apply, x)`: Function's __new__, hinted NoReturn to
    refuse `Cube(x)`, made mypy take every Function for a function returning Never, with no
    `apply`. It still refuses Cube(x) as it runs."""
    assert not [node for node in visible_definitions(class_body(tinyautograd.Function),
                                                     "__new__")
                if ast.unparse(node.returns) in ("NoReturn", "Never")], \
        "Function's __new__ -> NoReturn is read by type checkers"
    with pytest.raises(TypeError, match=r"run it with Function\.apply"):
        tinyautograd.Function()


@pytest.mark.parametrize("join", [tinyautograd.concat, tinyautograd.stack],
                         ids=lambda join: join.__name__)
def test_concat_and_stack_are_hinted_to_take_the_arrays_they_take(join):
    """`ta.concat([x, np.zeros((2, 3))])` joins an array as a constant, as numpy's joins lists,
    but a hint of Sequence[Tensor] refused it in a type checker (once their hints reached it
    through the decorator that words PyTorch's keywords)."""
    x = tinyautograd.Tensor(np.ones((2, 3)), requires_grad=True)
    joined = join([x, np.zeros((2, 3))])
    joined.sum().backward()
    assert isinstance(joined, tinyautograd.Tensor) and x.grad.shape == (2, 3)
    (element,) = typing.get_args(hints_of(join)["tensors"])
    assert set(typing.get_args(ArrayLike)) <= set(typing.get_args(element)), \
        f"{join.__name__}'s tensors are hinted Sequence[{element}]"


def preserves_its_argument(fn, parameter):
    """Whether fn is hinted to give back the type of `parameter`, as a decorator that keeps
    the signature of what it decorates is (a TypeVar, in and out)."""
    hints = hints_of(fn)
    return isinstance(hints["return"], typing.TypeVar) and hints["return"] == hints[parameter]


@pytest.mark.parametrize("mode", [tinyautograd.no_grad, tinyautograd.enable_grad],
                         ids=lambda mode: mode.__name__)
def test_a_grad_mode_as_a_decorator_is_hinted_to_keep_the_function(mode):
    """`@ta.no_grad()` over `def evaluate(x: Tensor) -> float`, as torch's decorator: hinted
    Any (and Callable), the decorated function was Any to mypy and pyright, its arguments and
    result unchecked. Both spellings, `@no_grad()` and `@no_grad`, give back its own type."""
    def evaluate(x: tinyautograd.Tensor) -> bool:
        return tinyautograd.is_grad_enabled()

    x = tinyautograd.Tensor([1.0])
    assert mode()(evaluate)(x) is mode(evaluate)(x) is (mode is tinyautograd.enable_grad)
    assert mode(evaluate).__name__ == "evaluate"
    overloads = typing.get_overloads(mode)           # mode() and mode(fn)
    assert any(preserves_its_argument(overload, "fn") for overload in overloads), \
        f"@{mode.__name__} is not hinted to give back the function it decorates"
    context = next(hints_of(overload)["return"] for overload in overloads
                   if hints_of(overload)["fn"] is type(None))
    assert preserves_its_argument(context.__call__, "fn"), \
        f"{mode.__name__}()'s __call__ is not hinted to keep the function it decorates"
    assert preserves_its_argument(tinyautograd.set_grad_enabled.__call__, "fn")


def test_a_type_variable_is_declared_as_type_checkers_read_one():
    """`Item, Result = TypeVar("Item"), TypeVar("Result")` runs, but mypy and pyright read a
    TypeVar only from an assignment of its own to its own name: the hints of parallel.py's
    side_by_side and run_in_processes, which name them, were errors to them ("Variable not
    allowed in type expression") and their results unknown."""
    wrong = [f"{module.__name__}: {ast.unparse(node)}"
             for module in CHECKED for node in ast.walk(source_tree(module))
             if isinstance(node, ast.Assign) and any(
                 isinstance(call, ast.Call) and ast.unparse(call.func) in ("TypeVar",
                                                                           "typing.TypeVar")
                 for call in ast.walk(node.value))
             and not (len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                      and isinstance(node.value, ast.Call) and node.value.args
                      and ast.literal_eval(node.value.args[0]) == node.targets[0].id)]
    assert not wrong, "; ".join(wrong) + " (write `Name = TypeVar(\"Name\")`, one a line)"


def test_a_value_kept_on_ctx_is_an_attribute_a_type_checker_accepts():
    """The README keeps a forward's own values as `ctx.scale = value`: on a `ctx: Context`,
    mypy ("Context has no attribute scale") and pyright refused the assignment. Context
    declares __setattr__ to them alone: as it runs, an attribute is set as any object's, with
    no call of Python's per attribute on every op's node."""
    class Scale(tinyautograd.Function):
        @staticmethod
        def forward(ctx: tinyautograd.Context, x: np.ndarray, *, factor: float) -> np.ndarray:
            ctx.factor = factor
            return x * factor

        @staticmethod
        def backward(ctx: tinyautograd.Context, grad: np.ndarray) -> np.ndarray:
            return grad * ctx.factor

    x = tinyautograd.Tensor([1.0, 2.0], requires_grad=True)
    Scale.apply(x, factor=3.0).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]
    declared = list(visible_definitions(class_body(tinyautograd.Context), "__setattr__"))
    assert declared, "Context declares no __setattr__ to type checkers"
    assert "__setattr__" not in vars(tinyautograd.Context)


def takes(hint, value):
    """Whether a parameter hinted `hint` takes `value`, as far as its class tells (the items
    of a container are not looked into)."""
    origin = typing.get_origin(hint)
    if hint in (typing.Any, object):
        return True
    if isinstance(hint, typing.TypeVar):
        return hint.__bound__ is None or takes(hint.__bound__, value)
    if origin in (typing.Union, types.UnionType):
        return any(takes(arg, value) for arg in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is type:
        return inspect.isclass(value)
    if origin is collections.abc.Callable or hint is collections.abc.Callable:
        return callable(value)
    if isinstance(origin, type):
        return isinstance(value, origin)
    if hint in (float, complex):                    # an int is a float to a type checker
        return isinstance(value, (int, hint))
    if typing.is_typeddict(hint):
        return isinstance(value, dict)
    return not isinstance(hint, type) or isinstance(value, hint)


def test_a_parameter_default_is_a_value_its_hint_takes():
    """A default of another type than its hint is a value the caller could not pass without
    a type checker's error, and says the hint is not what the code takes: ByteLevelBPE's
    `lstrip: set[str] = frozenset()`. (A dataclass field's default_factory shows as
    `<factory>`: left out.)"""
    assert takes(set[str], set()) and not takes(set[str], frozenset())
    wrong = [f"{name}({parameter.name}: {hints_of(fn)[parameter.name]} = {parameter.default!r})"
             for name, fn in CALLABLES
             for parameter in inspect.signature(fn).parameters.values()
             if parameter.default is not inspect.Parameter.empty
             and parameter.name in hints_of(fn) and repr(parameter.default) != "<factory>"
             and not takes(hints_of(fn)[parameter.name], parameter.default)]
    assert not wrong, "; ".join(wrong)
