"""Where numpy and PyTorch have a convention, Tensor keeps it: the array protocol, dtypes,
conversions to Python numbers, the grad modes, in-place operators."""

import inspect
import json
import operator
import re
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

import tinyautograd as ta
from tinyautograd import Tensor, nn
import tinyautograd.functional as F

# ------------------------------------------------------------------ the constructor


def test_wrapping_a_tensor_keeps_its_dtype_as_np_asarray_does():
    t64 = Tensor([1.0], dtype=np.float64)
    assert Tensor(t64).dtype == np.float64 and nn.Parameter(t64).dtype == np.float64
    assert Tensor(t64, dtype=np.float32).dtype == np.float32
    assert Tensor(Tensor([1, 2])).dtype == np.int64
    assert Tensor(np.zeros(2)).dtype == np.float32          # an array's floats: float32


@pytest.mark.parametrize("data", [None, "a", ["a", "b"], {"a": 1}, [1, None]],
                         ids=["None", "str", "strs", "dict", "ragged None"])
def test_data_that_is_not_numbers_is_refused(data):
    with pytest.raises(TypeError, match=r"^Tensor: the data must be numbers or booleans, got "):
        Tensor(data)


def test_a_list_of_tensors_that_require_a_gradient_is_refused_pointing_to_stack():
    # numpy would read their numbers, and the new tensor would silently drop their graph
    x = Tensor([1.0, 2.0], requires_grad=True)
    for data in ([x[0] * 2, x[1] * 3], ([x[0]], [x[1]]), [1.0, x[1]]):
        with pytest.raises(TypeError, match=r"^Tensor: the (list|tuple) holds Tensors that "
                                            r"require a gradient, whose graph a new Tensor "
                                            r"would drop: join them with ta\.stack"):
            Tensor(data)
    np.testing.assert_array_equal(Tensor([x[0].detach(), 5.0]).data, [1, 5])   # constants
    with ta.no_grad():                                      # nothing recorded: no graph lost
        np.testing.assert_array_equal(Tensor([x[0], x[1]]).data, [1, 2])


@pytest.mark.parametrize("fn", [F.relu, F.gelu, F.softplus, F.softmax, F.log_softmax,
                                F.relu_squared, lambda x: F.dropout(x, 0.0),
                                lambda x: F.dropout(x, 0.5, training=False),
                                lambda x: F.dropout(x, 0.5, generator=np.random.default_rng(0))],
                         ids=["relu", "gelu", "softplus", "softmax", "log_softmax",
                              "relu_squared", "dropout p=0", "dropout eval", "dropout"])
def test_a_function_of_tinyautograd_functional_takes_an_array_as_a_tensor_of_it(fn):
    # F.relu and F.gelu failed on the array's missing method; dropout gave the array back, or
    # a float64 result where Tensor(array) is float32.
    array = np.random.default_rng(0).standard_normal((2, 4))
    out = fn(array)
    assert isinstance(out, Tensor) and out.dtype == np.float32
    assert_array_equal(out.data, fn(Tensor(array)).data)


@pytest.mark.parametrize("with_bias", [False, True], ids=["no bias", "bias"])
def test_linear_of_arrays_is_a_tensor_of_them_as_every_function_gives(with_bias):
    # Without a bias it was numpy's x @ weight, an ndarray (in float64 here); with one it
    # failed on the array's missing dtype.
    rng = np.random.default_rng(0)
    x, weight, bias = rng.standard_normal((2, 3)), rng.standard_normal((3, 4)), np.ones(4)
    extra = [bias] if with_bias else []
    out = F.linear(x, weight, *extra)
    assert isinstance(out, Tensor) and out.dtype == np.float32
    assert_array_equal(out.data, F.linear(Tensor(x), Tensor(weight), *extra).data)
    with pytest.raises(ta.ShapeError, match=r"pass weight\.T\)$"):      # torch's (out, in)
        F.linear(x, weight.T, *extra)


@pytest.mark.parametrize("reduce", ["any", "all"])
def test_any_and_all_answer_the_ambiguous_truth_value_as_numpy_and_torch(reduce):
    # numpy's error for `if x > 0:` says "Use a.any() or a.all()", which were missing.
    data = np.array([[0.0, 1.0, -2.0], [0.0, 0.0, 3.0]])
    x = Tensor(data, requires_grad=True)
    with pytest.raises(ValueError, match=r"Use a\.any\(\) or a\.all\(\)"):
        bool(x > 0)
    for axis, keepdims in [(None, False), (0, False), (-1, True), ((0, 1), False)]:
        out = getattr(x > 0, reduce)(axis=axis, keepdims=keepdims)
        expected = getattr(np, reduce)(data > 0, axis=axis, keepdims=keepdims)
        assert out.dtype == bool and out.grad_fn is None and not out.requires_grad
        assert_array_equal(out.data, expected)
        theirs = getattr(torch.tensor(data) > 0, reduce)(
            **({} if axis is None else {"dim": axis, "keepdim": keepdims}))
        assert_array_equal(out.data, theirs.numpy())
    assert bool(getattr(x, reduce)()) == bool(getattr(np, reduce)(data))   # nonzero is true
    with pytest.raises(TypeError, match="that is PyTorch's; here, axis"):
        getattr(x, reduce)(dim=0)


_DROPS_GRAPH = (r"the (list|tuple) holds Tensors that require a gradient, whose graph a new "
                r"Tensor would drop: join them with ta\.stack")
_X = Tensor([1.0, 2.0], requires_grad=True)
_MASK = Tensor([True, False])
_OUT = _X * 1         # (recorded here: under no_grad below, it would record nothing)
# Each way a list or tuple becomes a constant operand, and who the error names.
_LIST_OPERANDS = {
    "+": (lambda rows: _X + rows, "an operand"), "+ reflected": (lambda rows: rows + _X, None),
    "-": (lambda rows: _X - rows, None), "- reflected": (lambda rows: rows - _X, None),
    "*": (lambda rows: _X * rows, None), "/ reflected": (lambda rows: rows / _X, None),
    "**": (lambda rows: _X ** rows, None), "@": (lambda rows: _X @ rows, None),
    "@ reflected": (lambda rows: rows @ _X, None),
    "<": (lambda rows: _X < rows, None), "==": (lambda rows: _X == rows, None),
    "in": (lambda rows: rows in _X, "in: the value"),
    "+= on a constant": (lambda rows: Tensor([0.0, 0.0]).__iadd__(rows), "an operand"),
    "where a": (lambda rows: ta.where(_MASK, rows, _X), "where: a"),
    "where b": (lambda rows: ta.where(_MASK, _X, rows), "where: b"),
    "where a and b": (lambda rows: ta.where(_MASK, rows, [0.0, 0.0]), "where: a"),
    "masked_fill": (lambda rows: _X.masked_fill(_MASK, rows), "masked_fill: value"),
    "F.linear": (lambda rows: ta.functional.linear(_X, [rows, [0.0, 1.0]], bias=[0.0, 0.0]),
                 "linear: weight"),
    "backward": (lambda rows: _OUT.backward(rows, retain_graph=True), "backward: grad"),
}


@pytest.mark.parametrize("use", _LIST_OPERANDS.values(), ids=_LIST_OPERANDS.keys())
def test_an_operand_list_of_tensors_that_require_a_gradient_is_refused_as_tensor_refuses_it(use):
    # numpy read their numbers through __array__: `x + [x, x]` gave x a gradient of 2, not 4
    use, who = use
    for rows in ([_X[0] * 2, _X[1]], (_X[0], 3.0)):
        with pytest.raises(TypeError, match=f"^{re.escape(who or 'an operand')}: {_DROPS_GRAPH}"):
            use(rows)
    use([3.0, 4.0])                                         # numbers: a constant, as before
    use([_X[0].detach(), Tensor(4.0)])                      # so are Tensors without a graph
    rows = [_X[0], _X[1]]                                   # (made outside: they require one)
    with ta.no_grad():                                      # nothing recorded: no graph lost
        use(rows)


def test_an_operand_list_of_constants_still_combines_with_a_tensor():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * [3.0, Tensor(4.0)] + (x[0].detach(), 1)).sum().backward()
    np.testing.assert_array_equal(x.grad, [3, 4])
    np.testing.assert_array_equal(ta.where(Tensor([True, False]), [5, 6], x).data, [5, 2])
    # the graph kept, as the error says: join them with ta.stack
    x.grad = None
    (x + ta.stack([x, x])).sum().backward()
    np.testing.assert_array_equal(x.grad, [4, 4])                   # x counted four times


NOT_NUMBERS = {"None": None, "str": "2", "dict": {"a": 1}, "list with None": [1, None]}
OPERATORS = ["+", "-", "*", "/", "**", "@", "<", ">=", "==", "!="]


def _apply(symbol, a, b):
    return eval(f"a {symbol} b")   # (one of OPERATORS)


@pytest.mark.parametrize("symbol, bad", [
    (symbol, bad) for symbol in OPERATORS for bad in NOT_NUMBERS.values()
    # (a string or list times a tensor is Python's repetition, which asks for an index)
    if not (symbol == "*" and isinstance(bad, (str, list)))])
def test_an_operand_that_is_not_numbers_gets_pythons_answer_as_in_torch(symbol, bad):
    # numpy would read "2" as 2 and cast None to NaN: the operators answer NotImplemented, and
    # Python raises its own TypeError (or, for == and !=, compares identities), as for torch.
    for ours, theirs in [(Tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])),
                         (Tensor([1, 2]), torch.tensor([1, 2]))]:
        # (A string or list on the left is asked first, and repeats or joins itself: not ours.)
        for left in (True, False) if not isinstance(bad, (str, list)) else (True,):
            def run(t, left=left):
                return _apply(symbol, t, bad) if left else _apply(symbol, bad, t)
            try:
                expected = run(theirs)
            except TypeError as error:
                with pytest.raises(TypeError, match=f"^{re.escape(str(error))}$"):
                    run(ours)
            else:
                assert run(ours) is expected                     # False or True, not a tensor


@pytest.mark.parametrize("symbol", ["+", "-", "*", "/"])
def test_augmented_assignment_with_what_is_not_numbers_gets_pythons_type_error(symbol):
    x = Tensor([1.0, 2.0])
    expected = f"unsupported operand type(s) for {symbol}=: 'Tensor' and 'NoneType'"
    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        exec(f"x {symbol}= None")
    assert x.tolist() == [1.0, 2.0]


FUNCTIONS_OF_VALUES = {   # each given None, or a string, where numbers belong
    "where: cond": lambda x: ta.where(None, x, 0.0),
    "where: a": lambda x: ta.where([True, False], None, x),
    "where: b": lambda x: ta.where([True, False], x, None),
    "masked_fill: mask": lambda x: x.masked_fill(None, 0.0),
    "masked_fill: value": lambda x: x.masked_fill([True, False], None),
    "in: the value": lambda x: None in x,
    "backward: grad": lambda x: (x * 2).backward("1"),
    "layer_norm: weight": lambda x: ta.functional.layer_norm(x, "ab"),
    "linear: weight": lambda x: ta.functional.linear(x, "ab", Tensor([0.0])),
}


@pytest.mark.parametrize("what", FUNCTIONS_OF_VALUES)
def test_a_function_given_what_is_not_numbers_names_itself_and_the_type(what):
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=rf"^{what} must be a number, an array of numbers or a "
                                        rf"Tensor, got (NoneType|str)$"):
        FUNCTIONS_OF_VALUES[what](x)


# ------------------------------------------------------------------ the array protocol


@pytest.mark.parametrize("read", [
    lambda x: np.where(x.data > 1, x, 0.0),
    lambda x: np.concatenate([x, x]),
    lambda x: np.asarray(x),
    lambda x: np.array(x, dtype=np.float64),
    lambda x: np.clip(x, 0, 1),
])
def test_numpy_reading_a_tensor_in_the_graph_is_refused_as_in_torch(read):
    # Its result would be an array that x's gradient never reaches: silently, before.
    x = Tensor([1.0, 2.0], requires_grad=True)
    for graph_tensor in (x, x * 2):
        with pytest.raises(TypeError, match=r"^numpy read a Tensor that requires a gradient, "
                                            r"and would drop its graph: use the Tensor's own"):
            read(graph_tensor)
    with ta.no_grad():                                  # nothing recorded: nothing dropped
        np.testing.assert_array_equal(read(x), read(x.detach()))


def test_np_array_copies_unless_told_not_to():
    t = Tensor([1.0, 2.0])
    for copied in (np.array(t), np.array(t, copy=True), np.array(t, dtype=np.float64)):
        copied[0] = 99.0
        assert t.data[0] == 1.0
    assert np.asarray(t) is t.data                          # as for an ndarray: no copy
    assert np.shares_memory(np.array(t, copy=False), t.data)
    with pytest.raises(ValueError, match="copy"):
        np.array(t, dtype=np.float64, copy=False)           # a new dtype needs a copy


@pytest.mark.parametrize("dtype", ["uint8", "int8", "bool", "float16"])
def test_min_is_numpys_for_every_dtype(dtype):
    # what the missing min's advice, -(-x).max(), gave wrong: -(-x) wraps around in uint8, and
    # so does -(-128) in int8; a boolean tensor has no negative at all
    values = np.array([[0, 5, 1], [-128, 0, 3]]).astype(dtype)
    for axis in (None, 0, (0, 1)):
        got = Tensor(values, dtype=values.dtype).min(axis=axis)
        expected = values.min(axis=axis)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got.data, expected)


