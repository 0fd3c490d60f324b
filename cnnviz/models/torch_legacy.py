"""Read PyTorch's legacy (non-zip) ``.pth`` state dicts without torch.

The legacy format is a few pickles in a row — magic number, protocol version,
system info, the state dict (whose tensors reference storages by key), and the
list of storage keys — followed, for each storage, by an int64 element count
and its raw little-endian bytes.

Files are never unpickled blindly: :class:`_RestrictedUnpickler` resolves only
the handful of globals a state dict needs and refuses everything else, so a
tampered file that names e.g. ``os.system`` raises :class:`UnsafeWeightsError`.
"""

from __future__ import annotations

import collections
import math
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_SUPPORTED_PROTOCOL = 1001

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class UnsafeWeightsError(ValueError):
    """The weights file asks for something a plain state dict never needs."""


class WeightsFormatError(ValueError):
    """The file is not a readable legacy PyTorch state dict."""


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype


@dataclass
class _Storage:
    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self) -> np.ndarray:
        """A copy of the view, after checking it lies inside its storage.

        Every check uses Python integers (no overflow), and only non-negative
        sizes, strides and offsets are accepted: ``torch.save`` never writes
        others, and ``as_strided`` trusts whatever it is given.
        """
        data = self.storage.data
        if data is None:
            raise WeightsFormatError(f"storage {self.storage.key} has no data")
        key = self.storage.key
        if self.offset < 0 or any(n < 0 for n in self.size) or any(s < 0 for s in self.stride):
            raise WeightsFormatError(f"tensor view of storage {key} has a negative offset, size or stride")
        if len(self.stride) != len(self.size):
            raise WeightsFormatError(f"tensor view of storage {key}: {len(self.size)} sizes but {len(self.stride)} strides")
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, dtype=data.dtype)
        if math.prod(self.size) > data.size:  # only an expanded (stride-0) view could; a state dict has none
            raise WeightsFormatError(f"tensor view of storage {key} has more elements than its storage")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if last >= data.size:
            raise WeightsFormatError(f"tensor view exceeds storage {key}")
        if not self.size:
            return np.array(data[self.offset], dtype=data.dtype)
        itemsize = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :],
            shape=self.size,
            strides=tuple(s * itemsize for s in self.stride),
            writeable=False,
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise WeightsFormatError("tensor does not point at a storage")
    def ints(values) -> tuple[int, ...]:
        if not isinstance(values, (tuple, list)) or not all(type(v) is int for v in values):
            raise WeightsFormatError("tensor size and stride must be tuples of integers")
        return tuple(values)

    if type(storage_offset) is not int:
        raise WeightsFormatError("tensor storage offset must be an integer")
    return _TensorRef(storage, storage_offset, ints(size), ints(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, storages: dict[str, _Storage]):
        super().__init__(file, encoding="utf-8")
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise UnsafeWeightsError(f"refusing to load global {module}.{name} from a weights file")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise WeightsFormatError(f"unexpected persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType):
            raise WeightsFormatError("storage of unknown type")
        if view_metadata is not None:
            raise WeightsFormatError("storage views are not supported")
        key = str(key)
        if key not in self._storages:
            self._storages[key] = _Storage(key, storage_type.dtype, int(numel))
        return self._storages[key]


def _load_plain(f: BinaryIO) -> Any:
    """Unpickle a header value that may only contain plain Python data."""
    return _RestrictedUnpickler(f, {}).load()


def _resolve(obj: Any) -> Any:
    if isinstance(obj, _TensorRef):
        return obj.materialize()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _resolve(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def load_legacy_state_dict(path: str | Path) -> "collections.OrderedDict[str, np.ndarray]":
    """Return the tensors of a legacy PyTorch ``.pth`` file as numpy arrays.

    Raises :class:`UnsafeWeightsError` for a file that names any global outside
    the state-dict allow-list, :class:`WeightsFormatError` for anything else
    that is not a legacy state dict.
    """
    path = Path(path)
    storages: dict[str, _Storage] = {}
    with open(path, "rb") as f:
        if f.read(2)[:1] != b"\x80":
            raise WeightsFormatError(f"{path.name}: not a legacy PyTorch file (zip-format files are not supported)")
        f.seek(0)
        try:
            if _load_plain(f) != LEGACY_MAGIC:
                raise WeightsFormatError(f"{path.name}: bad magic number")
            if _load_plain(f) != _SUPPORTED_PROTOCOL:
                raise WeightsFormatError(f"{path.name}: unsupported protocol version")
            sys_info = _load_plain(f)
            if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
                raise WeightsFormatError(f"{path.name}: big-endian files are not supported")
            state = _RestrictedUnpickler(f, storages).load()
            keys = _load_plain(f)
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, struct.error) as exc:
            raise WeightsFormatError(f"{path.name}: corrupt pickle stream ({exc})") from exc
        if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
            raise WeightsFormatError(f"{path.name}: storage key list does not match the tensors")
        for key in map(str, keys):
            storage = storages[key]
            header = f.read(8)
            if len(header) != 8:
                raise WeightsFormatError(f"{path.name}: truncated before storage {key}")
            (numel,) = struct.unpack("<q", header)
            if numel < 0 or numel != storage.numel:
                raise WeightsFormatError(f"{path.name}: storage {key} size mismatch")
            nbytes = numel * storage.dtype.itemsize
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise WeightsFormatError(f"{path.name}: truncated storage {key}")
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    if not isinstance(state, dict):
        raise WeightsFormatError(f"{path.name}: top-level object is not a state dict")
    return _resolve(state)
