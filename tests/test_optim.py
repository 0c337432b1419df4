"""Optimizers, gradient clipping and lr schedules, checked step by step against torch.

Parameters are built directly as Tensors and gradients are written into `.grad` by hand, so
these tests exercise the optimizers alone, not the engine's backward or tinyautograd.nn.
"""

import json
import math
import re
import warnings

import numpy as np
import pytest
import torch

import tinyautograd as ta
from tinyautograd import Tensor
from tinyautograd.optim import (SGD, Adam, AdamW, Noam, WarmupCosine, clip_grad_norm,
                                sum_of_squares, weight_decay_groups)

SHAPES = [(3, 4), (5,), (2, 3, 2), ()]

# (ours, torch's, options): every optimizer and every option that changes its formula.
CONFIGS = [
    (SGD, torch.optim.SGD, dict(lr=0.1)),
    (SGD, torch.optim.SGD, dict(lr=0.1, weight_decay=0.05)),
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, weight_decay=0.01)),
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.3)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, weight_decay=0.01, nesterov=True)),
    (SGD, torch.optim.SGD, dict(lr=0.1, maximize=True)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, weight_decay=0.01, maximize=True)),
    (Adam, torch.optim.Adam, dict(lr=0.01)),
    (Adam, torch.optim.Adam, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (Adam, torch.optim.Adam, dict(lr=0.01, amsgrad=True)),
    (Adam, torch.optim.Adam, dict(lr=0.02, weight_decay=0.1, amsgrad=True, maximize=True)),
    (Adam, torch.optim.Adam, dict(lr=0.02, weight_decay=0.3, decoupled_weight_decay=True)),
    (AdamW, torch.optim.AdamW, dict(lr=0.01)),
    (AdamW, torch.optim.AdamW, dict(lr=0.02, betas=(0.85, 0.95), eps=1e-7, weight_decay=0.3)),
    (AdamW, torch.optim.AdamW, dict(lr=0.02, weight_decay=0.3, maximize=True)),
    (AdamW, torch.optim.AdamW, dict(lr=0.02, weight_decay=0.3, amsgrad=True)),
]
CONFIG_IDS = [f"{ours.__name__}-{options}" for ours, _, options in CONFIGS]


def make_params(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [Tensor(rng.standard_normal(shape), requires_grad=True, dtype=dtype)
            for shape in SHAPES]


def torch_twins(params):
    return [torch.tensor(p.data, requires_grad=True) for p in params]


def gradient(param_data, step, seed=1):
    """A gradient that depends on the parameter (so that differences compound from step to
    step) plus noise that changes every step, as minibatch gradients do."""
    noise = np.random.default_rng([seed, step]).standard_normal(param_data.shape)
    return np.asarray(np.cos(3 * param_data) + noise)   # 0-d stays an array


def set_gradients(params, step, twins=None):
    for i, p in enumerate(params):
        p.grad = gradient(p.data, step, seed=i).astype(p.dtype)
        if twins is not None:
            twins[i].grad = torch.from_numpy(p.grad.copy())


def step_on_the_same_gradients(steps, *params_and_optimizers):
    """Each (params, optimizer) given steps `steps` times, on the same gradients each step."""
    for step in range(steps):
        for params, optimizer in params_and_optimizers:
            set_gradients(params, step)
            optimizer.step()


def assert_same(params, twins, rtol=1e-10):
    for p, t in zip(params, twins):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=rtol, atol=1e-13)


# ---------------------------------------------------------------------------- vs torch


@pytest.mark.parametrize("ours, theirs, options", CONFIGS, ids=CONFIG_IDS)
def test_matches_torch_step_by_step(ours, theirs, options):
    params = make_params(0)
    twins = torch_twins(params)
    optimizer, reference = ours(params, **options), theirs(twins, **options)
    for step in range(20):
        set_gradients(params, step, twins)
        optimizer.step()
        reference.step()
        assert_same(params, twins)


@pytest.mark.parametrize("ours, theirs", [(SGD, torch.optim.SGD), (Adam, torch.optim.Adam),
                                          (AdamW, torch.optim.AdamW)])
def test_param_groups_with_their_own_options_match_torch(ours, theirs):
    params = make_params(1)
    twins = torch_twins(params)

    def groups(ps):
        return [{"params": ps[:2], "lr": 0.03, "weight_decay": 0.2},
                {"params": ps[2:3]},                                   # all defaults
                {"params": ps[3:], "weight_decay": 0.0}]

    extra = {"momentum": 0.9} if ours is SGD else {}
    optimizer = ours(groups(params), lr=0.01, weight_decay=0.05, **extra)
    reference = theirs(groups(twins), lr=0.01, weight_decay=0.05, **extra)
    assert [g["lr"] for g in optimizer.param_groups] == [0.03, 0.01, 0.01]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.2, 0.05, 0.0]
    numbered = [g["params"] for g in reference.state_dict()["param_groups"]]    # [[0, 1], [2], [3]]
    assert [g["params"] for g in optimizer.state_dict()["param_groups"]] == numbered
    for step in range(20):
        set_gradients(params, step, twins)
        optimizer.step()
        reference.step()
        assert_same(params, twins)


def test_sgd_given_momentum_after_steps_without_matches_torch():
    params = make_params(10)
    twins = torch_twins(params)
    optimizer, reference = SGD(params, lr=0.1), torch.optim.SGD(twins, lr=0.1)
    for step in range(6):
        if step == 3:
            optimizer.param_groups[0]["momentum"] = reference.param_groups[0]["momentum"] = 0.9
        set_gradients(params, step, twins)
        optimizer.step()
        reference.step()
        assert_same(params, twins)


@pytest.mark.parametrize("options", [dict(momentum=0.9, dampening=0.5),
                                     dict(momentum=0.9, weight_decay=0.1, nesterov=True)],
                         ids=["dampening", "nesterov"])
def test_sgd_resumed_from_a_saved_state_goes_on_as_torchs(options, tmp_path):
    # Three steps, a checkpoint of each (ours without pickle, torch's state dict), both loaded
    # into new optimizers, three more steps: ours follows torch's at every one, and the
    # buffers saved are torch's.
    params = make_params(12)
    twins = torch_twins(params)
    optimizer = SGD(params, lr=0.1, **options)
    reference = torch.optim.SGD(twins, lr=0.1, **options)
    for step in range(3):
        set_gradients(params, step, twins)
        optimizer.step()
        reference.step()
    save_without_pickle(optimizer.state_dict(), tmp_path)
    saved_reference = reference.state_dict()
    for ours, theirs in zip(optimizer.state_dict()["state"],
                            saved_reference["state"].values()):
        np.testing.assert_allclose(ours["momentum_buffer"], theirs["momentum_buffer"].numpy(),
                                   rtol=1e-12)
    optimizer = SGD(params, lr=0.5)                       # options and buffers all loaded
    optimizer.load_state_dict(load_without_pickle(tmp_path))
    reference = torch.optim.SGD(twins, lr=0.5)
    reference.load_state_dict(saved_reference)
    assert {key: optimizer.param_groups[0][key] for key in options} == options
    for step in range(3, 6):
        set_gradients(params, step, twins)
        optimizer.step()
        reference.step()
        assert_same(params, twins)


@pytest.mark.parametrize("options", [dict(nesterov=True), dict(nesterov=True, momentum=0.0),
                                     dict(nesterov=True, momentum=0.9, dampening=0.1)])
def test_sgd_refuses_nesterov_without_momentum_or_with_dampening_as_torch(options):
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero"):
        torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1, **options)
    momentum, dampening = options.get("momentum", 0.0), options.get("dampening", 0.0)
    with pytest.raises(ValueError, match=rf"^SGD: nesterov=True needs momentum > 0 and "
                                         rf"dampening = 0, got momentum={momentum}, "
                                         rf"dampening={dampening}$"):
        SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.1, **options)


def test_sgd_loads_a_state_saved_before_it_had_dampening_nesterov_and_maximize():
    # Refused as "saved by another kind of optimizer" for lacking the new options; such a
    # state was computed with torch's defaults for them, which it takes.
    params = make_params(12)
    saved = SGD(params, lr=0.1, momentum=0.9)
    set_gradients(params, 0)
    saved.step()
    state = saved.state_dict()
    for group in state["param_groups"]:
        del group["dampening"], group["nesterov"], group["maximize"]
    optimizer = SGD(params, lr=0.1, momentum=0.5, dampening=0.5, maximize=True)
    optimizer.load_state_dict(state)
    group = optimizer.param_groups[0]
    assert (group["momentum"], group["dampening"], group["nesterov"], group["maximize"]) == \
        (0.9, 0.0, False, False)
    assert optimizer.state_dict()["state"][0]["momentum_buffer"].shape == params[0].shape