@pytest.mark.parametrize("axis, keepdims", [(None, False), (None, True), (1, False), (-1, True),
                                            (0, True)])
def test_argmax_is_numpys(axis, keepdims):
    values = np.array([[1.0, 5.0, 5.0], [7.0, 0.0, 2.0]])          # a tie: the first wins
    got = Tensor(values).argmax(axis=axis, keepdims=keepdims)
    expected = values.argmax(axis=axis, keepdims=keepdims)
    assert got.shape == expected.shape and got.tolist() == expected.tolist()


def test_iteration_goes_row_by_row_and_a_0d_tensor_refuses_it_as_numpy_and_torch():
    for zero_d in (np.array(3.0), torch.tensor(3.0)):
        with pytest.raises(TypeError, match="iteration over a 0-d"):
            list(zero_d)
    with pytest.raises(TypeError, match=r"^iteration over a 0-d tensor$"):
        list(Tensor(3.0))
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    rows = list(x)
    assert [r.tolist() for r in rows] == [[1.0, 2.0], [3.0, 4.0]]
    (rows[0] * rows[1]).sum().backward()                     # each row is in the graph
    assert x.grad.tolist() == [[3.0, 4.0], [1.0, 2.0]]


@pytest.mark.parametrize("value", [2.0, 5, 0, np.float32(3.0)])
def test_in_looks_for_an_equal_element_at_any_depth_as_numpy_and_torch(value):
    values = [[1.0, 2.0], [3.0, 4.0]]
    expected = value in np.array(values)
    assert expected == (value in torch.tensor(values))
    assert (value in Tensor(values)) is expected


def test_requires_grad_underscore_sets_it_in_place_and_returns_the_tensor_or_module_as_torch():
    x = Tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad
    assert x.requires_grad_(False) is x and not x.requires_grad
    restarted = (Tensor([3.0], requires_grad=True) * 2).detach().requires_grad_()
    (restarted * restarted).sum().backward()
    assert restarted.is_leaf and restarted.grad.tolist() == [12.0]
    with pytest.raises(TypeError, match="only real floating-point"):
        Tensor([1, 2]).requires_grad_()
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    twin = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    assert model[0].requires_grad_(False) is model[0] and twin[0].requires_grad_(False) is twin[0]
    assert ([p.requires_grad for p in model.parameters()]
            == [p.requires_grad for p in twin.parameters()] == [False, False, True, True])


def test_torchs_numel_dim_extend_and_zero_grad_to_zeros_work_as_in_torch():
    x, twin = Tensor(np.ones((2, 3, 4))), torch.ones(2, 3, 4)
    assert (x.numel(), x.dim()) == (twin.numel(), twin.dim()) == (24, 3)
    layers = nn.ModuleList([nn.Linear(2, 2)])
    torch_layers = torch.nn.ModuleList([torch.nn.Linear(2, 2)])
    assert layers.extend([nn.Linear(2, 3), nn.Linear(3, 1)]) is layers
    torch_layers.extend([torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)])
    assert ([name for name, _ in layers.named_parameters()]
            == [name for name, _ in torch_layers.named_parameters()])      # 0. to 2.
    with pytest.raises(TypeError, match="holds Modules, not int"):
        layers.extend([3])
    model = nn.Linear(2, 1)
    optimizer = ta.optim.SGD(model.parameters(), lr=0.1)
    for clear in (model.zero_grad, optimizer.zero_grad):
        model(Tensor(np.ones((1, 2)))).sum().backward()
        grad = model.weight.grad
        clear(set_to_none=False)                    # zeros, in the same array, as torch's
        assert model.weight.grad is grad and not grad.any() and model.bias.grad.shape == (1,)
        clear()                                     # torch's default: None
        assert model.weight.grad is None and model.bias.grad is None
    clear(set_to_none=False)                        # no gradient yet: stays None
    assert model.weight.grad is None


def test_the_norm_it_points_to_keeps_a_gradient_penalty_finite_where_x_is_all_0():
    # (x * x).sum().sqrt() has the gradient x / |x|, 0/0 = NaN at x = 0, where torch's norm
    # gives 0: a gradient penalty meets it wherever a gradient is all 0 (a dead ReLU's).
    with pytest.raises(AttributeError, match=r"\(\(x \* x\)\.sum\(axis\) \+ 1e-12\)\.sqrt\(\)"):
        Tensor(np.ones(3)).norm()
    x = Tensor(np.zeros(3), requires_grad=True, dtype=np.float64)
    (penalty,) = ta.grad((((x * x).sum() + 1e-12).sqrt() - 1) ** 2, x)
    np.testing.assert_array_equal(penalty.data, np.zeros(3))


def test_a_pytorch_name_missing_here_says_what_to_write_instead():
    x = Tensor(np.ones((2, 3)))
    for name, ours in [("view", "reshape$"), ("permute", r"transpose\(\*axes\)"),
                       ("float", r"astype\(np.float32\)$"), ("add_", "in-place methods are not"),
                       ("norm", r"\(x \* x\)\.sum\(axis\)\.sqrt\(\), the 2-norm"),
                       ("gather", r"integer-array indexing: x\[np.arange\(n\)\[:, None\]"),
                       ("logsumexp", r"m \+ \(x - m\)\.exp\(\)\.sum\(axis, keepdims=True\)")]:
        with pytest.raises(AttributeError, match=rf"^'Tensor' object has no attribute '{name}': "
                                                 rf"that is PyTorch's; here, {ours}"):
            getattr(x, name)
    for module, name, ours in [(ta, "cat", "ta.concat$"), (nn, "ModuleDict", "a plain dict"),
                               (ta.optim, "clip_grad_norm_", "clip_grad_norm$"),
                               (ta, "tril", r"np.tril\(np.ones\(\(n, n\), bool\)\), a "
                                            r"constant boolean mask"),
                               (ta, "triu", r"np.triu\(np.ones\(\(n, n\), bool\), 1\), a "
                                            r"constant boolean mask"),
                               (ta, "randint", r"numpy's generator, np.random.default_rng"),
                               (ta, "logsumexp", r"m \+ \(x - m\)\.exp\(\)"),
                               (ta, "autograd", r"ta.grad \(torch.autograd.grad's arguments\) "
                                                r"and ta.Function; a Hessian"),
                               (F, "nll_loss", r"cross_entropy\(logits, targets\), which is "
                                               r"nll_loss\(log_softmax\(logits\), targets\)"),
                               (F, "l1_loss", r"\(input - target\)\.abs\(\)\.mean\(\)$"),
                               (nn, "MSELoss", r"functional\.mse_loss\(input, target\), a "
                                               r"function$"),
                               (nn, "CrossEntropyLoss", r"functional\.cross_entropy\(logits, "
                                                        r"targets\), a function$"),
                               (nn, "BCEWithLogitsLoss", r"functional\.binary_cross_entropy_"
                                                         r"with_logits\(logits, target\), a "
                                                         r"function$")]:
        with pytest.raises(AttributeError, match=rf"^module '{module.__name__}' has no attribute "
                                                 rf"'{name}': that is PyTorch's; here, {ours}"):
            getattr(module, name)
    for name in ta.engine._TORCH_TENSOR_NAMES:        # each is torch's, and missing here
        assert hasattr(torch.ones(2, 2), name) and not hasattr(x, name), name
    for name in F._TORCH_FUNCTIONAL_NAMES:
        assert hasattr(torch.nn.functional, name) and not hasattr(F, name), name
    with pytest.raises(AttributeError, match=r"^module 'tinyautograd.functional' has no "
                                             r"attribute 'interpolate'$"):     # no hint
        _ = F.interpolate



def test_every_torch_name_hinted_is_torchs_and_missing_here():
    """The tables of hints name only what a PyTorch user could have written and we lack."""
    x, model = Tensor(np.ones((2, 3))), nn.Linear(2, 2)
    for name in ta._TORCH_NAMES:
        assert hasattr(torch, name) and not hasattr(ta, name), name
    for name in nn._TORCH_NN_NAMES:
        assert hasattr(torch.nn, name) and not hasattr(nn, name), name
    assert not any(hasattr(x, name) or hasattr(model, name) for name in ["cuda", "to"])


def test_a_torch_function_that_is_a_tensor_method_here_says_so():
    # torch.exp(x), torch.softmax(x, dim=-1), torch.sum(x): here each is x's method
    methods = [name for name, hint in ta._TORCH_NAMES.items() if "the Tensor's method" in hint]
    assert {"exp", "softmax", "sum", "max", "masked_fill"} <= set(methods)
    for name in methods:
        assert callable(getattr(Tensor, name)), name
        with pytest.raises(AttributeError, match=rf"^module 'tinyautograd' has no attribute "
                                                 rf"'{name}': that is PyTorch's; here, "
                                                 rf"x\.{name}\(\.\.\.\), the Tensor's method$"):
            getattr(ta, name)


def test_a_torch_dtype_says_which_numpy_dtype_is_the_same():
    # dtype=torch.float32, written ta.float32: numpy's dtypes are the engine's
    dtypes = {name: hint for name, hint in ta._TORCH_NAMES.items() if "numpy's dtype" in hint}
    assert {"float32", "float64", "float16", "long", "bool"} <= set(dtypes)
    for name, hint in dtypes.items():
        ours = np.dtype(eval(hint.split(",")[0], {"np": np}))
        assert str(getattr(torch, name)) == f"torch.{ours.name}", name


def test_the_torch_constructors_hints_make_torchs_tensors():
    x = torch.ones(2, 3, dtype=torch.float64)
    ours64 = Tensor(x.numpy(), dtype=np.float64)
    names = dict(ta=ta, np=np, x=ours64, y=ours64, shape=(2, 3), value=3,
                 n=3, start=0.0, end=1.0, steps=5)
    for name, theirs in [("full", torch.full((2, 3), 3)), ("eye", torch.eye(3)),
                         ("linspace", torch.linspace(0.0, 1.0, 5)),
                         ("randn_like", torch.randn_like(x)), ("rand_like", torch.rand_like(x)),
                         ("empty", torch.empty(2, 3)), ("matmul", x @ x.T)]:
        names["y"] = ours64.T if name == "matmul" else ours64
        ours = eval(ta._TORCH_NAMES[name], names)
        assert ours.shape == tuple(theirs.shape), name
        assert f"torch.{ours.dtype}" == str(theirs.dtype), name
        if name in ("full", "eye", "linspace", "matmul"):
            assert_allclose(ours.data, theirs.numpy(), rtol=1e-6)
    assert eval(ta._TORCH_NAMES["is_tensor"], names) is True
    with eval(ta._TORCH_NAMES["inference_mode"], names):
        assert not (Tensor([1.0], requires_grad=True) * 2).requires_grad


# torch's Tensor methods whose hint is an expression, run here against torch's: name -> the
# hint's expression (up to " for", where it goes on) and torch's call of the tensor t
TENSOR_WRITTEN_OUT = {
    "where": lambda t: t.where(t > 0.5, 7.0),
    "repeat": lambda t: t.repeat(3, 1),
    "tril": lambda t: t.tril(), "triu": lambda t: t.triu(),
    "new_zeros": lambda t: t.new_zeros(2, 3), "new_ones": lambda t: t.new_ones(2, 3),
    "argmin": lambda t: t.argmin(-1), "bool": lambda t: t.bool(),
    "clip": lambda t: t.clip(0.5, 0.8), "clamp": lambda t: t.clamp(min=0.5, max=0.8),
    "argsort": lambda t: t.argsort(-1), "sort": lambda t: t.sort(1).values,
    "cumsum": lambda t: t.cumsum(-1),
}


@pytest.mark.parametrize("name", TENSOR_WRITTEN_OUT)
def test_a_torch_tensor_method_written_out_computes_torchs(name):
    values = np.random.default_rng(0).random((3, 3)).astype(np.float32)
    values[0, 0] = 0.0
    hint = ta.engine._TORCH_TENSOR_NAMES[name]
    with pytest.raises(AttributeError, match=rf"'{name}': that is PyTorch's; here, "):
        getattr(Tensor(values), name)
    expression = hint.split(" for")[0].split(", numpy's")[0].split(", n copies")[0]
    expression = expression if name != "bool" else f"x.{expression}"
    names = dict(ta=ta, np=np, x=Tensor(values), condition=Tensor(values) > 0.5, y=7.0, n=3,
                 axis=-1 if name in ("argmin", "argsort") else 0, shape=(2, 3), low=0.5,
                 high=0.8)
    ours = eval(expression, names)
    ours = ours.data if isinstance(ours, Tensor) else ours
    theirs = TENSOR_WRITTEN_OUT[name](torch.from_numpy(values)).numpy()
    assert ours.dtype == theirs.dtype
    if name == "cumsum":        # a matrix product adds in BLAS's order, torch's one by one
        assert_allclose(ours, theirs, rtol=1e-6)
    else:
        assert_array_equal(ours, theirs)


