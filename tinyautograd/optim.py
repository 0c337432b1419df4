"""Optimizers and learning-rate schedules: what to do with the gradients once backward has them.

One training step reads

    loss.backward()                  # every parameter's .grad = d(loss)/d(parameter)
    clip_grad_norm(params, 1.0)      # optional: tame the rare huge gradient
    optimizer.step()                 # move every parameter against its gradient
    schedule.step()                  # set the learning rate of the next optimizer step
    optimizer.zero_grad()            # backward accumulates, so clear before the next one

An update is not something to differentiate, so optimizers work on the numpy arrays directly:
they read `p.grad` and change `p.data` in place, outside the graph. Every update is written in
place (`*=`, `-=`), which also keeps each parameter and its state in the parameter's dtype; the
scalars in the formulas are Python floats, which numpy 2 never lets promote a float32 array
(a numpy float64 scalar would). Every formula is PyTorch's, so a run here and the same run with
torch.optim give the same numbers; tests/test_optim.py checks it step by step. A float16
parameter's update is computed in float32 and rounded to float16 once, as torch's fused
optimizers compute it (`fused=True`): in float16, Adam's eps = 1e-8 is 0, and a zero gradient
would divide zero by zero.

State dicts (of optimizers and of schedules) hold only numpy arrays, Python ints, floats and
strings, and lists and dicts of those: a checkpoint can keep the arrays in an `.npz` file and the
rest in JSON, without pickle.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Iterable, Union

import numpy as np

from . import engine, kernels, ops
from .engine import Tensor, _zero_grads, enable_grad

# A list of Tensors, or of groups: dicts holding "params" (a list of Tensors) and options.
Params = Union[Iterable[Tensor], Iterable[dict]]

# ---------------------------------------------------------------------------- the base class


class Optimizer:
    """Parameter groups, the loop over parameters, zero_grad and the state dict.

    `params` is an iterable of Tensors, or of dicts `{'params': [...], 'lr': ..., ...}` (param
    groups) whose missing options come from the optimizer's defaults. Groups let parts of a
    model train differently, such as no weight decay on biases (see `weight_decay_groups`). Each
    group keeps its own 'lr', which schedules rewrite as training goes. Where the Tensors come
    as (name, Tensor) pairs (`model.named_parameters()`, as torch takes them), each group keeps
    the names under 'param_names'. A set is refused: its order changes from run to run.
    `optimizer.state[p]` is parameter p's state (Adam's 'exp_avg', ...), as in torch; the dict
    holds it under id(p), which finds it too; a deepcopy or pickle of the optimizer (with its
    model) holds each state under the copied parameter's id.

    A subclass writes `update(param, grad, state, group)`: the rule for one parameter, given its
    gradient, its own state and its group's options; and, if it keeps state, `initial_state(param,
    group)`: that state before the parameter's first update (zeroed moments, say). A float16
    parameter comes to `update` as a float32 copy, its state too, and the results are rounded
    back into its float16 arrays: every rule computes in float32, as torch's fused optimizers.
    """

    # Options a subclass gained after states were saved without them, with the values those
    # states were computed with: such a state loads with them (torch's __setstate__ fills
    # them in the same way), rather than being refused as another kind of optimizer's.
    options_added_later: dict = {}

    def __init__(self, params: Params, defaults: dict) -> None:
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors; wrap a single one in a list")
        if isinstance(params, (set, frozenset)):
            raise _set_refused()
        groups = list(params)
        if not groups:
            raise ValueError("the optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.defaults = defaults
        self.param_groups = []
        # Each parameter's state (momentum, moment estimates), keyed by id(param), and found by
        # the parameter too (see _States). The groups hold the parameters alive, so no other
        # object can take over one of these ids.
        self.state = _States()
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a group `{'params': [...], option: value, ...}`; missing options take defaults."""
        group = {**self.defaults, **group}
        group.update({key: _plain(value) for key, value in group.items()
                      if key not in ("params", "param_names")})
        _check_options(type(self).__name__, group)
        params = group["params"]
        if isinstance(params, (set, frozenset)):
            raise _set_refused()
        # One Tensor stands for itself, as in torch: list() of it would be its rows, copies that
        # no backward ever gives a gradient, so nothing would train.
        params = [params] if isinstance(params, Tensor) else list(params)
        # (name, Tensor) pairs, as module.named_parameters() yields them, are taken as torch
        # takes them: the names are kept under 'param_names', as weight_decay_groups keeps them.
        named = [isinstance(p, tuple) and len(p) == 2 and isinstance(p[1], Tensor)
                 for p in params]
        if any(named):
            if not all(named):
                raise ValueError("the optimizer's parameters must all be named, (name, Tensor) "
                                 "pairs as model.named_parameters() gives them, or all be "
                                 "Tensors alone; give them one way")
            group["param_names"] = [name for name, _ in params]
            params = [p for _, p in params]
        group["params"] = params
        if "param_names" in group and len(group["param_names"]) != len(params):
            raise ValueError(f"a group names {len(group['param_names'])} parameters under "
                             f"'param_names' and holds {len(params)}; give one name for each")
        if self.param_groups and \
                ("param_names" in group) != ("param_names" in self.param_groups[0]):
            # A saved state goes to the parameters by name only where every group names them.
            raise ValueError("the optimizer's groups must all name their parameters "
                             "(model.named_parameters()) or none of them; give them one way")
        seen = {id(p) for p in self._all_params()}
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"the optimizer can only update Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                # backward leaves no .grad on a computed tensor, so it would never move (torch
                # refuses it too). The usual cause: w = Tensor(..., requires_grad=True) * 0.02.
                raise ValueError(f"the optimizer can only update leaf Tensors, not one computed "
                                 f"by {p.grad_fn.name}; scale the array before making the "
                                 f"Tensor, or use Tensor(t.data, requires_grad=True)")
            if id(p) in seen:
                raise ValueError("a parameter appears twice in the optimizer, so each step "
                                 "would update it twice")
            seen.add(id(p))
        self.param_groups.append(group)

    def _all_params(self):
        return [p for group in self.param_groups for p in group["params"]]

    # The state is keyed by id(param), which a copy or a pickle does not keep: the copy's
    # parameters are new objects, and its state stayed under the originals' ids, found by none
    # of them, so every moment silently started again from zero. Each state travels with its
    # parameter's position instead, as state_dict() numbers them, and is keyed by the new
    # parameters' ids on arrival.
    def __getstate__(self) -> dict:
        state = dict(vars(self))
        state["state"] = [self.state.get(p) for p in self._all_params()]
        return state

    def __setstate__(self, state: dict) -> None:
        states = state.pop("state")
        vars(self).update(state)
        self.state = _States({id(p): kept for p, kept in zip(self._all_params(), states)
                              if kept is not None})

    def __repr__(self) -> str:
        """Each group's options, as torch prints an optimizer; its parameters counted rather
        than listed (weight_decay_groups' names alone would fill a screen)."""
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            params = group["params"]
            tensors = f"{len(params)} tensor" + ("s" if len(params) != 1 else "")
            lines.append(f"Parameter Group {i}: {tensors}, "
                         f"{sum(p.size for p in params):,} values")
            options = {**group, **self._shown_settings()}
            lines += [f"    {key}: {options[key]}" for key in sorted(options)
                      if key not in ("params", "param_names")]
        return "\n".join(lines + [")"])

    def _shown_settings(self) -> dict:
        """Settings of the optimizer itself, not of a group, that its repr shows among each
        group's options, where torch prints them (Adam's decoupled_weight_decay)."""
        return {}

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Update every parameter that has a gradient (those whose .grad is None are left be:
        frozen, or unused by this loss).

        `closure`, as torch's: a function that clears the gradients, computes the loss, calls
        its backward and returns it. It is called first, with the graph recorded even inside
        `no_grad()`, and `step` returns its loss (None without a closure)."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        # A Tensor uses the array it is given as it is, so a parameter may hold a read-only
        # one (np.frombuffer's, np.load's with mmap_mode="r"): checked before any update, as
        # numpy's refusal would come part way through the parameters, some of them updated.
        for p in self._all_params():
            if p.grad is not None and not p.data.flags.writeable:
                raise ValueError(f"the optimizer cannot update a parameter of shape {p.shape}: "
                                 f"its array is read-only (a Tensor keeps the array it is made "
                                 f"from, such as np.frombuffer's); make the Tensor from a "
                                 f"copy, Tensor(array.copy(), requires_grad=True)")
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    state = self.state.get(id(p))             # one look-up a parameter
                    if state is None:
                        state = self.state[id(p)] = self.initial_state(p, group)
                    if ops.compute_dtype(p.dtype) != p.dtype:     # float16: in float32
                        _update_in_float32(self, p, state, group)
                    else:
                        self.update(p, p.grad, state, group)
                    p._changed_in_place()      # a graph that saved p would now be wrong
        return loss

    def initial_state(self, param: Tensor, group: dict) -> dict:
        """The state of `param` (in its `group`) before its first update: none, unless the
        rule keeps some (Adam's zeroed moments)."""
        return {}

    def update(self, param: Tensor, grad: np.ndarray, state: dict, group: dict) -> None:
        """The rule, written by each optimizer: change `param.data` in place, given its
        gradient `grad` (a numpy array), its own `state` (a dict, `initial_state`'s at first,
        kept between steps) and its `group`'s options ('lr', ...). `step` calls it for every
        parameter that has a gradient."""
        raise NotImplementedError

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients, so that the next backward starts from nothing (to None; with
        set_to_none=False, to zeros, as torch's)."""
        _zero_grads(self._all_params(), set_to_none)

    def state_dict(self) -> dict:
        """Everything needed to resume: the groups' options and each parameter's state.

        Parameters are numbered 0, 1, 2... in the order the groups list them (as torch does):

            {"param_groups": [{"lr": 0.001, "betas": [0.9, 0.999], ..., "params": [0, 1]},
                              {"lr": 0.001, ..., "params": [2]}],
             "state": [{"step": 10, "exp_avg": <array>, "exp_avg_sq": <array>},  # parameter 0
                       {...},                                                     # parameter 1
                       {}]}                 # parameter 2 has not been updated yet

        The arrays are copies, so later steps do not change a saved state. Tuples become lists,
        as JSON would make them.
        """
        groups, first = [], 0
        for group in self.param_groups:
            # Python's numbers, also where an lr was set to numpy's after the group was made:
            # json.dumps refuses a numpy float.
            saved = {key: list(_plain(value)) if isinstance(value, (tuple, list))
                     else _plain(value) for key, value in group.items() if key != "params"}
            saved["params"] = list(range(first, first + len(group["params"])))
            first += len(group["params"])
            groups.append(saved)
        state = [{key: value.copy() if isinstance(value, np.ndarray) else value
                  for key, value in self.state.get(id(p), {}).items()}
                 for p in self._all_params()]
        return {"param_groups": groups, "state": state}

    def load_state_dict(self, state_dict: dict) -> None:
        """Continue from `state_dict()` of an optimizer over parameters of the same shapes, in
        the same groups. The groups' options (lr included) are replaced by the saved ones,
        switches too (amsgrad, maximize, nesterov...), as torch's: a run goes on by the rule it
        was saved with. Saved options the constructor would refuse (a negative lr) are refused.

        The state goes to the parameters by their number, or by their name where both the
        saved groups and these carry 'param_names' (as weight_decay_groups makes them): then
        parameters may come in another order than when the state was saved."""
        # A model's state dict (the likely mix-up), or None, failed as a KeyError 'param_groups'
        # or a TypeError about subscripting, neither saying what was wanted.
        if not (isinstance(state_dict, Mapping) and {"param_groups", "state"} <= set(state_dict)):
            got = ("a mapping without 'param_groups' and 'state' (a model's state dict loads "
                   "with model.load_state_dict)" if isinstance(state_dict, Mapping)
                   else type(state_dict).__name__)
            raise TypeError(f"load_state_dict: expected an optimizer's state dict (its "
                            f"'param_groups' and 'state', as optimizer.state_dict() gives), got "
                            f"{got}")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        # torch's layout, {number: state} for the parameters updated so far, failed as an
        # AttributeError on a number, part way through the checks.
        if not (isinstance(saved_state, (list, tuple))
                and all(isinstance(saved, Mapping) for saved in saved_state)):
            got = (f"a {type(saved_state).__name__}" if not isinstance(saved_state, (list, tuple))
                   else "a list holding " + next(engine._brief(saved) for saved in saved_state
                                                 if not isinstance(saved, Mapping)))
            hint = ("; torch's {number: state} is [state.get(i, {}) for i in range(number of "
                    "parameters)]" if isinstance(saved_state, Mapping) else "")
            raise TypeError(f"load_state_dict: the saved 'state' must be a list of one dict a "
                            f"parameter ({{}} for one not updated yet), as state_dict() gives "
                            f"it, got {got}{hint}")
        saved_sizes = [len(group["params"]) for group in saved_groups]
        sizes = [len(group["params"]) for group in self.param_groups]
        if saved_sizes != sizes:
            raise ValueError(f"load_state_dict: the saved optimizer has groups of {saved_sizes} "
                             f"parameters, this one {sizes}")
        # One state a parameter ({} for one not updated yet): zip would drop the parameters
        # past a shorter list, which would start afresh, and the states past a longer one.
        if len(saved_state) != sum(saved_sizes):
            raise ValueError(f"load_state_dict: the saved optimizer's groups hold "
                             f"{sum(saved_sizes)} parameters, its state is of {len(saved_state)}")
        # Another kind of optimizer's state (SGD's into Adam) lacks this one's options: loaded,
        # its first step would fail on a moment it never kept.
        saved_groups = [{**self.options_added_later, **saved} for saved in saved_groups]
        for saved in saved_groups:
            lacking = [key for key in self.defaults if key not in saved]
            if lacking:
                raise ValueError(f"load_state_dict: the saved groups have no {lacking[0]!r}, "
                                 f"an option of {type(self).__name__}: the state was saved by "
                                 f"another kind of optimizer")
        # The checks the constructor makes of every group: a negative lr would train the wrong
        # way silently, one beta (a state edited by hand) fail at the first step, unclearly.
        for i, saved in enumerate(saved_groups):
            try:
                _check_options(type(self).__name__, saved)
            except (TypeError, ValueError) as e:
                raise type(e)(f"load_state_dict: the saved group {i} is refused: {e}") from None
        saved_names = [name for group in saved_groups for name in group.get("param_names", [])]
        names = [name for group in self.param_groups for name in group.get("param_names", [])]
        if saved_names and names:
            if sorted(saved_names) != sorted(names):
                missing = sorted(set(names) - set(saved_names)) or sorted(saved_names)
                raise ValueError(f"load_state_dict: the saved optimizer has no state for "
                                 f"parameter {missing[0]!r}")
            by_name = dict(zip(saved_names, saved_state))
            saved_state = [by_name[name] for name in names]
        # Every check before any change: a refused state leaves this optimizer as it was.
        states = {}
        groups = [group for group in self.param_groups for _ in group["params"]]
        for i, (p, group, saved) in enumerate(zip(self._all_params(), groups, saved_state)):
            # A count (Adam's step) saved to an .npz comes back as a 0-d array, as torch keeps
            # its step: it is a number again where this optimizer's own state holds a number.
            counts = [key for key, value in saved.items()
                      if isinstance(value, (np.ndarray, np.generic)) and np.ndim(value) == 0]
            if counts:        # (initial_state says which; asked only here: it makes arrays)
                counts = [key for key, value in self.initial_state(p, group).items()
                          if key in counts and not isinstance(value, np.ndarray)]
            state = {}
            for key, value in saved.items():
                if key in counts:
                    value = value.item()
                if isinstance(value, np.ndarray):
                    if value.shape != p.shape:
                        # Which parameter: its number in the groups, and its name where
                        # every group carries its names.
                        named = len(names) == len(groups)
                        which = f"parameter {i}" + (f" ({names[i]})" if named else "")
                        raise ValueError(f"load_state_dict: saved '{key}' of {which} has shape "
                                         f"{value.shape}, the parameter {p.shape}")
                    value = np.array(value, dtype=p.dtype)    # our own copy, updated in place
                state[key] = value
            if state:
                states[id(p)] = state
        for group, saved in zip(self.param_groups, saved_groups):
            for key, value in saved.items():
                if key not in ("params", "param_names"):    # names are this optimizer's own
                    value = _plain(value)
                    group[key] = tuple(value) if isinstance(group.get(key), tuple) else value
        self.state = _States(states)


class _States(dict):
    """Optimizer.state: {id(param): that parameter's state}, as the optimizers read it. A
    parameter given as the key finds its own state too, as torch's `optimizer.state[p]`: a
    PyTorch user's `state[p]["exp_avg"]` was a KeyError, and `p in state` False, silently."""

    def __getitem__(self, key: object) -> dict:
        return super().__getitem__(_state_key(key))

    def __setitem__(self, key: object, value: dict) -> None:
        super().__setitem__(_state_key(key), value)

    def __delitem__(self, key: object) -> None:
        super().__delitem__(_state_key(key))

    def __contains__(self, key: object) -> bool:
        return super().__contains__(_state_key(key))

    def get(self, key: object, default: object = None) -> object:
        return super().get(_state_key(key), default)

    def setdefault(self, key: object, default: object = None) -> object:
        return super().setdefault(_state_key(key), default)

    def pop(self, key: object, *default: object) -> object:
        return super().pop(_state_key(key), *default)

    def update(self, *states: Any, **named: Any) -> None:
        # dict's own update bypasses __setitem__: a parameter (hashable by identity) would be
        # kept as a key of its own, which no step reads.
        for key, value in dict(*states, **named).items():
            self[key] = value


def _state_key(key):
    return id(key) if isinstance(key, Tensor) else key


def _update_in_float32(optimizer, param, state, group):
    """`optimizer.update` of a float16 parameter, computed in float32 (its `ops.compute_dtype`)
    and rounded to float16 once, as torch's fused optimizers (`fused=True`) compute it; the
    parameter and its state stay float16 arrays, updated in place.

    In float16 itself the update goes wrong: Adam's eps of 1e-8 rounds to 0, and so does
    (1 - beta2) g^2 for any |g| below about 0.008, so a coordinate whose gradient is zero or
    small divides by zero and becomes NaN or inf (torch's default, unfused Adam does that
    too); a learning rate or a decay factor such as 1 - 1e-5 would be rounded to float16's
    few digits (to 1: no decay at all) before it multiplies."""
    wide = Tensor._make(ops.widened(param.data))
    wide_state = {key: ops.widened(value) if isinstance(value, np.ndarray) else value
                  for key, value in state.items()}
    optimizer.update(wide, ops.widened(param.grad), wide_state, group)
    param.data[...] = wide.data
    for key, value in wide_state.items():
        if isinstance(value, np.ndarray):
            if isinstance(state.get(key), np.ndarray):
                state[key][...] = value
            else:                                       # made by this update (a first buffer)
                state[key] = value.astype(param.dtype)
        else:
            state[key] = value                          # a count: Adam's step


def _plain(value):
    """An option as Python's own value: a numpy number (or 0-d array) as a Python number, in
    a tuple or list too, and a 1-D array (betas, say) as a tuple of them. The formulas then
    compute with Python floats, which never widen a float32 array (numpy's float64 would), and
    a state dict goes to JSON, which refuses numpy's."""
    if isinstance(value, (np.ndarray, np.generic)) and np.ndim(value) == 0:
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return tuple(_plain(item) for item in value)
    if isinstance(value, (tuple, list)):
        return type(value)(_plain(item) for item in value)
    return value


def _set_refused():
    """The error for parameters given in a set, as torch refuses them. A set's order follows
    the tensors' ids, so it changes from run to run, and a saved state numbers the parameters
    by their order: loaded in another run, the moments would go to other parameters of the same
    shape, silently."""
    return TypeError("the optimizer's parameters must come in a fixed order, not in a set, "
                     "whose order changes from run to run; pass a list, such as "
                     "list(model.parameters())")


def _refuse_unoffered(optimizer, foreach, fused, differentiable, capturable=False):
    """torch's implementation switches, accepted where they change nothing here: None or False.
    Asked for, they are refused rather than ignored: every update here is one loop over the
    parameters, on numpy arrays outside the graph (float16 ones already update in float32, as
    torch's fused optimizers; `capturable`, Adam's, keeps torch's state on a GPU for CUDA
    graphs)."""
    for name, value in (("foreach", foreach), ("fused", fused),
                        ("differentiable", differentiable), ("capturable", capturable)):
        if value:
            raise ValueError(f"{optimizer}: {name}=True is not offered (the update is a loop "
                             f"over the parameters, outside the graph); leave {name} out")


def _check_options(optimizer, group):
    """Refuse the options torch refuses: a negative lr, momentum, weight decay or eps (NaN
    too), a beta outside [0, 1). A typo there would train silently in the wrong direction.
    An option that is no number at all ("1e-3", None, a Tensor) or a switch that is not True
    or False (nesterov="False", which is true) is refused here, in one line, rather than by
    a comparison's TypeError here or numpy's in the middle of a step."""
    for option in ("lr", "momentum", "dampening", "weight_decay", "eps"):
        if option in group:
            _check_number(optimizer, option, group[option])
    for option in ("lr", "momentum", "weight_decay", "eps"):
        if option in group and not group[option] >= 0:
            raise ValueError(f"{optimizer}: {option} must be >= 0, got {group[option]}")
    betas = group.get("betas", (0.0, 0.0))
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        # One beta, (0.9,), was taken, and the first step failed to unpack it.
        raise ValueError(f"{optimizer}: betas must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        _check_number(optimizer, f"betas[{i}]", beta)
        if not 0 <= beta < 1:
            raise ValueError(f"{optimizer}: betas[{i}] must be in [0, 1), got {beta}")
    for switch in ("nesterov", "maximize", "amsgrad"):
        if switch in group:
            engine._check_flag(group[switch], f"{optimizer}: {switch}")


def _check_number(optimizer, option, value):
    """TypeError unless `value` is a real number (a numpy one, or a 0-d array of one, too;
    True is not the number 1 here). A Tensor is refused with what to pass: a step computes
    on numpy arrays, where a Tensor is no operand."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]                                  # its number, numpy's scalar
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return
    hint = f": pass a number, {option}=float(t)" if isinstance(value, Tensor) else ""
    raise TypeError(f"{optimizer}: {option} must be a number, got {engine._brief(value)}{hint}")


# ---------------------------------------------------------------------------- the optimizers


class SGD(Optimizer):
    """Stochastic gradient descent, with momentum and L2 weight decay as torch.optim.SGD:

        g   = grad                                    (-grad with maximize=True)
        g   = g + weight_decay * p
        buf = momentum * buf + (1 - dampening) * g    (buf = g on the first step)
        g   = g + momentum * buf                      (nesterov=True; else g = buf)
        p   = p - lr * g                              (p - lr * grad without momentum)

    The buffer is a decaying sum of past gradients: directions that agree from step to step
    build up speed, directions that flip sign cancel out. `dampening` lets each new gradient
    count for less in it; `nesterov=True` (Sutskever et al., 2013) steps by the gradient plus
    the buffer's next push, looking one step ahead, and needs momentum > 0 and dampening = 0.
    `maximize=True` (torch's option) climbs the objective instead of descending it: a reward,
    a log-likelihood. `dampening`, `nesterov` and `maximize` are keyword-only: torch's SGD
    takes dampening third, where this one takes weight_decay. torch's `foreach`, `fused` and
    `differentiable` are taken as None or False only.

    `params`: the Tensors to train (`model.parameters()`), or param groups (see Optimizer).
    `lr` defaults to torch's 1e-3 (since torch 2.2; before, it had none): SGD's good rates
    vary too much for any one to serve, so pass yours.
    """

    # Options a state saved before they existed lacks; it loads with these values.
    options_added_later = {"dampening": 0.0, "nesterov": False, "maximize": False}

    def __init__(self, params: Params, lr: float = 1e-3, momentum: float = 0.0,
                 weight_decay: float = 0.0, *, dampening: float = 0.0,
                 nesterov: bool = False, maximize: bool = False, foreach: bool | None = None,
                 differentiable: bool = False, fused: bool | None = None) -> None:
        _refuse_unoffered("SGD", foreach, fused, differentiable)
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      dampening=dampening, nesterov=nesterov,
                                      maximize=maximize))
        # torch's check, of the defaults only: a group may still turn momentum off.
        if nesterov and not (momentum > 0 and dampening == 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={momentum}, dampening={dampening}")

    def initial_state(self, param: Tensor, group: dict) -> dict:
        # A zero buffer makes the first step's buf = g, as torch's copy of g does, bit for bit,
        # and exists before any update (tinyformer's parallel steps share every state array
        # made here). Dampening would scale that first g: the first update copies g instead.
        if group["momentum"] and not group["dampening"]:
            return {"momentum_buffer": np.zeros_like(param.data)}
        return {}

    def update(self, param: Tensor, grad: np.ndarray, state: dict, group: dict) -> None:
        momentum = group["momentum"]
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * param.data
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:    # first step with dampening, or momentum given after steps without
                buf = state["momentum_buffer"] = np.array(grad, dtype=param.dtype)
            else:
                buf *= momentum
                buf += grad if group["dampening"] == 0 else (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        param.data -= group["lr"] * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), as torch.optim.Adam. At step t = 1, 2, ...:

        g = grad                                     (-grad with maximize=True)
        g = g + weight_decay * p                     (Adam: L2 decay, through the gradient)
        p = p * (1 - lr * weight_decay)              (AdamW: decoupled decay, instead)
        m = beta1 * m + (1 - beta1) * g              running mean of the gradient
        v = beta2 * v + (1 - beta2) * g^2            running mean of its square
        v = v_max = max(v_max, v)                    (amsgrad=True: the largest v so far)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    m and v start at zero, so early on they are too small; dividing by 1 - beta^t (the bias
    correction) undoes that. Each coordinate moves by about lr * m / sqrt(v): the step size no
    longer depends on the gradient's scale.

    `amsgrad=True` (Reddi et al., 2018, torch's option) divides by the largest v seen so far
    (v_max, kept as the state's 'max_exp_avg_sq'; the running v itself goes on as before), so
    a coordinate's step size never grows back after a spell of large gradients. `maximize=True`
    (keyword-only, as torch's) climbs the objective instead of descending it.
    `decoupled_weight_decay=True` (keyword-only, as torch's since 2.6) decays as AdamW does,
    for this optimizer's life (the class decides it, not a saved state: AdamW is the usual way
    to ask for it). torch's `foreach`, `fused`, `differentiable` and `capturable` are taken as
    None or False only.

    `params`: the Tensors to train (`model.parameters()`), or param groups (see Optimizer);
    `betas` = (beta1, beta2); `eps` keeps the division finite where v is 0. The defaults
    are torch's (and the paper's): lr 1e-3, betas (0.9, 0.999), eps 1e-8.
    """

    decoupled_weight_decay = False
    # Options a state saved before they existed lacks; it loads with these values.
    options_added_later = {"amsgrad": False, "maximize": False}

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None,
                 capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None, decoupled_weight_decay: bool = False) -> None:
        _refuse_unoffered(type(self).__name__, foreach, fused, differentiable, capturable)
        engine._check_flag(decoupled_weight_decay, f"{type(self).__name__}: "
                                                   f"decoupled_weight_decay")
        if decoupled_weight_decay:      # torch's Adam(decoupled_weight_decay=True) is AdamW
            self.decoupled_weight_decay = True
        super().__init__(params, dict(lr=lr, betas=tuple(betas) if np.iterable(betas)
                                      else betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _shown_settings(self) -> dict:
        return {"decoupled_weight_decay": self.decoupled_weight_decay}

    def initial_state(self, param: Tensor, group: dict) -> dict:
        state = {"step": 0, "exp_avg": np.zeros_like(param.data),
                 "exp_avg_sq": np.zeros_like(param.data)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = np.zeros_like(param.data)
        return state

    def update(self, param: Tensor, grad: np.ndarray, state: dict, group: dict) -> None:
        lr, weight_decay, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]

        if group["maximize"]:
            grad = -grad
        decay = 1.0
        if weight_decay and self.decoupled_weight_decay:
            decay = 1 - lr * weight_decay
        elif weight_decay:
            grad = grad + weight_decay * param.data
        step_size, bias2_sqrt = lr / (1 - beta1 ** t), math.sqrt(1 - beta2 ** t)
        # kernels.py's loop runs the operations below, all but amsgrad's maximum (the numpy
        # form alone computes it); TINYAUTOGRAD_KERNELS=numpy runs them as written here (to
        # try an edit of them). A read-only array takes the numpy form, where numpy raises.
        if not group["amsgrad"] and kernels.usable(grad, into=(param.data, m, v)):
            kernels.adam(param.data, grad, m, v, beta1, beta2, decay, step_size, bias2_sqrt, eps)
            return
        if decay != 1.0:
            param.data *= decay
        # The formulas above, each product written into one scratch array (out=) instead of
        # a new array per operation; the same operations in the same order, so the same bits.
        scratch = np.empty_like(param.data)
        m *= beta1
        m += np.multiply(grad, 1 - beta1, out=scratch)                 # (1 - beta1) g
        v *= beta2
        np.multiply(grad, 1 - beta2, out=scratch)
        v += np.multiply(scratch, grad, out=scratch)                   # (1 - beta2) g^2
        if group["amsgrad"]:
            if "max_exp_avg_sq" not in state:        # amsgrad turned on after steps without
                state["max_exp_avg_sq"] = np.zeros_like(v)
            v = np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])  # v_max
        denominator = np.sqrt(v, out=scratch)
        denominator /= bias2_sqrt
        denominator += eps
        update = np.divide(m, denominator, out=scratch)
        update *= step_size
        param.data -= update


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as torch.optim.AdamW.

    Adam's L2 decay goes through the gradient, so Adam's normalisation shrinks it wherever
    gradients are large. AdamW shrinks the weights directly, by the same fraction lr *
    weight_decay everywhere, before the Adam step (the equations are in Adam's docstring).
    The arguments (`params`, `lr`, `betas`, `eps`, `weight_decay`, `amsgrad`, `maximize`,
    and torch's `foreach`, `capturable`, `differentiable` and `fused`, None or False only) are
    Adam's, but `weight_decay` defaults to 0.01, as torch's AdamW.
    """

    decoupled_weight_decay = True

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: bool | None = None,
                 capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         foreach=foreach, capturable=capturable,
                         differentiable=differentiable, fused=fused)


def weight_decay_groups(named_parameters: Iterable[tuple[str, Tensor]],
                        weight_decay: float) -> list[dict]:
    """Two param groups: matrices (ndim >= 2) decay by `weight_decay`, everything else
    (biases, norm gains) not.

    Decay pulls weights towards zero; that regularises the matrices of linear and embedding
    layers, but a bias or a LayerNorm gain pulled to zero only hurts (nanoGPT's rule). Takes
    (name, tensor) pairs as `module.named_parameters()` yields them; each group keeps the names
    under 'param_names', which helps when printing groups or reading a saved state:

        optimizer = AdamW(weight_decay_groups(model.named_parameters(), 0.1), lr=3e-4)
    """
    decay = {"params": [], "param_names": [], "weight_decay": weight_decay}
    no_decay = {"params": [], "param_names": [], "weight_decay": 0.0}
    for name, param in named_parameters:
        group = decay if param.ndim >= 2 else no_decay
        group["params"].append(param)
        group["param_names"].append(name)
    return [decay, no_decay]


def clip_grad_norm(params: Iterable[Tensor], max_norm: float, *,
                   total_norm: float | None = None, error_if_nonfinite: bool = False,
                   norm_type: float = 2.0) -> float:
    """Scale all gradients together so that their overall L2 norm is at most about `max_norm`.

        total = sqrt(sum over all gradients of sum(grad^2))
        grad  = grad * max_norm / (total + 1e-6)      when that factor is below 1 (torch's rule)

    Scaling every gradient by the same factor keeps the direction of the step and bounds its
    length, so that one bad batch cannot throw the weights far away (a max_norm below 0, which
    torch's takes and which would flip every gradient, is refused). Each gradient's sum of
    squares is one dot product in its own dtype (as torch computes it; a float16 one's is a
    float32 sum, as torch accumulates it); the sums are added in float64, and a float32
    gradient whose squares overflow is summed again in float64, so a huge gradient is still
    measured. Returns the total norm before clipping, as a Python float
    (worth logging: spikes show instability).

    A gradient holding NaN or inf has a NaN or inf norm, and clipping spreads it as torch's
    clip_grad_norm_ does: an inf norm scales every gradient by 0 (inf * 0 is NaN), a NaN norm
    makes every gradient NaN. The returned norm says which happened. With
    `error_if_nonfinite=True` (torch's option) such a norm raises RuntimeError instead, the
    gradients left as they were: the step can be skipped, or its op found under
    detect_anomaly().

    `total_norm`, when given, is the norm to clip by, where `params` hold only some of the
    gradients (processes that each update a share of a model's parameters: the norm is then
    math.sqrt of the sum of every gradient's `sum_of_squares`, in the parameters' order).
    It is keyword-only: torch's clip_grad_norm_ takes norm_type third, and a 2 passed there
    must not be taken for a norm.

    `norm_type` (keyword-only here), as torch's: the p of the p-norm of all the gradients
    together, (sum |g|^p)^(1/p) (1: the sum of |g|), or inf (the largest |g|).
    """
    if isinstance(params, Tensor):
        params = [params]
    _check_number("clip_grad_norm", "max_norm", max_norm)
    if not max_norm >= 0:                        # (NaN too: every gradient would be NaN)
        message = f"clip_grad_norm: max_norm must be >= 0, got {max_norm}"
        if max_norm < 0:
            # torch's takes it, and its factor below 0 flips every gradient: the step climbs
            message += ": a negative one would flip the sign of every gradient"
        raise ValueError(message)
    norm_type = float(norm_type)                 # torch's takes "inf" too
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm: norm_type must be a number > 0 or inf, got "
                         f"{norm_type}")
    grads = [p.grad for p in params if p.grad is not None]
    if total_norm is None:
        total_norm = _total_norm(grads, norm_type)
    if error_if_nonfinite and not math.isfinite(total_norm):
        raise RuntimeError(f"clip_grad_norm: the gradients' total norm is {total_norm}, so they "
                           f"cannot be clipped; find the op that made it by running the step "
                           f"under tinyautograd.detect_anomaly(), or pass "
                           f"error_if_nonfinite=False to scale them by it anyway")
    scale = max_norm / (total_norm + 1e-6)    # the 1e-6: an all-zero gradient, not a division by 0
    # A NaN norm (a NaN gradient somewhere, or inf / inf) gives a NaN scale, which compares
    # False to everything: it scales every gradient to NaN, as torch's does, rather than
    # leaving them unclipped.
    if not scale >= 1:
        with np.errstate(invalid="ignore"):               # inf * 0: the NaN torch gives too
            for g in grads:
                g *= scale
    return total_norm


def _total_norm(grads, p):
    """The p-norm of all the gradients together, as a Python float (summed in float64)."""
    if p == 2:                            # the usual one: a dot product each (sum_of_squares)
        return math.sqrt(sum(sum_of_squares(g) for g in grads))
    if p == math.inf:
        # np.max, not Python's max: a NaN compares False, so max() kept whatever came before
        # it, and a NaN gradient after a finite one gave a finite norm.
        largest = [np.max(np.abs(g)) for g in grads if g.size]
        return float(np.max(largest)) if largest else 0.0
    total = sum(float(np.sum(np.abs(g, dtype=np.float64) ** p)) for g in grads)
    return total ** (1 / p)


def sum_of_squares(grad: np.ndarray) -> float:
    """sum(grad^2) as a Python float: one BLAS dot product, with no array of squares made.
    A float16 gradient's squares are summed in float32 (pairwise, numpy's sum), as torch
    accumulates them."""
    flat = grad.reshape(-1)
    if flat.dtype.itemsize < 4:
        # numpy's float16 dot is no BLAS: it adds one product at a time and rounds the sum to
        # float16, a tenth off for ten million values. No float32 sum of float16 squares
        # (each below 2^32) overflows.
        return float(np.sum(np.square(flat, dtype=np.float32)))
    with np.errstate(over="ignore"):                        # an overflow is handled below
        total = float(np.dot(flat, flat))
    # A float32 sum that overflowed is summed again in float64. A float64 one's
    # inf is the sum's own, as torch's is: summed again, it only overflowed again, warning.
    if math.isinf(total) and flat.dtype.itemsize < 8 and np.isfinite(flat).all():
        total = float(np.sum(np.square(flat, dtype=np.float64)))
    return total


# ---------------------------------------------------------------------------- lr schedules


class LRSchedule:
    """A learning rate that changes with the step number; subclasses write `lr_at(step)`.

    `step` counts the optimizer steps already taken, so `lr_at(0)` is the learning rate of the
    first update. The schedule writes it into the optimizer when it is created, then after every
    update moves on by one. Call them in this order:

        optimizer.step()        # uses the lr of step n
        schedule.step()         # sets the lr of step n + 1

    `lr_at(step)` and `get_last_lr()` give one learning rate per param group, in a list.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.steps_taken = 0
        self._write_lrs()

    def lr_at(self, step: int) -> list[float]:
        """The learning rate of each param group for update number `step` (from 0: the first
        update's), written by each schedule."""
        raise NotImplementedError

    def peak_lrs(self) -> list[float]:
        """The highest learning rate each param group reaches: where a run is most likely to
        diverge, and what advice about its lr should name. A schedule that does not know its
        peak gives the lrs it has written now."""
        return self.get_last_lr()

    def step(self) -> None:
        """Move on by one update: write the next update's learning rates into the optimizer.
        Call it after `optimizer.step()`."""
        self.steps_taken += 1
        self._write_lrs()

    def _write_lrs(self):
        for group, lr in zip(self.optimizer.param_groups, self.lr_at(self.steps_taken)):
            group["lr"] = lr

    def get_last_lr(self) -> list[float]:
        """The learning rate each param group will use at its next step."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        """What resuming needs: how many updates the schedule has moved on by (and what
        else a schedule keeps), for `load_state_dict`."""
        return {"steps_taken": self.steps_taken}

    def load_state_dict(self, state_dict: dict) -> None:
        """Continue from `state_dict`, as a schedule's `state_dict()` saved it; rewrites the
        optimizer's lrs to match."""
        self._check_state(state_dict)
        self.steps_taken = int(state_dict["steps_taken"])
        self._write_lrs()

    def _check_state(self, state_dict):
        """Refuse what is not this schedule's state dict (None, an optimizer's, another
        schedule's), which failed as a KeyError or a TypeError about subscripting."""
        keys = list(self.state_dict())
        if not (isinstance(state_dict, Mapping) and all(key in state_dict for key in keys)):
            got = (f"one without {[key for key in keys if key not in state_dict]}"
                   if isinstance(state_dict, Mapping) else engine._brief(state_dict))
            raise TypeError(f"{type(self).__name__}.load_state_dict: expected a state dict "
                            f"with {keys}, as this schedule's state_dict() gives, got {got}")
        steps = state_dict["steps_taken"]
        # int() took -3 (a warmup's lr then negative), 2.7 and "5" alike.
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
            raise ValueError(f"{type(self).__name__}.load_state_dict: steps_taken must be a "
                             f"whole number >= 0, as state_dict() saves it, got {steps!r}")


class WarmupCosine(LRSchedule):
    """Linear warmup, then a cosine decay to `min_lr` (nanoGPT's schedule). For each group,
    with warmup = `warmup_steps` and total = `total_steps`:

        step < warmup:          lr = base_lr * (step + 1) / (warmup + 1)
        warmup <= step < total: lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * progress)) / 2,
                                     progress = (step - warmup) / (total - warmup)
        step >= total:          lr = min_lr

    `base_lr` is the group's lr when the schedule is created, reached at step `warmup` (never
    when warmup = total: every step then warms up); `min_lr` is the same for every group.
    Warmup matters for Adam: its first steps come from moment estimates built on a handful of
    gradients, so they are kept small. Create it after `optimizer`, whose lrs it takes and
    rewrites. ValueError unless 0 <= warmup_steps <= total_steps and min_lr >= 0.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int,
                 min_lr: float = 0.0) -> None:
        # Text (a config's "100") failed in the comparisons below, naming no argument.
        for name, value in (("warmup_steps", warmup_steps), ("total_steps", total_steps),
                            ("min_lr", min_lr)):
            _check_number("WarmupCosine", name, value)
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"WarmupCosine needs 0 <= warmup_steps <= total_steps, got "
                             f"warmup_steps={warmup_steps}, total_steps={total_steps}")
        # A negative floor (a dropped "e", -1e-4 for 1e-4) would end every run with negative
        # lrs, stepping up the gradient: refused as the optimizers refuse a negative lr.
        if not min_lr >= 0:
            raise ValueError(f"WarmupCosine needs min_lr >= 0, got {min_lr}")
        self.warmup_steps, self.total_steps, self.min_lr = warmup_steps, total_steps, min_lr
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        super().__init__(optimizer)

    def lr_at(self, step: int) -> list[float]:
        return [self._lr(step, base_lr) for base_lr in self.base_lrs]

    def peak_lrs(self) -> list[float]:
        return list(self.base_lrs)        # (approached, never reached, when warmup = total)

    def _lr(self, step, base_lr):
        if step < self.warmup_steps:
            return base_lr * (step + 1) / (self.warmup_steps + 1)
        if step >= self.total_steps:
            return self.min_lr
        progress = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return self.min_lr + (base_lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2

    def state_dict(self) -> dict:
        # The base lrs are saved too: a schedule created after loading the optimizer would
        # otherwise take the decayed lr it finds there for the peak.
        return {**super().state_dict(), "base_lrs": [_plain(lr) for lr in self.base_lrs]}

    def load_state_dict(self, state_dict: dict) -> None:
        self._check_state(state_dict)
        # One peak a group: writing the lrs zips them with the groups, so a group past a
        # shorter list kept whatever lr it had, and never followed the schedule again.
        groups = len(self.optimizer.param_groups)
        if len(state_dict["base_lrs"]) != groups:
            raise ValueError(f"WarmupCosine.load_state_dict: the saved schedule has "
                             f"{len(state_dict['base_lrs'])} base lrs, one for each group of "
                             f"its optimizer, and this optimizer has {groups} groups; load "
                             f"the state of a schedule over the same groups")
        self.base_lrs = list(state_dict["base_lrs"])
        super().load_state_dict(state_dict)


class Noam(LRSchedule):
    """The schedule of "Attention Is All You Need" (section 5.3), with n = step + 1 counting
    the updates from 1 and warmup = `warmup_steps`:

        lr = factor * d_model^-0.5 * min(n^-0.5, n * warmup^-1.5)

    It grows linearly for `warmup_steps` updates, peaks at n = warmup (that is, `lr_at(warmup
    - 1)`) at factor / sqrt(d_model * warmup), then decays as 1 / sqrt(n). The formula gives
    the lr outright: every group gets it, whatever lr the optimizer was created with.
    """

    def __init__(self, optimizer: Optimizer, d_model: int, warmup_steps: int,
                 factor: float = 1.0) -> None:
        for name, value in (("d_model", d_model), ("warmup_steps", warmup_steps),
                            ("factor", factor)):
            _check_number("Noam", name, value)
        if warmup_steps < 1:
            raise ValueError(f"Noam needs warmup_steps >= 1, got {warmup_steps}")
        # d_model ** -0.5 of 0 divides by zero, and of a negative number is complex; a
        # negative factor makes every lr negative, stepping up the gradient.
        if not d_model >= 1:
            raise ValueError(f"Noam needs d_model >= 1, got {d_model}")
        if not factor >= 0:
            raise ValueError(f"Noam needs factor >= 0, got {factor}")
        self.d_model, self.warmup_steps, self.factor = d_model, warmup_steps, factor
        super().__init__(optimizer)

    def lr_at(self, step: int) -> list[float]:
        n = step + 1
        lr = self.factor * self.d_model ** -0.5 * min(n ** -0.5, n * self.warmup_steps ** -1.5)
        return [lr] * len(self.optimizer.param_groups)

    def peak_lrs(self) -> list[float]:
        return self.lr_at(self.warmup_steps - 1)


if not TYPE_CHECKING:     # a type checker would take any name for one of ours (`optim.SDG`)
    __getattr__ = engine._pointing_to_ours("module 'tinyautograd.optim'", {
        "clip_grad_norm_": "clip_grad_norm",
        "lr_scheduler": "the schedules WarmupCosine and Noam, or an LRSchedule"})
