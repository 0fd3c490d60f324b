import collections
import io
import pickle
import struct
import sys
import types

import numpy as np
import pytest

from cnnviz.models.registry import get_model_spec
from cnnviz.models.torch_legacy import (LEGACY_MAGIC, UnsafeWeightsError, WeightsFormatError,
                                        load_legacy_state_dict)
from cnnviz.models.weights import packaged_weights_path


def _fake_torch(monkeypatch):
    """A stand-in 'torch' module so the stdlib pickler can name torch globals."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while pickling")

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2, torch._utils = FloatStorage, _rebuild_tensor_v2, utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch, utils


def write_legacy(path, tensors: dict[str, np.ndarray], monkeypatch, views: dict | None = None, numel: int | None = None):
    """Write tensors in PyTorch's legacy format without torch (one storage each).

    ``views`` maps a tensor name to a crafted ``(offset, size, stride)``; ``numel``
    replaces every storage's declared element count (hostile files).
    """
    views = views or {}
    torch, utils = _fake_torch(monkeypatch)

    class Tensor:
        def __init__(self, name, key, arr):
            self.name, self.key, self.arr = name, key, arr

        def __reduce__(self):
            offset, size, stride = views.get(self.name, (0, self.arr.shape, tuple(s // 4 for s in self.arr.strides)))
            storage = ("storage", self.key)
            return (utils._rebuild_tensor_v2, (storage, offset, size, stride, False, collections.OrderedDict()))

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == "storage":
                count = tensors_by_key[obj[1]].size if numel is None else numel
                return ("storage", torch.FloatStorage, obj[1], "cpu", count, None)
            return None

    tensors_by_key = {str(i): np.ascontiguousarray(v, np.float32) for i, v in enumerate(tensors.values())}
    state = collections.OrderedDict((k, Tensor(k, str(i), tensors_by_key[str(i)])) for i, k in enumerate(tensors))
    buf = io.BytesIO()
    for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, buf, protocol=2)
    P(buf, protocol=2).dump(state)
    pickle.dump(list(tensors_by_key), buf, protocol=2)
    for arr in tensors_by_key.values():
        buf.write(struct.pack("<q", arr.size if numel is None else numel))
        buf.write(arr.astype("<f4").tobytes())
    path.write_bytes(buf.getvalue())
    return path


def test_round_trip_of_a_handwritten_file(tmp_path, monkeypatch):
    tensors = {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), "bn.bias": np.array([1.5, -2.0], np.float32)}
    path = write_legacy(tmp_path / "w.pth", tensors, monkeypatch)
    monkeypatch.delitem(sys.modules, "torch")
    loaded = load_legacy_state_dict(path)
    assert list(loaded) == list(tensors)
    for k in tensors:
        np.testing.assert_array_equal(loaded[k], tensors[k])


@pytest.mark.parametrize("view, why", [
    ((0, (4,), (-1,)), "negative"),  # read floats before the buffer; crashed Python before
    ((0, (2, 2), (-4, 1)), "negative"),
    ((-3, (2,), (1,)), "negative"),
    ((2**62, (2,), (1,)), "exceeds"),  # offset overflowing int64 once scaled
    ((0, (2, 2), (2**62, 2**62)), "exceeds"),  # stride products overflow int64
    ((0, (2**40,), (0,)), "more elements"),  # stride 0 would expand to terabytes
    ((0, (4, 4), (4,)), "strides"),
    ((0, (4,), (1.5,)), "integers"),
])
def test_crafted_views_are_refused(tmp_path, monkeypatch, view, why):
    """Hostile offsets/sizes/strides are format errors, never out-of-bounds reads (checked on the fixed reader only)."""
    path = write_legacy(tmp_path / "w.pth", {"a": np.arange(16, dtype=np.float32)}, monkeypatch, views={"a": view})
    monkeypatch.delitem(sys.modules, "torch")
    with pytest.raises(WeightsFormatError, match=why):
        load_legacy_state_dict(path)


def test_negative_storage_size_is_refused(tmp_path, monkeypatch):
    path = write_legacy(tmp_path / "w.pth", {"a": np.ones(4, np.float32)}, monkeypatch, numel=-1)
    monkeypatch.delitem(sys.modules, "torch")
    with pytest.raises(WeightsFormatError, match="size mismatch"):
        load_legacy_state_dict(path)


def test_legal_strided_views_still_load(tmp_path, monkeypatch):
    """A transposed view and a view at an offset (as torch writes them) read the right numbers."""
    base = np.arange(16, dtype=np.float32)
    views = {"t": (0, (4, 4), (1, 4)), "tail": (10, (2, 3), (3, 1)), "empty": (0, (0, 3), (3, 1))}
    path = write_legacy(tmp_path / "w.pth", {k: base for k in views}, monkeypatch, views=views)
    monkeypatch.delitem(sys.modules, "torch")
    sd = load_legacy_state_dict(path)
    np.testing.assert_array_equal(sd["t"], base.reshape(4, 4).T)
    np.testing.assert_array_equal(sd["tail"], base[10:16].reshape(2, 3))
    assert sd["empty"].shape == (0, 3)


def test_truncated_file_is_a_format_error(tmp_path, monkeypatch):
    path = write_legacy(tmp_path / "w.pth", {"a": np.ones((4, 4), np.float32)}, monkeypatch)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(WeightsFormatError, match="truncated"):
        load_legacy_state_dict(path)


def test_malicious_global_is_refused(tmp_path):
    buf = io.BytesIO()
    for header in (LEGACY_MAGIC, 1001, {"little_endian": True}):
        pickle.dump(header, buf, protocol=2)
    buf.write(b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.")
    path = tmp_path / "evil.pth"
    path.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeWeightsError, match="os.system"):
        load_legacy_state_dict(path)


def test_malicious_header_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    path.write_bytes(b"\x80\x02cbuiltins\neval\nq\x00X\x04\x00\x00\x001+1q\x01\x85q\x02Rq\x03.")
    with pytest.raises(UnsafeWeightsError):
        load_legacy_state_dict(path)


def test_zip_format_is_refused_clearly(tmp_path):
    path = tmp_path / "new.pth"
    path.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(WeightsFormatError, match="zip-format"):
        load_legacy_state_dict(path)


def test_real_efficientnet_lite0_file():
    path = packaged_weights_path(get_model_spec("efficientnet_lite0"))
    sd = load_legacy_state_dict(path)
    assert len(sd) == 296
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280)
    assert sd["_bn0.num_batches_tracked"].dtype == np.int64
    assert all(np.isfinite(v).all() for v in sd.values() if v.dtype.kind == "f")