def test_a_torch_function_that_is_a_missing_tensor_method_here_too_says_what_to_write():
    # The README promises that a torch name missing from ta says what to write instead:
    # torch.permute(x, ...), torch.cumsum and torch.einsum said only that ta has no such name.
    for name in ["permute", "squeeze", "unsqueeze", "flatten", "gather", "cumsum", "sort"]:
        hint = re.escape(ta.engine._TORCH_TENSOR_NAMES[name])
        with pytest.raises(AttributeError, match=rf"^module 'tinyautograd' has no attribute "
                                                 rf"'{name}': that is PyTorch's; here, as for "
                                                 rf"x\.{name}: {hint}$"):
            getattr(ta, name)
    with pytest.raises(AttributeError, match=r"'einsum': that is PyTorch's; here, x @ y, with "
                                             r"reshape, swapaxes and sum\(axis\)"):
        _ = ta.einsum


def test_a_torch_in_place_method_whose_new_tensor_form_is_ours_names_it():
    # mask.masked_fill_(...) -> x = x.masked_fill(...); torch's add_ has no x.add here
    x = Tensor(np.ones(3))
    with pytest.raises(AttributeError, match=r"'masked_fill_': that is PyTorch's; here, in-place "
                                             r"methods are not offered: x = "
                                             r"x\.masked_fill\(\.\.\.\) makes a new tensor; "
                                             r"to change x itself"):
        x.masked_fill_(np.array([True, False, False]), 0.0)
    with pytest.raises(AttributeError, match=r"'add_': that is PyTorch's; here, in-place methods "
                                             r"are not offered: x = x \+ y makes a new tensor"):
        x.add_(1)
    with pytest.raises(AttributeError, match=r"'grad_': that is PyTorch's; here, in-place methods "
                                             r"are not offered: x = x \+ y makes"):
        _ = x.grad_      # a property's name with a _ is not taken for a method


def test_a_torch_nn_name_missing_here_says_what_to_write_instead():
    import tinyformer.attention  # noqa: F401  (the modules the hints name)
    import tinyformer.blocks  # noqa: F401
    import tinyformer.transformer  # noqa: F401
    names = dict(tinyformer=tinyformer, d_model=8, n_head=2, d_ff=16, n_layer=1,
                 src_vocab_size=10, tgt_vocab_size=10, context=8)
    built = 0
    for hint in nn._TORCH_NN_NAMES.values():                      # each builds what it says
        call = re.match(r"tinyformer\.[\w.]+\([^)]*\)", hint)
        if call:
            assert isinstance(eval(call.group(), names), nn.Module), hint
            built += 1
    assert built == 6
    with pytest.raises(AttributeError, match=r"^module 'tinyautograd.nn' has no attribute "
                                             r"'MultiheadAttention': that is PyTorch's; here, "
                                             r"tinyformer.attention.MultiHeadAttention"):
        _ = nn.MultiheadAttention
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert_array_equal(eval(nn._TORCH_NN_NAMES["Identity"].split(",")[0], vars(nn))(x).data,
                       x.data)
    assert eval(nn._TORCH_NN_NAMES["Flatten"], {"x": Tensor(np.ones((2, 3, 4)))}).shape == (2, 12)


def test_torchs_size_called_says_to_write_shape_and_numpys_size_stays_an_int():
    # size is numpy's number of elements here, torch's shape method there: x.size(0), in
    # nearly every PyTorch script, would otherwise fail with "'int' object is not callable".
    x = Tensor(np.ones((2, 3)))
    for call in (lambda: x.size(), lambda: x.size(0)):
        with pytest.raises(TypeError, match=r"^x\.size\(\) is PyTorch's, the shape; here, "
                                            r"x\.size is numpy's, the number of elements, an "
                                            r"int: write x\.shape \(x\.shape\[dim\] for "
                                            r"x\.size\(dim\)\)$"):
            call()
    assert x.size == 6 and isinstance(x.size, int) and np.zeros(x.size).shape == (6,)
    assert json.dumps({"n": x.size}) == '{"n": 6}' and f"{x.size:,}" == "6"

# torch.nn.functional's names whose advice holds an expression, run here against torch's:
# name -> (the advice's text just before the expression and just after it, "" where it starts
# or ends the advice; torch's function of the arrays x and y the expression is given)
TF = torch.nn.functional
WRITTEN_OUT = {
    "sigmoid": ("", "", lambda t, u: TF.sigmoid(t)),
    "tanh": ("", "", lambda t, u: TF.tanh(t)),
    "logsigmoid": ("", "", lambda t, u: TF.logsigmoid(t)),
    "softmin": ("", "", lambda t, u: TF.softmin(t, dim=-1)),
    "leaky_relu": ("", " (torch's", lambda t, u: TF.leaky_relu(t)),
    "mish": ("", "", lambda t, u: TF.mish(t)),
    "glu": ("", " with a, b", lambda t, u: TF.glu(t, dim=-1)),
    "normalize": ("", ", rows", lambda t, u: TF.normalize(t, dim=-1)),
    "cosine_similarity": ("", "", lambda t, u: TF.cosine_similarity(t, u, dim=-1)),
    "l1_loss": ("", "", lambda t, u: TF.l1_loss(t, u)),
    "smooth_l1_loss": ("", " with d", lambda t, u: TF.smooth_l1_loss(t, u)),
    "huber_loss": ("", " with d", lambda t, u: TF.huber_loss(t, u)),
    "kl_div": ("", " for log", lambda t, u: TF.kl_div(TF.log_softmax(t, -1), TF.softmax(u, -1),
                                                       reduction="batchmean")),
    "binary_cross_entropy": ("from probabilities p, ", "",
                             lambda t, u: TF.binary_cross_entropy(t.sigmoid(), u.sigmoid())),
}


@pytest.mark.parametrize("name", WRITTEN_OUT)
def test_a_torch_functional_name_written_out_computes_torchs(name):
    after, before, theirs = WRITTEN_OUT[name]
    advice = F._TORCH_FUNCTIONAL_NAMES[name]
    expression = advice.split(after)[-1] if after else advice
    expression = expression.split(before)[0] if before else expression
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    names = dict(x=Tensor(x), input=Tensor(x), target=Tensor(y), a=Tensor(x), b=Tensor(y),
                 d=Tensor(x - y), p=Tensor(x).sigmoid(), y=Tensor(y).sigmoid(), axis=-1,
                 negative_slope=0.01, beta=1.0, delta=1.0, eps=1e-12, F=F, ta=ta)
    if name == "glu":                            # the halves of x's last axis
        names.update(a=Tensor(x[..., :2]), b=Tensor(x[..., 2:]))
    if name == "kl_div":                         # log-probabilities against probabilities
        names.update(input=F.log_softmax(Tensor(x)), target=F.softmax(Tensor(y)))
    ours = eval(expression, names)
    expected = theirs(torch.from_numpy(x), torch.from_numpy(y))
    assert_allclose(ours.data, expected.numpy(), rtol=1e-5, atol=1e-6)   # (float32)


def test_a_pytorch_in_place_method_says_what_changes_a_parameter_itself():
    # `with torch.no_grad(): p.mul_(0.5)` over a model's parameters: `p = p * 0.5` in the loop,
    # which the advice used to suggest, would rebind the name and leave the model as it was.
    layer = nn.Linear(2, 2)
    with ta.no_grad():
        for p in layer.parameters():
            with pytest.raises(AttributeError, match=r"'mul_': that is PyTorch's; here, in-place "
                                                     r"methods are not offered: x = x \+ y makes "
                                                     r"a new tensor; to change x itself \(a "
                                                     r"parameter, under no_grad\(\)\), x \+= y "
                                                     r"\(or -=, \*=, /=\), or x.data\[...\] = "
                                                     r"values$"):
                p.mul_(0.5)
            before = p.data.copy()
            p *= 0.5                                   # what it says, and the model sees it
            assert_array_equal(p.data, before * 0.5)


@pytest.mark.parametrize("call, name, ours", [
    (lambda x: x.sum(dim=1), "dim", "axis$"),
    (lambda x: x.mean(axis=0, keepdim=True), "keepdim", "keepdims$"),
    (lambda x: x.max(dim=-1, keepdim=True), "dim", "axis$"),           # the first, as called
    (lambda x: x.var(unbiased=False), "unbiased", r"ddof \(ddof=1 for unbiased=True"),
    (lambda x: x.var(correction=0), "correction", "ddof$"),
    (lambda x: x.transpose(dim0=0, dim1=1), "dim0", r"swapaxes\(a, b\)"),
    (lambda x: ta.stack([x, x], dim=1), "dim", "axis$"),
])
def test_a_pytorch_keyword_says_what_numpys_name_for_it_is(call, name, ours):
    with pytest.raises(TypeError, match=rf"\(\) got an unexpected keyword argument '{name}': "
                                        rf"that is PyTorch's; here, {ours}"):
        call(Tensor(np.ones((2, 3))))


def test_every_method_and_function_that_takes_an_axis_answers_torchs_dim():
    """From one table, for all: a method that takes an axis without it would give Python's bare
    error for dim=, which a PyTorch user cannot act on."""
    x = Tensor(np.ones((2, 3)))
    takers = [getattr(x, name) for name in dir(Tensor) if not name.startswith("_")]
    takers += [getattr(ta, name) for name in ta.__all__]
    takers += [getattr(F, name) for name in dir(F) if not name.startswith("_")]
    takers = [f for f in takers if callable(f) and not isinstance(f, type) and
              "axis" in inspect.signature(f).parameters]
    assert len(takers) >= 10
    for f in takers:
        with pytest.raises(TypeError, match="'dim': that is PyTorch's; here, axis$"):
            f(*[[x, x]] * (f in (ta.concat, ta.stack)), dim=0)


@pytest.mark.parametrize("reduce", ["sum", "mean", "var", "max", "min", "any", "all"])
def test_a_list_of_axes_reduces_over_them_as_torchs_list_of_dims(reduce):
    # numpy's reductions refuse a list ("'list' object cannot be interpreted as an integer");
    # torch's dim=[0, 2], written with numpy's name, is axis=[0, 2]
    values = np.arange(24.0).reshape(2, 3, 4) % 5
    x = Tensor(values, dtype=np.float64, requires_grad=True)
    t = torch.tensor(values, requires_grad=True)
    if reduce in ("any", "all"):
        ours, theirs = getattr(x > 2, reduce)(axis=[0, 2]), getattr(t > 2, reduce)(dim=[0, 2])
    else:
        name = {"max": "amax", "min": "amin"}.get(reduce, reduce)
        extra = {"correction": 0} if reduce == "var" else {}
        ours = getattr(x, reduce)(axis=[0, -1], keepdims=True)
        theirs = getattr(t, name)(dim=[0, -1], keepdim=True, **extra)
    assert_allclose(ours.data, theirs.detach().numpy())
    if ours.requires_grad:
        ours.sum().backward()
        theirs.sum().backward()
        assert_allclose(x.grad, t.grad.numpy())


@pytest.mark.parametrize("reduce", ["sum", "mean", "var", "max", "min"])
def test_an_empty_tuple_of_axes_reduces_none_as_numpys_not_all_as_torchs(reduce):
    # The README's table says so: torch's dim=() reduces every axis, numpy's axis=() none.
    values = np.arange(6.0).reshape(2, 3)
    ours = getattr(Tensor(values, dtype=np.float64), reduce)(axis=())
    assert_allclose(ours.data, getattr(np, reduce)(values, axis=()))
    assert ours.shape == (2, 3)
    assert getattr(torch.tensor(values), {"max": "amax", "min": "amin"}.get(reduce, reduce))(
        ()).shape == ()


def test_a_max_along_an_axis_shares_its_gradient_among_ties_as_torchs_amax():
    # The README's table says so: torch's x.max(1).values gives it all to the index returned.
    values = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    x = Tensor(values, dtype=np.float64, requires_grad=True)
    x.max(axis=1).sum().backward()
    t = torch.tensor(values, requires_grad=True)
    t.amax(1).sum().backward()
    assert_allclose(x.grad, t.grad.numpy())
    assert_allclose(x.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    t.grad = None
    t.max(1).values.sum().backward()
    assert not np.allclose(x.grad, t.grad.numpy())


def test_a_keyword_that_is_no_ones_keeps_pythons_error():
    # Python's own words, from the method without the hint, since they differ from version to
    # version (3.13 adds "Did you mean 'axis'?").
    x = Tensor(np.ones(2))
    with pytest.raises(TypeError, match=r"^Tensor.sum\(\) got an unexpected keyword argument "
                                        r"'axes'") as pythons:
        Tensor.sum.__wrapped__(x, axes=0)
    with pytest.raises(TypeError, match=f"^{re.escape(str(pythons.value))}$"):
        x.sum(axes=0)


def test_other_missing_names_keep_pythons_error_and_the_protocols_that_probe_for_them_work():
    import copy
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(AttributeError, match=r"^'Tensor' object has no attribute 'nothing'$"):
        _ = x.nothing
    with pytest.raises(AttributeError, match=r"^module 'tinyautograd' has no attribute 'nope'$"):
        _ = ta.nope
    assert not hasattr(x, "__array_interface__") and not hasattr(x, "_nothing")
    with ta.no_grad():
        assert np.asarray(x) is x.data                 # numpy probed two names, then __array__
    assert copy.copy(x).data is x.data and copy.deepcopy(x).requires_grad


def test_an_assigned_grad_is_checked_at_assignment_as_torch_checks_it():
    # A wrong shape failed later, inside backward, with numpy's broadcast error; a Tensor stayed
    # a Tensor though .grad is a numpy array.
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"^assigned grad has shape \(5,\), but the tensor has "
                                         r"shape \(3,\)"):
        x.grad = np.zeros(5)
    with pytest.raises(TypeError, match=r"^assigned grad must be a numpy array or None, got "
                                        r"Tensor: assign its \.data$"):
        x.grad = Tensor(np.zeros(3))
    with pytest.raises(TypeError, match=r"^assigned grad has dtype int64: a gradient is real "
                                        r"floating point"):
        x.grad = np.zeros(3, dtype=np.int64)
    assert x.grad is None                                   # nothing refused was kept
    x.grad = np.ones(3)                                     # one that fits is accumulated into
    (x * 2).sum().backward()
    np.testing.assert_array_equal(x.grad, [3, 3, 3])
    x.grad = None
    assert x.grad is None
    scalar = Tensor(2.0, requires_grad=True)
    scalar.grad = np.float64(1.0)                           # numpy's number, for a 0-d tensor
    assert scalar.grad.shape == ()


