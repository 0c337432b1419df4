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
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(path for folder in ("tinyautograd", "tinyformer", "viz", "tinyformer_cli")
                 for path in (ROOT / folder).rglob("*.py")
                 if "course" not in path.relative_to(ROOT).parts) + [ROOT / "cli.py"]
# The layers, bottom up: each package may import those below it, never one above.
LAYERS = ["tinyautograd", "tinyformer", "viz", "tinyformer_cli"]


def is_op_name(node):
    """`x.name` or `x.name()`: the name of a graph node or of a Function."""
    if isinstance(node, ast.Call):
        node = node.func
    return isinstance(node, ast.Attribute) and node.attr == "name"


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
            'if name == "weight" and node.fn is Attention: pass\n')      # not special cases
    assert [line for line, _ in special_cases(ast.parse(code))] == [1, 2, 3, 4]


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


def test_imports_flow_one_way_and_never_reach_a_private_name():
    wrong = []
    for path in SOURCES:
        package = path.relative_to(ROOT).parts[0].removesuffix(".py")
        level = LAYERS.index("tinyformer_cli" if package == "cli" else package)
        for imported, name in imported_names(path):
            if imported in LAYERS and imported != LAYERS[level]:
                if LAYERS.index(imported) > level:
                    wrong.append(f"{path.relative_to(ROOT)} imports {imported}, a layer above")
                elif name and name.startswith("_"):
                    wrong.append(f"{path.relative_to(ROOT)} imports {imported}'s private {name}")
    assert not wrong, "; ".join(wrong)


def test_the_layer_check_sees_an_upward_import(tmp_path):
    (tmp_path / "x.py").write_text("def f():\n    from viz.graph import draw_graph, _private\n")
    assert list(imported_names(tmp_path / "x.py")) == [("viz", "draw_graph"), ("viz", "_private")]
