"""Our safetensors reader and writer: every dtype round trips, files are byte for byte those of
the reference `safetensors` package (both ways), and each kind of corrupt file is refused with
one line that names the file and the problem."""

import json
import re

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

from tinyformer.safetensors import SafetensorsError, load_file, load_metadata, save_file

RNG = np.random.default_rng(0)
EVERY_DTYPE = {
    "f64": RNG.normal(size=(2, 3)), "f32": RNG.normal(size=5).astype(np.float32),
    "f16": RNG.normal(size=(4, 1)).astype(np.float16), "i64": np.arange(-3, 3),
    "i32": np.arange(4, dtype=np.int32), "i16": np.arange(-2, 2, dtype=np.int16),
    "i8": np.array([-128, 127], np.int8), "u8": np.arange(250, 256, dtype=np.uint8),
    "u16": np.array([65535], np.uint16), "u32": np.array([7], np.uint32),
    "u64": np.array([2**64 - 1], np.uint64), "bool": np.array([True, False, True]),
    "scalar": np.array(2.5, np.float32), "empty": np.zeros((0, 3), np.float32),
    "naïve": np.ones(2, np.float32),                  # names are UTF-8
}


def assert_same(loaded, arrays):
    assert list(sorted(loaded)) == list(sorted(arrays))
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape, name
        np.testing.assert_array_equal(loaded[name], array)


def test_every_dtype_round_trips_with_its_metadata(tmp_path):
    path = tmp_path / "a.safetensors"
    save_file(EVERY_DTYPE, path, metadata={"format": "pt", "note": "é"})
    assert_same(load_file(path), EVERY_DTYPE)
    assert load_metadata(path) == {"format": "pt", "note": "é"}


def test_any_memory_layout_is_written_in_c_order_little_endian(tmp_path):
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    arrays = {"transposed": matrix.T, "strided": matrix[:, ::2],
              "big_endian": matrix.astype(">f4")}
    save_file(arrays, tmp_path / "a.safetensors")
    loaded = load_file(tmp_path / "a.safetensors")
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded[name], array)
    assert loaded["big_endian"].dtype == np.dtype("<f4")


@pytest.mark.parametrize("metadata", [{"format": "pt"}, {}, None])
def test_our_files_are_byte_identical_to_the_reference_package(tmp_path, metadata):
    # Contiguous arrays only: the reference (0.8) writes a strided array's underlying buffer.
    # Empty metadata is written as the reference writes it, an empty "__metadata__".
    save_file(EVERY_DTYPE, tmp_path / "ours.safetensors", metadata=metadata)
    safetensors.numpy.save_file(EVERY_DTYPE, tmp_path / "theirs.safetensors", metadata=metadata)
    ours, theirs = ((tmp_path / f"{who}.safetensors").read_bytes() for who in ("ours", "theirs"))
    assert ours == theirs
    assert_same(safetensors.numpy.load_file(tmp_path / "ours.safetensors"), EVERY_DTYPE)
    assert_same(load_file(tmp_path / "theirs.safetensors"), EVERY_DTYPE)


def test_the_header_is_padded_as_the_reference_pads_it_whatever_its_length(tmp_path):
    # Names of 1 to 8 letters give headers of every length modulo 8.
    for n in range(1, 9):
        arrays = {"x" * n: np.ones(2, np.float32)}
        save_file(arrays, tmp_path / "ours.safetensors")
        safetensors.numpy.save_file(arrays, tmp_path / "theirs.safetensors")
        ours, theirs = (tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors")
        assert ours.read_bytes() == theirs.read_bytes(), n


def test_bfloat16_loads_as_the_same_float32_values(tmp_path):
    x = torch.randn(3, 5).to(torch.bfloat16)
    safetensors.torch.save_file({"x": x}, tmp_path / "bf16.safetensors")
    loaded = load_file(tmp_path / "bf16.safetensors")["x"]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, x.float().numpy())


def test_a_valid_file_of_a_dtype_we_do_not_read_is_not_called_invalid(tmp_path):
    path = tmp_path / "f8.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2, dtype=torch.float8_e4m3fn)}, path)
    with pytest.raises(SafetensorsError) as error:
        load_file(path)
    assert str(error.value).startswith(f"{path}: tensor 'w' has dtype F8_E4M3, which "
                                       f"tinyformer does not read (it reads BOOL, U8,")


def test_unsupported_arrays_and_metadata_are_refused_when_saving(tmp_path):
    path = tmp_path / "a.safetensors"
    with pytest.raises(SafetensorsError, match="'z' has dtype complex128"):
        save_file({"z": np.zeros(2, complex)}, path)
    with pytest.raises(SafetensorsError, match="metadata must be a dict of str to str"):
        save_file({"x": np.zeros(2)}, path, metadata={"step": 3})
    with pytest.raises(SafetensorsError, match="'__metadata__' cannot be a tensor's name"):
        save_file({"__metadata__": np.zeros(2)}, path)
    assert not path.exists()


