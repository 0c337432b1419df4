"""tinyautograd.kernels: the compiled loops behind layer norm, GELU, attention's softmax and
Adam's update. Each op is run twice, with the loops and with its numpy form (the reference),
on shapes that are not multiples of the vector width, across GELU's blocks, through attention's
masks (including the ones the loops must leave to numpy), on the op table's drawn cases, and
the results must agree to float32 rounding; Adam's update to the bit. Then
TINYAUTOGRAD_KERNELS, and what happens where the loops cannot be built. (CI installs a C
compiler: there these tests run the loops.)"""

import ctypes
import os
import platform
import shutil
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinyautograd as ta
from op_cases import CASES, Draw
from tinyautograd import Tensor, functional, kernels, no_grad, ops, optim
from tinyformer import attention
from tinyformer_cli import main

rng = np.random.default_rng(0)


@pytest.fixture
def numpy_forms(monkeypatch):
    """A function that runs `work()` with the loops turned off: the ops' numpy forms."""
    def run(work):
        with monkeypatch.context() as patch:
            patch.setattr(kernels, "usable", lambda *arrays, into=(): False)
            return work()
    return run


def value_and_grads(function, *arrays):
    """function(*tensors) and d(sum(out * g))/d(each input), g random but fixed by shape."""
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = function(*tensors)
    g = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    (out * Tensor(g)).sum().backward()
    return [out.data] + [t.grad for t in tensors]


def assert_loops_agree(numpy_forms, function, *arrays, tolerance=2e-5, scale=0.0):
    """The loops' results and gradients are the numpy forms' to `tolerance`, relative to the
    largest of each (or to `scale`, where that is larger: a result that cancels to about 0,
    as layer norm's gradient over 2 elements, holds only rounding of that scale). Both keep
    float32: a float64 slip in a numpy form (a column of ones made without a dtype) would make
    a model's activations float64 wherever the loops cannot be built."""
    assert kernels.in_use()
    compiled = value_and_grads(function, *arrays)
    reference = numpy_forms(lambda: value_and_grads(function, *arrays))
    for a, b in zip(compiled, reference):
        assert a.shape == b.shape and a.dtype == b.dtype == np.float32
        largest = np.abs(b).max(initial=scale)                  # (b may be empty)
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance * largest)


def test_exp_is_within_float32_rounding_and_exactly_0_below_its_range():
    x = np.concatenate([np.linspace(-87, 88, 100_001, dtype=np.float32),
                        np.float32([0, 89, 200])])
    exact = np.exp(np.clip(x, -87, 88).astype(np.float64))
    assert np.max(np.abs(kernels.exp(x) - exact) / exact) < 3e-7
    # Not e^-87 = 1.6e-38: what attention's mask blocks must weigh nothing.
    np.testing.assert_array_equal(kernels.exp(np.float32([-87.01, -88, -200, -1e9])), 0)


@pytest.mark.parametrize("shape", [(2, 3, 7), (384, 128), (5,)])
def test_layer_norm(numpy_forms, shape):
    x = rng.standard_normal(shape, dtype=np.float32) * 3 + 1
    weight, bias = (rng.standard_normal(shape[-1:], dtype=np.float32) for _ in range(2))
    assert_loops_agree(numpy_forms, functional.layer_norm, x, weight, bias)


@pytest.mark.parametrize("shape", [(2, 3, 7), (1, 1, 128)])
def test_layer_norm_with_no_gradient_wanted_gives_the_same_y_and_keeps_nothing(numpy_forms,
                                                                                shape):
    # Generation's norms keep no x_hat for a backward: the loop then steps through y instead.
    x = rng.standard_normal(shape, dtype=np.float32) * 3 + 1
    weight, bias = (rng.standard_normal(shape[-1:], dtype=np.float32) for _ in range(2))
    with no_grad():
        y = functional.layer_norm(x, weight, bias)
        reference = numpy_forms(lambda: functional.layer_norm(x, weight, bias))
    np.testing.assert_allclose(y.data, reference.data, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y.data, functional.layer_norm(x, weight, bias).data)
    assert kernels.layer_norm(x, weight, bias, 1e-5, keep=False)[1:] == (None, None)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")    # the numpy form's means of no numbers
@pytest.mark.parametrize("shape", [(0, 7), (3, 0)])
def test_layer_norm_of_no_rows_or_no_features(numpy_forms, shape):
    x = np.zeros(shape, np.float32)
    weight, bias = np.ones(shape[-1:], np.float32), np.zeros(shape[-1:], np.float32)
    assert_loops_agree(numpy_forms, functional.layer_norm, x, weight, bias)


