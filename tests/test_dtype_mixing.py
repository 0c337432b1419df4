"""Mixing dtypes: index arrays of every integer type, float16 and float64 models, numpy
scalars and 0-d arrays beside Tensors. Each result is compared with int64 indices, torch, or
finite differences in float64."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

import tinyautograd as ta
import tinyautograd.functional as F
from tinyautograd import Tensor, kernels, nn
from tinyformer.attention import (attention_readable, attention_weights, causal_mask,
                                  scaled_dot_product_attention)

SMALL_INTEGERS = [np.int8, np.uint8, np.int16, np.uint16, np.uint32, np.uint64]

# ------------------------------------------------------------- index arrays of any integer type


@pytest.mark.parametrize("dtype", SMALL_INTEGERS)
def test_rows_picked_by_a_narrow_or_unsigned_index_get_their_gradient_as_int64s_do(dtype):
    # Row 90 of 8 columns is element 720, past a uint8 or int8: the gradient must still land
    # on row 90 (and a uint64 index must not make the positions float).
    table = Tensor(np.random.default_rng(0).standard_normal((128, 8)), requires_grad=True)
    ids = np.array([[90, 3], [127, 90]])
    table[ids.astype(dtype)].sum().backward()
    narrow = table.grad
    table.grad = None
    table[ids].sum().backward()
    assert_array_equal(narrow, table.grad)
    assert_array_equal(np.nonzero(narrow.sum(axis=1))[0], [3, 90, 127])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint64])
def test_an_embedding_learns_from_uint8_int8_and_uint64_token_ids_as_from_int64(dtype):
    # A byte-level model's ids fit in a uint8 (token 200 of a 256-row table); torch's
    # embedding gives each row its own gradient whatever integer type holds the ids.
    embedding = nn.Embedding(256 if dtype != np.int8 else 128, 4)
    ids = np.array([[120, 7, 120]], dtype=dtype)
    embedding(ids).sum().backward()
    expected = np.zeros(embedding.weight.shape, np.float32)
    expected[7], expected[120] = 1, 2
    assert_array_equal(embedding.weight.grad, expected)


def test_gradcheck_through_a_uint8_index_in_float64():
    x = Tensor(np.random.default_rng(1).standard_normal((256, 3)), requires_grad=True,
               dtype=np.float64)
    ids = np.array([255, 90, 90, 0], np.uint8)
    assert ta.gradcheck(lambda w: w[ids] * 2, x)


# ------------------------------------------------------------- random draws in narrow floats


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_rand_stays_below_1_in_every_float_dtype_as_torch_rand(dtype):
    # Drawn in float64 and rounded to float16, about one draw in 4096 became exactly 1.0;
    # in float32, one in 2 ** 25. The generator here draws 1 - 2 ** -30, the largest kind.
    class NearOne(np.random.Generator):
        def random(self, size=None, dtype=np.float64, out=None):
            return np.full(size, 1 - 2.0 ** -30)

    draws = ta.rand(5, dtype=dtype, generator=NearOne(np.random.PCG64(0)))
    assert draws.dtype == dtype and (draws.data < 1).all()
    seeded = ta.rand(20_000, dtype=dtype, generator=np.random.default_rng(0))
    assert 0 <= seeded.data.min() and seeded.data.max() < 1


# ------------------------------------------------------------- numpy scalars as settings


@pytest.fixture(params=["loops", "numpy forms"])
def either_form(request, monkeypatch):
    """Runs a test with the compiled loops (where built) and with the ops' numpy forms."""
    if request.param == "numpy forms":
        monkeypatch.setattr(kernels, "usable", lambda *arrays, into=(): False)


# Each a setting given as a numpy scalar, as a config read with numpy or a value computed
# with it gives one: torch reads a numpy scalar as a Python number, which keeps x's dtype.
NUMPY_SETTINGS = {
    "var(ddof=np.int64(1))": lambda x: x.var(axis=-1, ddof=np.int64(1)),
    "var(ddof=np.int64(1)) of all": lambda x: x.var(ddof=np.int64(1)),
    "F.rms_norm(eps=np.float64)": lambda x: F.rms_norm(x, eps=np.float64(1e-6)),
    "nn.RMSNorm(eps=np.float64)": lambda x: nn.RMSNorm(4, eps=np.float64(1e-6))(x),
    "F.layer_norm(eps=np.float64)": lambda x: F.layer_norm(x, eps=np.float64(1e-5)),
    "nn.LayerNorm(eps=np.float64)": lambda x: nn.LayerNorm(4, eps=np.float64(1e-5))(x),
}


@pytest.mark.parametrize("setting", NUMPY_SETTINGS)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_numpy_scalar_setting_keeps_the_inputs_dtype_as_torch(either_form, setting, dtype):
    x = Tensor(np.random.default_rng(2).standard_normal((3, 4)), dtype=dtype,
               requires_grad=True)
    out = NUMPY_SETTINGS[setting](x)
    out.sum().backward()
    assert out.dtype == dtype and x.grad.dtype == dtype


def test_var_with_a_numpy_ddof_is_torchs_in_float32():
    a = np.random.default_rng(3).standard_normal((3, 5)).astype(np.float32)
    ours = Tensor(a).var(axis=1, ddof=np.int64(1))
    theirs = torch.tensor(a).var(dim=1, correction=1)
    assert ours.dtype == np.float32
    assert_allclose(ours.data, theirs.numpy(), rtol=1e-6)


# ------------------------------------------------------------- attention of mixed float dtypes


@pytest.mark.parametrize("form", ["op", "readable"])
@pytest.mark.parametrize("dtypes", [(np.float16, np.float64, np.float64),
                                    (np.float16, np.float32, np.float32),
                                    (np.float32, np.float16, np.float64)])
def test_attention_of_mixed_float_dtypes_computes_in_the_widest_as_matmul(form, dtypes):
    # A float16 query with float64 keys and values was rounded to float16, where q @ k.T
    # alone gives float64; each gradient keeps its input's dtype.
    rng = np.random.default_rng(4)
    q, k, v = (Tensor(rng.standard_normal((2, 3, 4)), dtype=dtype, requires_grad=True)
               for dtype in dtypes)
    attention = scaled_dot_product_attention if form == "op" else attention_readable
    out = attention(q, k, v, causal_mask(3))
    widest = np.result_type(*dtypes)
    expected = attention(*(Tensor(x.data, dtype=np.float64) for x in (q, k, v)), causal_mask(3))
    assert out.dtype == widest
    assert_allclose(out.data, expected.data, rtol=1e-6 if widest == np.float64 else 1e-5,
                    atol=1e-6)
    out.sum().backward()
    assert [x.grad.dtype for x in (q, k, v)] == list(dtypes)
    assert attention_weights(q, k).dtype == np.result_type(*dtypes[:2])
