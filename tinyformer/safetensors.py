"""Safetensors, the file format Hugging Face shares models in, read and written with numpy.

A .safetensors file has three parts:

    8 bytes    N, the length of the header: an unsigned 64-bit integer, little-endian
    N bytes    the header, UTF-8 JSON, padded with spaces to a multiple of 8 bytes:
                 {"__metadata__": {"format": "pt"},                    optional, str -> str
                  "wte.weight": {"dtype": "F32", "shape": [50257, 768],
                                 "data_offsets": [0, 154389504]},
                  ...}
    the rest   the tensors' raw bytes: little-endian, C order (row after row), back to back.
               A tensor's data_offsets [begin, end) count from the end of the header.

That is the whole format. Reading it runs no code: the header is JSON and the rest is numbers,
where a PyTorch `.bin` is a pickle, and unpickling a file can run any code the file names.

The reference writer (the `safetensors` package) puts the tensors with the largest items
first (8-byte, then 4, 2, 1), by dtype then name, and pads the header to a multiple of 8:
every tensor then starts at a multiple of its item size, so it can be used in place. This one
writes the same bytes, except that several metadata entries come in sorted order (the
reference's order is a hash table's, different from run to run).

bfloat16 (BF16) has no numpy dtype; it is float32 with the low 16 bits of the mantissa cut off,
so `load_file` returns BF16 tensors as float32, exactly, by shifting each 16-bit pattern into
the high half of a 32-bit one. float16 stays float16.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from .files import StrPath, atomic_write, broken_link, shown
from .schema import BadInput

# The dtypes, in the order of the reference's own list (its Rust enum), which sets the order of
# the tensors in a file it writes: later in this list, earlier in the file.
DTYPES = {"BOOL": np.dtype(bool), "U8": np.dtype("u1"), "I8": np.dtype("i1"),
          "I16": np.dtype("<i2"), "U16": np.dtype("<u2"), "F16": np.dtype("<f2"),
          "BF16": np.dtype("<u2"),          # read as 16-bit patterns, then made float32
          "I32": np.dtype("<i4"), "U32": np.dtype("<u4"), "F32": np.dtype("<f4"),
          "F64": np.dtype("<f8"), "I64": np.dtype("<i8"), "U64": np.dtype("<u8")}
# The format's other dtypes (8-bit and smaller floats, complex numbers): a file of them is
# valid, but numpy has no such dtype, and no checkpoint this package reads holds them.
UNREAD = ("F4", "F6_E2M3", "F6_E3M2", "F8_E5M2", "F8_E4M3", "F8_E8M0", "C64")
RANK = {name: i for i, name in enumerate(DTYPES)}
NAMES = {dtype: name for name, dtype in DTYPES.items() if name != "BF16"}   # numpy -> "F32"
MAX_HEADER = 100_000_000     # the reference's limit too: a larger "header" is a corrupt file
# How a Git LFS pointer starts: the small text file a `git clone` of a model's repository
# leaves in place of each large file when git-lfs is not installed.
LFS_POINTER = b"version https://git-lfs"


class SafetensorsError(BadInput):
    """A file that is not valid safetensors (or holds a dtype not read here), or arrays that
    cannot be saved as one; the message names the file and what is wrong, in one line."""


def save_file(arrays: Mapping[str, ArrayLike], path: StrPath,
              metadata: dict[str, str] | None = None) -> None:
    """Write `arrays` (name -> numpy array) to `path` in the safetensors format, atomically.

    `metadata`, if given, is a dict of strings to strings (transformers wants {"format": "pt"}).
    Arrays of any memory layout are written in C order, little-endian."""
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise SafetensorsError(f"{path}: metadata must be a dict of str to str, got {metadata!r}")
    tensors = {}
    for name, array in arrays.items():
        array = np.asarray(array)
        if not isinstance(name, str) or name == "__metadata__":
            raise SafetensorsError(f"{path}: {name!r} cannot be a tensor's name")
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder != "|" else array.dtype
        if dtype not in NAMES:
            raise SafetensorsError(f"{path}: tensor {name!r} has dtype {array.dtype}, which "
                                   f"safetensors cannot hold; convert it, e.g. to float32")
        # C order, little-endian (np.ascontiguousarray would make a 0-d array 1-d)
        tensors[name] = np.asarray(array, dtype=dtype, order="C")
    # Largest items first, then by name: see the module's docstring.
    order = sorted(tensors, key=lambda name: (-RANK[NAMES[tensors[name].dtype]], name))
    # {} is written as the reference writes it, None not at all
    header = {"__metadata__": dict(sorted(metadata.items()))} if metadata is not None else {}
    offset = 0
    for name in order:
        array = tensors[name]
        header[name] = {"dtype": NAMES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)                   # pad: the data starts 8-byte aligned
    with atomic_write(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for name in order:
            f.write(tensors[name].data)               # the array's own bytes, no copy


def load_file(path: StrPath) -> dict[str, np.ndarray]:
    """name -> numpy array from a safetensors file (BF16 as float32); the metadata is skipped
    (`load_metadata` reads it). Every part is checked: SafetensorsError, one line, if wrong."""
    header, data = _read(path)
    arrays = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = DTYPES[entry["dtype"]]
        try:
            array = data[begin:end].view(dtype).reshape(entry["shape"])
        except ValueError as e:   # more than 64 axes, or an axis longer than numpy's limit
            raise _invalid(path, f"tensor {shown(name)} has shape {shown(entry['shape'])}, "
                                 f"which no numpy array can have ({e})") from None
        if entry["dtype"] == "BF16":                  # the high half of a float32's bits
            array = (array.astype(np.uint32) << 16).view(np.float32)
        arrays[name] = array
    return arrays


def load_metadata(path: StrPath) -> dict[str, str]:
    """The file's "__metadata__" dict (str -> str), {} if it has none."""
    with _open(path) as f:
        return _parse_header(path, f, os.fstat(f.fileno()).st_size)[1]