@pytest.mark.filterwarnings("ignore:overflow encountered")   # the numpy form's sum of squares
@pytest.mark.parametrize("norm", ["layer_norm", "rms_norm"])
def test_norms_of_rows_whose_squares_overflow_float32_are_float64s(numpy_forms, norm):
    # From |x| = 1.8e19 on, x^2 is inf in float32: 1 / sqrt(inf) = 0 normalised such a row
    # to 0, and its gradients, without a word (torch's layer norm gives NaN, its RMS norm 0).
    # In float64 nothing overflows: the values and gradients those rows have.
    x = np.float32([[1e20, -1e20, 1e20, 3e19], [3e19, 1e20, -2e20, 0]])
    params = [np.float32([1, 2, 3, 4])] + ([np.zeros(4, np.float32)] if norm == "layer_norm"
                                           else [])
    function = getattr(functional, norm)

    def wide(*tensors):
        return function(*(t.astype(np.float64) for t in tensors)).astype(np.float32)

    truth = value_and_grads(wide, x, *params)
    for results in value_and_grads(function, x, *params), numpy_forms(
            lambda: value_and_grads(function, x, *params)):
        for ours, true in zip(results, truth):
            np.testing.assert_allclose(ours, true, rtol=1e-5, atol=1e-5 * np.abs(true).max())


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value")
def test_a_layer_norm_row_holding_inf_is_the_numpy_forms_and_leaves_the_other_rows_as_they_were(
        numpy_forms):
    # The overflow's rescaling divides by a row's largest |x|: on a row holding inf itself that
    # is inf, and both forms keep 1 / sqrt(inf) = 0 there, the row NaN (inf - inf), as before;
    # the finite row beside it is normalised as ever.
    x = np.float32([[np.inf, 1, 2, 3], [1, 2, 3, 5]])
    weight, bias = np.float32([1, 2, 3, 4]), np.float32([0.5, 0, 0, 0])
    compiled = functional.layer_norm(Tensor(x), Tensor(weight), Tensor(bias)).data
    reference = numpy_forms(
        lambda: functional.layer_norm(Tensor(x), Tensor(weight), Tensor(bias)).data)
    np.testing.assert_array_equal(np.isnan(compiled), np.isnan(reference))
    assert np.isnan(compiled[0]).all()
    alone = functional.layer_norm(Tensor(x[1:]), Tensor(weight), Tensor(bias)).data
    np.testing.assert_array_equal(compiled[1:], alone)


