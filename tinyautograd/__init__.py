"""tinyautograd: a tensor autograd engine on numpy, small enough to read in one sitting.

Start with `engine.py` (Tensor, Function, backward), then `ops.py` (every primitive op with its
gradient), `functional.py` (fused kernels and the few ops built on them), `nn.py` and
`optim.py`; `modes.py` holds the switches (no_grad, detect_anomaly). `kernels.py` builds the
compiled loops that layer norm, GELU and Adam's update (and tinyformer's attention softmax) run
where a C compiler allows, beside their numpy forms.
"""

from typing import TYPE_CHECKING

from . import engine, functional, kernels, nn, optim
from .engine import (AnomalyError, Context, Function, ShapeError, Tensor, concat,
                     detect_anomaly, enable_grad, grad, is_grad_enabled, no_grad,
                     set_grad_enabled, stack, where)
from .factories import arange, ones, ones_like, randn, rand, zeros, zeros_like
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .random import manual_seed

__version__ = "0.1.0"

__all__ = [
    "Tensor", "Function", "Context", "ShapeError", "AnomalyError",
    "concat", "stack", "where", "grad",
    "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "detect_anomaly",
    "zeros", "ones", "zeros_like", "ones_like", "randn", "rand", "arange",
    "gradcheck", "gradgradcheck", "GradcheckError", "manual_seed",
    "functional", "kernels", "nn", "optim",
]


# PyTorch's names that are not ours, with what to write here (in the AttributeError).
_TORCH_NAMES = {
    "cat": "ta.concat", "tensor": "ta.Tensor", "from_numpy": "ta.Tensor (no copy)",
    # torch.autograd.grad, .Function and .functional.hessian / jacobian / hvp, by their users
    "autograd": "ta.grad (torch.autograd.grad's arguments) and ta.Function; a Hessian, "
                "Jacobian or Hessian-vector product comes from ta.grad(..., create_graph=True), "
                "differentiated again",
    "save": "np.savez(path, **model.state_dict())",
    "load": "model.load_state_dict(np.load(path))",
    # A mask, random indices and a draw are constants, outside the graph: numpy makes them.
    # Boolean, as attention takes masks (True = may attend): a float one of 0s and 1s, given
    # as a bias, would be added to the scores and block nothing.
    "tril": "np.tril(np.ones((n, n), bool)), a constant boolean mask made with numpy (True = "
            "may attend: tinyformer's causal_mask(n))",
    "triu": "np.triu(np.ones((n, n), bool), 1), a constant boolean mask made with numpy (True "
            "above the diagonal, the keys a causal attention blocks: its ~ is causal_mask(n))",
    "randint": "numpy's generator, np.random.default_rng(seed).integers(low, high, size)",
    "randperm": "numpy's generator, np.random.default_rng(seed).permutation(n)",
    "multinomial": "numpy's generator, rng.choice(len(p), p=p) for each row p of probabilities",
    "topk": engine._TOPK, "logsumexp": engine._LOGSUMEXP,
    "matmul": "x @ y", "mm": "x @ y", "bmm": "x @ y",
    "outer": "x[:, None] * y, of 1-d x and y",
    "maximum": "ta.where(x > y, x, y) (at a tie the gradient goes to y; torch's halves it)",
    "minimum": "ta.where(x < y, x, y) (at a tie the gradient goes to y; torch's halves it)",
    "full": "ta.Tensor(np.full(shape, value))", "empty": "ta.zeros(*shape)",
    "eye": "ta.Tensor(np.eye(n))", "linspace": "ta.Tensor(np.linspace(start, end, steps))",
    "randn_like": "ta.randn(*x.shape, dtype=x.dtype)",
    "rand_like": "ta.rand(*x.shape, dtype=x.dtype)",
    "inference_mode": "ta.no_grad()", "is_tensor": "isinstance(x, ta.Tensor)",
    "allclose": "np.allclose(x.data, y.data)",
    "clamp": engine._TORCH_TENSOR_NAMES["clamp"], "clip": engine._TORCH_TENSOR_NAMES["clamp"],
    "split": engine._TORCH_TENSOR_NAMES["split"], "chunk": engine._TORCH_TENSOR_NAMES["chunk"],
    "cuda": engine._TORCH_TENSOR_NAMES["cuda"], "device": engine._TORCH_TENSOR_NAMES["device"]}
# torch's functions that are Tensor methods in torch and missing here too: torch.permute(x, ...)
# takes what x.permute(...) takes.
_TORCH_NAMES |= {name: f"as for x.{name}: {engine._TORCH_TENSOR_NAMES[name]}" for name in (
    "permute", "squeeze", "unsqueeze", "flatten", "gather", "pow", "std", "clone", "amax",
    "amin", "argmin", "argsort", "sort", "cumsum")}
_TORCH_NAMES["einsum"] = ("x @ y, with reshape, swapaxes and sum(axis) around it "
                          "(torch.einsum('bij,bjk->bik', x, y) is x @ y)")
# torch's functions that are a Tensor's methods here: torch.exp(x) is x.exp().
_TORCH_NAMES |= {name: f"x.{name}(...), the Tensor's method" for name in (
    "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "sum", "mean", "var", "max", "min",
    "argmax", "softmax", "log_softmax", "swapaxes", "reshape", "masked_fill", "numel", "detach")}
# torch's dtypes are numpy's here (dtype=torch.float32 is dtype=np.float32).
_TORCH_NAMES |= {name: f"{dtype}, numpy's dtype" for name, dtype in {
    "float16": "np.float16", "half": "np.float16", "float32": "np.float32",
    "float": "np.float32", "float64": "np.float64", "double": "np.float64",
    "int32": "np.int32", "int": "np.int32", "int64": "np.int64", "long": "np.int64",
    "uint8": "np.uint8", "bool": "bool"}.items()}

# Under `if not TYPE_CHECKING:`, as every __getattr__ that only words an error: a type checker
# reading it would take any name for one of ours (`ta.tensr`), and flag no misspelling.
if not TYPE_CHECKING:
    __getattr__ = engine._pointing_to_ours("module 'tinyautograd'", _TORCH_NAMES)