@pytest.mark.parametrize("value, shown", [
    (1, "1"), (0, "0"), ("False", "'False'"), (None, "None"), (np.True_, "np.True_"),
    (np.array(1.0), r"array\(1\.\)"), (np.ones((3, 4)), r"an array of shape \(3, 4\)")],
    ids=["1", "0", "str", "None", "np.True_", "0-d array", "array"])
def test_requires_grad_that_is_not_true_or_false_is_refused_as_torch_refuses_it(value, shown):
    # Taken for its truth, "False" (true) made a tensor that requires a gradient, and an array
    # meant for another argument went unnoticed; torch takes a bool and nothing else.
    says = rf"^requires_grad must be True or False, got {shown}$"
    with pytest.raises(TypeError, match="must be bool"):
        torch.tensor([1.0], requires_grad=value)
    for make in (lambda: Tensor([1.0, 2.0], requires_grad=value),
                 lambda: Tensor([1.0, 2.0]).requires_grad_(value),
                 lambda: setattr(Tensor([1.0, 2.0]), "requires_grad", value),
                 lambda: nn.Parameter([1.0, 2.0], requires_grad=value),
                 lambda: ta.zeros(2, requires_grad=value),
                 lambda: nn.Sequential().requires_grad_(value)):     # no parameters to set
        with pytest.raises(TypeError, match=says):
            make()


def test_requires_grad_is_turned_off_on_a_leaf_only():
    w = Tensor([1.0, 2.0], requires_grad=True)
    y = w * 3
    with pytest.raises(RuntimeError, match=r"on a leaf only.*mul.*\.detach\(\)"):
        y.requires_grad = False                      # as torch: its graph would stay behind
    assert y.requires_grad and y.grad_fn is not None
    w.requires_grad = False                          # a leaf: allowed
    assert not (w * 3).requires_grad


def test_concat_with_axis_none_flattens_as_numpy_and_has_its_gradient():
    a = Tensor(np.arange(4.0).reshape(2, 2), requires_grad=True, dtype=np.float64)
    b = Tensor([10.0, 20.0, 30.0], requires_grad=True, dtype=np.float64)
    joined = ta.concat([a, b], axis=None)
    assert joined.shape == (7,)
    assert_allclose(joined.data, np.concatenate([a.data, b.data], axis=None))
    direction = np.arange(7.0)
    joined.backward(direction)
    assert_allclose(a.grad, direction[:4].reshape(2, 2))
    assert_allclose(b.grad, direction[4:])
    assert ta.gradcheck(lambda a, b: ta.concat([a, b], axis=None), a, b)
    assert ta.gradgradcheck(lambda a, b: ta.concat([a * a, b], axis=None), a, b)


# ------------------------------------------------------------------ dtypes, as torch promotes them

# The same expression on tinyautograd and on torch: i, f, d, b are int64, float32, float64 and
# bool tensors, `lib` the library (for where).
PROMOTIONS = {
    "i / 2": lambda lib, i, f, d, b: i / 2,
    "2 / i": lambda lib, i, f, d, b: 2 / i,
    "i / i": lambda lib, i, f, d, b: i / i,
    "i * 0.5": lambda lib, i, f, d, b: i * 0.5,
    "0.5 + i": lambda lib, i, f, d, b: 0.5 + i,
    "i - 0.5": lambda lib, i, f, d, b: i - 0.5,
    "i ** 0.5": lambda lib, i, f, d, b: i ** 0.5,
    "2.0 ** i": lambda lib, i, f, d, b: 2.0 ** i,
    "i + f": lambda lib, i, f, d, b: i + f,
    "f + i": lambda lib, i, f, d, b: f + i,
    "f * i": lambda lib, i, f, d, b: f * i,
    "i / f": lambda lib, i, f, d, b: i / f,
    "f ** i": lambda lib, i, f, d, b: f ** i,
    "i + d": lambda lib, i, f, d, b: i + d,
    "d / i": lambda lib, i, f, d, b: d / i,
    "f + d": lambda lib, i, f, d, b: f + d,
    "b + f": lambda lib, i, f, d, b: b + f,
    "b * 0.5": lambda lib, i, f, d, b: b * 0.5,
    "where(b, i, f)": lambda lib, i, f, d, b: lib.where(b, i, f),
    "where(b, i, 0.5)": lambda lib, i, f, d, b: lib.where(b, i, 0.5),
    "concat([i, f])": lambda lib, i, f, d, b: lib.concat([i, f]),
    "stack([b, f, i])": lambda lib, i, f, d, b: lib.stack([b, f, i]),
    "concat([i, f, d])": lambda lib, i, f, d, b: lib.concat([i, f, d]),
    "i.exp()": lambda lib, i, f, d, b: i.exp(),
    "i.log()": lambda lib, i, f, d, b: i.log(),
    "i.sqrt()": lambda lib, i, f, d, b: i.sqrt(),
    "i.tanh()": lambda lib, i, f, d, b: i.tanh(),
    "i.sigmoid()": lambda lib, i, f, d, b: i.sigmoid(),
    # integers stay integers where the result is whole
    "i + 1": lambda lib, i, f, d, b: i + 1,
    "i * i": lambda lib, i, f, d, b: i * i,
    "i ** 2": lambda lib, i, f, d, b: i ** 2,
    "-i": lambda lib, i, f, d, b: -i,
    "i.relu()": lambda lib, i, f, d, b: i.relu(),
    "i.abs()": lambda lib, i, f, d, b: i.abs(),
    "i.sum()": lambda lib, i, f, d, b: i.sum(),
    "b.sum()": lambda lib, i, f, d, b: b.sum(),
    "i.max()": lambda lib, i, f, d, b: i.max(),
}


def operands(lib):
    values = [[1, 2, 3], [0.5, 1.5, 2.5], [0.25, 0.5, 4.0], [True, False, True]]
    if lib is torch:
        return [torch.tensor(v, dtype=dtype) for v, dtype in
                zip(values, [torch.int64, torch.float32, torch.float64, torch.bool])]
    return [Tensor(np.array(v, dtype=dtype), dtype=dtype)
            for v, dtype in zip(values, [np.int64, np.float32, np.float64, bool])]


@pytest.mark.parametrize("expression", PROMOTIONS)
def test_result_dtypes_are_torchs(expression):
    fn = PROMOTIONS[expression]
    ours, theirs = fn(ta, *operands(ta)), fn(torch, *operands(torch))
    assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
    assert_allclose(ours.data, theirs.numpy(), rtol=1e-6)


# A Python number is weak, as in torch: it takes a narrow tensor's dtype where it can (and
# wraps as torch's do: uint8 0 - 1 is 255), and a float meeting integers gives float32.
WEAK_NUMBERS = {
    "t + 1": lambda t: t + 1,
    "t - 1": lambda t: t - 1,
    "1 - t": lambda t: 1 - t,
    "t * 2": lambda t: t * 2,
    "t + 200": lambda t: t + 200,
    "t * 0.5": lambda t: t * 0.5,
    "1.5 - t": lambda t: 1.5 - t,
    "t + True": lambda t: t + True,
    "t / 2": lambda t: t / 2,
    "t ** 2": lambda t: t ** 2,
    "2 ** t": lambda t: 2 ** t,
    "t == 1": lambda t: t == 1,
    "t > 0.5": lambda t: t > 0.5,
}
NARROW = ["int8", "int16", "int32", "uint8", "float16", "bool"]
REFUSED_ON_BOOLEANS = {"t - 1", "1 - t", "1.5 - t"}          # by torch


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "int8", "int32", "bool"])
@pytest.mark.parametrize("axis", [None, 0])
def test_integers_sum_to_int64_as_in_torch(dtype, axis):
    # numpy sums unsigned integers to uint64, where a difference of two counts wraps round:
    # (mask.sum() - 5) was 2^64 - 2 for a uint8 mask holding 3 ones
    values = np.array([[1, 0], [1, 1]], dtype)
    ours = Tensor(values, dtype=dtype).sum(axis) - 5
    theirs = torch.tensor(values).sum(axis) - 5
    assert ours.dtype == np.int64 and theirs.dtype == torch.int64
    assert_array_equal(ours.data, theirs.numpy())


@pytest.mark.parametrize("expression, dtype", [
    (expression, dtype) for expression in WEAK_NUMBERS for dtype in NARROW
    if not (dtype == "bool" and expression in REFUSED_ON_BOOLEANS)])
def test_python_numbers_are_weak_with_narrow_dtypes_as_in_torch(expression, dtype):
    values = [0, 1, 2] if dtype != "bool" else [False, True, True]
    fn = WEAK_NUMBERS[expression]
    ours = fn(Tensor(np.array(values, dtype=dtype), dtype=dtype))
    theirs = fn(torch.tensor(values, dtype=getattr(torch, dtype)))
    assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
    assert_allclose(ours.data, theirs.numpy(), rtol=1e-3)


# A 0-d tensor meeting a tensor with axes of its own kind (float and float, integer and
# integer) takes that tensor's dtype, as a Python number does, in torch; numpy 2 would widen.
# Two 0-d tensors promote as two tensors with axes do: a float64 times a float16 is float64.
ZERO_D = [("float16", "float32"), ("float32", "float64"), ("float64", "float16"),
          ("int32", "int64"), ("uint8", "int64"), ("int64", "float64"), ("float32", "int64")]


WITH_0_D = {
    "t * s": lambda lib, t, s: t * s,
    "s - t": lambda lib, t, s: s - t,
    "t / s": lambda lib, t, s: t / s,
    "s ** t": lambda lib, t, s: s ** t,
    "t > s": lambda lib, t, s: t > s,
    "where(t > 1, s, t)": lambda lib, t, s: lib.where(t > 1, s, t),
}


@pytest.mark.parametrize("values", [[1, 2, 3], 1], ids=["with axes", "0-d"])
@pytest.mark.parametrize("dims, zero_d", ZERO_D)
@pytest.mark.parametrize("expression", WITH_0_D)
def test_a_0_d_tensor_combines_with_another_tensor_as_in_torch(expression, dims, zero_d, values):
    run = WITH_0_D[expression]
    number = 2
    ours = run(ta, Tensor(np.array(values, dims), dtype=dims),
               Tensor(np.array(number, zero_d), dtype=zero_d))
    theirs = run(torch, torch.tensor(values, dtype=getattr(torch, dims)),
                 torch.tensor(number, dtype=getattr(torch, zero_d)))
    assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
    assert_allclose(ours.data, theirs.numpy(), rtol=1e-3)


@pytest.mark.parametrize("order", ["h * scale", "scale * h"])
def test_a_0_d_tensor_cast_to_the_others_dtype_keeps_its_gradient_in_its_own(order):
    h = Tensor([1.0, 2.0], dtype=np.float16, requires_grad=True)
    scale = Tensor(3.0, requires_grad=True)
    y = h * scale if order == "h * scale" else scale * h
    y.sum().backward()
    assert y.dtype == np.float16
    assert h.grad.dtype == np.float16 and scale.grad.dtype == np.float32 and scale.grad == 3.0


def test_a_gradient_has_its_inputs_dtype_as_in_torch_when_dtypes_mix():
    # float32 x times a float64 c computes in float64; x's gradient is float32 all the same:
    # from grad(), in .grad and .grad_tensor, and as x's hooks see it.
    def run(lib, x, y, c):
        seen = []
        x.register_hook(lambda g: seen.append(g.dtype))
        grads = lib.grad((x * y * c).sum(), [x, y])
        (x * y * c).sum().backward()
        return [g.dtype for g in grads] + seen + [x.grad.dtype, y.grad.dtype]

    ours = run(ta, Tensor([1.0, 2.0], requires_grad=True),
               Tensor([3.0, 4.0], dtype=np.float64, requires_grad=True),
               Tensor([5.0, 6.0], dtype=np.float64))
    theirs = run(torch.autograd, torch.tensor([1.0, 2.0], requires_grad=True),
                 torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True),
                 torch.tensor([5.0, 6.0], dtype=torch.float64))
    assert [d.name for d in ours] == [str(d).removeprefix("torch.") for d in theirs]
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * Tensor([5.0, 6.0], dtype=np.float64)).sum().backward(create_graph=True)
    assert x.grad_tensor.dtype == np.float32 and x.grad.dtype == np.float32