def test_layer_norm_backward_sums_start_from_zero_whatever_the_memory_held():
    """The wrapper hands the loop np.empty arrays for the weight's and bias's sums."""
    x_hat, grad = (rng.standard_normal((5, 7), dtype=np.float32) for _ in range(2))
    rstd, weight = np.ones(5, np.float32), np.ones(7, np.float32)
    outputs = [np.full_like(grad, np.nan), np.full(7, np.nan, np.float32),
               np.full(7, np.nan, np.float32)]
    addresses = [a.ctypes.data for a in [grad, x_hat, rstd, weight, *outputs]]
    kernels._library().layer_norm_backward(5, 7, *addresses)
    np.testing.assert_allclose(outputs[1], (grad * x_hat).sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(outputs[2], grad.sum(axis=0), rtol=1e-5)


def test_gelu_across_blocks_and_in_both_tails(numpy_forms):
    block = ctypes.c_int64.in_dll(kernels._library(), "gelu_block").value
    n = 2 * block + 7
    x = np.linspace(-12, 12, n, dtype=np.float32)[rng.permutation(n)].reshape(1, n)
    assert_loops_agree(numpy_forms, lambda t: t.gelu(), x)


@pytest.mark.filterwarnings("ignore:overflow encountered")     # x^2 in the numpy form
def test_gelu_of_huge_inputs_has_slope_1_above_and_0_below(numpy_forms):
    # From x = 1.2e13 the slope's formula overflows to inf * 0: past 10 the loop gives 1.
    x = np.float32([-3e38, -1e14, 11.0, 1e6, 1e14, 3e38])
    np.testing.assert_array_equal(kernels.gelu(x)[1], [0, 0, 1, 1, 1, 1])
    assert_loops_agree(numpy_forms, lambda t: t.gelu(), x)


def test_gelu_without_a_gradient_gives_the_same_values_and_keeps_no_slope():
    x = np.linspace(-12, 12, 3001, dtype=np.float32)
    with ta.no_grad():
        y = Tensor(x).gelu()
    assert y.grad_fn is None
    wanted = Tensor(x, requires_grad=True).gelu()
    np.testing.assert_array_equal(y.data, wanted.data)
    assert kernels.gelu(x, slope=False)[1] is None


def test_gelu_of_a_0d_array_stays_0d(numpy_forms):
    assert_loops_agree(numpy_forms, lambda t: t.gelu(), np.float32(0.7))


def attend(mask):
    return lambda q, k, v: attention.scaled_dot_product_attention(q, k, v, mask)


@pytest.mark.parametrize("mask", [
    None,
    np.tril(np.ones((5, 5), bool)),                           # one mask for all: the loops
    np.tril(np.ones((5, 5), bool))[None, None],
    # A (T_q, T_k) mask for each batch row: the loops take one mask for all of them, so these
    # must go to numpy, whose broadcasting is right; and one per batch row as padding gives.
    rng.random((5, 1, 5, 5)) < 0.7,
    rng.random((5, 1, 1, 5)) < 0.7,
    np.ones((5, 5), bool) & (np.arange(5) > 0)[:, None],      # a row that sees nothing: zeros
])
def test_attention_under_each_kind_of_mask(numpy_forms, mask):
    q, k, v = (rng.standard_normal((5, 3, 5, 4), dtype=np.float32) for _ in range(3))
    assert_loops_agree(numpy_forms, attend(mask), q, k, v)


def test_attention_with_no_keys_outputs_zeros(numpy_forms):
    # Rows of no scores, as torch's attention takes them: nothing to attend to, zeros out.
    q = rng.standard_normal((2, 3, 5, 4), dtype=np.float32)
    k, v = (np.zeros((2, 3, 0, 4), np.float32) for _ in range(2))
    assert_loops_agree(numpy_forms, attend(None), q, k, v)
    assert_loops_agree(numpy_forms, attend(np.ones((5, 0), bool)), q, k, v)


def test_attention_subtracts_each_rows_largest_score(numpy_forms):
    # Scores of several hundred: e^score overflows float32 unless each row's largest is
    # subtracted first.
    q, k, v = (rng.standard_normal((2, 3, 5, 4), dtype=np.float32) for _ in range(3))
    assert_loops_agree(numpy_forms, attend(np.tril(np.ones((5, 5), bool))), q * 30, k * 30, v)


def test_a_blocked_key_weighs_exactly_0_whatever_its_value(numpy_forms):
    # Query 0 may not see key 1, whose value is 1e38: a weight of e^-87 = 1.6e-38 for it
    # would add 1e38 * 1.6e-38 to the answer.
    q = k = np.zeros((1, 2, 1), np.float32)
    v = np.float32([[[1.0], [1e38]]])

    def first_answer():
        return attention.scaled_dot_product_attention(
            Tensor(q), Tensor(k), Tensor(v), np.tril(np.ones((2, 2), bool))).data[0, 0]

    np.testing.assert_array_equal(first_answer(), [1.0])
    np.testing.assert_array_equal(numpy_forms(first_answer), [1.0])


def test_a_blocked_key_weighs_0_whatever_its_score(numpy_forms):
    # Query 0 may not see key 0, which it scores 3e9, only key 1, which it scores -2e9. A
    # blocked score lowered by 1e9 (2e9), or set to -1e9, still outdid -2e9 and took all the
    # weight: query 0 answered key 0's value. torch blocks with -inf.
    q, k = np.float32([[[1e5], [1.0]]]), np.float32([[[3e4], [-2e4]]])
    v = np.float32([[[10.0], [1.0]]])
    mask = np.array([[False, True], [True, True]])
    for attend in attention.scaled_dot_product_attention, attention.attention_readable:
        def answers(attend=attend):
            return attend(Tensor(q), Tensor(k), Tensor(v), mask).data[0, :, 0]

        np.testing.assert_array_equal(answers(), [1.0, 10.0])
        np.testing.assert_array_equal(numpy_forms(answers), [1.0, 10.0])


def test_attention_of_one_query_as_the_kv_cache_asks(numpy_forms):
    q = rng.standard_normal((2, 3, 1, 4), dtype=np.float32)
    k, v = (rng.standard_normal((2, 3, 6, 4), dtype=np.float32) for _ in range(2))
    assert_loops_agree(numpy_forms, attend(np.ones((1, 6), bool)), q, k, v)


@pytest.mark.parametrize("make", [
    lambda params: optim.AdamW(params, lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1),
    lambda params: optim.Adam(params, lr=1e-2, weight_decay=0.1),     # L2, through the gradient
    lambda params: optim.Adam(params, lr=1e-2),
])
def test_adam_updates_are_the_numpy_forms_to_the_bit(numpy_forms, make):
    start = rng.standard_normal((3, 37), dtype=np.float32)
    grads = [rng.standard_normal(start.shape, dtype=np.float32) for _ in range(3)]

    def train():
        param = Tensor(start.copy(), requires_grad=True)
        optimizer = make([param])
        for g in grads:
            param.grad = g.copy()
            optimizer.step()
        return param.data, optimizer.state_dict()["state"]

    (compiled, state), (reference, reference_state) = train(), numpy_forms(train)
    assert not np.array_equal(compiled, start)
    np.testing.assert_array_equal(compiled, reference)
    for key in ("exp_avg", "exp_avg_sq"):
        np.testing.assert_array_equal(state[0][key], reference_state[0][key])


def test_adam_leaves_a_read_only_parameter_to_numpy_which_refuses_to_write_into_it(
        numpy_forms):
    # np.frombuffer of bytes shares the immutable bytes: the loop would change them.
    raw = np.arange(4, dtype=np.float32).tobytes()

    def step():
        param = Tensor(np.frombuffer(raw, np.float32), requires_grad=True)
        param.grad = np.ones(4, np.float32)
        with pytest.raises(ValueError, match="read-only"):
            optim.AdamW([param], lr=0.1).step()

    step()
    numpy_forms(step)                             # the same error
    assert raw == np.arange(4, dtype=np.float32).tobytes()
    with pytest.raises(ValueError, match="read-only"):
        kernels.adam(np.frombuffer(raw, np.float32), *(np.ones(4, np.float32),) * 3,
                     0.9, 0.999, 1.0, 0.1, 1.0, 1e-8)


def test_adam_on_a_parameter_mapped_read_only_raises_rather_than_crashes(tmp_path):
    # Memory mapped read-only: the loop's write killed the process (in a process of its own
    # here, so that it would not kill the tests).
    np.save(tmp_path / "w.npy", np.arange(4, dtype=np.float32))
    # The optimizer refuses such a parameter before any update; the loop, called as the
    # optimizer would, refuses it too.
    code = ("import numpy as np, tinyautograd as ta\n"
            f"w = np.load({str(tmp_path / 'w.npy')!r}, mmap_mode='r')\n"
            "p = ta.Tensor(w, requires_grad=True)\n"
            "p.grad = np.ones(4, np.float32)\n"
            "try:\n"
            "    ta.optim.AdamW([p], lr=0.1).step()\n"
            "except ValueError as error:\n"
            "    print(error)\n"
            "ta.kernels.adam(w, *(np.ones(4, np.float32),) * 3, 0.9, 0.999, 1.0, 0.1, 1.0, "
            "1e-8)\n")
    status, out, error = in_a_process({"TINYAUTOGRAD_KERNELS": "c"}, code)
    assert "its array is read-only" in out
    assert status == 1 and error.endswith("ValueError: kernels write into this array, and it "
                                          "is read-only")
    np.testing.assert_array_equal(np.load(tmp_path / "w.npy"), np.arange(4))


def test_a_read_only_input_takes_the_loops_and_a_read_only_output_does_not():
    # Weights loaded with mmap_mode="r" are read, never written, by the ops' forward.
    weights = np.ones((2, 3), np.float32)
    weights.flags.writeable = False
    assert kernels.usable(weights) == kernels.in_use()
    assert not kernels.usable(np.ones((2, 3), np.float32), into=(weights,))


def test_unaligned_arrays_take_the_numpy_forms(numpy_forms):
    unaligned = np.frombuffer(bytearray(4 * 7 + 1), np.float32, offset=1, count=7)
    assert not unaligned.flags.aligned and not kernels.usable(unaligned)
    assert not kernels.usable(np.ones(7, np.float32), into=(unaligned,))
    unaligned[:] = np.linspace(-3, 3, 7, dtype=np.float32)
    np.testing.assert_array_equal(Tensor(unaligned).gelu().data,
                                  numpy_forms(lambda: Tensor(unaligned.copy()).gelu().data))


# The op table's cases of the ops with loops, on shapes, axes, masks and broadcasts it draws.
LOOPED_CASES = [case for case in CASES
                if {ops.Gelu, functional.LayerNorm, attention.Attention} & set(case.covers)]


@pytest.mark.parametrize("case", LOOPED_CASES, ids=repr)
@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_loops_agree_with_the_numpy_forms_on_the_op_tables_cases(numpy_forms, case, data):
    arrays, params = case.draw(Draw(data))
    arrays = [np.asarray(a, np.float32) for a in arrays]
    assert_loops_agree(numpy_forms, lambda *xs: case.fn(*xs, **params), *arrays, scale=1.0)


def test_float64_and_second_derivatives_take_the_numpy_forms():
    x = rng.standard_normal((3, 4))                                     # float64
    assert not kernels.usable(x)
    assert not kernels.usable(Tensor(x.astype(np.float32)))
    assert not kernels.usable(np.asfortranarray(rng.standard_normal((3, 4), dtype=np.float32)))
    assert ta.gradgradcheck(lambda t: functional.layer_norm(t).gelu(),
                            Tensor(x, requires_grad=True, dtype=np.float64))


# ------------------------------------------------------------------ TINYAUTOGRAD_KERNELS


def in_a_process(env, code="import tinyautograd as ta; print(ta.kernels.in_use())"):
    """Python run with `env` added to this one's environment: its exit status and output."""
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                          capture_output=True, text=True)
    return done.returncode, done.stdout.strip(), done.stderr.strip()


