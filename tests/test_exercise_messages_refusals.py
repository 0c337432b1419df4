"""Chapters 4, 5 and 8 to 10: an exercise whose answer a module of the package holds refuses a
file that uses that module, in one message naming it and the line (an import the solution
does not need, appended to the reference solution)."""

import sys
import types

import pytest
from solutions import solution_text, solved_text

from tinyformer.exercises import find, run_check


@pytest.mark.parametrize("slug, line, module", [
    ("scalar_engine", "from tinyautograd import Tensor", "tinyautograd.engine"),
    ("broadcast_gradients", "from tinyautograd.engine import _sum_to", "tinyautograd.engine"),
    ("matmul_backward", "from tinyautograd.ops import MatMul as LibraryMatMul", "tinyautograd.ops"),
    ("softmax_cross_entropy_backward", "from tinyautograd.functional import cross_entropy",
     "tinyautograd.functional"),
    ("layer_norm_backward", "from tinyautograd.functional import layer_norm",
     "tinyautograd.functional"),
    ("embedding", "from tinyautograd.nn import Embedding as Table", "tinyautograd.nn"),
    ("sinusoidal_positions", "from tinyformer.layers import SinusoidalPositions",
     "tinyformer.layers"),
    ("adam_step", "from tinyautograd.optim import AdamW", "tinyautograd.optim"),
    ("warmup_schedule", "from tinyautograd.optim import WarmupCosine", "tinyautograd.optim"),
    ("training_loop", "from tinyformer.train import Trainer", "tinyformer.train"),
    ("greedy", "from tinyformer.decoding import generate", "tinyformer.decoding"),
    ("temperature_top_k", "from tinyformer.sampling import sample_next", "tinyformer.sampling"),
    ("top_p", "import tinyformer.sampling as sampling", "tinyformer.sampling"),
    ("beam_search", "from tinyformer.decoding import beam_search as library_beam_search",
     "tinyformer.decoding"),
    ("kv_cache", "from tinyformer.attention import KVCache", "tinyformer.attention"),
    ("scaled_dot_product", "from tinyformer.attention import attention_readable",
     "tinyformer.attention"),
    ("causal_mask", "import tinyformer.attention as library", "tinyformer.attention"),
    ("multi_head_attention", "from tinyformer.attention import MultiHeadAttention",
     "tinyformer.attention"),
    ("feed_forward", "from tinyformer.layers import FeedForward", "tinyformer.layers"),
    ("feed_forward", "from tinyautograd.functional import gelu as library_gelu",
     "tinyautograd.functional"),
    ("residual_blocks", "from tinyformer.blocks import residual", "tinyformer.blocks"),
    ("bpe_merge", "from tinyformer.tokenizers import merge as library_merge",
     "tinyformer.tokenizers"),
    ("bpe_train", "from tinyformer.tokenizers import BPETokenizer", "tinyformer.tokenizers"),
    ("bpe_encode", "from tinyformer import tokenizers", "tinyformer.tokenizers"),
])
def test_importing_the_implementation_is_refused(tmp_path, slug, line, module):
    ex = find(slug)
    path = tmp_path / f"{slug}.py"
    path.write_text(solved_text(ex) + "\n" + line + "\n")
    got = run_check(ex, path)
    assert got is not None and f"uses {module}, in line" in got and f"`{line}`" in got
    assert "this exercise asks you to write that part yourself" in got


@pytest.mark.parametrize("slug, line, still_fine", [
    ("scalar_engine", "import tinyautograd", "Build it from the pieces in the file and numpy."),
    ("matmul_backward", "import tinyautograd.ops",
     "(numpy and the rest of tinyautograd are fine)"),
    ("bpe_merge", "import tinyformer.tokenizers", "(numpy and tinyautograd are fine)"),
])
def test_a_refusal_says_what_is_still_fine(tmp_path, slug, line, still_fine):
    ex = find(slug)
    path = tmp_path / f"{slug}.py"
    path.write_text(solved_text(ex) + "\n" + line + "\n")
    assert still_fine in run_check(ex, path)