def test_the_cast_of_a_gradient_is_recorded_under_create_graph_as_in_torch():
    def second(lib, x, c):
        (g,) = lib.grad((x * x * x * c).sum(), [x], create_graph=True)   # 3 x^2 c, float32
        (gg,) = lib.grad((g * g).sum(), [x])                             # 36 x^3 c^2
        return g, gg

    values, constant = [1.0, 2.0], [0.5, 3.0]
    g, gg = second(ta, Tensor(values, requires_grad=True), Tensor(constant, dtype=np.float64))
    tg, tgg = second(torch.autograd, torch.tensor(values, requires_grad=True),
                     torch.tensor(constant, dtype=torch.float64))
    assert g.dtype == gg.dtype == np.float32 and tg.dtype == tgg.dtype == torch.float32
    assert_allclose(gg.data, tgg.numpy(), rtol=1e-6)


def test_astype_casts_in_the_graph_with_its_gradient_cast_back():
    x = Tensor([0.7, 1.1, 1.3], dtype=np.float64, requires_grad=True)
    y = x.astype(np.float32)
    assert y.dtype == np.float32 and y.grad_fn.name == "astype"
    # finite differences through float32 need a large step
    assert ta.gradcheck(lambda x: (x.astype(np.float32) ** 3).astype(np.float64), x, eps=1e-2)
    mixed = Tensor([1.0, 2.0, 3.0], dtype=np.float64)    # float32 meets float64 on the way back
    assert ta.gradgradcheck(lambda x: x.astype(np.float32) ** 3 * mixed, x, eps=1e-2)
    steps = x.astype(np.int64)                           # no gradient: outside the graph, as torch
    assert steps.dtype == np.int64 and not steps.requires_grad


FRACTIONS = {   # torch refuses these on integer tensors; here they follow the same rule
    "i.gelu()": (lambda i, f: i.gelu(), [0.841192, 1.954598, 2.996363]),
    "i.softmax()": (lambda i, f: i.softmax(), [0.090031, 0.244728, 0.665241]),
    "i.log_softmax()": (lambda i, f: i.log_softmax(), [-2.407606, -1.407606, -0.407606]),
    "i.mean()": (lambda i, f: i.mean(), 2.0),
    "i.var()": (lambda i, f: i.var(), 2 / 3),
    "i @ f": (lambda i, f: i @ f, 11.0),
}


@pytest.mark.parametrize("expression", FRACTIONS)
def test_fractions_of_integer_tensors_are_float32(expression):
    fn, expected = FRACTIONS[expression]
    i, f, _, _ = operands(ta)
    result = fn(i, f)
    assert result.dtype == np.float32
    assert_allclose(result.data, expected, rtol=1e-5)


def test_dropout_of_an_integer_tensor_scales_the_survivors_in_float32():
    ta.manual_seed(0)
    dropped = ta.functional.dropout(Tensor(np.full(1000, 3)), 0.25)
    assert dropped.dtype == np.float32                    # as 3 / 0.75 would be
    assert set(np.unique(dropped.data)) == {0.0, np.float32(3 / 0.75)}


def test_dropout_keeps_a_float_tensors_dtype_and_scales_the_survivors_in_it():
    # float16 stays float16 and float64 keeps 1/(1-p) to float64's last bit, as torch's.
    for dtype in (np.float16, np.float64):
        dropped = ta.functional.dropout(Tensor(np.ones(1000, dtype), dtype=dtype), 0.1,
                                        generator=np.random.default_rng(0))
        assert dropped.dtype == dtype
        assert set(np.unique(dropped.data)) == {0.0, dtype(1 / 0.9)}


def test_a_linear_layer_keeps_float32_on_integer_input():
    layer = nn.Linear(3, 2)
    for x in (Tensor([1, 2, 3]), np.array([1, 2, 3])):
        y = layer(x)
        assert y.dtype == np.float32
        assert_allclose(y.data, np.array([1, 2, 3]) @ layer.weight.data + layer.bias.data,
                        rtol=1e-6)


# ------------------------------------------------------------------ Python numbers, as torch


def test_a_tensor_of_one_element_converts_to_a_python_number():
    loss = ta.functional.cross_entropy(Tensor([[2.0, 0.5]]), np.array([0]))
    assert float(loss) == pytest.approx(0.2014133) and isinstance(float(loss), float)
    assert f"{loss:.3f}" == "0.201" and f"{Tensor([[2.5]]):.1f}" == "2.5"
    assert int(Tensor(3.7)) == 3 and int(Tensor([[3]])) == 3
    assert operator.index(Tensor(2)) == 2 and [10, 20, 30][Tensor([1])] == 20
    assert list(range(Tensor(3))) == [0, 1, 2]
    assert bool(Tensor([1.0])) and not bool(Tensor(0))
    assert f"{Tensor([1.0, 2.0])}" == repr(Tensor([1.0, 2.0]))      # no format spec: as str()


def test_a_larger_tensor_does_not_convert():
    t = Tensor([1.0, 2.0])
    for name, convert in [("float", float), ("int", int), ("format", lambda t: f"{t:.3f}"),
                          ("item", Tensor.item)]:
        with pytest.raises(ValueError, match=rf"^{name}: only a tensor of one element converts "
                                             r"to a Python number; this one has shape \(2,\)$"):
            convert(t)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(t)
    for t in (Tensor(1.0), Tensor([1, 2])):
        with pytest.raises(TypeError, match=r"only an integer tensor of one element can be an "
                                            r"index; this one is (float32|int64) of shape"):
            operator.index(t)


@pytest.mark.parametrize("symbol", ["&", "|", "^"])
def test_masks_combine_with_the_logical_operators_as_in_torch(symbol):
    values = np.array([-1.0, 0.5, 2.0, 0.0])
    ours, theirs = Tensor(values, requires_grad=True), torch.tensor(values)
    for left, right in [(lambda t: t > 0, lambda t: t < 1),
                        (lambda t: t > 0, lambda t: np.array([True, False, True, False])),
                        (lambda t: t > 0, lambda t: True)]:
        got = _apply(symbol, left(ours), right(ours))
        expected = _apply(symbol, left(theirs), torch.as_tensor(right(values)))
        assert got.dtype == bool and not got.requires_grad
        np.testing.assert_array_equal(got.data, expected.numpy())
        # the other way round: numpy's array and Python's bool hand the operator to the Tensor
        np.testing.assert_array_equal(_apply(symbol, right(ours), left(ours)).data, expected)
    integers = _apply(symbol, Tensor(np.array([6, 3], np.int32)), 5)
    assert integers.dtype == np.int32
    np.testing.assert_array_equal(integers.data, _apply(symbol, torch.tensor([6, 3]), 5))


def test_not_inverts_a_mask_and_the_bits_of_an_integer_as_in_torch():
    mask = Tensor([1.0, -1.0]) > 0
    np.testing.assert_array_equal((~mask).data, [False, True])
    np.testing.assert_array_equal((~Tensor(np.array([0, 5], np.uint8))).data,
                                  (~torch.tensor([0, 5], dtype=torch.uint8)).numpy())


def test_pythons_abs_is_the_differentiable_abs_as_numpys_and_torchs():
    x = Tensor([-2.0, 0.0, 3.0], requires_grad=True)
    y = abs(x)
    y.backward(np.ones(3))
    np.testing.assert_array_equal(y.data, [2.0, 0.0, 3.0])
    np.testing.assert_array_equal(x.grad, [-1.0, 0.0, 1.0])
    assert abs(Tensor(np.array([-3], np.int8))).dtype == np.int8


def test_the_logical_operators_refuse_floats_and_misfit_shapes():
    x = Tensor([0.5, 2.0])
    for combine in (lambda: x & (x > 0), lambda: (x > 0) | x, lambda: ~x):
        with pytest.raises(TypeError, match=r"^(&|\||~) works on boolean masks \(or integers, bit "
                                            r"by bit\), not float32: compare first"):
            combine()
    with pytest.raises(ta.ShapeError, match=r"^bitwise_and: shapes \(2,\) and \(3,\) do not "
                                            r"broadcast"):
        (x > 0) & np.array([True, False, True])


def test_a_comparison_of_shapes_that_do_not_broadcast_is_a_shape_error():
    with pytest.raises(ta.ShapeError, match=r"^less: shapes \(2,\) and \(3,\) do not broadcast "
                                            r"\(each trailing size must match or be 1\)$"):
        _ = Tensor([1.0, 2.0]) < Tensor([1.0, 2.0, 3.0])


def test_an_integer_tensor_compares_with_a_float_one_in_the_floats_dtype_as_it_adds():
    # 2**24 + 1 is no float32: torch, and `+`, round it to 2**24 before comparing; numpy's
    # float64 would not.
    i, f = np.array([2**24 + 1, 3], np.int64), np.array([2.0**24, 3.5], np.float32)
    for compare in (operator.eq, operator.lt, operator.ge):
        ours = compare(Tensor(i), Tensor(f))
        np.testing.assert_array_equal(ours.data, compare(torch.tensor(i), torch.tensor(f)))
        np.testing.assert_array_equal(compare(Tensor(f), Tensor(i)).data,
                                      compare(torch.tensor(f), torch.tensor(i)))


# ------------------------------------------------------------------ grad modes, as torch


@pytest.fixture
def restores_grad_mode():
    yield
    ta.set_grad_enabled(True)


def test_set_grad_enabled_called_alone_switches_the_mode(restores_grad_mode):
    ta.set_grad_enabled(False)
    assert not ta.is_grad_enabled()
    assert not (Tensor([1.0], requires_grad=True) * 2).requires_grad
    ta.set_grad_enabled(True)
    assert ta.is_grad_enabled()


def test_set_grad_enabled_as_a_context_restores_the_mode_it_found(restores_grad_mode):
    with ta.set_grad_enabled(False):
        assert not ta.is_grad_enabled()
        with ta.set_grad_enabled(True):
            assert ta.is_grad_enabled()
        assert not ta.is_grad_enabled()
    assert ta.is_grad_enabled()


def test_grad_modes_as_decorators_with_and_without_parentheses(restores_grad_mode):
    @ta.set_grad_enabled(False)
    def off():
        return ta.is_grad_enabled()

    @ta.no_grad
    def bare_off():
        return ta.is_grad_enabled()

    @ta.no_grad()
    def called_off():
        return ta.is_grad_enabled()

    @ta.enable_grad
    def on():
        return ta.is_grad_enabled()

    assert ta.is_grad_enabled()            # decorating switches nothing
    assert off() is False and bare_off() is False and called_off() is False
    with ta.no_grad():
        assert on() is True
        assert not ta.is_grad_enabled()
    assert ta.is_grad_enabled()
    assert bare_off.__name__ == "bare_off"


def test_a_grad_mode_is_given_back_when_its_function_or_block_raises(restores_grad_mode):
    @ta.no_grad()
    def fails():
        raise KeyError("inside")

    with pytest.raises(KeyError):
        fails()
    assert ta.is_grad_enabled()
    with pytest.raises(KeyError), ta.no_grad():
        raise KeyError("inside")
    assert ta.is_grad_enabled()


def test_a_decorated_generator_runs_each_step_in_the_mode_as_torch(restores_grad_mode):
    # Calling a generator function only makes the generator: its body runs at each next(),
    # after the call has returned. Each step runs in the mode, the caller's mode in between.
    def steps(lib, decorator, x):
        @decorator
        def doubled(x):
            for _ in range(2):
                received = yield (x * 2).requires_grad, lib.is_grad_enabled()
                assert received == "go on"
            return "done"

        seen, generator = [], doubled(x)
        seen.append(next(generator))
        seen.append(lib.is_grad_enabled())               # the caller's mode, between steps
        seen.append(generator.send("go on"))
        with pytest.raises(StopIteration) as end:
            generator.send("go on")
        return seen + [end.value.value]

    x, xt = Tensor([1.0], requires_grad=True), torch.tensor([1.0], requires_grad=True)
    for ours, theirs in [(ta.no_grad(), torch.no_grad()),
                         (ta.set_grad_enabled(False), torch.set_grad_enabled(False))]:
        ta.set_grad_enabled(True)
        torch.set_grad_enabled(True)
        assert (steps(ta, ours, x) == steps(torch, theirs, xt)
                == [(False, False), True, (False, False), "done"])
    with ta.no_grad(), torch.no_grad():
        assert (steps(ta, ta.enable_grad(), x) == steps(torch, torch.enable_grad(), xt)
                == [(True, True), False, (True, True), "done"])


def test_a_decorated_generator_closed_or_thrown_into_runs_that_in_the_mode(restores_grad_mode):
    seen = []

    @ta.no_grad()
    def watched():
        try:
            yield 1
        except ValueError:
            seen.append(("thrown", ta.is_grad_enabled()))
            yield 2
        finally:
            seen.append(("closed", ta.is_grad_enabled()))

    generator = watched()
    assert next(generator) == 1 and generator.throw(ValueError()) == 2
    generator.close()
    assert seen == [("thrown", False), ("closed", False)] and ta.is_grad_enabled()


def test_no_grad_takes_effect_only_when_entered(restores_grad_mode):
    context = ta.no_grad()
    assert ta.is_grad_enabled()
    with context:
        assert not ta.is_grad_enabled()
    assert ta.is_grad_enabled()


# ------------------------------------------------------------------ x += y


def test_augmented_assignment_under_no_grad_updates_a_parameter_in_place():
    p = nn.Parameter(np.ones(3))
    alias, array = p, p.data
    p.grad = np.array([1.0, 2.0, 4.0], dtype=np.float32)
    with ta.no_grad():
        p -= 0.5 * p.grad
        p += np.float64(1.0)                     # the parameter's dtype stays float32
        p *= Tensor([2.0, 2.0, 2.0])
        p /= 4
    assert p is alias and type(p) is nn.Parameter and p.requires_grad
    assert p.data is array and p.dtype == np.float32
    assert_allclose(p.data, [0.75, 0.5, 0.0])