def a_compiler(tmp_path, script):
    """The path of a program named cc that runs the shell's `script`."""
    cc = tmp_path / "cc"
    cc.write_text(f"#!/bin/sh\n{script}\n")
    cc.chmod(cc.stat().st_mode | stat.S_IEXEC)
    return str(cc)


def failing_compiler(tmp_path):
    return a_compiler(tmp_path, "echo 'cc: fatal error: no such thing' >&2\nexit 1")


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory):
    """A cache folder (an XDG_CACHE_HOME) holding the loops as a first run built them there.
    A build takes cc a second or more: the tests of what a built library does, not of the
    build, start from a copy of this one (`a_built_cache`)."""
    cache = tmp_path_factory.mktemp("built") / "cache"
    assert in_a_process({"XDG_CACHE_HOME": str(cache)}) == (0, "True", "")
    assert len(list((cache / "tinyautograd").glob("kernels-*.so"))) == 1
    return cache


def a_built_cache(built_cache, tmp_path):
    """{"XDG_CACHE_HOME": tmp_path / "cache"}, a copy of `built_cache` (modes and all)."""
    shutil.copytree(built_cache, tmp_path / "cache")
    return {"XDG_CACHE_HOME": str(tmp_path / "cache")}


def test_the_variable_chooses_the_numpy_forms_or_insists_on_the_loops(tmp_path, built_cache):
    cache = a_built_cache(built_cache, tmp_path)           # built once (there), then found
    assert in_a_process(cache) == (0, "True", "")
    assert in_a_process({**cache, "TINYAUTOGRAD_KERNELS": "numpy"}) == (0, "False", "")
    assert in_a_process({**cache, "TINYAUTOGRAD_KERNELS": " NumPy "}) == (0, "False", "")
    assert in_a_process({**cache, "TINYAUTOGRAD_KERNELS": "c"}) == (0, "True", "")
    built = list((tmp_path / "cache" / "tinyautograd").glob("kernels-*.so"))
    assert len(built) == 1                    # found, not built again
    status, _, error = in_a_process({"TINYAUTOGRAD_KERNELS": "fast"})
    assert status == 1 and error.endswith("TINYAUTOGRAD_KERNELS='fast': give 'numpy' or 'c', "
                                          "or unset it")