@pytest.mark.parametrize("call", ["x.gelu()", "(1.0 * x).gelu()"])
def test_calling_the_engines_own_gelu_is_refused(tmp_path, call):
    # The exercise asks for gelu written from Tensor operations; x.gelu() is the engine's.
    ex = find("feed_forward")
    solution = solution_text(ex)
    body = "    inner = math.sqrt(2 / math.pi) * (x + 0.044715 * (x * x * x))\n" \
           "    return 0.5 * x * (1 + inner.tanh())\n"
    assert body in solution
    path = tmp_path / "feed_forward.py"
    path.write_text(solved_text(ex, solution.replace(body, f"    return {call}\n")))
    got = run_check(ex, path)
    assert got is not None and got.startswith("feed_forward.py calls the engine's own "
                                              "`.gelu()`, in line ")
    assert f"(`return {call}`): this exercise asks you to write gelu yourself" in got


def test_a_private_name_holding_the_implementation_is_refused(tmp_path):
    # No import statement names the module, so only the file's names show it; one that starts
    # with an underscore is the learner's all the same.
    ex = find("kv_cache")
    path = tmp_path / "kv_cache.py"
    path.write_text(solved_text(ex) + "\n_library = __import__('importlib')"
                                      ".import_module('tinyformer.attention')\n")
    got = run_check(ex, path)
    assert got is not None and "uses tinyformer.attention, in its name `_library`" in got


@pytest.mark.parametrize("slug, lines, used, quoted", [
    # The answer, read from the reference solution that ships with the package.
    ("one_hot", "from tinyformer.exercises.catalogue import find",
     "tinyformer.exercises.catalogue", "from tinyformer.exercises.catalogue import find"),
    # The checker's own reference, which the expected answers are worked out with.
    ("temperature_top_k",
     "from tinyformer.exercises.checks.ch09_generation import reference_probs as next_token_probs",
     "tinyformer.exercises.checks.ch09_generation", "import reference_probs as next_token_probs"),
    # A product that is not numpy's escapes the check that it is written by hand. Imported in
    # a function that nothing calls: judging the file imports no library (torch takes seconds;
    # jax is not installed).
    ("dot_and_matmul", "def by_torch(a, b):\n    import torch.nn.functional as F\n"
                       "    return F.linear(a, b)", "torch", "import torch.nn.functional as F"),
    ("one_hot", "def by_jax(ids, n):\n    from jax.nn import one_hot\n    return one_hot(ids, n)",
     "jax", "from jax.nn import one_hot"),
])
def test_every_exercise_refuses_the_course_itself_and_deep_learning_libraries(tmp_path, slug,
                                                                              lines, used, quoted):
    ex = find(slug)
    path = tmp_path / f"{slug}.py"
    path.write_text(solved_text(ex) + "\n" + lines + "\n")
    got = run_check(ex, path)
    assert got is not None and got.startswith(f"{slug}.py uses {used}, in line "), got
    assert quoted in got and "no exercise may use" in got


def test_a_name_holding_a_deep_learning_library_is_refused(tmp_path, monkeypatch):
    # No import statement names the library, so only the file's names show it. A stand-in
    # module plays an installed Keras: judging the file imports no library itself.
    monkeypatch.setitem(sys.modules, "keras", types.ModuleType("keras"))
    ex = find("one_hot")
    path = tmp_path / "one_hot.py"
    path.write_text(solved_text(ex) + "\n_library = __import__('importlib')"
                                      ".import_module('keras')\n")
    got = run_check(ex, path)
    assert got is not None, "a file holding Keras under a name passed"
    assert got.startswith("one_hot.py uses keras, in its name `_library`: "), got
    assert "no exercise may use a deep-learning library" in got
