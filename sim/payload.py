"""Pack and unpack stream payloads as integers, batch-wise, from the same Amaranth layouts as the RTL.

A layout is flattened into *groups*: every leaf field reached through the same chain of struct
names (array indices dropped) forms one group, addressed by its dotted path (``"ucodes"``,
``"a.elements.magnitude"``). A group's values are an integer array ``(N, *array_dims)``, array
indices in order, outermost first. No offset or width is typed here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["PayloadCodec"]

#: Fields wider than this are packed through Python integers (object arrays) instead of int64.
WIDE_BITS = 62


@dataclass(frozen=True)
class _Group:
    path: str
    width: int
    dims: tuple[int, ...]
    offsets: np.ndarray  # (count,) bit offset of each leaf, array indices in C order


def _walk(layout, offset: int, path: tuple[str, ...], out: dict) -> None:
    """Collect ``{dotted path: {"width", "offsets"}}`` for every leaf, in C order of array indices."""
    if isinstance(layout, data.StructLayout):
        for name, field in layout:
            _walk(field.shape, offset + field.offset, (*path, name), out)
    elif isinstance(layout, data.ArrayLayout):
        elem = layout.elem_shape
        size = elem.size if isinstance(elem, data.Layout) else Shape.cast(elem).width
        for k in range(layout.length):
            _walk(elem, offset + k * size, path, out)
    else:
        entry = out.setdefault(".".join(path), {"width": Shape.cast(layout).width, "offsets": []})
        entry["offsets"].append(offset)


class PayloadCodec:
    """Batch conversion between ``{group path: int array}`` and payload integers for one layout."""

    def __init__(self, layout) -> None:
        self.size = layout.size if isinstance(layout, data.Layout) else Shape.cast(layout).width
        raw: dict = {}
        _walk(layout, 0, (), raw)
        self.groups = {}
        for key, entry in raw.items():
            offsets = np.array(entry["offsets"], dtype=np.int64)
            dims = _dims_of(layout, key.split(".") if key else [])
            self.groups[key] = _Group(key, entry["width"], dims, offsets)

    def pack(self, values: dict[str, np.ndarray]) -> list[int]:
        """Payload integers, one per row of the (equally long) arrays in ``values``."""
        missing = set(self.groups) - set(values)
        if missing:
            raise KeyError(f"payload fields missing: {sorted(missing)}")
        n = len(next(iter(values.values())))
        bits = np.zeros((n, self.size), dtype=np.uint8)
        for key, group in self.groups.items():
            wide = group.width > WIDE_BITS  # beyond int64 (a 64-dialect mask): Python integers
            arr = np.asarray(values[key], dtype=object if wide else np.int64).reshape(n, -1)
            if arr.shape[1] != len(group.offsets):
                raise ValueError(f"field {key!r} needs {len(group.offsets)} values per row, got {arr.shape[1]}")
            if (arr < 0).any() or (arr >> group.width).any():
                raise ValueError(f"field {key!r} holds a value that does not fit {group.width} bits")
            if wide:
                leaf_bits = np.array([[(int(v) >> b) & 1 for b in range(group.width)] for v in arr.ravel()],
                                     dtype=np.uint8).reshape(n, -1, group.width)  # fmt: skip
            else:
                leaf_bits = (arr[:, :, None] >> np.arange(group.width)) & 1
            cols = group.offsets[:, None] + np.arange(group.width)
            bits[:, cols.ravel()] = leaf_bits.reshape(n, -1)
        packed = np.packbits(bits, axis=1, bitorder="little")
        return [int.from_bytes(row.tobytes(), "little") for row in packed]

    def unpack(self, payloads: list[int]) -> dict[str, np.ndarray]:
        """Inverse of ``pack``: ``{group path: int64 array (N, *dims)}``."""
        n = len(payloads)
        nbytes = (self.size + 7) // 8
        raw = np.frombuffer(b"".join(int(p).to_bytes(nbytes, "little") for p in payloads), dtype=np.uint8)
        bits = np.unpackbits(raw.reshape(n, nbytes), axis=1, bitorder="little").astype(np.int64)
        out = {}
        for key, group in self.groups.items():
            cols = group.offsets[:, None] + np.arange(group.width)
            leaf_bits = bits[:, cols.ravel()].reshape(n, len(group.offsets), group.width)
            if group.width > WIDE_BITS:
                weights = np.array([1 << b for b in range(group.width)], dtype=object)
                leaf = (leaf_bits.astype(object) * weights).sum(-1)
            else:
                leaf = (leaf_bits << np.arange(group.width)).sum(-1)
            out[key] = leaf.reshape(n, *group.dims)
        return out


def _dims_of(layout, path: list[str]) -> tuple[int, ...]:
    """Array dimensions met on the way to the leaves named by ``path``."""
    dims = []
    shape = layout
    names = list(path)
    while True:
        if isinstance(shape, data.ArrayLayout):
            dims.append(shape.length)
            shape = shape.elem_shape
        elif isinstance(shape, data.StructLayout) and names:
            shape = shape[names.pop(0)].shape
        else:
            return tuple(dims)