def test_where_the_loops_cannot_be_built_numpy_runs_unless_the_loops_were_asked_for(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "CC": failing_compiler(tmp_path)}
    layer_norm = ("import numpy as np, tinyautograd as ta; "
                  "print(ta.kernels.in_use(), ta.functional.layer_norm(np.ones((2, 3), "
                  "np.float32)).data.sum())")
    assert in_a_process(env, layer_norm) == (0, "False 0.0", "")
    status, _, error = in_a_process({**env, "TINYAUTOGRAD_KERNELS": "c"}, layer_norm)
    assert status == 1
    assert error.splitlines()[-1] == ("tinyautograd.kernels.KernelError: TINYAUTOGRAD_KERNELS="
                                      "c, but the kernels cannot be built: cc failed: cc: "
                                      "fatal error: no such thing (unset TINYAUTOGRAD_KERNELS "
                                      "to run the numpy forms)")


def test_the_command_line_says_in_one_line_why_the_loops_it_was_told_to_run_cannot_be_built(
        tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "CC": failing_compiler(tmp_path), "TINYAUTOGRAD_KERNELS": "c"}
    command = [sys.executable, "-c", "from tinyformer_cli import main; "
               "main(prog_name='tinyformer')", "train", "--iters", "1", "--out",
               str(tmp_path / "run")]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Error: TINYAUTOGRAD_KERNELS=c, but the kernels cannot be built: cc failed: cc: fatal "
        "error: no such thing (unset TINYAUTOGRAD_KERNELS to run the numpy forms)"]
    assert not (tmp_path / "run").exists()
    del env["TINYAUTOGRAD_KERNELS"]                 # the advice, followed
    done = subprocess.run(command + ["--d-model", "8", "--n-layer", "1", "--n-head", "1",
                                     "--context", "8", "--batch-size", "2", "--eval-iters", "1"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "engine: layer norm, GELU, softmax and Adam run their numpy forms" in done.stdout


def test_the_library_in_use_is_named_by_what_built_it_and_another_compiler_builds_another(
        tmp_path, built_cache):
    """build_id tells a run which loops it ran: the same library found again has the same
    id; one built by another compiler another id; none where the numpy forms run."""
    cache = a_built_cache(built_cache, tmp_path)
    code = "import tinyautograd as ta; print(ta.kernels.build_id())"
    status, here, _ = in_a_process(cache, code)
    assert status == 0 and (tmp_path / "cache" / "tinyautograd" / f"kernels-{here}.so").is_file()
    assert in_a_process(cache, code) == (0, here, "")                  # found built
    other = a_compiler(tmp_path, f"exec {' '.join(kernels.compiler())} \"$@\"")
    status, there, _ = in_a_process({**cache, "CC": other}, code)
    assert status == 0 and there not in (here, "None")
    assert in_a_process({**cache, "TINYAUTOGRAD_KERNELS": "numpy"}, code) == (0, "None", "")


def test_a_compiler_that_refuses_the_processors_flag_builds_the_loops_for_any_processor(
        tmp_path):
    calls = tmp_path / "calls"
    # the machine's compiler, as an old clang on ARM: it refuses the processor's flag
    cc = a_compiler(tmp_path, f"echo \"$*\" >> {calls}\n"
                              f"case \"$*\" in *=native*) "
                              f"echo 'error: unsupported option' >&2; exit 1;; esac\n"
                              f"exec {' '.join(kernels.compiler())} \"$@\"")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "CC": cc}
    assert in_a_process(env) == (0, "True", "")
    tried = calls.read_text().splitlines()
    assert len(tried) == 2 and "=native" in tried[0] and "=native" not in tried[1]
    assert in_a_process(env) == (0, "True", "")
    assert len(calls.read_text().splitlines()) == 2          # found built, not tried again


def test_a_library_for_this_processor_that_does_not_load_gives_way_to_one_for_any(
        tmp_path, monkeypatch):
    """The compiler took the processor's flag but built a library that does not load: the
    loops were given up (or =c refused) without trying the flags for any processor. Where
    no library loads, that is what is told, from the folder the user knows."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    out_of = 'while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done\n'
    monkeypatch.setenv("CC", a_compiler(
        tmp_path, f"case \"$*\" in *=native*) {out_of}echo nonsense > \"$out\"; exit 0;; esac\n"
                  f"exec {' '.join(kernels.compiler())} \"$@\""))
    kernels._loaded()
    [kept] = (cache / "tinyautograd").glob("kernels-*.so")
    assert kept.name.startswith(kernels._choices(kernels.compiler())[1][1] + "-")   # for any
    monkeypatch.setenv("CC", a_compiler(             # and for any processor, no build at all
        tmp_path, f"case \"$*\" in *=native*) {out_of}echo nonsense > \"$out\"; exit 0;; esac\n"
                  "echo 'cc: error: boom' >&2; exit 1"))
    kept.unlink()
    with pytest.raises(OSError) as error:
        kernels._loaded()
    assert str(error.value).startswith(
        f"cc built a library that does not load from {cache / 'tinyautograd'}: ")


def test_a_library_built_for_one_processor_is_never_loaded_on_another(tmp_path, monkeypatch):
    """The processor's flags name its library, or where the system lists none (macOS), the
    machine's name: all machines without the list shared one name, and a library built for
    one's instructions was loaded on another sharing the home folder (an illegal instruction
    would kill the process there)."""
    def name(cpuinfo, machine):
        monkeypatch.setattr(kernels, "CPUINFO", str(tmp_path / cpuinfo))
        monkeypatch.setattr(platform, "node", lambda: machine)
        return kernels._choices(["cc"])[0][1]

    (tmp_path / "avx2").write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2\n")
    (tmp_path / "avx512").write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert name("avx2", "a") != name("avx512", "a")
    assert name("avx2", "a") == name("avx2", "b")            # alike: one library will do
    assert name("no list", "a") != name("no list", "b")


def test_a_library_cut_short_in_the_cache_is_built_again_rather_than_loaded(tmp_path,
                                                                          built_cache):
    """A library that was not all on the disk (a full disk, a machine stopped as it wrote)
    killed each process that loaded it, with SIGBUS."""
    cache = a_built_cache(built_cache, tmp_path)
    [kept] = (tmp_path / "cache" / "tinyautograd").glob("kernels-*.so")
    whole = kept.read_bytes()
    kept.write_bytes(whole[:len(whole) // 2])
    assert in_a_process(cache) == (0, "True", "")
    [rebuilt] = (tmp_path / "cache" / "tinyautograd").glob("kernels-*.so")
    assert rebuilt.stat().st_size == len(whole)
    # Rebuilt here to the same bytes, so to the same name; a build that differs (another
    # compiler at the same path) is named otherwise, so the broken library goes first.
    broken = tmp_path / f"kernels-0123456789abcdef-{'0' * 16}.so"
    broken.write_bytes(whole[:100])
    assert kernels._found(str(tmp_path), "kernels-0123456789abcdef") is None
    assert not broken.exists()


def test_a_build_into_the_cache_removes_what_earlier_versions_and_killed_builds_left(
        tmp_path, monkeypatch):
    """Libraries of the earlier naming (no digest) stayed in the cache for ever, as did the
    scratch folder of a build killed outright. A build removes them, but not a scratch folder
    of now (another process's build, going on) nor anything else; a run that finds its
    library removes nothing."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = tmp_path / "tinyautograd"
    cache.mkdir(mode=0o700)                     # as the engine makes it: its own alone
    earlier = cache / "kernels-0123456789abcdef.so"
    killed, building = cache / "tmpkilled1", cache / "tmpbuilding"
    others = [cache / "kernels-0123456789abcdef-0123456789abcdef.so", cache / "notes.txt"]
    for folder in [killed, building]:
        folder.mkdir()
        (folder / "kernels.so").write_text("")
    for file in [earlier, *others]:
        file.write_text("")
    an_hour_ago = time.time() - kernels.SCRATCH_SECONDS - 60
    os.utime(killed, (an_hour_ago, an_hour_ago))
    kernels._loaded()                                                 # built
    [built] = set(cache.glob("kernels-*-*.so")) - set(others)
    assert set(cache.iterdir()) == {built, building, *others}
    earlier.write_text("")
    kernels._loaded()                                                 # found
    assert set(cache.iterdir()) == {built, building, earlier, *others}


def test_a_library_that_cannot_be_read_is_passed_over(tmp_path, monkeypatch):
    """Another user's, say (a folder at its name here: root reads any file)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    stem = kernels._choices(kernels.compiler())[0][1]
    (tmp_path / "tinyautograd" / f"{stem}-0123456789abcdef.so").mkdir(parents=True)
    assert kernels._found(str(tmp_path / "tinyautograd"), stem) is None


@pytest.mark.parametrize("said, told", [
    ("", "exit status 3, and no message"),
    # gcc's way: where, the error, the line and a caret, then a last word.
    ("printf 'kernels.c: In function f:\\nkernels.c:1:1: error: boom\\n  1 | x\\n    | ^\\n"
     "compilation terminated.\\n' >&2", "kernels.c:1:1: error: boom")])
def test_a_compiler_that_fails_is_reported_in_one_line(tmp_path, monkeypatch, said, told):
    """CC=/bin/false said "false failed: " and no more; gcc's error, over five lines, made an
    error message of five lines."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", a_compiler(tmp_path, f"{said}\nexit 3"))
    with pytest.raises(OSError) as error:
        kernels._loaded()
    assert str(error.value) == f"cc failed: {told}"


