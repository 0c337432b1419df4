"""Mixing dtypes: index arrays of every integer type, float16 and float64 models, numpy
scalars and 0-d arrays beside Tensors. Each result is compared with int64 indices, torch, or
finite differences in float64."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import tinyautograd as ta
from tinyautograd import Tensor, nn

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