@pytest.mark.parametrize("ours", [Adam, AdamW])
def test_adam_loads_a_state_saved_before_it_had_amsgrad_and_maximize(ours):
    params = make_params(12)
    saved = ours(params, lr=0.1)
    set_gradients(params, 0)
    saved.step()
    state = saved.state_dict()
    for group in state["param_groups"]:
        del group["amsgrad"], group["maximize"]
    optimizer = ours(params, lr=0.5, amsgrad=True, maximize=True)
    optimizer.load_state_dict(state)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["amsgrad"], group["maximize"]) == (0.1, False, False)
    assert optimizer.state_dict()["state"][0]["step"] == 1


def test_adam_given_amsgrad_after_steps_without_keeps_the_largest_v_from_then_on():
    # torch's first step makes the maximum, so turned on later its step fails on a KeyError;
    # here it starts then, from zero, as torch's does when given that zero.
    params = make_params(14)
    twins = torch_twins(params)
    optimizer, reference = Adam(params, lr=0.01), torch.optim.Adam(twins, lr=0.01)
    for step in range(6):
        if step == 3:
            optimizer.param_groups[0]["amsgrad"] = reference.param_groups[0]["amsgrad"] = True
            for twin in twins:
                reference.state[twin]["max_exp_avg_sq"] = torch.zeros_like(twin)
        set_gradients(params, step, twins)
        optimizer.step()
        reference.step()
        assert_same(params, twins)
    assert "max_exp_avg_sq" in optimizer.state_dict()["state"][0]


@pytest.mark.parametrize("ours", [Adam, AdamW])
def test_amsgrads_state_is_made_before_the_first_update(ours):
    # Parallel training moves the state initial_state makes into shared memory before any
    # step, and a resumed checkpoint must hold its keys: v_max made at the first update
    # instead would stay in the process that made it.
    (param,) = make_params(15)[:1]
    optimizer = ours([param], lr=0.01, amsgrad=True)
    before = optimizer.initial_state(param, optimizer.param_groups[0])
    set_gradients([param], 0)
    optimizer.step()
    assert set(before) == set(optimizer.state[id(param)]) >= {"max_exp_avg_sq"}


@pytest.mark.parametrize("ours, theirs", [(SGD, torch.optim.SGD), (AdamW, torch.optim.AdamW)])
def test_step_calls_a_closure_with_the_graph_recorded_and_returns_its_loss_as_torch(ours,
                                                                                   theirs):
    params = make_params(13)
    twins = torch_twins(params)
    optimizer, reference = ours(params, lr=0.1), theirs(twins, lr=0.1)

    def closure_of(optimizer, tensors):
        def closure():
            optimizer.zero_grad()
            loss = sum(((t * t) * 0.5 + t).sum() for t in tensors)
            loss.backward()
            return loss
        return closure

    for _ in range(3):
        with ta.no_grad():            # as a training loop may step; the closure still records
            loss = optimizer.step(closure_of(optimizer, params))
        with torch.no_grad():
            expected = reference.step(closure_of(reference, twins))
        assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
        assert_same(params, twins)
    assert optimizer.step() is None


def test_adam_with_decoupled_weight_decay_is_adamw_as_torchs_and_takes_only_a_switch():
    # torch's Adam(decoupled_weight_decay=True) failed here as an unexpected keyword.
    params, twins = make_params(16), make_params(16)
    decoupled = Adam(params, lr=0.02, weight_decay=0.3, decoupled_weight_decay=True)
    adamw = AdamW(twins, lr=0.02, weight_decay=0.3)
    step_on_the_same_gradients(3, (params, decoupled), (twins, adamw))
    for p, twin in zip(params, twins):
        np.testing.assert_array_equal(p.data, twin.data)
    assert Adam(make_params(16)).decoupled_weight_decay is False     # one instance's own
    with pytest.raises(TypeError, match=r"^Adam: decoupled_weight_decay must be True or False, "
                                        r"got 'yes'"):
        Adam(params, decoupled_weight_decay="yes")


def test_adamw_is_not_adam_with_l2():
    """The two weight decays differ; a mix-up between them must show."""
    adam_params, adamw_params = make_params(2), make_params(2)
    adam = Adam(adam_params, lr=0.01, weight_decay=0.1)
    adamw = AdamW(adamw_params, lr=0.01, weight_decay=0.1)
    step_on_the_same_gradients(3, (adam_params, adam), (adamw_params, adamw))
    assert not np.allclose(adam_params[0].data, adamw_params[0].data, rtol=1e-6)


# ---------------------------------------------------------------------------- dtypes, skipping


@pytest.mark.parametrize("ours, theirs, options", CONFIGS, ids=CONFIG_IDS)
def test_float32_parameters_stay_float32_and_are_updated_in_place(ours, theirs, options):
    params, params64 = make_params(3, dtype=np.float32), make_params(3)
    arrays = [p.data for p in params]
    optimizer, optimizer64 = ours(params, **options), ours(params64, **options)
    schedules = [WarmupCosine(o, warmup_steps=2, total_steps=10, min_lr=1e-4)
                 for o in (optimizer, optimizer64)]
    for step in range(5):
        set_gradients(params, step)
        set_gradients(params64, step)
        optimizer.step()
        optimizer64.step()
        for schedule in schedules:
            schedule.step()
    for p, p64, array in zip(params, params64, arrays):
        assert p.data is array
        assert p.data.dtype == np.float32
        np.testing.assert_allclose(p.data, p64.data, rtol=1e-4, atol=1e-5)
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float32


@pytest.mark.parametrize("ours, theirs", [(Adam, torch.optim.Adam), (AdamW, torch.optim.AdamW)])
def test_float32_amsgrad_divides_by_the_largest_v_as_torchs(ours, theirs):
    # The compiled loop divides by v itself: amsgrad's float32 steps take the numpy form. Large
    # gradients, then small ones, so that v falls far below its largest.
    params = make_params(15, dtype=np.float32)
    twins = torch_twins(params)
    optimizer = ours(params, lr=0.01, amsgrad=True)
    reference = theirs(twins, lr=0.01, amsgrad=True)
    for step in range(8):
        set_gradients(params, step, twins)
        for p, twin in zip(params, twins):
            p.grad *= 100 if step < 2 else 0.01
            twin.grad = torch.from_numpy(p.grad.copy())
        optimizer.step()
        reference.step()
        assert_same(params, twins, rtol=1e-5)


@pytest.mark.parametrize("ours, theirs, options", CONFIGS, ids=CONFIG_IDS)
def test_float16_parameters_update_in_float32_as_torchs_fused_optimizers(ours, theirs, options):
    # In float16, eps = 1e-8 is 0: where the gradient was exactly zero Adam divided 0 by 0 and
    # the parameter became NaN (as with torch's default, unfused Adam). torch's fused=True
    # computes in float32 and rounds once; so does every optimizer here, bit for bit.
    params = make_params(11, dtype=np.float16)
    twins = [torch.tensor(p.data, requires_grad=True) for p in params]
    optimizer, reference = ours(params, **options), theirs(twins, fused=True, **options)
    for step in range(8):
        for p, twin, i in zip(params, twins, range(len(params))):
            p.grad = gradient(p.data.astype(np.float64), step, seed=i).astype(np.float16)
            p.grad.flat[::2] = 0                       # exactly zero: v stays 0
            twin.grad = torch.from_numpy(p.grad.copy())
        optimizer.step()
        reference.step()
        for p, twin in zip(params, twins):
            assert p.dtype == np.float16 and np.isfinite(p.data).all()
            np.testing.assert_array_equal(p.data, twin.detach().numpy())
    for state in optimizer.state.values():
        assert all(value.dtype == np.float16 for value in state.values()
                   if isinstance(value, np.ndarray))


def test_parameters_without_gradient_are_skipped():
    params = make_params(4)
    frozen_before = params[1].data.copy()
    optimizer = AdamW(params, lr=0.1, weight_decay=0.5)    # decay alone would move it
    for step in range(3):
        set_gradients(params, step)
        params[1].grad = None
        optimizer.step()
    np.testing.assert_array_equal(params[1].data, frozen_before)
    assert optimizer.state_dict()["state"][1] == {}
    assert optimizer.state_dict()["state"][0]["step"] == 3

    set_gradients(params, 3)
    optimizer.step()                                    # its own count starts now
    assert optimizer.state_dict()["state"][1]["step"] == 1
    assert not np.array_equal(params[1].data, frozen_before)