def test_cc_is_the_compiler_with_any_flags_it_gives_and_one_not_found_is_said(tmp_path,
                                                                             monkeypatch):
    """CC naming no program was passed over for cc, without a word; where there was none, the
    error said to set CC."""
    monkeypatch.setenv("CC", str(tmp_path / "missing-cc"))
    with pytest.raises(OSError, match=r"^CC='.*/missing-cc' is no program found: set CC to a C "
                                      r"compiler, or unset it$"):
        kernels.compiler()
    cc = a_compiler(tmp_path, "exit 1")
    monkeypatch.setenv("CC", f" {cc}  -m64 ")
    assert kernels.compiler() == [cc, "-m64"]


def test_what_a_broken_compiler_wrote_is_not_kept_for_later_runs(tmp_path, monkeypatch):
    """It said it had built the library and wrote something else: that was kept, and every
    later run failed to load it, the compiler mended or not."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", a_compiler(tmp_path, 'while [ $# -gt 0 ]; do [ "$1" = -o ] && '
                                                  'out=$2; shift; done\necho nonsense > "$out"'))
    with pytest.raises(OSError) as error:
        kernels._loaded()
    cache = tmp_path / "cache" / "tinyautograd"
    # Then the system's reason, as glibc's "file too short".
    assert str(error.value).startswith(f"cc built a library that does not load from {cache}: ")
    assert list(cache.iterdir()) == []


def test_a_compiler_that_hangs_is_stopped_with_all_it_started(tmp_path, monkeypatch):
    """It was waited for, then its process killed, and what that had started ran on. Nor is
    it waited for again in another folder, as a build that fails on a full disk is."""
    monkeypatch.setattr(kernels, "BUILD_SECONDS", 0.2)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    started, runs = tmp_path / "still running", tmp_path / "runs"
    monkeypatch.setenv("CC", a_compiler(tmp_path, f"echo >> '{runs}'\n"
                                                  f"(sleep 0.5; touch '{started}') &\nsleep 5"))
    with pytest.raises(OSError, match="^cc did not finish in 0.2 s$"):
        kernels._loaded()
    time.sleep(1)
    assert not started.exists()
    assert len(runs.read_text().splitlines()) == 1



def test_a_slow_build_is_told_of_once_and_then_finished(tmp_path, monkeypatch, capfd):
    """A compiler that takes long (a busy machine, a network file system) kept the user
    waiting without a word for as long as BUILD_SECONDS: after NOTE_SECONDS one line says what
    is going on, how long it may take and how to do without, and the build then goes on."""
    monkeypatch.setattr(kernels, "NOTE_SECONDS", 0.2)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", a_compiler(tmp_path, f"sleep 0.6\n"
                                                  f"exec {' '.join(kernels.compiler())} \"$@\""))
    assert isinstance(kernels._loaded(), ctypes.CDLL)
    told = capfd.readouterr().err.splitlines()
    assert told == ["tinyautograd: cc has been building the compiled loops for 0.2 s (it takes "
                    "under a second); waiting up to 120 s. TINYAUTOGRAD_KERNELS=numpy runs "
                    "without them."]

def test_a_cache_on_a_full_disk_is_as_one_that_cannot_be_written(tmp_path):
    """The cache's folder may be written, but its disk is full: the compiler (its linker)
    fails there, and the loops are built as where there is no cache, in a folder of the
    process's own, rather than left to the numpy forms (which a run resumed once there is
    room would leave, its losses no longer an unbroken run's). Where they cannot be built
    there either, =c's error is one line: the linker's that says why."""
    cache = tmp_path / "cache"
    linker = ("echo '/usr/bin/ld: final link failed: No space left on device' >&2; "
              "echo 'collect2: error: ld returned 1 exit status' >&2; exit 1")
    cc = a_compiler(tmp_path, f"case \"$*\" in *{cache}*) {linker};; esac\n"
                              f"exec {' '.join(kernels.compiler())} \"$@\"")
    env = {"XDG_CACHE_HOME": str(cache), "CC": cc}
    status, out, error = in_a_process(env, "import tinyautograd as ta; "
                                           "print(ta.kernels.summary())")
    assert (status, error) == (0, "")
    assert out.startswith("layer norm, GELU, softmax and Adam run compiled loops "
                          "(tinyautograd/kernels.c, built for this run alone as "), out
    assert list((cache / "tinyautograd").iterdir()) == []        # nothing half-built left
    a_compiler(tmp_path, linker)                                 # and no room anywhere
    status, _, error = in_a_process({**env, "TINYAUTOGRAD_KERNELS": "c"})
    assert status == 1
    assert error.splitlines()[-1].endswith(           # the line that says why, of the two
        "cannot be built: cc failed: /usr/bin/ld: final link failed: No space left on device "
        "(unset TINYAUTOGRAD_KERNELS to run the numpy forms)")



PLANTED = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void planted(void)
{
    FILE *f = fopen(getenv("PLANTED_MARK"), "w");       /* what any code of theirs could do */
    if (f) fclose(f);
}
"""