def test_augmented_assignment_outside_a_graph_is_in_place_as_numpy():
    t = Tensor([1.0, 2.0])
    alias = t
    t += 1
    assert t is alias and t.data.tolist() == [2.0, 3.0]
    i = Tensor([1, 2])
    i *= 3
    assert i.dtype == np.int64 and i.data.tolist() == [3, 6]


def test_augmented_assignment_on_a_leaf_that_requires_grad_is_refused_while_recording():
    p = nn.Parameter(np.ones(2))
    with pytest.raises(RuntimeError, match=r"^in-place -= on a tensor that requires grad: do "
                                           r"it under no_grad\(\), or write x = x - y$"):
        p -= 0.5
    assert p.data.tolist() == [1.0, 1.0]


def test_augmented_assignment_on_a_view_of_a_leaf_that_requires_grad_is_refused_as_in_torch():
    # torch's "a view of a leaf Variable that requires grad is being used in an in-place
    # operation": a new x would leave the leaf as it was, silently.
    p = nn.Parameter(np.ones((2, 3)))
    for view in (lambda: p[0], lambda: p.T, lambda: p.reshape(3, 2)[1:]):
        v = view()
        with pytest.raises(RuntimeError, match=r"^in-place \+= on a view \((getitem|transpose)\) "
                                               r"of a leaf that requires grad: do it under "
                                               r"no_grad\(\), or write x = x \+ y$"):
            v += 1
    assert p.data.tolist() == [[1.0] * 3] * 2
    copy = p[[0, 0]]                             # an integer index copies: a new x, as before
    copy += 1
    assert copy.grad_fn.name == "add" and p.data.tolist() == [[1.0] * 3] * 2
    activation = p * 2                           # a view of an activation: a new x, as before
    row = activation[0]
    row += 1
    assert row.grad_fn.name == "add" and activation.data.tolist() == [[2.0] * 3] * 2
    with ta.no_grad():                           # nothing recorded: the leaf changes, as torch's
        v = p[0]
        v += 1
    assert p.data.tolist() == [[2.0] * 3, [1.0] * 3]


def test_one_element_of_a_tensor_is_a_view_of_it_as_in_torch():
    # numpy gives one element (b[0] of a vector, W[0, 1]) as a scalar, a copy: `v = b[0]` then
    # `v += 1` made a new v where torch refuses it, and under no_grad() left b as it was where
    # torch changes it. The README promises the refusal for `v = w[0]`.
    b, W = nn.Parameter(np.ones(3)), nn.Parameter(np.ones((2, 3)))
    for view in (lambda: b[0], lambda: W[0, 1], lambda: W[-1][2]):
        v = view()
        with pytest.raises(RuntimeError, match=r"^in-place \+= on a view \(getitem\) of a "
                                               r"leaf that requires grad"):
            v += 1
    with ta.no_grad():
        v, e = b[0], W[0, 1]
        v += 1
        e *= 5
    assert b.data.tolist() == [2.0, 1.0, 1.0] and W.data.tolist() == [[1.0, 5.0, 1.0], [1.0] * 3]
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x[1] * x                                  # x[1] used, then x changed: caught
    with ta.no_grad():
        x += 1
    with pytest.raises(RuntimeError, match="changed in place"):
        y.sum().backward()
    z = Tensor([3.0, 4.0], requires_grad=True)
    (z[1] * z[0]).backward()                      # the gradient is as before
    assert z.grad.tolist() == [4.0, 3.0]
    assert Tensor(np.arange(3))[2].item() == 2 and Tensor(np.arange(3))[2].shape == ()


def test_augmented_assignment_that_must_be_recorded_makes_a_new_tensor():
    # x = x * y, recorded: what a backward written for arrays and Tensors alike does with
    # `d *= mask` under create_graph (torch would record it in place).
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    before = y
    y *= x
    assert y is not before and y.grad_fn.name == "mul"
    y.sum().backward()
    assert_allclose(x.grad, 4 * x.data)
    w = Tensor([3.0], requires_grad=True)
    total = Tensor([0.0])
    total += w                                   # a constant plus a leaf that requires grad
    assert total.requires_grad
    total.backward()
    assert w.grad.tolist() == [1.0]


def test_augmented_assignment_that_cannot_keep_the_dtype_or_shape_is_refused():
    i = Tensor([1, 2])
    with pytest.raises(TypeError, match=r"^in-place /= cannot keep this tensor's dtype int64"):
        i /= 2
    for other in (np.ones((3, 2), dtype=np.int64), np.ones(3, dtype=np.int64)):
        with pytest.raises(ta.ShapeError, match=r"^in-place \+=: shapes \(2,\) and \(3, ?2?\) "
                                                r"do not give this tensor's shape"):
            i += other
    view = Tensor([1.0]).broadcast_to(2, 1)
    with pytest.raises(ValueError, match=r"read-only"):
        view += 1
    # not only a broadcast view: whatever made the array read-only, the message says what to do
    frozen = Tensor(np.frombuffer(np.ones(2, np.float32).tobytes(), np.float32))
    with pytest.raises(ValueError, match=r"read-only \(.*\bnp\.frombuffer.*Tensor\(a\.copy"):
        frozen += 1
    assert i.data.tolist() == [1, 2]


def test_augmented_assignment_recorded_keeps_the_shape_and_dtype_as_unrecorded_and_torchs():
    # The recorded x = x + y grew x to the broadcast shape, and widened its dtype, where the
    # same line under no_grad (numpy's in place) and torch's refuse the shape and keep the dtype.
    for y_requires_grad in (False, True):
        x = Tensor([1.0, 2.0], requires_grad=not y_requires_grad)
        y = x * 1
        with pytest.raises(ta.ShapeError, match=r"^in-place \+=: shapes \(2,\) and \(3, 2\) do "
                                                r"not give this tensor's shape; write x = x \+ y$"):
            y += Tensor(np.ones((3, 2)), requires_grad=y_requires_grad)
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * 1
    y += Tensor([0.5, 0.5], dtype=np.float64)    # float32 stays float32, as torch's
    assert y.dtype == np.float32 and y.data.tolist() == [1.5, 2.5]
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [3.0, 5.0]
    half = Tensor([1.0, 2.0], dtype=np.float16, requires_grad=True) * 1
    half *= Tensor([3.0, 3.0], requires_grad=True)
    assert half.dtype == np.float16
    ids = Tensor([1, 2])
    with pytest.raises(TypeError, match=r"^in-place \+= cannot keep this tensor's dtype int64 "
                                        r"\(the result is float32\); write x = x \+ y$"):
        ids += Tensor([0.5, 0.5], requires_grad=True)
    assert ids.data.tolist() == [1, 2]


def test_power_in_place_follows_the_rules_of_the_other_augmented_assignments():
    # Python made x **= y a new x = x ** y: a parameter raised under no_grad kept its values
    # silently, and a leaf that requires grad did not refuse it as in torch
    p = nn.Parameter(np.array([2.0, 3.0]))
    alias = p
    with ta.no_grad():
        p **= 2
    assert p is alias and p.dtype == np.float32 and p.data.tolist() == [4.0, 9.0]
    with pytest.raises(RuntimeError, match=r"^in-place \*\*= on a tensor that requires grad"):
        p **= 2
    x = Tensor([2.0, 3.0], requires_grad=True)
    y = x * 1
    before = y
    y **= 2                                      # recorded: a new y, with its gradient
    assert y is not before and y.grad_fn.name == "pow"
    y.sum().backward()
    assert x.grad.tolist() == [4.0, 6.0]
    i = Tensor([2, 3])
    i **= 2
    assert i.dtype == np.int64 and i.data.tolist() == [4, 9]
    with pytest.raises(TypeError, match=r"^in-place \*\*= cannot keep this tensor's dtype int64"):
        i **= 0.5
    with pytest.raises(ValueError, match=r"^Integers to negative integer powers"):   # as torch
        i **= -1
    with pytest.raises(ValueError, match=r"^Integers to negative integer powers"):
        i **= np.array([2, -1])                  # refused whole: the 4 was squared first
    with pytest.raises(ta.ShapeError, match=r"^in-place \*\*=: shapes \(2,\) and \(3, 2\)"):
        i **= np.ones((3, 2), np.int64)
    assert i.data.tolist() == [4, 9]


def test_masks_combine_in_place_and_unary_plus_is_the_tensor_itself():
    # Without __iand__ and the rest, Python made m &= k a new m = m & k: another name for the
    # mask kept its old values, where numpy's and torch's change in place
    mask = Tensor([True, True, False])
    alias = mask
    mask &= Tensor([True, False, True])
    assert mask is alias and alias.data.tolist() == [True, False, False]
    mask |= np.array([False, False, True])
    mask ^= True
    assert mask is alias and mask.dtype == np.bool_ and mask.data.tolist() == [False, True, False]
    bits = Tensor([6, 3])
    bits &= 2
    assert bits.data.tolist() == [2, 2]
    with pytest.raises(TypeError, match=r"^& works on boolean masks .*not float32"):
        x = Tensor([1.0, 2.0])
        x &= 1
    with pytest.raises(TypeError, match=r"^\| works on boolean masks"):
        mask |= 0.5
    with pytest.raises(TypeError, match=r"^in-place \^= cannot keep this tensor's dtype bool"):
        mask ^= 3
    with pytest.raises(ta.ShapeError, match=r"^in-place &=: shapes \(3,\) and \(2,\)"):
        mask &= np.ones(2, bool)
    assert mask.data.tolist() == [False, True, False]
    x = Tensor([1.0, -2.0], requires_grad=True)
    assert +x is x                               # as torch's positive(): the tensor itself