@pytest.mark.parametrize("make", [lambda p: SGD(p, lr=0.1, momentum=0.9), AdamW])
def test_a_read_only_parameter_is_refused_before_any_update(make):
    """A Tensor keeps the array it is made from, np.frombuffer's read-only one too: numpy
    refused its update part way through the step, the parameters before it updated already."""
    params = make_params(5)
    kept = np.frombuffer(params[2].data.tobytes()).reshape(params[2].shape)
    params[2] = Tensor(kept, requires_grad=True, dtype=np.float64)
    frozen = Tensor(kept, requires_grad=True, dtype=np.float64)   # no gradient: left be
    optimizer = make(params + [frozen])
    set_gradients(params, 0)
    before = [p.data.copy() for p in params]
    with pytest.raises(ValueError, match=r"^the optimizer cannot update a parameter of shape "
                                         r"\(2, 3, 2\): its array is read-only .*; make the "
                                         r"Tensor from a copy, Tensor\(array.copy\(\), "
                                         r"requires_grad=True\)$"):
        optimizer.step()
    for p, was in zip(params, before):
        np.testing.assert_array_equal(p.data, was)
    params[2].grad = None
    optimizer.step()                                    # the frozen one is no trouble
    assert not np.array_equal(params[0].data, before[0])


def test_zero_grad_clears_both_gradients():
    params = make_params(5)
    set_gradients(params, 0)
    params[0].grad_tensor = Tensor(params[0].grad)
    SGD(params, lr=0.1).zero_grad()
    assert all(p.grad is None and p.grad_tensor is None for p in params)


def test_a_group_of_one_tensor_updates_that_tensor_as_torch_does():
    params = make_params(6)
    twins = torch_twins(params)
    optimizer = SGD([{"params": params[0]}, {"params": params[1:]}], lr=0.1)
    reference = torch.optim.SGD([{"params": twins[0]}, {"params": twins[1:]}], lr=0.1)
    assert optimizer.param_groups[0]["params"][0] is params[0]
    set_gradients(params, 0, twins)
    optimizer.step()
    reference.step()
    assert_same(params, twins)


def test_bad_parameter_lists_are_refused():
    p = Tensor(np.zeros(3), requires_grad=True)
    with pytest.raises(ValueError):
        SGD([], lr=0.1)
    with pytest.raises(TypeError):
        SGD(p, lr=0.1)
    with pytest.raises(ValueError):
        SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="appears twice"):       # twice in one group, too
        SGD([p, p], lr=0.1)
    computed = Tensor(np.ones(3), requires_grad=True) * 0.02    # never given a .grad
    with pytest.raises(ValueError, match="only update leaf Tensors, not one computed by mul"):
        SGD([computed], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        torch.optim.SGD([torch.ones(3, requires_grad=True) * 0.02], lr=0.1)


def test_parameters_in_a_set_are_refused_as_torch_refuses_them():
    """A set's order follows the tensors' ids, so another run numbers the parameters in another
    order, and a saved state loaded there gives one parameter another's moments."""
    params = make_params(6)
    for given in (set(params), [{"params": set(params)}]):
        with pytest.raises(TypeError, match=r"not in a set, .*; pass a list, such as "
                                            r"list\(model.parameters\(\)\)$"):
            Adam(given)
    with pytest.raises(TypeError, match="need to be organized in ordered collections"):
        torch.optim.Adam([{"params": set(torch_twins(params))}])   # (torch's check: groups')


def test_named_parameters_are_taken_as_torch_takes_them_and_keep_their_names():
    """`AdamW(model.named_parameters())` works in torch; the names go to 'param_names', and a
    saved state goes back to its parameters by name, in whatever order they come."""
    names = ["w", "b", "v", "s"]
    params = make_params(7)
    twins = torch_twins(params)
    optimizer = AdamW(zip(names, params), lr=0.02)
    reference = torch.optim.AdamW(zip(names, twins), lr=0.02)
    assert optimizer.param_groups[0]["params"] == params
    assert optimizer.param_groups[0]["param_names"] == reference.param_groups[0]["param_names"]
    for step in range(2):
        set_gradients(params, step, twins)
        optimizer.step()
        reference.step()
    assert_same(params, twins)
    shuffled = AdamW([(names[i], params[i]) for i in (2, 0, 3, 1)])
    shuffled.load_state_dict(optimizer.state_dict())
    for p in params:
        np.testing.assert_array_equal(shuffled.state[id(p)]["exp_avg"],
                                      optimizer.state[id(p)]["exp_avg"])
    with pytest.raises(ValueError, match="all be named, .* or all be Tensors alone"):
        SGD([("w", params[0]), params[1]], lr=0.1)
    with pytest.raises(ValueError, match="groups must all name their parameters .* or none"):
        SGD([{"params": [("w", params[0])]}, {"params": [params[1]]}], lr=0.1)
    with pytest.raises(ValueError, match="names 2 parameters under 'param_names' and holds 1"):
        SGD([{"params": [params[0]], "param_names": ["w", "b"]}], lr=0.1)


@pytest.mark.parametrize("make, says", [
    (lambda p: SGD(p, lr=-0.1), r"^SGD: lr must be >= 0, got -0.1$"),
    (lambda p: SGD(p, lr=math.nan), r"^SGD: lr must be >= 0, got nan$"),
    (lambda p: SGD(p, lr=0.1, momentum=-0.5), r"^SGD: momentum must be >= 0"),
    (lambda p: SGD(p, lr=0.1, weight_decay=-1.0), r"^SGD: weight_decay must be >= 0"),
    (lambda p: Adam(p, lr=-1e-3), r"^Adam: lr must be >= 0"),
    (lambda p: Adam(p, betas=(1.0, 0.999)), r"^Adam: betas\[0\] must be in \[0, 1\), got 1.0$"),
    (lambda p: Adam(p, betas=(0.9, -0.1)), r"^Adam: betas\[1\] must be in \[0, 1\)"),
    (lambda p: AdamW(p, eps=-1e-8), r"^AdamW: eps must be >= 0"),
    (lambda p: AdamW(p, weight_decay=-0.01), r"^AdamW: weight_decay must be >= 0"),
    (lambda p: Adam([{"params": p, "lr": -1.0}]), r"^Adam: lr must be >= 0"),   # a group's own
    (lambda p: Adam(p, betas=(0.9,)), r"^Adam: betas must be a pair \(beta1, beta2\), got "
                                      r"\(0\.9,\)$"),      # accepted, then failed at the step
    (lambda p: AdamW(p, betas=0.9), r"^AdamW: betas must be a pair"),
    (lambda p: Adam([{"params": p, "betas": (0.9, 0.99, 0.999)}]), r"^Adam: betas must be a pair"),
])
def test_hyperparameters_out_of_range_are_refused_as_torch_refuses_them(make, says):
    with pytest.raises(ValueError, match=says):
        make([Tensor(np.zeros(3), requires_grad=True)])


@pytest.mark.parametrize("make, says", [
    (lambda p: SGD(p, lr="0.01"), r"^SGD: lr must be a number, got '0.01'$"),
    (lambda p: Adam(p, lr=None), r"^Adam: lr must be a number, got None$"),
    # a Tensor passed the range check, then failed in the middle of a step with numpy's error
    (lambda p: SGD(p, lr=Tensor(0.1)), r"^SGD: lr must be a number, got Tensor\(0\.1\): pass a "
                                       r"number, lr=float\(t\)$"),
    (lambda p: AdamW(p, weight_decay=Tensor(0.1)), r"^AdamW: weight_decay must be a number"),
    (lambda p: SGD(p, lr=0.1, momentum=0.9, dampening="0.1"), r"^SGD: dampening must be a number"),
    (lambda p: Adam(p, betas=(0.9, "0.99")), r"^Adam: betas\[1\] must be a number, got '0\.99'$"),
    (lambda p: SGD(p, lr=True), r"^SGD: lr must be a number, got True$"),
    # a string switch is true, whatever it says
    (lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov="False"),
     r"^SGD: nesterov must be True or False, got 'False'$"),
    (lambda p: Adam(p, amsgrad="False"), r"^Adam: amsgrad must be True or False, got 'False'$"),
    (lambda p: Adam([{"params": p, "maximize": "no"}]), r"^Adam: maximize must be True or False"),
])
def test_hyperparameters_that_are_not_numbers_or_switches_are_refused_in_one_line(make, says):
    with pytest.raises(TypeError, match=says):
        make([Tensor(np.zeros(3), requires_grad=True)])


def test_hyperparameters_given_as_numpy_numbers_are_taken():
    p = Tensor(np.ones(3), requires_grad=True)
    p.grad = np.ones(3, np.float32)
    SGD([p], lr=np.float32(0.5), momentum=np.array(0.0)).step()
    np.testing.assert_allclose(p.data, 0.5)