def test_a_cache_others_may_write_is_not_loaded_from(tmp_path):
    """Loading a library runs its code (its constructors first of all). In a cache another
    user may write (a shared XDG_CACHE_HOME), a library of theirs named as ours was loaded by
    everyone's runs. Such a folder is now passed over, and the run says why and what to do."""
    cache = tmp_path / "shared" / "tinyautograd"
    cache.mkdir(parents=True)
    (tmp_path / "planted.c").write_text(PLANTED)
    planted = tmp_path / "planted.so"
    subprocess.run([*kernels.compiler(), "-shared", "-fPIC", "-o", str(planted),
                    str(tmp_path / "planted.c")], check=True)
    stem = kernels._choices(kernels.compiler())[0][1]
    named = cache / f"{stem}-{kernels._digest(str(planted))}.so"   # found as a whole library
    named.write_bytes(planted.read_bytes())
    cache.chmod(0o777)
    env = {"XDG_CACHE_HOME": str(tmp_path / "shared"), "PLANTED_MARK": str(tmp_path / "ran")}
    status, out, error = in_a_process(env, "import tinyautograd as ta; "
                                           "print(ta.kernels.summary())")
    assert (status, error) == (0, "")
    assert not (tmp_path / "ran").exists()
    assert out.startswith("layer norm, GELU, softmax and Adam run compiled loops "
                          f"(tinyautograd/kernels.c, built for this run alone as other users "
                          f"may write {cache}: make it yours alone (chmod go-w), or set "
                          f"XDG_CACHE_HOME)"), out
    assert sorted(p.name for p in cache.iterdir()) == [named.name]   # nor built into


def test_a_cache_made_here_is_this_users_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    previous = os.umask(0o002)          # a umask that lets the group write (Debian's for users)
    try:
        kernels._loaded()
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "cache" / "tinyautograd").stat().st_mode) == 0o700