def lfs_pointer_message(path: StrPath) -> str:
    """What to say of a Git LFS pointer found where a model's file should be (a model page's
    large files, its tokenizer.json too, are kept in LFS)."""
    return (f"{path} is a Git LFS pointer, not the file itself (a clone without git-lfs leaves "
            f"one); fetch the file: `git lfs pull` in the clone, or download it from the "
            f"model's page")


def _invalid(path, what):
    """The error for a file that breaks the format."""
    return SafetensorsError(f"{path} is not a valid safetensors file: {what}")


def _open(path):
    if os.path.isdir(path):
        raise SafetensorsError(_directory_advice(path))
    if not os.path.isfile(path):
        raise SafetensorsError(broken_link(path) or f"{path} does not exist or is not a file")
    try:
        return open(path, "rb")
    except OSError as e:
        raise SafetensorsError(f"{path} cannot be read ({e.strerror})") from None


def _directory_advice(directory):
    """The one line for a directory given where a safetensors file goes: the file to give
    instead, where it holds one (a model's folder: its model.safetensors, or its first shard)."""
    directory = os.fspath(directory)
    try:
        inside = sorted(name for name in os.listdir(directory) if name.endswith(".safetensors"))
    except OSError:                                   # a folder one may not list
        inside = []
    if not inside:
        return (f"{directory} is a directory, not a safetensors file; give the path of a "
                f".safetensors file")
    first = os.path.join(directory, "model.safetensors" if "model.safetensors" in inside
                         else inside[0])
    which = (f"the file in it, {first!r}" if len(inside) == 1 else
             f"one of the {len(inside)} files in it, such as {first!r}")
    return f"{directory} is a directory, not a safetensors file; give {which}"


def _read(path):
    """(header without its metadata, the data bytes as a uint8 array), both checked."""
    with _open(path) as f:
        size = os.fstat(f.fileno()).st_size
        header, _ = _parse_header(path, f, size)
        data = np.fromfile(f, dtype=np.uint8)         # everything after the header, writable
    _check_layout(path, header, len(data))
    return header, data