def test_numpy_numbers_given_as_options_are_kept_as_pythons_so_a_state_goes_to_json():
    # They stayed numpy's: json.dumps of the optimizer's state dict, and of a schedule's that
    # took its base lr from it, raised "Object of type float32 is not JSON serializable".
    p = Tensor(np.ones(3), requires_grad=True)
    optimizer = Adam([p], lr=np.float32(0.5), betas=np.array([0.9, 0.999]),
                     eps=np.float64(1e-8), weight_decay=np.array(0.0))
    schedule = WarmupCosine(optimizer, 2, 10)
    assert all(type(optimizer.param_groups[0][key]) is float
               for key in ("lr", "eps", "weight_decay"))
    p.grad = np.ones(3, np.float32)
    optimizer.step()
    schedule.step()
    assert json.loads(json.dumps(schedule.state_dict())) == {"steps_taken": 1, "base_lrs": [0.5]}
    optimizer.param_groups[0]["lr"] = np.float64(0.25)              # set by hand, later
    saved = json.loads(json.dumps(optimizer.state_dict()["param_groups"]))
    assert saved[0]["lr"] == 0.25 and saved[0]["betas"] == [0.9, 0.999]
    # A state whose options are numpy's (built by hand, or read from an .npz) loads as Python's.
    state = optimizer.state_dict()
    state["param_groups"][0].update(lr=np.float32(0.125),
                                    betas=[np.float64(0.8), np.float64(0.99)])
    optimizer.load_state_dict(state)
    group = optimizer.param_groups[0]
    assert type(group["lr"]) is float and group["lr"] == 0.125
    assert group["betas"] == (0.8, 0.99) and all(type(b) is float for b in group["betas"])
    # betas as an array in a group of its own, as the constructor takes them (it was refused:
    # "betas must be a pair")
    optimizer.add_param_group({"params": [Tensor(np.ones(2), requires_grad=True)],
                               "betas": np.array([0.5, 0.75], np.float32)})
    assert optimizer.param_groups[1]["betas"] == (0.5, 0.75)
    assert json.loads(json.dumps(optimizer.state_dict()["param_groups"]))[1]["betas"] == [0.5, 0.75]


def test_hyperparameters_at_the_edges_of_their_ranges_are_accepted():
    p = [Tensor(np.zeros(3), requires_grad=True)]
    SGD(p, lr=0.0, momentum=0.0, weight_decay=0.0)
    Adam(p, lr=0.0, betas=(0.0, 0.0), eps=0.0, weight_decay=0.0)


@pytest.mark.parametrize("ours, theirs", [(SGD, torch.optim.SGD), (Adam, torch.optim.Adam),
                                          (AdamW, torch.optim.AdamW)])
def test_the_defaults_are_torchs(ours, theirs):
    # SGD's lr was required, "as torch's", which has defaulted to 1e-3 since torch 2.2.
    params = make_params(0)
    defaults = ours(params).defaults
    assert defaults == {key: value for key, value in theirs(torch_twins(params)).defaults.items()
                        if key in defaults}


@pytest.mark.parametrize("ours, theirs, switches", [
    (SGD, torch.optim.SGD, ("foreach", "fused", "differentiable")),
    (Adam, torch.optim.Adam, ("foreach", "fused", "differentiable", "capturable")),
    (AdamW, torch.optim.AdamW, ("foreach", "fused", "differentiable", "capturable"))])
def test_torchs_implementation_switches_are_taken_off_and_refused_on(ours, theirs, switches):
    # Ported code passes them; off, they change nothing, so a step matches torch's. Adam's
    # capturable=False failed as an unexpected keyword.
    params = make_params(8)
    twins = torch_twins(params)
    off = {switch: None if switch in ("foreach", "fused") else False for switch in switches}
    optimizer = ours(params, lr=0.1, **off)
    reference = theirs(twins, lr=0.1, **{**off, "foreach": False})
    set_gradients(params, 0, twins)
    optimizer.step()
    reference.step()
    assert_same(params, twins)
    for switch in switches:
        with pytest.raises(ValueError, match=rf"^{ours.__name__}: {switch}=True is not offered "
                                             rf"\(the update is a loop over the parameters, "
                                             rf"outside the graph\); leave {switch} out$"):
            ours(params, lr=0.1, **{switch: True})


# ---------------------------------------------------------------------------- state dicts


def save_without_pickle(state, directory):
    """Arrays to an .npz, everything else to JSON, failing on any other kind of value: the
    state dict must be saveable without pickle."""
    arrays = {}

    def skeleton(value, path):
        if isinstance(value, np.ndarray):
            arrays[path] = value
            return {"npz": path}
        if isinstance(value, dict):
            assert all(isinstance(key, str) for key in value), path
            return {key: skeleton(item, f"{path}.{key}") for key, item in value.items()}
        if isinstance(value, list):
            return [skeleton(item, f"{path}.{i}") for i, item in enumerate(value)]
        assert type(value) in (int, float, str, bool) or value is None, (path, type(value))
        return value

    text = json.dumps(skeleton(state, "root"))
    np.savez(directory / "arrays.npz", allow_pickle=False, **arrays)
    (directory / "state.json").write_text(text)


def load_without_pickle(directory):
    arrays = np.load(directory / "arrays.npz", allow_pickle=False)

    def rebuild(value):
        if isinstance(value, dict):
            return arrays[value["npz"]] if set(value) == {"npz"} else {
                key: rebuild(item) for key, item in value.items()}
        if isinstance(value, list):
            return [rebuild(item) for item in value]
        return value

    return rebuild(json.loads((directory / "state.json").read_text()))


def make_optimizer(params, ours, options):
    return ours([{"params": params[:2]}, {"params": params[2:], "lr": 0.5 * options["lr"]}],
                **options)


def make_schedule(optimizer):
    return WarmupCosine(optimizer, warmup_steps=4, total_steps=15, min_lr=1e-3)


@pytest.mark.parametrize("ours, theirs, options", CONFIGS, ids=CONFIG_IDS)
def test_resuming_from_a_saved_state_continues_exactly(ours, theirs, options, tmp_path):
    params = make_params(6)
    optimizer = make_optimizer(params, ours, options)
    schedule = make_schedule(optimizer)
    for step in range(20):
        if step == 10:
            saved_params = [p.data.copy() for p in params]
            saved = {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}
        set_gradients(params, step)
        optimizer.step()
        schedule.step()
    # Written only now: the state dict must not have followed the ten later steps.
    save_without_pickle(saved, tmp_path)

    resumed = [Tensor(data, requires_grad=True, dtype=np.float64) for data in saved_params]
    loaded = load_without_pickle(tmp_path)
    resumed_optimizer = make_optimizer(resumed, ours, options)
    resumed_optimizer.load_state_dict(loaded["optimizer"])
    # Made after loading, the schedule finds step 10's lrs in the groups, not the peak ones.
    resumed_schedule = make_schedule(resumed_optimizer)
    resumed_schedule.load_state_dict(loaded["schedule"])
    for step in range(10, 20):
        set_gradients(resumed, step)
        resumed_optimizer.step()
        resumed_schedule.step()
    for p, r in zip(params, resumed):
        np.testing.assert_array_equal(p.data, r.data)
    assert resumed_schedule.get_last_lr() == schedule.get_last_lr()


def test_loading_into_a_differently_shaped_optimizer_is_refused():
    params = make_params(7)
    optimizer = Adam(params)
    set_gradients(params, 0)
    optimizer.step()
    state = optimizer.state_dict()
    with pytest.raises(ValueError, match="groups"):
        Adam(params[:3]).load_state_dict(state)
    with pytest.raises(ValueError, match="shape"):
        Adam(make_params(7)[::-1]).load_state_dict(state)


def test_a_refused_state_leaves_the_optimizer_as_it_was():
    params = make_params(7)
    optimizer = Adam(params, lr=0.5)
    set_gradients(params, 0)
    optimizer.step()
    before = optimizer.state_dict()
    saved = Adam(make_params(7)[::-1], lr=0.1)          # its shapes in the other order
    set_gradients(saved.param_groups[0]["params"], 0)
    saved.step()
    with pytest.raises(ValueError, match="shape"):
        optimizer.load_state_dict(saved.state_dict())
    after = optimizer.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for kept, now in zip(before["state"], after["state"]):
        np.testing.assert_equal(now, kept)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_loaded_state_is_the_optimizers_own_in_the_parameters_dtype(dtype):
    # The saved arrays (float64 here) become copies in each parameter's dtype: later steps
    # leave the state dict that was loaded as it was.
    params = make_params(7)
    optimizer = Adam(params)
    set_gradients(params, 0)
    optimizer.step()
    state = optimizer.state_dict()
    before = [{key: np.copy(value) for key, value in s.items()} for s in state["state"]]
    resumed_params = make_params(7, dtype=dtype)
    resumed = Adam(resumed_params)
    resumed.load_state_dict(state)
    assert all(resumed.state[id(p)]["exp_avg"].dtype == dtype for p in resumed_params)
    set_gradients(resumed_params, 1)
    resumed.step()
    for saved, now in zip(before, state["state"]):
        for key in saved:
            np.testing.assert_array_equal(saved[key], now[key])