def test_a_cache_its_group_may_write_is_others_to_write_too(tmp_path):
    # Group members are other users: a folder they may write is passed over as one everyone
    # may write. Read and run by others is no risk; not made yet, it is made as this user's.
    cache = tmp_path / "tinyautograd"
    assert not kernels._others_may_write(str(cache))
    cache.mkdir()
    for mode, others in [(0o700, False), (0o755, False), (0o770, True), (0o707, True)]:
        cache.chmod(mode)
        assert kernels._others_may_write(str(cache)) is others, oct(mode)

NO_HOME = ("import os, pwd\n"                 # HOME unset, and a user with no entry
           "os.environ.pop('HOME', None)\n"
           "def unlisted(uid): raise KeyError(uid)\n"
           "pwd.getpwuid = unlisted\n")


@pytest.mark.parametrize("home", ["read-only", "none"])
def test_where_no_cache_can_be_written_each_process_builds_the_loops_for_itself(tmp_path, home):
    """A read-only home (a cache folder below a file here, which even root cannot make) or
    none at all: the loops still run, built in a folder of the process's own that is gone
    afterwards, and nothing lands in the current directory (no folder named "~")."""
    (tmp_path / "a file").write_text("")
    (tmp_path / "tmp").mkdir()
    env = {"TMPDIR": str(tmp_path / "tmp"),
           "XDG_CACHE_HOME": str(tmp_path / "a file" / "cache") if home == "read-only" else ""}
    code = ("import os, tinyautograd as ta; os.chdir(os.environ['TMPDIR']); "
            "print(ta.kernels.summary())")
    status, out, error = in_a_process(env, (NO_HOME if home == "none" else "") + code)
    assert (status, error) == (0, "")
    # (XDG_CACHE_HOME may be the very setting that points where nothing can be written)
    why = (f"{tmp_path / 'a file' / 'cache' / 'tinyautograd'} cannot be written: set "
           f"XDG_CACHE_HOME to a folder one may write" if home == "read-only" else
           "HOME is not set: set XDG_CACHE_HOME")
    assert out.startswith(f"layer norm, GELU, softmax and Adam run compiled loops "
                          f"(tinyautograd/kernels.c, built for this run alone as {why}); "), out
    assert os.listdir(tmp_path / "tmp") == []


@pytest.mark.parametrize("xdg, under", [("", ".cache"), ("relative/cache", ".cache"),
                                        ("/abs/cache", None)])
def test_the_cache_is_under_an_absolute_xdg_cache_home_else_the_homes(monkeypatch, tmp_path,
                                                                       xdg, under):
    # A relative XDG_CACHE_HOME is ignored, as the XDG rules say: it would follow the current
    # directory about.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    expected = os.path.join(str(tmp_path), under) if under else xdg
    assert kernels.cache_directory() == os.path.join(expected, "tinyautograd")


def test_the_command_line_refuses_a_bad_choice_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYAUTOGRAD_KERNELS", "gpu")
    result = CliRunner().invoke(main, ["train", "--iters", "1", "--out", str(tmp_path / "run")],
                                prog_name="tinyformer")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "Error: TINYAUTOGRAD_KERNELS='gpu': give 'numpy' or 'c', or unset it"]
    assert not (tmp_path / "run").exists()


def test_the_summary_names_only_the_ops_it_is_given_in_a_sentence_that_fits_their_number(
        monkeypatch):
    # A model with RMSNorm and SwiGLU runs no layer norm and no GELU: the run's line names the
    # ops it uses, one, several or none. (in_use too: a library loaded earlier stays loaded.)
    monkeypatch.setenv("TINYAUTOGRAD_KERNELS", "numpy")
    monkeypatch.setattr(kernels, "in_use", lambda: False)
    assert kernels.summary(("Adam",)) == "Adam runs its numpy form (TINYAUTOGRAD_KERNELS=numpy)"
    assert kernels.summary(("softmax", "Adam")) == (
        "softmax and Adam run their numpy forms (TINYAUTOGRAD_KERNELS=numpy)")
    assert kernels.summary(()) == "no op of this run has compiled loops"


def test_a_run_says_which_forms_its_ops_run_and_how_to_run_the_others(tmp_path, monkeypatch,
                                                                     built_cache):
    summary = "import tinyautograd as ta; print(ta.kernels.summary())"
    cache = a_built_cache(built_cache, tmp_path)
    loops = in_a_process(cache, summary)[1]
    assert loops.startswith("layer norm, GELU, softmax and Adam run compiled loops")
    assert loops.endswith("TINYAUTOGRAD_KERNELS=numpy runs their numpy forms")
    assert in_a_process({**cache, "TINYAUTOGRAD_KERNELS": "numpy"}, summary)[1] == (
        "layer norm, GELU, softmax and Adam run their numpy forms (TINYAUTOGRAD_KERNELS=numpy)")
    assert in_a_process({**cache, "CC": failing_compiler(tmp_path)}, summary)[1] == (
        "layer norm, GELU, softmax and Adam run their numpy forms (the loops could not be "
        "built here; TINYAUTOGRAD_KERNELS=c says why)")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["train", "--iters", "1", "--d-model", "8", "--n-layer",
                                       "1", "--n-head", "1", "--context", "8", "--batch-size",
                                       "2", "--eval-iters", "1", "--out", "run"],
                                prog_name="tinyformer")
    assert result.exit_code == 0, result.output
    assert f"engine: {loops}" in result.output.splitlines()