# ------------------------------------------------------------------ // and %


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.float32, np.float64])
def test_floor_division_and_remainder_are_numpys_and_torchs_the_sign_the_divisors(dtype):
    # `ids % vocab`, `pos // 2`: Python's bare TypeError before. The quotient is rounded down
    # and the remainder takes the divisor's sign (-7 % 3 is 2, 7 % -3 is -2), as numpy's and
    # torch's, with the dtypes torch gives, broadcast, and a number on either side.
    rng = np.random.default_rng(0)
    signed = np.dtype(dtype).kind != "u"
    a = rng.integers(-20 if signed else 0, 21, (3, 1)).astype(dtype)
    b = rng.choice([-3, -2, 2, 5] if signed else [2, 3, 5], 4).astype(dtype)
    if np.dtype(dtype).kind == "f":
        a = a + rng.uniform(0.1, 0.9, a.shape).astype(dtype)
    ta_a, ta_b = Tensor(a, dtype=dtype), Tensor(b, dtype=dtype)
    t_a, t_b = torch.from_numpy(a), torch.from_numpy(b)
    for ours, theirs in [(ta_a // ta_b, t_a // t_b), (ta_a % ta_b, t_a % t_b),
                         (ta_a // 3, t_a // 3), (ta_a % 3, t_a % 3),
                         (7 // ta_b, 7 // t_b), (7 % ta_b, 7 % t_b),
                         (divmod(ta_a, ta_b)[0], t_a // t_b), (divmod(ta_a, ta_b)[1], t_a % t_b),
                         (divmod(7, ta_b)[1], 7 % t_b)]:
        assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch.")
        assert_array_equal(ours.data, theirs.numpy())
        assert not ours.requires_grad
    quotient, remainder = divmod(ta_a, ta_b)
    assert_allclose((quotient * ta_b + remainder).data, np.broadcast_to(a, (3, 4)), rtol=1e-6)


def test_floor_division_is_outside_the_graph_as_a_comparison_and_remainder_is_recorded():
    # a // b is a step: its result is a constant (a gradient of 0 through it), where torch
    # records it and refuses the backward. a % b = a - b floor(a/b) is differentiable.
    x = Tensor([3.5, -3.5], requires_grad=True, dtype=np.float64)
    q = x // 2
    assert not q.requires_grad and q.grad_fn is None and q.data.tolist() == [1.0, -2.0]
    assert not (7.0 // x).requires_grad and not divmod(x, 2.0)[0].requires_grad
    (x * q).sum().backward()
    assert x.grad.tolist() == [1.0, -2.0]
    t = torch.tensor([3.5], requires_grad=True)
    with pytest.raises(RuntimeError, match="derivative for aten::floor_divide is not impl"):
        (t // 2).sum().backward()
    b = Tensor([2.0, 2.0], requires_grad=True, dtype=np.float64)
    r = divmod(x, b)[1]
    assert r.grad_fn.name == "remainder" and r.data.tolist() == [1.5, 0.5]
    r.sum().backward()
    assert x.grad.tolist() == [2.0, -1.0] and b.grad.tolist() == [-1.0, 2.0]   # -floor(a/b)


def test_integer_division_by_zero_is_refused_as_torchs_and_floats_give_numpys_inf_and_nan():
    # numpy's integer x // 0 and x % 0 are 0 with a warning: a wrong number that looks right
    ids = Tensor([5, -5])
    zero = r"^integer {} by zero: the divisor holds 0; divide floats for inf and NaN"
    for divide, symbol in [(lambda: ids // Tensor([2, 0]), "//"), (lambda: ids % 0, "%"),
                           (lambda: 7 // Tensor([0, 1]), "//"), (lambda: divmod(ids, 0), "//"),
                           (lambda: np.int64(7) % Tensor([1, 0]), "%")]:
        with pytest.raises(ZeroDivisionError, match=zero.format(symbol)):
            divide()
    for symbol in ("//=", "%="):
        with pytest.raises(ZeroDivisionError, match=zero.format(symbol)):
            exec(f"ids {symbol} Tensor([3, 0])")
    assert ids.data.tolist() == [5, -5]                      # nothing written
    with pytest.raises(RuntimeError, match="^ZeroDivisionError$"):   # torch's refusal
        torch.tensor([5]) % 0
    x = Tensor([5.0, -5.0, 0.0])
    with pytest.warns(RuntimeWarning):
        floored = x // 0.0
    with pytest.warns(RuntimeWarning):
        left = x % 0.0
    t = torch.tensor([5.0, -5.0, 0.0])
    assert_array_equal(floored.data, (t // 0.0).numpy())     # inf, -inf, nan
    assert_array_equal(left.data, (t % 0.0).numpy())         # nan
    with pytest.raises(TypeError, match=r"^// of two boolean tensors: convert them to integers"):
        Tensor([True]) // Tensor([True])                      # as torch's (numpy's: int8)
    with pytest.raises(TypeError, match=r"^% of two boolean tensors"):
        Tensor([True]) % True


def test_floor_division_and_remainder_refuse_what_the_other_operators_refuse():
    x = Tensor([1.0, 2.0])
    for operation in (lambda: x // None, lambda: None % x, lambda: divmod(x, "a")):
        with pytest.raises(TypeError, match=r"^unsupported operand type"):   # Python's
            operation()
    with pytest.raises(ta.ShapeError, match=r"^//: shapes \(2,\) and \(3,\) do not broadcast"):
        x // Tensor([1.0, 2.0, 3.0])
    with pytest.raises(ta.ShapeError, match=r"^remainder: shapes \(2,\) and \(3,\) do not "):
        x % Tensor([1.0, 2.0, 3.0])


def test_floor_division_and_remainder_in_place_follow_the_other_augmented_assignments():
    positions = Tensor([7, -7])
    alias, array = positions, positions.data
    positions //= 2
    assert positions is alias and positions.data is array and array.tolist() == [3, -4]
    positions %= 3
    assert positions is alias and array.tolist() == [0, 2] and positions.dtype == np.int64
    p = nn.Parameter(np.array([2.5, -0.25]))
    with ta.no_grad():
        p %= 1.0                                 # the fractional part, in place
    assert p.data.tolist() == [0.5, 0.75] and p.dtype == np.float32
    for symbol in ("//=", "%="):
        with pytest.raises(RuntimeError, match=rf"^in-place {symbol} on a tensor that requires"):
            exec(f"p {symbol} 2", {"p": p})
    x = Tensor([3.5, 5.0], requires_grad=True)
    y = x * 1
    before = y
    y %= 2                                       # recorded: a new y, with its gradient
    assert y is not before and y.grad_fn.name == "remainder" and y.data.tolist() == [1.5, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]
    z = x * 1
    z //= 2                                      # a constant, as z // 2
    assert not z.requires_grad and z.data.tolist() == [1.0, 2.0]
    i = Tensor([1, 2])
    with pytest.raises(TypeError, match=r"^in-place //= cannot keep this tensor's dtype int64"):
        i //= 0.5


# ------------------------------------------------------------------ changed after it was saved
#
# Each scenario changes in place a tensor that a recorded op uses, then runs backward. The
# engine stamps in-place changes where torch counts them (`_version`), and both refuse these;
# a change that no backward reads (an Add's input), or that comes after backward, is fine.
# (An op's inputs are checked together, so the engine also refuses a change to one that torch
# does not keep, as the other factor of `w * c` with only w requiring a gradient.)


class Engine:
    """What a scenario needs of an engine, for tinyautograd and torch alike."""

    def __init__(self, module):
        self.module = module

    def tensor(self, values, requires_grad=False):
        if self.module is torch:
            return torch.tensor(values, dtype=torch.float64, requires_grad=requires_grad)
        return Tensor(np.array(values, dtype=np.float64), requires_grad=requires_grad)

    def no_grad(self):
        return self.module.no_grad()


def _changed_factor(e):                   # mul's backward needs the other factor
    a, b = e.tensor([1.0, 2.0], True), e.tensor([3.0, 4.0])
    y = (a * b).sum()
    b += 1
    return y, a


def _changed_through_detach(e):           # detach shares the array, and its count
    a = e.tensor([1.0, 2.0], True)
    y = (a * a).sum()
    d = a.detach()
    d += 1
    return y, a


def _changed_output(e):                   # exp's backward uses its result
    a = e.tensor([1.0, 2.0], True)
    out = a.exp()
    y = out.sum()
    with e.no_grad():
        out *= 2
    return y, a


def _changed_base_of_a_view(e):           # matmul saved a view of b; b changes
    a, b = e.tensor([[1.0, 2.0]], True), e.tensor([[3.0, 4.0]])
    y = (a @ b.T).sum()
    b += 1
    return y, a


def _changed_through_a_view(e):           # the view changes; mul saved its base
    a, b = e.tensor([[1.0, 2.0]], True), e.tensor([[3.0, 4.0]])
    y = (a * b).sum()
    view = b.reshape(2)
    view += 1
    return y, a


def _changed_through_a_view_of_a_view(e):   # mul saved a row of b; a view of the row changes
    a, b = e.tensor([1.0, 2.0], True), e.tensor([[3.0, 4.0], [5.0, 6.0]])
    row = b[0]
    y = (a * row).sum()
    view = row.reshape(1, 2)
    view += 1
    return y, a


def _changed_mask(e):                     # masked_fill's backward reads its mask
    a, b = e.tensor([1.0, 2.0], True), e.tensor([1.0, 0.0])
    mask = b > 0.5
    y = a.masked_fill(mask, 0.0).sum()
    mask *= False
    return y, a


def _changed_by_an_optimizer_step(e):     # a retained graph used after the step
    w = e.tensor([1.0, 2.0], True)
    y = (w * w).sum()
    y.backward(retain_graph=True)
    optimizer = (torch.optim.SGD if e.module is torch else ta.optim.SGD)([w], lr=0.1)
    optimizer.step()
    return y, w


def _changed_input_of_add(e):             # add's backward reads no input: nothing to refuse
    a, b = e.tensor([1.0, 2.0], True), e.tensor([3.0, 4.0])
    y = (a + b).sum()
    b += 1
    return y, a


def _changed_side_of_where(e):           # where's backward reads its mask alone
    z, c = e.tensor([1.0, 2.0, 3.0], True), e.tensor([4.0, 5.0, 6.0])
    mask = e.tensor([1.0, 0.0, 1.0]) > 0.5
    y = (e.module.where(mask, c, z) * 2).sum()
    c += 1
    return y, z


def _changed_after_backward(e):           # the usual training step: backward, then change
    a, b = e.tensor([1.0, 2.0], True), e.tensor([3.0, 4.0])
    y = (a * b).sum()
    y.backward()
    b += 1
    return (a * b).sum(), a


REFUSED = {"a factor": (_changed_factor, "mul", "input 1"),
           "through detach": (_changed_through_detach, "mul", "input 0"),
           "an output": (_changed_output, "exp", "output"),
           "the base of a view": (_changed_base_of_a_view, "matmul", "input 1"),
           "through a view": (_changed_through_a_view, "mul", "input 1"),
           "through a view of a view": (_changed_through_a_view_of_a_view, "mul", "input 1"),
           "a mask": (_changed_mask, "where", "input 0"),
           "by an optimizer step": (_changed_by_an_optimizer_step, "mul", "input 0")}
ALLOWED = {"an input of add": _changed_input_of_add,
           "the other side of where": _changed_side_of_where,
           "after backward": _changed_after_backward}


@pytest.mark.parametrize("scenario, op, which", REFUSED.values(), ids=REFUSED.keys())
def test_backward_refuses_a_saved_tensor_changed_in_place_as_torch(scenario, op, which):
    y, _ = scenario(Engine(torch))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    y, _ = scenario(Engine(ta))
    with pytest.raises(RuntimeError, match=rf"^backward of {op}: its {which} \(shape \(.*\)\) "
                                           rf"was changed in place after {op} used it, so its "
                                           rf"gradient would be wrong; change it after "
                                           rf"backward, or make a new tensor \(x = x \+ y, not "
                                           rf"x \+= y\); run the forward under "
                                           rf"detect_anomaly\(\) to see where"):
        y.backward()


@pytest.mark.parametrize("scenario", ALLOWED.values(), ids=ALLOWED.keys())
def test_a_change_that_no_backward_reads_is_allowed_as_torch(scenario):
    y, leaf = scenario(Engine(torch))
    y.backward()
    expected = leaf.grad.numpy()
    y, leaf = scenario(Engine(ta))
    y.backward()
    assert_allclose(leaf.grad, expected)


def test_the_refusal_names_where_the_op_was_called_under_detect_anomaly():
    with ta.detect_anomaly():
        y, _ = _changed_factor(Engine(ta))
    with pytest.raises(RuntimeError, match=r"; the op was called at .*test_engine_conventions"
                                           r"\.py:\d+: \"y = \(a \* b\)\.sum\(\)\"$"):
        y.backward()


def test_a_tensor_made_from_a_tensor_shares_its_count_where_it_shares_its_array():
    a, b = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0, 4.0])
    y = (a * b).sum()
    copy = Tensor(b, dtype=np.float64)           # a new array: changing it changes nothing
    copy += 1
    y.backward(retain_graph=True)
    alias = Tensor(b)                            # b's own array
    alias += 1
    with pytest.raises(RuntimeError, match=r"^backward of mul: its input 1 .* was changed"):
        y.backward()


def test_an_op_that_says_it_hands_its_input_back_shares_its_stamp():
    class Identity(ta.Function):                 # forward returns its input's own array
        views_input = True

        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad

    a, b = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0, 4.0])
    y = (a * Identity.apply(b)).sum()
    b += 1
    with pytest.raises(RuntimeError, match=r"^backward of mul: its input 1 .* was changed"):
        y.backward()


def test_assignment_into_a_tensor_says_what_to_do_instead():
    t = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    for index in (0, slice(1, None), np.array([True, False, True])):
        with pytest.raises(TypeError, match=r"^Tensor does not support assignment in place .*"
                                            r"ta\.where\(mask, value, t\) or "
                                            r"t\.masked_fill\(mask, value\).*t\.data \(before "
                                            r"an op uses t, or after backward\)$"):
            t[index] = 5.0
    assert t.tolist() == [1.0, 2.0, 3.0]
    assert t.masked_fill(np.array([True, False, False]), 5.0).tolist() == [5.0, 2.0, 3.0]


def test_a_view_that_is_a_copy_does_not_share_its_inputs_stamp():
    a, b = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0, 4.0, 5.0])
    picked = b[[0, 2]]                           # integer-array indexing: a copy
    y = (a * picked).sum()
    b += 1
    y.backward()
    assert a.grad.tolist() == [3.0, 5.0]


def test_an_index_changed_after_the_forward_does_not_move_the_gradient():
    # The backward scatters by the index that the forward used, as torch's (it copies a numpy
    # index): a buffer refilled, or an index Tensor changed in place, before backward.
    w = Tensor(np.eye(3), requires_grad=True)
    buffer, ids = np.array([0, 0]), Tensor(np.array([[1], [1]]))
    y = (w[buffer] * 1.0).sum() + w[ids, 0].sum() + w[:, buffer[:1]].sum()
    buffer[:] = 2
    ids += 1                                     # not recorded: in place, as numpy's
    y.backward()
    np.testing.assert_array_equal(w.grad, [[3, 2, 2], [3, 0, 0], [1, 0, 0]])


def test_an_integer_and_an_index_array_apart_index_as_numpy_not_torch_as_the_readme_says():
    # The README's "Coming from PyTorch": numpy puts the axes of index arrays apart first,
    # counting an integer as one; torch selects by the integer first. x[0][:, idx] is torch's.
    data, idx = np.arange(24.0).reshape(2, 3, 4), np.array([3, 1])
    x = Tensor(data, requires_grad=True)
    assert x[0, :, idx].shape == data[0, :, idx].shape == (2, 3)
    theirs = torch.tensor(data)[0, :, torch.tensor(idx)]
    assert tuple(theirs.shape) == (3, 2)
    np.testing.assert_array_equal(x[0][:, idx].data, theirs.numpy())


def test_an_index_list_changed_after_the_forward_does_not_move_the_gradient():
    # A list is an index array as numpy reads it, and a caller changes it as easily: the
    # backward scattered by the changed list, silently onto other elements. (A Tensor in a
    # list is read by numpy as its array, and `ids -= 2` changes that array in place.)
    w = Tensor(np.eye(3), requires_grad=True)
    picks, nested, rows = [0, 0], [[1], [1]], [np.array([2])]
    ids = Tensor(np.array([2]))
    y = w[picks].sum() + w[nested, 0].sum() + w[rows].sum() + w[[ids]].sum()
    picks[0] = 1
    nested[0][0] = 0
    rows[0][0] = 0
    ids -= 2
    y.backward()
    np.testing.assert_array_equal(w.grad, [[2, 2, 2], [2, 0, 0], [2, 2, 2]])


@pytest.mark.parametrize("change", ["fill", "load_state_dict"])
def test_initialisers_and_loading_count_as_changes_in_place(change):
    layer = nn.Linear(2, 2)
    y = layer(Tensor([[1.0, 2.0]], requires_grad=True)).sum()   # so torch keeps the weight too
    if change == "fill":
        nn.init.zeros_(layer.weight)
    else:
        layer.load_state_dict(layer.state_dict())
    with pytest.raises(RuntimeError, match=r"^backward of linear: its input 1 \(shape \(2, 2\)\) "
                                           r"was changed in place"):
        y.backward()


def test_numpys_warnings_of_inf_and_nan_come_with_torchs_values_and_errstate_silences_them():
    # The README's "Coming from PyTorch": torch computes these silently (and refuses the
    # last); here numpy warns, with torch's values, and np.errstate(all="ignore") silences it.
    half = Tensor(np.array([0.0, 2.0]), dtype=np.float16)
    cases = [(lambda: half.log(), torch.tensor([0.0, 2.0], dtype=torch.float16).log()),
             (lambda: half / 0, torch.tensor([0.0, 2.0], dtype=torch.float16) / 0),
             (lambda: half + 1e5, torch.tensor([0.0, 2.0], dtype=torch.float16) + 1e5),
             (lambda: half.masked_fill(np.array([True, False]), -1e9),
              torch.tensor([-np.inf, 2.0], dtype=torch.float16))]
    for ours, theirs in cases:
        with pytest.warns(RuntimeWarning):
            ours()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with np.errstate(all="ignore"):
                out = ours()
        assert out.dtype == np.float16
        np.testing.assert_array_equal(out.data, theirs.numpy())


def test_masked_fill_combines_dtypes_as_its_docstring_says():
    # The value takes the tensor's dtype where it can, as a number meeting `+`; 0.5 on integers
    # gives float32 (torch's masked_fill would keep int64 and fill 0)
    ids, pad = Tensor(np.array([3, 4, 0])), np.array([False, False, True])
    filled = ids.masked_fill(pad, -100)
    assert filled.dtype == np.int64 and filled.tolist() == [3, 4, -100]
    halves = ids.masked_fill(pad, 0.5)
    assert halves.dtype == np.float32 and halves.tolist() == [3.0, 4.0, 0.5]
    h = Tensor(np.ones(3), dtype=np.float16)
    assert h.masked_fill(pad, Tensor(2.0, dtype=np.float64)).dtype == np.float16


def test_torchs_maximum_minimum_outer_and_randperm_say_what_computes_them_here():
    # torch.maximum(x, y), torch.outer(x, y), torch.randperm(n): each hint, run, gives torch's
    # values, and maximum's and minimum's gradients too where no two values tie.
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(5), rng.standard_normal(5)
    for name in ("maximum", "minimum", "outer"):
        with pytest.raises(AttributeError, match=rf"^module 'tinyautograd' has no attribute "
                                                 rf"'{name}': that is PyTorch's; here, "):
            getattr(ta, name)
        ours_x, ours_y = (Tensor(v, requires_grad=True, dtype=np.float64) for v in (x, y))
        theirs_x, theirs_y = (torch.tensor(v, requires_grad=True) for v in (x, y))
        ours = eval(ta._TORCH_NAMES[name].split(" (")[0].split(", of")[0],
                    dict(ta=ta, x=ours_x, y=ours_y))
        theirs = getattr(torch, name)(theirs_x, theirs_y)
        assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-6)
        ours.sum().backward()
        theirs.sum().backward()
        assert_allclose(ours_x.grad, theirs_x.grad.numpy())
        assert_allclose(ours_y.grad, theirs_y.grad.numpy())
    with pytest.raises(AttributeError, match=r"'randperm': that is PyTorch's; here, numpy's "):
        _ = ta.randperm
    drawn = eval(ta._TORCH_NAMES["randperm"].split(", ")[1], dict(np=np, seed=3, n=10))
    assert sorted(drawn.tolist()) == list(range(10))       # a permutation, as torch's


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_torchs_elu_written_out_is_torchs_with_a_finite_gradient_for_large_inputs(alpha):
    advice = F._TORCH_FUNCTIONAL_NAMES["elu"]
    # exp(200) overflows a float32; at 0 torch's gradient is alpha's (its x <= 0 branch)
    x = np.array([-30.0, -2.0, -0.5, 0.0, 0.5, 3.0, 200.0])
    ours_x = Tensor(x, requires_grad=True, dtype=np.float32)
    theirs_x = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    ours = eval(advice.split(", the where")[0], dict(ta=ta, x=ours_x, alpha=alpha))
    theirs = torch.nn.functional.elu(theirs_x, alpha)
    assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-6)
    ours.sum().backward()
    theirs.sum().backward()
    assert_allclose(ours_x.grad, theirs_x.grad.numpy(), rtol=1e-6)


def test_torchs_batchnorm_written_out_is_torchs_in_training():
    with pytest.raises(AttributeError, match=r"'BatchNorm1d': that is PyTorch's; here, none; "
                                             r"LayerNorm\(C\)"):
        _ = nn.BatchNorm1d
    advice = nn._TORCH_NN_NAMES["BatchNorm1d"]
    expression = advice.split("over the batch of an (N, C) x, ")[1].split(", torch's")[0]
    x = np.random.default_rng(1).standard_normal((6, 4))
    ours = eval(expression, dict(x=Tensor(x), eps=1e-5))
    theirs = torch.nn.BatchNorm1d(4, affine=False, dtype=torch.float64).train()(
        torch.tensor(x))
    assert_allclose(ours.data, theirs.numpy(), rtol=1e-5, atol=1e-6)    # (float32)


@pytest.mark.parametrize("module, name, ours", [
    (nn, "Conv2d", "none: there are no convolutions"),
    (nn, "Conv1d", "none: there are no convolutions"),
    (F, "conv2d", "none: there are no convolutions"),
    (nn, "LSTM", r"none: there are no recurrent layers; a sequence model here is a "
                 r"Transformer"),
    (nn, "GRU", "none: there are no recurrent layers"),
])
def test_a_torch_layer_of_another_kind_of_network_says_plainly_there_is_none(module, name, ours):
    with pytest.raises(AttributeError, match=rf"^module '{module.__name__}' has no attribute "
                                             rf"'{name}': that is PyTorch's; here, {ours}"):
        getattr(module, name)


# ------------------------------------------------------------------ numpy's functions on a Tensor


@pytest.mark.parametrize("function, method", [
    (np.sum, "sum"), (np.mean, "mean"), (np.max, "max"), (np.min, "min"), (np.var, "var"),
])
def test_numpys_reductions_on_a_tensor_are_its_own_methods_with_the_graph(function, method):
    # numpy calls x.sum(axis=None, out=None) (and dtype=None for mean and var): its defaults
    # are taken, and the answer is the method's, a Tensor whose gradient reaches x.
    data = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 7.0]])
    x = Tensor(data, requires_grad=True, dtype=np.float64)
    got = function(x, axis=1)
    assert isinstance(got, Tensor) and got.grad_fn is not None
    assert_allclose(got.data, getattr(data, method)(axis=1))
    got.sum().backward()
    expected = torch.tensor(data, requires_grad=True)
    reduced = {"max": lambda t: t.amax(dim=1), "min": lambda t: t.amin(dim=1),
               "var": lambda t: t.var(dim=1, unbiased=False)}.get(
        method, lambda t: getattr(t, method)(dim=1))
    reduced(expected).sum().backward()
    assert_allclose(x.grad, expected.grad.numpy())