def test_loading_replaces_the_groups_options_with_the_saved_ones():
    w = Tensor(np.zeros(3), requires_grad=True)
    saved = SGD([w], lr=0.1, momentum=0.9).state_dict()
    sgd = SGD([w], lr=0.5, momentum=0.0)
    sgd.load_state_dict(saved)
    assert (sgd.param_groups[0]["lr"], sgd.param_groups[0]["momentum"]) == (0.1, 0.9)

    saved = Adam([w], lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1).state_dict()
    adam = Adam([w])
    adam.load_state_dict(json.loads(json.dumps(saved)))     # betas as a list, as JSON keeps it
    group = adam.param_groups[0]
    assert group["betas"] == (0.8, 0.99)                    # a tuple again, as torch keeps it
    assert (group["lr"], group["eps"], group["weight_decay"]) == (0.02, 1e-6, 0.1)


@pytest.mark.parametrize("ours, theirs, saved_with, loaded_into", [
    (AdamW, torch.optim.AdamW, dict(amsgrad=True, maximize=True), dict()),
    (AdamW, torch.optim.AdamW, dict(), dict(amsgrad=True, maximize=True)),
    (SGD, torch.optim.SGD, dict(momentum=0.9, nesterov=True, maximize=True),
     dict(momentum=0.5, dampening=0.5)),
    (SGD, torch.optim.SGD, dict(momentum=0.9, dampening=0.3), dict(momentum=0.9))],
    ids=["adamw-flags-saved", "adamw-flags-given", "sgd-nesterov-saved", "sgd-dampening-saved"])
def test_a_loaded_state_brings_its_switches_and_goes_on_as_torchs(ours, theirs, saved_with,
                                                                  loaded_into):
    # torch's load_state_dict takes the saved groups' options, switches included, over the
    # ones the optimizer was made with: a resumed run goes on by the rule it was saved with.
    params = make_params(5)
    twins = torch_twins(params)
    saved = ours(params, lr=0.01, **saved_with)
    reference = theirs(twins, lr=0.01, **saved_with)
    for step in range(2):
        set_gradients(params, step, twins)
        saved.step()
        reference.step()
    resumed = ours(params, lr=0.5, **loaded_into)
    state = saved.state_dict()
    state["param_groups"] = json.loads(json.dumps(state["param_groups"]))   # as a run keeps them
    resumed.load_state_dict(state)
    resumed_reference = theirs(twins, lr=0.5, **loaded_into)
    resumed_reference.load_state_dict(reference.state_dict())
    for key, value in saved_with.items():
        assert resumed.param_groups[0][key] == resumed_reference.param_groups[0][key] == value
    for step in range(2, 4):
        set_gradients(params, step, twins)
        resumed.step()
        resumed_reference.step()
    assert_same(params, twins)


@pytest.mark.parametrize("option, value, kind, error", [
    ("betas", [0.9], ValueError, r"AdamW: betas must be a pair \(beta1, beta2\), got \[0\.9\]"),
    ("lr", -0.001, ValueError, r"AdamW: lr must be >= 0, got -0\.001"),
    ("eps", float("nan"), ValueError, r"AdamW: eps must be >= 0, got nan"),
    ("lr", "0.1", TypeError, r"AdamW: lr must be a number, got '0\.1'")],
    ids=["one-beta", "lr", "eps", "lr-text"])
def test_a_saved_group_the_constructor_would_refuse_is_refused_before_any_change(option, value,
                                                                                  kind, error):
    # Loaded, one beta failed the first step ("not enough values to unpack"), and a negative
    # lr trained up the gradient, silently.
    params = make_params(5)
    saved = AdamW(params, lr=0.01)
    set_gradients(params, 0)
    saved.step()
    state = saved.state_dict()
    state["param_groups"][0][option] = value
    optimizer = AdamW(params, lr=0.5)
    with pytest.raises(kind, match=rf"^load_state_dict: the saved group 0 is refused: "
                                   rf"{error}$"):
        optimizer.load_state_dict(state)
    assert optimizer.state == {} and optimizer.param_groups[0]["lr"] == 0.5


def test_loading_a_state_without_moments_drops_the_ones_held():
    """A parameter that had no state when the dict was saved starts afresh: the moments of
    steps taken since are not kept."""
    w = Tensor(np.zeros(3), requires_grad=True)
    optimizer = Adam([w])
    fresh = optimizer.state_dict()
    w.grad = np.ones(3)
    optimizer.step()
    optimizer.load_state_dict(fresh)
    assert optimizer.state == {}
    optimizer.step()
    assert optimizer.state_dict()["state"][0]["step"] == 1       # a first step again


def test_sgd_without_momentum_keeps_no_state_as_torch():
    """A buffer of zeros that no update reads would be a second copy of every parameter, in
    memory and in every checkpoint."""
    params = make_params(3)
    twins = torch_twins(params)
    ours, theirs = SGD(params, lr=0.1), torch.optim.SGD(twins, lr=0.1)
    set_gradients(params, 0, twins)
    ours.step()
    theirs.step()
    assert ours.state_dict()["state"] == [{}] * len(params)
    assert theirs.state_dict()["state"] == {}


def test_a_step_saved_as_a_0d_array_resumes_as_a_number(tmp_path):
    """np.savez of a whole state gives Adam's step back as a 0-d array (torch keeps its step
    as a 0-d tensor too): it is a count, not a moment of the parameter's shape."""
    params = make_params(7)
    optimizer = Adam(params)
    set_gradients(params, 0)
    optimizer.step()
    arrays = {f"{i}.{key}": value for i, state in enumerate(optimizer.state_dict()["state"])
              for key, value in state.items()}
    np.savez(tmp_path / "state.npz", **arrays)
    loaded = np.load(tmp_path / "state.npz")
    state = [{key: loaded[f"{i}.{key}"] for key in ("step", "exp_avg", "exp_avg_sq")}
             for i in range(len(params))]
    resumed = Adam(params)
    resumed.load_state_dict({"param_groups": optimizer.state_dict()["param_groups"],
                             "state": state})
    set_gradients(params, 1)
    resumed.step()
    assert [s["step"] for s in resumed.state_dict()["state"]] == [2] * len(params)
    assert all(type(s["step"]) is int for s in resumed.state_dict()["state"])


@pytest.mark.parametrize("given, error", [
    (None, r"expected an optimizer's state dict \(its 'param_groups' and 'state', as "
           r"optimizer\.state_dict\(\) gives\), got NoneType"),
    ("model", r"expected an optimizer's state dict .*, got a mapping without 'param_groups' "
              r"and 'state' \(a model's state dict loads with model\.load_state_dict\)"),
    ("short", r"the saved optimizer's groups hold 2 parameters, its state is of 1"),
    ("long", r"the saved optimizer's groups hold 2 parameters, its state is of 3"),
    # torch's layout failed as "AttributeError: 'int' object has no attribute 'items'"
    ("torch", r"the saved 'state' must be a list of one dict a parameter \(\{\} for one not "
              r"updated yet\), as state_dict\(\) gives it, got a dict; torch's \{number: "
              r"state\} is \[state\.get\(i, \{\}\) for i in range\(number of parameters\)\]"),
    ("None in the list", r"the saved 'state' must be a list .*, got a list holding None")],
    ids=["None", "model", "short", "long", "torch", "None in the list"])
def test_what_is_not_this_optimizers_state_is_refused_saying_what_is_wrong(given, error):
    # A model's state dict failed as KeyError: 'param_groups', None as "not subscriptable";
    # a state list shorter than the parameters loaded, those past its end starting afresh.
    w, b = Tensor(np.zeros((2, 3)), requires_grad=True), Tensor(np.zeros(3), requires_grad=True)
    saved = Adam([w, b])
    w.grad, b.grad = np.ones((2, 3)), np.ones(3)
    saved.step()
    good = saved.state_dict()
    given = {None: None, "model": {"weight": w.data, "bias": b.data},
             "short": {**good, "state": good["state"][:1]},
             "long": {**good, "state": good["state"] + [{}]},
             "torch": {**good, "state": {0: good["state"][0], 1: good["state"][1]}},
             "None in the list": {**good, "state": [good["state"][0], None]}}[given]
    optimizer = Adam([w, b], lr=0.5)
    with pytest.raises((TypeError, ValueError), match=rf"^load_state_dict: {error}$"):
        optimizer.load_state_dict(given)
    assert optimizer.state == {} and optimizer.param_groups[0]["lr"] == 0.5