def _parse_header(path, f, size):
    """Read and check the header from the open file f: ({name: entry}, metadata)."""
    if size < 8:
        raise _invalid(path, f"{size} bytes, fewer than the 8 that give the header's length")
    start = f.read(8)
    if start == LFS_POINTER[:8] and f.read(len(LFS_POINTER) - 8) == LFS_POINTER[8:]:
        raise SafetensorsError(lfs_pointer_message(path))
    n = int.from_bytes(start, "little")
    if n > MAX_HEADER:
        raise _invalid(path, f"a header of {n} bytes, more than the {MAX_HEADER} allowed")
    if n > size - 8:
        raise _invalid(path, f"the header's length is {n} bytes, but the file has {size - 8} "
                            f"after it")
    try:
        header = json.loads(f.read(n).decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        raise _invalid(path, f"the header is not JSON ({e})") from None
    except RecursionError:                              # e.g. [[[[...: nested beyond reason
        raise _invalid(path, "the header's JSON is nested too deeply") from None
    if not isinstance(header, dict):
        raise _invalid(path, "the header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is None:          # left out, or null: the reference reads both as no metadata
        metadata = {}
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise _invalid(path, "__metadata__ is not an object of strings")
    for name, entry in header.items():
        # Fields besides these three are ignored, as the reference reader ignores them.
        if not (isinstance(entry, dict) and {"dtype", "shape", "data_offsets"} <= set(entry)):
            raise _invalid(path, f"tensor {shown(name)} needs dtype, shape and data_offsets, "
                                f"got {shown(entry)}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype in UNREAD:
            raise SafetensorsError(f"{path}: tensor {shown(name)} has dtype {dtype}, which "
                                   f"tinyformer does not read (it reads {', '.join(DTYPES)})")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise _invalid(path, f"tensor {shown(name)} has dtype {shown(dtype)}, not one of "
                                f"{', '.join(DTYPES)}")
        if not (isinstance(shape, list) and all(_is_count(d) for d in shape)):
            raise _invalid(path, f"tensor {shown(name)} has shape {shown(shape)}, not a list "
                                f"of whole numbers >= 0")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))
                and offsets[0] <= offsets[1]):
            raise _invalid(path, f"tensor {shown(name)} has data_offsets {shown(offsets)}, "
                                f"not [begin, end] with 0 <= begin <= end")
        expected = int(np.prod(shape, dtype=object)) * DTYPES[dtype].itemsize
        if offsets[1] - offsets[0] != expected:
            raise _invalid(path, f"tensor {shown(name)} has {offsets[1] - offsets[0]} bytes, "
                                f"but shape {shown(shape)} of {dtype} needs {expected}")
    return header, metadata


def _check_layout(path, header, data_size):
    """The tensors must tile the data exactly: no overlap, no gap, nothing past the end (as
    the reference requires), so every byte of the file belongs to exactly one tensor."""
    position, previous = 0, None
    for name in sorted(header, key=lambda name: header[name]["data_offsets"]):
        begin, end = header[name]["data_offsets"]
        if end > data_size:
            raise _invalid(path, f"tensor {shown(name)} ends at byte {end} of the data, which "
                                f"has {data_size} (truncated file?)")
        if begin < position:
            raise _invalid(path, f"tensors {shown(previous)} and {shown(name)} overlap")
        if begin > position:
            raise _invalid(path, f"data bytes {position}..{begin} belong to no tensor")
        position, previous = end, name
    if position != data_size:
        raise _invalid(path, f"{data_size - position} bytes after the last tensor belong to no "
                            f"tensor")


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _no_duplicates(pairs):
    """json.loads would keep the last of two entries with one name: refuse such a header."""
    header = {}
    for name, value in pairs:
        if name in header:
            raise ValueError(f"the name {shown(name)} appears twice")
        header[name] = value
    return header