def raw_file(path, header, data=b""):
    """A file with this header (a dict, or raw bytes) and data, right or wrong."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)
    return path


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


CORRUPT = [
    ("short", b"", None, "fewer than the 8 that give the header's length"),
    ("not_json", b"{not json", b"", "the header is not JSON"),
    ("duplicate", b'{"x": {}, "x": {}}', b"", "the name 'x' appears twice"),
    ("list", [1, 2], b"", "the header is not a JSON object"),
    ("metadata", {"__metadata__": {"step": 3}}, b"", "__metadata__ is not an object of strings"),
    ("fields", {"x": {"dtype": "F32"}}, b"", "'x' needs dtype, shape and data_offsets"),
    ("dtype", {"x": entry("F128")}, bytes(8), "'x' has dtype 'F128'"),
    ("dtype_list", {"x": entry(["F32"])}, bytes(8), "'x' has dtype ['F32']"),
    ("nested", b"[" * 100_000, b"", "the header's JSON is nested too deeply"),
    # Python reads no whole number of more than 4300 digits (a ValueError, not JSON's own)
    ("long_number", b'{"x": 1' + b"0" * 5000 + b"}", b"",
     "the header is not JSON (Exceeds the limit (4300 digits)"),
    ("shape", {"x": entry(shape=(-1,))}, bytes(8), "'x' has shape [-1]"),   # numpy's "infer"
    ("bool_shape", {"x": entry(shape=(True, 2))}, bytes(8), "'x' has shape [True, 2]"),
    ("axes", {"x": entry(shape=[1] * 65, offsets=(0, 4))}, bytes(4), "'x' has shape [1, 1,"),
    ("long_axis", {"x": entry(shape=(0, 2**63), offsets=(0, 0))}, b"",
     "'x' has shape [0, 9223372036854775808], which no numpy array can have"),
    ("offsets", {"x": entry(offsets=(8, 0))}, bytes(8), "'x' has data_offsets [8, 0]"),
    ("size", {"x": entry(offsets=(0, 12))}, bytes(12), "'x' has 12 bytes, but shape [2] of F32"),
    ("too_few", {"x": entry(offsets=(0, 4))}, bytes(4), "'x' has 4 bytes, but shape [2] of F32"),
    ("truncated", {"x": entry()}, bytes(6), "'x' ends at byte 8 of the data, which has 6"),
    ("one_byte_short", {"x": entry()}, bytes(7), "'x' ends at byte 8 of the data, which has 7"),
    ("overlap", {"x": entry(), "y": entry(offsets=(4, 12))}, bytes(12), "'x' and 'y' overlap"),
    ("overlap_by_a_byte", {"x": entry(), "y": entry("U8", offsets=(7, 9))}, bytes(9),
     "'x' and 'y' overlap"),
    ("gap", {"x": entry(offsets=(4, 12))}, bytes(12), "data bytes 0..4 belong to no tensor"),
    ("trailing", {"x": entry()}, bytes(9), "1 bytes after the last tensor belong to no tensor"),
]


@pytest.mark.parametrize("case, header, data, problem", CORRUPT, ids=[c[0] for c in CORRUPT])
def test_each_corruption_is_one_line_naming_the_file_and_the_problem(tmp_path, case, header,
                                                                     data, problem):
    path = tmp_path / f"{case}.safetensors"
    if data is None:
        path.write_bytes(header)
    else:
        raw_file(path, header, data)
    with pytest.raises(SafetensorsError) as error:
        load_file(path)
    message = str(error.value)
    assert message.startswith(f"{path} is not a valid safetensors file: ") and "\n" not in message
    assert problem in message


LONG = "x" * 1_000_000                  # a name or value of a megabyte: shown cut short
LONG_VALUES = [
    ({"x": {"dtype": LONG}}, b""),
    ({"x": entry(LONG)}, bytes(8)),
    ({"x": entry(shape=[LONG])}, bytes(8)),
    ({"x": entry(shape=[0] * 1_000_000, offsets=(0, 0))}, b""),     # too many axes for numpy
    ({"x": entry(offsets=[0, LONG])}, bytes(8)),
    ({LONG: entry(offsets=(0, 12))}, bytes(12)),
    ({LONG: entry(), "y": entry(offsets=(4, 12))}, bytes(12)),
    (b'{"' + LONG.encode() + b'": {}, "' + LONG.encode() + b'": {}}', b""),
]


@pytest.mark.parametrize("header, data", LONG_VALUES)
def test_an_error_shows_a_long_value_of_the_header_cut_short(tmp_path, header, data):
    path = raw_file(tmp_path / "long.safetensors", header, data)
    with pytest.raises(SafetensorsError) as error:
        load_file(path)
    assert "..." in str(error.value) and len(str(error.value)) < 500


def test_a_field_the_format_does_not_name_is_ignored_as_the_reference_ignores_it(tmp_path):
    path = raw_file(tmp_path / "extra.safetensors", {"x": {**entry(), "note": "hi"}},
                    np.arange(2, dtype="<f4").tobytes())
    assert_same(load_file(path), safetensors.numpy.load_file(path))


def test_null_metadata_is_none_as_the_reference_reads_it(tmp_path):
    path = raw_file(tmp_path / "null.safetensors", {"__metadata__": None, "x": entry()},
                    np.arange(2, dtype="<f4").tobytes())
    assert_same(load_file(path), safetensors.numpy.load_file(path))
    assert load_metadata(path) == {}


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(SafetensorsError, match="does not exist or is not a file"):
        load_file(tmp_path / "nothing.safetensors")


def test_a_link_to_nothing_is_named_as_one(tmp_path):
    # A shard of a snapshot copied out of the hub's cache without its links followed.
    (tmp_path / "model-00001-of-00002.safetensors").symlink_to("../../blobs/abc")
    with pytest.raises(SafetensorsError) as error:
        load_file(tmp_path / "model-00001-of-00002.safetensors")
    assert str(error.value).startswith(f"{str(tmp_path / 'model-00001-of-00002.safetensors')!r} "
                                       f"is a link to '../../blobs/abc', which does not exist "
                                       f"(or is a loop of links); mend the link, or ")


def test_a_directory_is_called_one_and_the_file_in_it_named(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    with pytest.raises(SafetensorsError) as refused:
        load_file(folder)
    assert str(refused.value) == (f"{folder} is a directory, not a safetensors file; give the "
                                  f"path of a .safetensors file")
    save_file({"x": np.ones(2, np.float32)}, folder / "model.safetensors")
    with pytest.raises(SafetensorsError) as refused:
        load_file(folder)
    file = str(folder / "model.safetensors")
    assert str(refused.value) == (f"{folder} is a directory, not a safetensors file; give the "
                                  f"file in it, {file!r}")
    assert list(load_file(file)) == ["x"]                 # the advice, taken
    save_file({"y": np.ones(2, np.float32)}, folder / "extra.safetensors")
    with pytest.raises(SafetensorsError, match="give one of the 2 files in it, such as "
                                               f"{re.escape(repr(file))}$"):
        load_metadata(folder)


def test_a_directory_without_a_safetensors_file_or_that_cannot_be_listed_names_none(
        tmp_path, monkeypatch):
    # A model's folder of other files (config.json) has no file to name; nor one that this
    # user may not list, which is said as a directory all the same, not as its listing's error.
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    none_named = (f"{folder} is a directory, not a safetensors file; give the path of a "
                  f".safetensors file")
    with pytest.raises(SafetensorsError) as refused:
        load_file(folder)
    assert str(refused.value) == none_named
    save_file({"x": np.ones(2, np.float32)}, folder / "model.safetensors")

    def not_listable(path):
        raise PermissionError(13, "Permission denied", path)
    monkeypatch.setattr("os.listdir", not_listable)
    with pytest.raises(SafetensorsError) as refused:
        load_file(folder)
    assert str(refused.value) == none_named


def test_a_header_that_claims_more_than_the_file_holds(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes((1000).to_bytes(8, "little") + b"{}")
    with pytest.raises(SafetensorsError, match="header's length is 1000 bytes, but the file "
                                               "has 2 after it"):
        load_file(path)
    path.write_bytes((3).to_bytes(8, "little") + b"{}")     # one byte short, as the reference sees
    with pytest.raises(SafetensorsError, match="header's length is 3 bytes, but the file has 2"):
        load_file(path)
    path.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    with pytest.raises(SafetensorsError, match="a header of 1000000000000 bytes, more than"):
        load_file(path)


def test_a_git_lfs_pointer_is_named_as_one(tmp_path):
    # What `git clone` of a model's repository leaves without git-lfs: its first 8 bytes read
    # as a header's length are absurd, so the file was refused as corrupt, with no way out.
    path = tmp_path / "model.safetensors"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:4c2d\nsize 12\n")
    with pytest.raises(SafetensorsError, match="is a Git LFS pointer.*git lfs pull"):
        load_file(path)
    with pytest.raises(SafetensorsError, match="is a Git LFS pointer"):
        load_metadata(path)