def test_a_saved_moment_of_another_shape_names_its_parameter():
    # It said "saved 'exp_avg' has shape (99,)", of which of the parameters left unsaid.
    params = make_params(7)
    names = [f"p{i}" for i in range(len(params))]
    for groups in ([{"params": params, "param_names": names}], [{"params": params}]):
        saved = Adam(groups)
        set_gradients(params, 0)
        saved.step()
        state = saved.state_dict()
        state["state"][2]["exp_avg"] = np.zeros(99)
        name = r" \(p2\)" if "param_names" in groups[0] else ""
        with pytest.raises(ValueError, match=rf"^load_state_dict: saved 'exp_avg' of parameter "
                                             rf"2{name} has shape \(99,\), the parameter "):
            Adam(groups).load_state_dict(state)


@pytest.mark.parametrize("saver, loader", [(SGD, Adam), (Adam, SGD)])
def test_another_kind_of_optimizers_state_is_refused_when_loaded(saver, loader):
    # Loaded, SGD's momentum buffers would have failed Adam's first step on its missing moments.
    w = Tensor(np.zeros(3), requires_grad=True)
    saved = saver([w], lr=0.1, momentum=0.9) if saver is SGD else saver([w], lr=0.1)
    w.grad = np.ones(3)
    saved.step()
    optimizer = loader([w], lr=0.5)
    with pytest.raises(ValueError, match="another kind of optimizer"):
        optimizer.load_state_dict(saved.state_dict())
    assert optimizer.state == {} and optimizer.param_groups[0]["lr"] == 0.5


# ---------------------------------------------------------------------------- weight decay groups


def test_weight_decay_groups_decay_matrices_only():
    named = [(name, Tensor(np.ones(shape), requires_grad=True, dtype=np.float64))
             for name, shape in [("embed.weight", (10, 4)), ("fc.weight", (4, 4)),
                                 ("fc.bias", (4,)), ("ln.gain", (4,)), ("scale", ())]]
    groups = weight_decay_groups(named, 0.1)
    assert groups[0]["param_names"] == ["embed.weight", "fc.weight"]
    assert groups[1]["param_names"] == ["fc.bias", "ln.gain", "scale"]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]

    # With zero gradients, AdamW's step is decay alone: matrices shrink, the rest does not move.
    optimizer = AdamW(groups, lr=0.5)
    for _, p in named:
        p.grad = np.zeros(p.shape)
    optimizer.step()
    for name, p in named:
        expected = 1 - 0.5 * 0.1 if p.ndim >= 2 else 1.0
        np.testing.assert_array_equal(p.data, np.full(p.shape, expected), err_msg=name)


def test_an_optimizer_shows_its_groups_options_as_torch_prints_them():
    # What a notebook shows for `optimizer`: torch's layout, each group's options sorted, its
    # parameters counted (not a wall of their names), not `<AdamW object at 0x...>`.
    named = [("fc.weight", Tensor(np.ones((4, 3)), requires_grad=True)),
             ("fc.bias", Tensor(np.ones(3), requires_grad=True))]
    shown = repr(AdamW(weight_decay_groups(named, 0.1), lr=0.05)).splitlines()
    assert shown == ["AdamW (",
                     "Parameter Group 0: 1 tensor, 12 values",
                     "    amsgrad: False", "    betas: (0.9, 0.999)",
                     "    decoupled_weight_decay: True", "    eps: 1e-08",
                     "    lr: 0.05", "    maximize: False", "    weight_decay: 0.1",
                     "Parameter Group 1: 1 tensor, 3 values",
                     "    amsgrad: False", "    betas: (0.9, 0.999)",
                     "    decoupled_weight_decay: True", "    eps: 1e-08",
                     "    lr: 0.05", "    maximize: False", "    weight_decay: 0.0",
                     ")"]


def test_named_groups_resume_by_name_whatever_the_order():
    """A model whose parameters now come in another order (a checkpoint of an earlier version)
    gets each parameter's own moments back: the state follows the names."""
    shapes = {"a.weight": (3, 2), "b.weight": (2, 2), "c.bias": (2,), "d.bias": (2,),
              "e.weight": (2, 2)}

    def optimizer(order):
        named = [(name, Tensor(np.ones(shapes[name]), requires_grad=True)) for name in order]
        return AdamW(weight_decay_groups(named, 0.1)), dict(named)

    saved, params = optimizer(["a.weight", "b.weight", "c.bias", "d.bias"])
    for i, p in enumerate(params.values()):
        p.grad = np.full(p.shape, i + 1.0)
    saved.step()
    state = saved.state_dict()
    resumed, twins = optimizer(["b.weight", "a.weight", "d.bias", "c.bias"])
    resumed.load_state_dict(state)
    for name, p in twins.items():
        np.testing.assert_array_equal(resumed.state[id(p)]["exp_avg"],
                                      saved.state[id(params[name])]["exp_avg"], err_msg=name)
    assert resumed.param_groups[0]["param_names"] == ["b.weight", "a.weight"]   # its own
    unknown, _ = optimizer(["a.weight", "e.weight", "c.bias", "d.bias"])
    with pytest.raises(ValueError, match="no state for parameter 'e.weight'"):
        unknown.load_state_dict(state)


# ---------------------------------------------------------------------------- gradient clipping


@pytest.mark.parametrize("max_norm", [0.5, 1e3, 0.0])   # 0: every gradient zeroed
def test_clip_grad_norm_matches_torch(max_norm):
    params = make_params(8)
    twins = torch_twins(params)
    set_gradients(params, 0, twins)
    extra = Tensor(np.ones(2), requires_grad=True, dtype=np.float64)    # no grad: ignored
    total = clip_grad_norm(params + [extra], max_norm)
    reference = torch.nn.utils.clip_grad_norm_(twins, max_norm)
    assert isinstance(total, float)
    assert total == pytest.approx(reference.item(), rel=1e-12)
    for p, t in zip(params, twins):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)
    assert extra.grad is None


@pytest.mark.parametrize("norm_type", [1, 3.5, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_of_another_norm_type_matches_torch(norm_type, max_norm):
    params = make_params(8)
    twins = torch_twins(params)
    set_gradients(params, 0, twins)
    # The largest gradient in size is a negative one: the inf-norm is its size, not the max.
    params[1].grad.flat[0] = -10 * np.abs(params[1].grad).max()
    twins[1].grad = torch.from_numpy(params[1].grad.copy())
    total = clip_grad_norm(params, max_norm, norm_type=norm_type)
    reference = torch.nn.utils.clip_grad_norm_(twins, max_norm, norm_type=norm_type)
    assert total == pytest.approx(reference.item(), rel=1e-12)
    for p, t in zip(params, twins):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)
    for bad in (0, -1, -math.inf):
        with pytest.raises(ValueError, match=r"^clip_grad_norm: norm_type must be a number > 0 "
                                             r"or inf, got "):
            clip_grad_norm(params, max_norm, norm_type=bad)


def test_clip_grad_norm_of_one_tensor_clips_it_as_torch():
    (p,) = make_params(8)[:1]
    (t,) = torch_twins([p])
    set_gradients([p], 0, [t])
    total = clip_grad_norm(p, 0.5)
    assert total == pytest.approx(torch.nn.utils.clip_grad_norm_(t, 0.5).item(), rel=1e-12)
    np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("bad, max_norm", [(math.nan, 1.0), (math.inf, 1.0),
                                           (math.inf, math.inf)])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
@pytest.mark.parametrize("bad_first", [True, False])
def test_clip_grad_norm_of_a_non_finite_gradient_matches_torch(bad, max_norm, norm_type,
                                                               bad_first):
    # The inf-norm of a NaN gradient after a finite one was finite: Python's max kept the
    # finite norm before it, which compares False to NaN.
    grads = [np.array([1.0, bad]), np.array([3.0, 4.0])][::1 if bad_first else -1]
    params = [Tensor(np.zeros(2), requires_grad=True, dtype=np.float64) for _ in grads]
    twins = torch_twins(params)
    for p, t, g in zip(params, twins, grads):
        p.grad, t.grad = g.copy(), torch.from_numpy(g.copy())
    total = clip_grad_norm(params, max_norm, norm_type=norm_type)
    reference = torch.nn.utils.clip_grad_norm_(twins, max_norm, norm_type=norm_type)
    np.testing.assert_equal(total, reference.item())
    for p, t in zip(params, twins):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())     # NaN where torch's is


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_clip_grad_norm_with_error_if_nonfinite_refuses_as_torch_and_leaves_the_gradients(bad):
    grads = [np.array([1.0, bad]), np.array([3.0, 4.0])]
    params = [Tensor(np.zeros(2), requires_grad=True, dtype=np.float64) for _ in grads]
    twins = torch_twins(params)
    for p, t, g in zip(params, twins, grads):
        p.grad, t.grad = g.copy(), torch.from_numpy(g.copy())
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_(twins, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match=rf"^clip_grad_norm: the gradients' total norm is "
                                           rf"{bad}, so they cannot be clipped; .*detect_anomaly"):
        clip_grad_norm(params, 1.0, error_if_nonfinite=True)
    for p, t, g in zip(params, twins, grads):
        np.testing.assert_array_equal(p.grad, g)
        np.testing.assert_array_equal(t.grad.numpy(), g)