@pytest.mark.parametrize("keyword, advice", [
    ("dtype", r"Tensor.sum\(\) takes no dtype=: cast the tensor first, x.astype\(dtype\)$"),
    ("out", r"Tensor.sum\(\) takes no out=: the result is a new Tensor, returned"),
])
def test_numpys_dtype_and_out_for_a_tensor_say_what_to_write(keyword, advice):
    with pytest.raises(TypeError, match=advice):
        np.sum(Tensor([1.0, 2.0]), **{keyword: np.zeros(()) if keyword == "out" else np.float64})


# ------------------------------------------------------------------ arrays joined to Tensors


@pytest.mark.parametrize("tensor_dtype, operand", [
    (np.float16, np.array([1.5, 2.0])),                 # a float64 array: the tensor's dtype
    (np.float64, np.array([1.5, 2.0], dtype=np.float32)),
    (np.float16, np.array([1, 2])),                     # integers: the tensor's floats
    (np.int8, np.array([1, 2])),                        # int64, as numpy and torch join them
    (np.float16, np.array([1j, 2])),                    # complex: its own, never cut to real
])
def test_an_array_joins_a_tensor_in_the_dtype_it_adds_to_it_in(tensor_dtype, operand):
    # One rule for an array operand: concat, stack and where lift it as `+` does (README's
    # "Dtypes combine as in PyTorch": a numpy array takes the tensor's dtype).
    x = Tensor([3.0, 4.0], dtype=tensor_dtype)
    expected = (x + operand).dtype
    assert ta.concat([x, operand]).dtype == expected
    assert ta.concat([operand, x]).dtype == expected
    assert ta.stack([x, operand]).dtype == expected
    assert ta.where(np.array([True, False]), operand, x).dtype == expected


def test_a_number_stacked_with_a_tensor_is_weak_as_in_arithmetic():
    half = Tensor([1.0, 2.0], dtype=np.float16)
    assert ta.stack([half[0], 0.5]).dtype == np.float16 == (half[0] + 0.5).dtype
    assert ta.stack([Tensor([1], dtype=np.int8)[0], 3]).dtype == np.int8


# ------------------------------------------------------------------ Tensor(y) of a Tensor


def test_a_tensor_of_a_tensor_that_requires_a_gradient_is_refused_as_a_list_of_them_is():
    # torch.tensor(y) warns and copies; a constant sharing y's array would drop y's graph
    # silently, so it is refused where the graph is recorded, as Tensor([y]) and np.asarray(y).
    w = Tensor([1.0, 2.0], requires_grad=True)
    for y in (w, w * 2):
        with pytest.raises(TypeError, match=r"^Tensor: the Tensor given requires a gradient, "
                                            r"whose graph a new Tensor would drop: use it as "
                                            r"it is, or y.detach\(\) for a constant"):
            Tensor(y)
        assert Tensor(y.detach()).data is y.data                # the way it names
        with ta.no_grad():                                      # nothing recorded: as before
            assert Tensor(y).data is y.data and not Tensor(y).requires_grad
    assert Tensor(Tensor([1.0])).dtype == np.float32            # one without a graph: as before


def test_a_parameter_of_a_tensor_with_a_graph_is_a_new_leaf_as_torchs():
    w = Tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)
    p = nn.Parameter(w * 3)
    assert p.grad_fn is None and p.requires_grad and p.dtype == np.float64
    (p * p).sum().backward()
    assert_array_equal(p.grad, [6.0, 12.0]) and w.grad is None


# ------------------------------------------------------------------ assigning a parameter's .data


@pytest.mark.parametrize("value, advice", [
    ([0.5], r"got list: assign np.asarray\(values, dtype=p.dtype\)$"),
    (0.5, r"got float: assign np.asarray\(values, dtype=p.dtype\)$"),
    (Tensor([0.5]), r"got Tensor: assign its array, p.data = t.data$"),     # torch's habit
])
def test_a_parameters_data_is_refused_as_it_is_assigned_unless_an_array(value, advice):
    # It failed only later, in the forward ("no attribute 'shape'") or in state_dict.
    layer = nn.Linear(2, 1)
    before = layer.bias.data
    with pytest.raises(TypeError, match=r"^a parameter's .data must be a numpy array, " + advice):
        layer.bias.data = value
    assert layer.bias.data is before                           # left as it was


def test_a_parameters_data_takes_arrays_and_numpys_numbers():
    p = nn.Parameter(np.array(1.0))
    p.data = p.data * np.float32(2)         # a 0-d array times a number: numpy's np.float32
    assert isinstance(p.data, np.ndarray) and p.data.shape == () and float(p) == 2.0
    p.data = np.ma.masked_array([1.0])      # a subclass of ndarray, as it is
    assert p.shape == (1,)


# ------------------------------------------------------------------ small torch conventions


def test_parameters_recurse_false_gives_the_modules_own_alone_as_torchs():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(np.ones(3))
            self.inner = nn.Linear(3, 3)

    model = Scaled()
    assert [name for name, _ in model.named_parameters(recurse=False)] == ["scale"]
    assert list(model.parameters(recurse=False)) == [model.scale]
    assert len(list(model.parameters())) == 3 == len(list(model.parameters(recurse=True)))
    with pytest.raises(TypeError, match="recurse must be True or False, got 'no'"):
        list(model.parameters(recurse="no"))


@pytest.mark.parametrize("decoupled", [True, False])
def test_adams_repr_shows_decoupled_weight_decay_as_torchs(decoupled):
    params = [Tensor(np.ones(2), requires_grad=True)]
    ours = repr(ta.optim.Adam(params, weight_decay=0.1, decoupled_weight_decay=decoupled))
    theirs = repr(torch.optim.Adam([torch.ones(2, requires_grad=True)], weight_decay=0.1,
                                   decoupled_weight_decay=decoupled))
    assert f"    decoupled_weight_decay: {decoupled}" in ours.splitlines()
    assert f"    decoupled_weight_decay: {decoupled}" in theirs.splitlines()
