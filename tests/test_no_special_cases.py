"""One mechanism, no special cases: nothing in the package decides what to do by an op's name
(`node.name == "crossentropy"`) or by the words of an error message (`"..." in str(error)`).
An op's behaviour belongs to its Function, and an error's meaning to its type.

The check reads the source itself (Python's own parser), so it catches a new special case the
day it is written. The learner's exercise files are not the package's code and are left out.

The same reading checks that tinyformer's modules import each other without a cycle, late
imports inside functions included: a cycle means two modules that cannot be read (or changed)
one without the other.
"""

import ast
import inspect
from pathlib import Path

import pytest

import tinyautograd

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(path for folder in ("tinyautograd", "tinyformer", "viz", "tinyformer_cli")
                 for path in (ROOT / folder).rglob("*.py")
                 if "course" not in path.relative_to(ROOT).parts) + [ROOT / "cli.py"]
# The layers, bottom up: each package may import those below it, never one above.
LAYERS = ["tinyautograd", "tinyformer", "viz", "tinyformer_cli"]


def is_op_name(node):
    """`x.name` or `x.name()`: the name of a graph node or of a Function; or a class's own,
    `node.fn.__name__`, `type(x).__qualname__`."""
    if isinstance(node, ast.Call):
        node = node.func
    return isinstance(node, ast.Attribute) and node.attr in ("name", "__name__", "__qualname__")


def is_text(node):
    return isinstance(node, ast.Constant) and isinstance(node.value, str) or \
        isinstance(node, (ast.Tuple, ast.List, ast.Set)) and all(is_text(e) for e in node.elts)


def is_error_text(node):
    """`str(e)`, `str(e).lower()`, `e.args[0]`: the words of an exception."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return is_error_text(node.func.value)
    if isinstance(node, ast.Subscript):
        return isinstance(node.value, ast.Attribute) and node.value.attr == "args"
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
        node.func.id == "str" and len(node.args) == 1 and isinstance(node.args[0], ast.Name)


def special_cases(tree):
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:]):
            if isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) and (
                    is_op_name(left) and is_text(right) or is_text(left) and is_op_name(right)):
                yield node.lineno, "an op's name decides"
            if isinstance(op, (ast.In, ast.NotIn)) and is_text(left) and is_error_text(right):
                yield node.lineno, "an error message's words decide"


def test_the_check_finds_both_kinds_of_special_case():
    code = ('if node.name == "crossentropy": pass\n'
            'if node.fn.name() in ("gelu", "relu"): pass\n'
            'if "only once differentiable" in str(e): pass\n'
            'if "pickle" not in str(error).lower(): pass\n'
            'if node.fn.__name__ in ("Gelu", "Relu") or type(t).__qualname__ == "X": pass\n'
            'if name == "weight" and node.fn is Attention: pass\n'       # not special cases
            'if __name__ == "__main__": pass\n')
    assert [line for line, _ in special_cases(ast.parse(code))] == [1, 2, 3, 4, 5, 5]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_op_name_or_error_message_decides_what_to_do(path):
    found = [f"{path.relative_to(ROOT)}:{line}: {why}"
             for line, why in special_cases(ast.parse(path.read_text(encoding="utf-8")))]
    assert not found, "\n".join(found)


# ------------------------------------------------------------------------------ import cycles


def imports_of(path, package):
    """The modules of `package` that the file imports, at its top or inside a function (a late
    import is still a dependency); `if TYPE_CHECKING:` imports name types only, and are not."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    checking_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                     and getattr(node.test, "id", None) == "TYPE_CHECKING"
                     for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in checking_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(f"{package}.{node.module.split('.')[0]}")
            else:
                found.update(f"{package}.{alias.name}" for alias in node.names)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names]
            found.update(".".join(n.split(".")[:2]) for n in names
                         if n and n.startswith(package + "."))
    return found