def test_clip_grad_norm_keeps_float32_and_sums_in_float64():
    p = Tensor(np.zeros(1000, dtype=np.float32), requires_grad=True)
    p.grad = np.full(1000, 1e20, dtype=np.float32)     # each square overflows float32
    total = clip_grad_norm([p], 1.0)
    assert total == pytest.approx(1e20 * math.sqrt(1000), rel=1e-6)
    assert p.grad.dtype == np.float32
    assert np.linalg.norm(p.grad.astype(np.float64)) == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_norm_of_a_float16_gradient_sums_its_squares_in_float32():
    # numpy's float16 dot adds one product at a time and rounds to float16: a million
    # gradients of 0.01 measured 99.31 for 100.04 (1e7 of them: 1088 for 1000).
    grad = np.full(10**6, 0.01, dtype=np.float16)
    exact = float(np.sum(grad.astype(np.float64) ** 2))
    assert sum_of_squares(grad) == pytest.approx(exact, rel=1e-6)
    p = Tensor(np.zeros(grad.shape, np.float16), requires_grad=True, dtype=np.float16)
    p.grad = grad.copy()
    assert clip_grad_norm([p], 1.0) == pytest.approx(math.sqrt(exact), rel=1e-6)
    assert p.grad.dtype == np.float16
    np.testing.assert_allclose(p.grad, np.float16(0.01 / math.sqrt(exact)), rtol=1e-3)


def test_clip_grad_norm_of_a_float64_gradient_whose_squares_overflow_is_inf_as_torchs():
    # It was summed again in float64 as a float32 one is, which overflowed again with a
    # RuntimeWarning; torch's norm is inf, silently, and the gradients are scaled to 0.
    p = Tensor(np.zeros(2), requires_grad=True, dtype=np.float64)
    twin = torch_twins([p])[0]
    p.grad, twin.grad = np.full(2, 1e200), torch.full((2,), 1e200, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        total = clip_grad_norm([p], 1.0)
    assert total == torch.nn.utils.clip_grad_norm_([twin], 1.0).item() == math.inf
    np.testing.assert_array_equal(p.grad, twin.grad.numpy())


def test_clip_grad_norm_of_some_gradients_by_the_norm_of_all():
    # Processes that each clip a share of the parameters clip it as one process clips all.
    params, alone = make_params(8), make_params(8)
    for p, q in zip(params, alone):
        p.grad = np.random.default_rng(p.size).normal(size=p.shape) * 3
        q.grad = p.grad.copy()
    whole = clip_grad_norm(alone, 1.0)
    total = math.sqrt(sum(sum_of_squares(p.grad) for p in params))
    assert total == whole > 1
    first, rest = params[:2], params[2:]
    assert clip_grad_norm(first, 1.0, total_norm=total) == whole
    assert clip_grad_norm(rest, 1.0, total_norm=total) == whole
    for p, q in zip(params, alone):
        np.testing.assert_array_equal(p.grad, q.grad)


def test_clip_grad_norm_refuses_torch_norm_type_as_third_positional():
    # torch's third positional is norm_type: clip_grad_norm_(params, 1.0, 2) clips by the
    # L2 norm; taking that 2 for the total norm would scale instead of clipping.
    params = make_params(8)
    for p in params:
        p.grad = np.ones(p.shape)
    before = [p.grad.copy() for p in params]
    with pytest.raises(TypeError, match="positional"):
        clip_grad_norm(params, 1.0, 2)
    for p, g in zip(params, before):
        np.testing.assert_array_equal(p.grad, g)


@pytest.mark.parametrize("max_norm, error, says", [
    (-1.0, ValueError, r"^clip_grad_norm: max_norm must be >= 0, got -1\.0: a negative one "
                       r"would flip the sign of every gradient$"),
    (math.nan, ValueError, r"^clip_grad_norm: max_norm must be >= 0, got nan$"),   # not 'negative'
    ("1.0", TypeError, r"^clip_grad_norm: max_norm must be a number, got '1\.0'$"),
])
def test_clip_grad_norm_refuses_a_max_norm_below_0_that_torchs_takes(max_norm, error, says):
    # torch's clip_grad_norm_(params, -1.0) multiplies every gradient by a negative factor:
    # the optimizer then climbs the loss
    params = make_params(8)
    for p in params:
        p.grad = np.ones(p.shape)
    with pytest.raises(error, match=says):
        clip_grad_norm(params, max_norm)
    for p in params:
        np.testing.assert_array_equal(p.grad, 1.0)


# ---------------------------------------------------------------------------- lr schedules


def nanogpt_lr(step, base_lr, warmup, total, min_lr):
    """nanoGPT's get_lr, copied as it is written there."""
    if step < warmup:
        return base_lr * (step + 1) / (warmup + 1)
    if step > total:
        return min_lr
    decay_ratio = (step - warmup) / (total - warmup)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (base_lr - min_lr)


def one_param_sgd(lr):
    return SGD([Tensor(np.zeros(2), requires_grad=True, dtype=np.float64)], lr=lr)


def test_warmup_cosine_hand_computed_values():
    schedule = WarmupCosine(one_param_sgd(6e-4), warmup_steps=10, total_steps=110,
                            min_lr=6e-5)
    expected = {0: 6e-4 / 11, 9: 6e-4 * 10 / 11, 10: 6e-4, 60: (6e-4 + 6e-5) / 2,
                110: 6e-5, 500: 6e-5}
    for step, lr in expected.items():
        assert schedule.lr_at(step) == [pytest.approx(lr, rel=1e-12)], step
    for step in range(130):
        assert schedule.lr_at(step)[0] == pytest.approx(
            nanogpt_lr(step, 6e-4, 10, 110, 6e-5), rel=1e-12)


def test_warmup_cosine_without_warmup_starts_at_the_base_lr():
    schedule = WarmupCosine(one_param_sgd(0.1), warmup_steps=0, total_steps=10)
    assert schedule.lr_at(0) == [0.1]
    assert schedule.lr_at(10) == [0.0]
    with pytest.raises(ValueError):
        WarmupCosine(one_param_sgd(0.1), warmup_steps=11, total_steps=10)


@pytest.mark.parametrize("steps", [0, 3])
def test_warmup_cosine_with_warmup_as_long_as_the_run_ends_at_min_lr(steps):
    # warmup = total: every step warms up, and the step after the last takes min_lr (the
    # cosine's part, with progress 0/0, is never reached).
    schedule = WarmupCosine(one_param_sgd(0.1), warmup_steps=steps, total_steps=steps,
                            min_lr=0.01)
    assert [schedule.lr_at(step)[0] for step in range(steps)] == [
        pytest.approx(0.1 * (step + 1) / (steps + 1), rel=1e-12) for step in range(steps)]
    assert schedule.lr_at(steps) == schedule.lr_at(steps + 1) == [0.01]


def test_warmup_cosine_scales_each_group_like_torch_lambda_lr():
    """With min_lr = 0 the schedule is base_lr times a multiplier, which LambdaLR can drive.
    Stepping both also checks the step counting: the lr at construction is step 0's."""
    def groups(ps):
        return [{"params": ps[:1], "lr": 0.1}, {"params": ps[1:], "lr": 0.02}]

    params = make_params(9)
    optimizer = SGD(groups(params), lr=0.1)
    schedule = WarmupCosine(optimizer, warmup_steps=5, total_steps=20)
    reference = torch.optim.SGD(groups(torch_twins(params)), lr=0.1)
    torch_schedule = torch.optim.lr_scheduler.LambdaLR(
        reference, lambda step: nanogpt_lr(step, 1.0, 5, 20, 0.0))
    for step in range(25):
        assert schedule.get_last_lr() == pytest.approx(torch_schedule.get_last_lr(), rel=1e-12)
        assert schedule.get_last_lr() == schedule.lr_at(step)
        optimizer.step()
        reference.step()
        schedule.step()
        torch_schedule.step()



@pytest.mark.parametrize("make", [
    lambda optimizer: WarmupCosine(optimizer, warmup_steps=5, total_steps=20, min_lr=1e-3),
    lambda optimizer: Noam(optimizer, d_model=16, warmup_steps=7, factor=3.0),
    lambda optimizer: WarmupCosine(optimizer, warmup_steps=0, total_steps=20)])
def test_peak_lrs_are_the_highest_lr_each_group_reaches(make):
    # What a diverging run's advice names: each group's own, after a few steps taken too.
    optimizer = SGD([{"params": make_params(2)[:1], "lr": 0.1},
                     {"params": make_params(2)[1:], "lr": 0.02}], lr=0.1)
    schedule = make(optimizer)
    for _ in range(3):
        schedule.step()
    highest = np.max([schedule.lr_at(step) for step in range(30)], axis=0)
    assert schedule.peak_lrs() == pytest.approx(list(highest), rel=1e-12)

def test_the_first_update_uses_the_lr_of_step_0():
    p = Tensor(np.zeros(1), requires_grad=True, dtype=np.float64)
    optimizer = SGD([p], lr=1.0)
    WarmupCosine(optimizer, warmup_steps=3, total_steps=10)
    p.grad = np.ones(1)
    optimizer.step()
    assert p.data[0] == -1.0 / 4


def noam_paper(n, d_model, warmup, factor):
    return factor * d_model ** -0.5 * min(n ** -0.5, n * warmup ** -1.5)


def test_noam_peaks_at_warmup():
    schedule = Noam(one_param_sgd(123.0), d_model=512, warmup_steps=4000, factor=2.0)
    lrs = [schedule.lr_at(step)[0] for step in range(20000)]
    assert int(np.argmax(lrs)) == 4000 - 1                  # update number n = 4000
    assert max(lrs) == pytest.approx(2.0 / math.sqrt(512 * 4000), rel=1e-12)
    assert lrs[0] == pytest.approx(2.0 * 512 ** -0.5 * 4000 ** -1.5, rel=1e-12)
    assert lrs[15999] == pytest.approx(2.0 * 512 ** -0.5 * 16000 ** -0.5, rel=1e-12)
    assert schedule.get_last_lr() == [lrs[0]]               # the optimizer's 123 is replaced


def test_schedules_refuse_warmups_they_cannot_compute():
    with pytest.raises(ValueError, match=r"^Noam needs warmup_steps >= 1, got 0$"):
        Noam(one_param_sgd(1.0), d_model=64, warmup_steps=0)        # 0 ** -1.5 at step 0
    with pytest.raises(ValueError, match=r"^WarmupCosine needs 0 <= warmup_steps <= "
                                         r"total_steps, got warmup_steps=5, total_steps=4$"):
        WarmupCosine(one_param_sgd(1.0), warmup_steps=5, total_steps=4)


def test_schedules_refuse_what_would_make_an_lr_the_optimizers_refuse():
    # Each wrote lrs the optimizers refuse: negative ones (gradient ascent), complex ones, or
    # failed with a ZeroDivisionError.
    for make, message in [
            (lambda o: WarmupCosine(o, 2, 10, min_lr=-1e-4), "min_lr >= 0, got -0.0001"),
            (lambda o: WarmupCosine(o, 2, 10, min_lr=math.nan), "min_lr >= 0, got nan"),
            (lambda o: Noam(o, d_model=-64, warmup_steps=4), "d_model >= 1, got -64"),
            (lambda o: Noam(o, d_model=0, warmup_steps=4), "d_model >= 1, got 0"),
            (lambda o: Noam(o, 64, warmup_steps=4, factor=-1.0), "factor >= 0, got -1.0")]:
        with pytest.raises(ValueError, match=f"^(WarmupCosine|Noam) needs {re.escape(message)}$"):
            make(one_param_sgd(1.0))


@pytest.mark.parametrize("make, says", [
    (lambda o: WarmupCosine(o, "100", 1000), "WarmupCosine: warmup_steps must be a number, "
                                             "got '100'"),
    (lambda o: WarmupCosine(o, 10, None), "WarmupCosine: total_steps must be a number, got None"),
    (lambda o: WarmupCosine(o, 10, 100, min_lr="0"), "WarmupCosine: min_lr must be a number"),
    (lambda o: Noam(o, "512", 4000), "Noam: d_model must be a number, got '512'"),
    (lambda o: Noam(o, 512, None), "Noam: warmup_steps must be a number, got None")])
def test_schedules_refuse_what_is_no_number_naming_it(make, says):
    # They failed in a comparison, "'<=' not supported between instances of 'int' and 'str'".
    with pytest.raises(TypeError, match=f"^{re.escape(says)}"):
        make(one_param_sgd(1.0))


def test_a_schedule_refuses_what_is_not_its_state_saying_what_it_wants():
    # They failed as KeyError: 'base_lrs' (another schedule's state) or "'NoneType' object is
    # not subscriptable", leaving the schedule as it was only by luck.
    warmup, noam = WarmupCosine(one_param_sgd(1.0), 2, 10), Noam(one_param_sgd(1.0), 64, 4)
    for schedule, given, got in [(warmup, noam.state_dict(), "one without ['base_lrs']"),
                                 (warmup, None, "None"),
                                 (noam, {}, "one without ['steps_taken']")]:
        with pytest.raises(TypeError, match=rf"^{type(schedule).__name__}\.load_state_dict: "
                                            rf"expected a state dict with \[.*\], as this "
                                            rf"schedule's state_dict\(\) gives, got "
                                            rf"{re.escape(got)}$"):
            schedule.load_state_dict(given)
    assert warmup.state_dict() == {"steps_taken": 0, "base_lrs": [1.0]}


@pytest.mark.parametrize("steps", [-3, 2.7, "5", True, None])
def test_a_schedule_refuses_a_steps_taken_that_is_no_count_and_loads_nothing(steps):
    # int() took them all but None: at -3 a warmup's lr was negative, and the base lrs were
    # already replaced when a later check failed.
    schedule = WarmupCosine(one_param_sgd(1.0), 2, 10)
    with pytest.raises(ValueError, match=rf"^WarmupCosine\.load_state_dict: steps_taken must "
                                         rf"be a whole number >= 0, as state_dict\(\) saves "
                                         rf"it, got {re.escape(repr(steps))}$"):
        schedule.load_state_dict({"steps_taken": steps, "base_lrs": [0.5]})
    assert schedule.state_dict() == {"steps_taken": 0, "base_lrs": [1.0]}
    schedule.load_state_dict({"steps_taken": np.int64(3), "base_lrs": [0.5]})    # numpy's too
    assert schedule.state_dict() == {"steps_taken": 3, "base_lrs": [0.5]}


def test_a_cosine_schedule_refuses_the_state_of_one_over_other_groups():
    # A one-group schedule's state loaded into a two-group one: the second group kept the lr
    # it had (step 0's), and every later step left it there.
    optimizer = SGD([{"params": make_params(2)[:1]}, {"params": make_params(2)[1:], "lr": 0.5}],
                    lr=0.1)
    schedule = WarmupCosine(optimizer, warmup_steps=2, total_steps=10)
    saved = WarmupCosine(one_param_sgd(0.1), warmup_steps=2, total_steps=10)
    saved.step()
    with pytest.raises(ValueError, match=r"^WarmupCosine\.load_state_dict: the saved schedule "
                                         r"has 1 base lrs, one for each group of its "
                                         r"optimizer, and this optimizer has 2 groups; load "
                                         r"the state of a schedule over the same groups$"):
        schedule.load_state_dict(saved.state_dict())
    assert schedule.state_dict() == {"steps_taken": 0, "base_lrs": [0.1, 0.5]}   # as it was
    # And the other way: a two-group schedule's state has a peak for a group this one lacks.
    with pytest.raises(ValueError, match=r"has 2 base lrs, .* this optimizer has 1 groups"):
        saved.load_state_dict(schedule.state_dict())
    assert saved.state_dict() == {"steps_taken": 1, "base_lrs": [0.1]}


def test_noam_matches_torch_lambda_lr_and_resumes():
    optimizer = one_param_sgd(1.0)
    schedule = Noam(optimizer, d_model=64, warmup_steps=10, factor=0.5)
    reference = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=1.0)
    torch_schedule = torch.optim.lr_scheduler.LambdaLR(
        reference, lambda step: noam_paper(step + 1, 64, 10, 0.5))
    for step in range(30):
        assert schedule.get_last_lr() == pytest.approx(torch_schedule.get_last_lr(), rel=1e-12)
        if step == 17:
            saved = json.loads(json.dumps(schedule.state_dict()))
        reference.step()                 # no gradients: only keeps torch's order check quiet
        schedule.step()
        torch_schedule.step()

    resumed = Noam(one_param_sgd(1.0), d_model=64, warmup_steps=10, factor=0.5)
    resumed.load_state_dict(saved)
    assert resumed.get_last_lr() == [noam_paper(18, 64, 10, 0.5)]