def test_no_import_cycle_among_tinyformers_modules():
    graph = {f"tinyformer.{path.stem}": imports_of(path, "tinyformer")
             for path in (ROOT / "tinyformer").glob("*.py") if path.stem != "__init__"}
    graph = {module: deps & set(graph) - {module} for module, deps in graph.items()}
    done, cycles = set(), []

    def visit(module, path):
        if module in path:
            cycles.append(path[path.index(module):] + [module])
            return
        if module in done:
            return
        for dep in sorted(graph[module]):
            visit(dep, path + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_late_import(tmp_path):
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from .a import y\n")
    assert imports_of(tmp_path / "b.py", "pkg") == {"pkg.a"}


def imported_names(path):
    """(package, name) for every `from package.module import name`, and `package` alone for
    every `import package.module`, in the file: top-level packages only."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                yield node.module.split(".")[0], alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], None


def package_of(path):
    package = path.relative_to(ROOT).parts[0].removesuffix(".py")
    return "tinyformer_cli" if package == "cli" else package


def test_imports_flow_one_way_and_never_reach_a_private_name():
    wrong = []
    for path in SOURCES:
        level = LAYERS.index(package_of(path))
        for imported, name in imported_names(path):
            if imported in LAYERS and imported != LAYERS[level]:
                if LAYERS.index(imported) > level:
                    wrong.append(f"{path.relative_to(ROOT)} imports {imported}, a layer above")
                elif name and name.startswith("_"):
                    wrong.append(f"{path.relative_to(ROOT)} imports {imported}'s private {name}")
    assert not wrong, "; ".join(wrong) + (
        f" (the layers, bottom up: {', '.join(LAYERS)}; each imports only the public names of "
        f"those below it: move the code down, or make the name public where it is defined)")


def test_the_layer_check_sees_an_upward_import(tmp_path):
    (tmp_path / "x.py").write_text("def f():\n    from viz.graph import draw_graph, _private\n")
    assert list(imported_names(tmp_path / "x.py")) == [("viz", "draw_graph"), ("viz", "_private")]


# The engine's public API, which the contract says is all that tinyformer and viz may use: the
# package's own names, the modules it names in __all__ (functional, kernels, nn, optim), and
# random (the README's tinyautograd.random.seeded; kept out of __all__, where `import *` would
# hide the standard library's random). Of ops.py, the ops themselves: the Function classes
# that a graph's nodes name (node.fn is ops.MatMul), not its helpers. The rest (engine.py,
# ops.exp...) is the engine's insides, free to change.
ENGINE_MODULES = {"tinyautograd", "tinyautograd.random"} | {
    f"tinyautograd.{name}" for name in tinyautograd.__all__
    if inspect.ismodule(getattr(tinyautograd, name))}


def inside_the_engine(dotted):
    """Whether a dotted name (`tinyautograd.ops.exp`) lies outside the engine's public
    API: in one of its modules that is not public, other than an op of ops.py."""
    parts = dotted.split(".")
    if parts[0] != "tinyautograd" or len(parts) < 2:
        return False
    if (not inspect.ismodule(getattr(tinyautograd, parts[1], None))
            or f"tinyautograd.{parts[1]}" in ENGINE_MODULES):
        return False
    if parts[1] == "ops" and len(parts) > 2:
        op = getattr(tinyautograd.ops, parts[2], None)
        return not (inspect.isclass(op) and issubclass(op, tinyautograd.Function))
    return True


def beyond_the_public_api(path, package):
    """What the file, of `package`, takes from another package that is not that package's to
    give: any private name (`Tensor._make`, `ta.nn._recorder`), and anything inside the
    engine (`tinyautograd.ops.exp`), imported or reached through a name that was."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    foreign = {}                          # a name bound by an import -> what it names, dotted
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            foreign.update((alias.asname or alias.name, f"{node.module}.{alias.name}")
                           for alias in node.names)
        elif isinstance(node, ast.Import):
            foreign.update((alias.asname, alias.name) if alias.asname else
                           (alias.name.split(".")[0],) * 2 for alias in node.names)
    foreign = {name: dotted for name, dotted in foreign.items()
               if dotted.split(".")[0] in LAYERS and dotted.split(".")[0] != package}
    uses = [(name, dotted) for name, dotted in foreign.items()]        # the imports themselves
    inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    for node in ast.walk(tree):                  # each whole chain a.b.c, not its a.b
        if isinstance(node, ast.Attribute) and id(node) not in inner:
            chain, base = [], node
            while isinstance(base, ast.Attribute):
                chain.insert(0, base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id in foreign:
                uses.append((".".join([base.id] + chain), ".".join([foreign[base.id]] + chain)))
    for written, dotted in uses:
        private = [part for part in written.split(".")
                   if part.startswith("_") and not part.startswith("__")]
        if private:
            yield f"reads the private {written}"
        elif inside_the_engine(dotted):
            yield f"uses {dotted}, inside the engine"


@pytest.mark.parametrize("path", [path for path in SOURCES if package_of(path) != "tinyautograd"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_engine_is_used_through_its_public_api_only(path):
    found = sorted(set(beyond_the_public_api(path, package_of(path))))
    assert not found, f"{path.relative_to(ROOT)}: " + "; ".join(found) + (
        " (use what the package offers in its public API, or give what is needed a public name "
        "there)")


def test_the_public_api_check_sees_private_names_and_the_engines_insides(tmp_path):
    (tmp_path / "x.py").write_text(
        "import tinyautograd as ta\n"
        "from tinyautograd import Tensor, nn, random\n"
        "from tinyautograd.ops import row_sum\n"
        "from tinyautograd.optim import AdamW\n"
        "import tinyautograd.engine\n"
        "def f(b, node):\n"
        "    ta.random.seeded(1); ta.functional.row_sum(b); nn.Linear(2, 3).weight.T\n"
        "    node.fn is ta.ops.MatMul; Tensor(b).data.sum(); tinyautograd.Tensor(b)\n"
        "    return Tensor._make(b), ta.nn._recorder, ta.ops.exp(b), tinyautograd.engine.grad\n")
    assert sorted(set(beyond_the_public_api(tmp_path / "x.py", "tinyformer"))) == [
        "reads the private Tensor._make", "reads the private ta.nn._recorder",
        "uses tinyautograd.engine.grad, inside the engine",
        "uses tinyautograd.ops.exp, inside the engine",
        "uses tinyautograd.ops.row_sum, inside the engine"]
