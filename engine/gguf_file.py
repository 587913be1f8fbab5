"""Read a GGUF file: metadata, tensor directory, and memory-mapped tensor data (never copied).

Format: the GGUF spec (ggml `docs/gguf.md`): magic ``GGUF``, uint32 version (2 or 3), uint64 tensor
count, uint64 metadata count, the metadata key/value pairs, the tensor infos (name, n_dims, dims
ne[0..n_dims), ggml type, offset relative to the aligned data section), then the tensor data.

The type ids, value-type ids and block sizes come from the ``gguf`` package (``gguf.GGUFValueType``,
``gguf.GGMLQuantizationType``, ``gguf.GGML_QUANT_SIZES``). The header itself is walked here rather than
with ``gguf.GGUFReader`` because that reader builds one numpy view per array element: on Gemma 3's
262,144-token vocabulary it took 18 s on the development machine, against about 0.2 s here.
``tests/test_gguf_file.py`` checks this parser against ``gguf.GGUFReader`` on both starter models.

Every problem raises :class:`GGUFError` with one message naming the file and the problem.
"""
from __future__ import annotations

import math
import mmap
import operator
import struct
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from .errors import FiresideError
from .page_cache import HugePages, pmd_mapped_bytes, use_huge_pages

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
# Sanity bounds so a corrupt count fails fast instead of looping for minutes.
_MAX_COUNT = 1 << 24
_MAX_DIMS = 4
_MAX_ALIGNMENT = 1 << 20
_MAX_ELEMENTS = 1 << 48  # elements of one tensor: 256 TB of F8 data, far past any file

# numpy dtypes of the scalar value types, little-endian (GGUF spec).
_SCALAR_FORMATS: dict[int, str] = {
    gguf.GGUFValueType.UINT8: "<u1",
    gguf.GGUFValueType.INT8: "<i1",
    gguf.GGUFValueType.UINT16: "<u2",
    gguf.GGUFValueType.INT16: "<i2",
    gguf.GGUFValueType.UINT32: "<u4",
    gguf.GGUFValueType.INT32: "<i4",
    gguf.GGUFValueType.FLOAT32: "<f4",
    gguf.GGUFValueType.BOOL: "<u1",
    gguf.GGUFValueType.UINT64: "<u8",
    gguf.GGUFValueType.INT64: "<i8",
    gguf.GGUFValueType.FLOAT64: "<f8",
}


class GGUFError(FiresideError, ValueError):
    """A file is not a usable GGUF model; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class StringArray(Sequence):
    """A GGUF array of strings kept as one UTF-8 buffer and an offset table, not as Python ``str``s.

    As a list, Gemma 3's 262,144-token vocabulary costs some 25 MB of ``str`` objects and 0.3 s to
    parse; this way about 4.5 MB (2.3 MB of text, an int64 per string) and well under 0.1 s.
    It reads like a read-only list: ``len``, indexing (an element is decoded when asked for; a slice
    gives a ``list[str]``), iteration, ``in``, and ``==`` with any sequence of strings (equal to a list
    holding the same strings). :meth:`tolist` gives a real list; :attr:`offsets` the table.
    """

    __slots__ = ("_data", "_offsets")

    def __init__(self, data: bytes, offsets: array):
        """``data``: the strings' UTF-8 bytes back to back; ``offsets``: ``array('q')`` of
        ``len + 1`` byte offsets into it (string ``i`` is ``data[offsets[i]:offsets[i + 1]]``)."""
        self._data = data
        self._offsets = offsets

    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> "StringArray":
        """A :class:`StringArray` holding ``strings``."""
        encoded = [s.encode("utf-8") for s in strings]
        offsets = array("q", [0]) * (len(encoded) + 1)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)),
                  out=np.frombuffer(offsets, dtype=np.int64)[1:])
        return cls(b"".join(encoded), offsets)

    @property
    def data(self) -> bytes:
        """All the strings' UTF-8 bytes, back to back."""
        return self._data

    @property
    def offsets(self) -> np.ndarray:
        """int64 array of ``len + 1`` byte offsets into :attr:`data` (read-only view)."""
        view = np.frombuffer(self._offsets, dtype=np.int64)
        view.flags.writeable = False
        return view

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = operator.index(index)
        n = len(self._offsets) - 1
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("StringArray index out of range")
        return self._data[self._offsets[i]:self._offsets[i + 1]].decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        data, offsets = self._data, self._offsets
        for i in range(len(offsets) - 1):
            yield data[offsets[i]:offsets[i + 1]].decode("utf-8")

    def tolist(self) -> list[str]:
        """The strings as a ``list[str]``."""
        data, offsets = self._data, self._offsets.tolist()
        return [data[s:e].decode("utf-8") for s, e in zip(offsets[:-1], offsets[1:])]

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        raw = value.encode("utf-8")
        starts = self.offsets
        same_length = np.nonzero(np.diff(starts) == len(raw))[0]
        data = self._data
        return any(data[s:s + len(raw)] == raw for s in starts[same_length].tolist())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StringArray):
            return self._offsets == other._offsets and self._data == other._data
        if isinstance(other, (str, bytes)) or not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # mutable-looking like a list: unhashable

    def __repr__(self) -> str:
        head = ", ".join(repr(s) for s in self[:3])
        return f"StringArray([{head}{', ...' if len(self) > 3 else ''}], len={len(self)})"


#: GGML type ids llama.cpp has removed, with their old names (ggml.h keeps the ids reserved): Q4_2 and
#: Q4_3 (2023), and the ARM / AVX interleaved layouts Q4_0_4_4, Q4_0_4_8, Q4_0_8_8 and IQ4_NL_4_4,
#: IQ4_NL_4_8, IQ4_NL_8_8, which llama.cpp now makes at load time from plain Q4_0 / IQ4_NL (its
#: CPU "repack" buffers) instead of storing them in files.
REMOVED_GGML_TYPES = {
    4: "Q4_2", 5: "Q4_3", 31: "Q4_0_4_4", 32: "Q4_0_4_8", 33: "Q4_0_8_8",
    36: "IQ4_NL_4_4", 37: "IQ4_NL_4_8", 38: "IQ4_NL_8_8",
}


def ggml_type_name(ggml_type: int) -> str:
    """Return the GGML name of a type id (``12`` -> ``"Q4_K"``), or ``"type <id>"`` if unknown."""
    try:
        return gguf.GGMLQuantizationType(ggml_type).name
    except ValueError:
        return f"type {ggml_type}"


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's directory entry and its memory-mapped bytes.

    Attributes:
        name: GGUF tensor name, e.g. ``blk.0.attn_q.weight``.
        ne: ggml dimensions, innermost first (``ne[0]`` is the row length).
        ggml_type: GGML type id (see ``gguf.GGMLQuantizationType``).
        offset: absolute byte offset of the data in the file.
        n_bytes: size of the data in bytes.
        data: uint8 view of the data, shape ``(n_rows, row_bytes)``, read-only, backed by the mmap.
    """

    name: str
    ne: tuple[int, ...]
    ggml_type: int
    offset: int
    n_bytes: int
    data: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        """Logical shape in numpy order (outermost first), e.g. ``(n_out, n_in)`` for a weight."""
        return tuple(reversed(self.ne))

    @property
    def type_name(self) -> str:
        """GGML type name, e.g. ``"Q4_K"``."""
        return ggml_type_name(self.ggml_type)

    @property
    def n_elements(self) -> int:
        """Number of scalar elements."""
        return math.prod(self.ne)


class _Cursor:
    """Bounds-checked little-endian reader over the mapped file."""

    def __init__(self, buf: memoryview, path: Path):
        self.buf = buf
        self.pos = 0
        self.path = path

    def need(self, n: int, what: str) -> None:
        if self.pos + n > len(self.buf):
            raise GGUFError(self.path, f"file is truncated (ends while reading {what} at byte {self.pos})")

    def unpack(self, fmt: str, what: str) -> Any:
        size = struct.calcsize(fmt)
        self.need(size, what)
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += size
        return value

    def string(self, what: str) -> str:
        n = self.unpack("<Q", what)
        self.need(n, what)
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise GGUFError(self.path, f"{what} is not valid UTF-8 (byte {self.pos - n + exc.start})") from None


class GGUFFile:
    """A GGUF file opened read-only and memory-mapped.

    Loading reads only the header; tensor bytes stay in the page cache and are viewed, never copied
    or dequantized (weights are read by the kernels straight from the mapping).

    Attributes:
        path: the file's path.
        version: GGUF version (2 or 3).
        metadata: key -> value. Scalars are Python ``int``/``float``/``bool``/``str``; arrays of
            strings are :class:`StringArray` (a compact read-only sequence of ``str``, equal to the
            list of its strings; ``.tolist()`` gives the list); numeric arrays are 1-D numpy arrays
            (views of the mapping).
        tensors: name -> :class:`TensorInfo`, in file order. Empty for vocab-only files.
        file_size: size in bytes.

    Raises:
        GGUFError: not a GGUF file, unsupported version, truncated or corrupt header, tensor data past
            the end of the file, inconsistent tensor sizes, unknown tensor type.
        OSError: the file cannot be opened.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.huge_pages: HugePages | None = None  # what use_huge_pages found, once called
        with open(self.path, "rb") as f:
            self.file_size = f.seek(0, 2)
            if self.file_size < 4:
                raise GGUFError(self.path, "not a GGUF file (too small to hold a header)")
            self._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self._parse()
        except BaseException:
            self.close()
            raise

    # -- parsing -----------------------------------------------------------------------------
    def _parse(self) -> None:
        cur = _Cursor(memoryview(self._mmap), self.path)
        if bytes(cur.buf[:4]) != GGUF_MAGIC:
            raise GGUFError(self.path, f"not a GGUF file (magic is {bytes(cur.buf[:4])!r}, expected b'GGUF')")
        cur.pos = 4
        self.version = cur.unpack("<I", "version")
        if self.version not in SUPPORTED_VERSIONS:
            raise GGUFError(
                self.path, f"unsupported GGUF version {self.version} (supported: {', '.join(map(str, SUPPORTED_VERSIONS))})"
            )
        n_tensors = cur.unpack("<Q", "tensor count")
        n_kv = cur.unpack("<Q", "metadata count")
        if n_tensors > _MAX_COUNT or n_kv > _MAX_COUNT:
            raise GGUFError(self.path, f"corrupt header (tensor count {n_tensors}, metadata count {n_kv})")

        self.metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = cur.string("a metadata key")
            vtype = cur.unpack("<I", f"the type of {key}")
            self.metadata[key] = self._read_value(cur, vtype, key)

        infos = []
        for _ in range(n_tensors):
            name = cur.string("a tensor name")
            n_dims = cur.unpack("<I", f"tensor {name}")
            if not 1 <= n_dims <= _MAX_DIMS:
                raise GGUFError(self.path, f"corrupt tensor info: {name} has {n_dims} dimensions")
            ne = tuple(cur.unpack("<Q", f"tensor {name}") for _ in range(n_dims))
            ggml_type = cur.unpack("<I", f"tensor {name}")
            offset = cur.unpack("<Q", f"tensor {name}")
            infos.append((name, ne, ggml_type, offset))

        alignment = self.get_int("general.alignment", DEFAULT_ALIGNMENT)
        if alignment <= 0 or alignment > _MAX_ALIGNMENT or alignment & (alignment - 1):
            raise GGUFError(self.path, f"corrupt header: general.alignment {alignment} is not a power of two")
        self.alignment = alignment
        self.data_offset = -(-cur.pos // alignment) * alignment
        self.tensors: dict[str, TensorInfo] = {}
        for name, ne, ggml_type, offset in infos:
            self.tensors[name] = self._tensor_info(name, ne, ggml_type, offset)

    def _read_value(self, cur: _Cursor, vtype: int, key: str) -> Any:
        if vtype == gguf.GGUFValueType.STRING:
            return cur.string(f"the value of {key}")
        if vtype in _SCALAR_FORMATS:
            dtype = np.dtype(_SCALAR_FORMATS[vtype])
            cur.need(dtype.itemsize, f"the value of {key}")
            value = np.frombuffer(cur.buf, dtype, 1, cur.pos)[0].item()
            cur.pos += dtype.itemsize
            return bool(value) if vtype == gguf.GGUFValueType.BOOL else value
        if vtype == gguf.GGUFValueType.ARRAY:
            etype = cur.unpack("<I", f"the array type of {key}")
            count = cur.unpack("<Q", f"the array length of {key}")
            if count > _MAX_COUNT * 4:
                raise GGUFError(self.path, f"corrupt metadata: {key} claims {count} elements")
            if etype == gguf.GGUFValueType.STRING:
                return self._read_string_array(cur, count, key)
            if etype in _SCALAR_FORMATS:
                dtype = np.dtype(_SCALAR_FORMATS[etype])
                cur.need(dtype.itemsize * count, f"the array {key}")
                arr = np.frombuffer(cur.buf, dtype, count, cur.pos)
                cur.pos += dtype.itemsize * count
                return arr.astype(bool) if etype == gguf.GGUFValueType.BOOL else arr
            if etype == gguf.GGUFValueType.ARRAY:
                return [self._read_value(cur, etype, key) for _ in range(count)]
            raise GGUFError(self.path, f"corrupt metadata: {key} has unknown array element type {etype}")
        raise GGUFError(self.path, f"corrupt metadata: {key} has unknown value type {vtype}")

    def _read_string_array(self, cur: _Cursor, count: int, key: str) -> StringArray:
        """``count`` strings (each a uint64 byte length and UTF-8 bytes) as a :class:`StringArray`."""
        buf, size = cur.buf, len(cur.buf)
        unpack = struct.Struct("<Q").unpack_from
        starts = array("q", [0]) * count  # file position of each string's first byte
        pos = begin = cur.pos
        for i in range(count):
            if pos + 8 > size:
                raise GGUFError(self.path, f"file is truncated (ends while reading element {i} of {key} at byte {pos})")
            n = unpack(buf, pos)[0]
            pos += 8
            if pos + n > size:
                raise GGUFError(self.path, f"file is truncated (ends while reading element {i} of {key} at byte {pos})")
            starts[i] = pos
            pos += n
        cur.pos = pos
        # Copy the strings out of the mapping without their length fields (the array outlives the file).
        rel = np.frombuffer(starts, dtype=np.int64) - begin
        keep = np.ones(pos - begin, dtype=bool)
        for j in range(1, 9):
            keep[rel - j] = False
        data = np.frombuffer(buf, np.uint8, pos - begin, begin)[keep].tobytes()
        offsets = array("q", [0]) * (count + 1)
        lengths = np.diff(np.append(rel, pos - begin + 8)) - 8
        np.cumsum(lengths, out=np.frombuffer(offsets, dtype=np.int64)[1:])
        # Valid UTF-8 as a whole, and every string starts on a character: then each string is valid.
        try:
            data.decode("utf-8")
            raw = np.frombuffer(data, dtype=np.uint8)
            firsts = np.frombuffer(offsets, dtype=np.int64)[:-1][lengths > 0]
            split = bool(np.any((raw[firsts] & 0xC0) == 0x80))
        except UnicodeDecodeError:
            split = True
        if split:
            for i in range(count):
                try:
                    data[offsets[i]:offsets[i + 1]].decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise GGUFError(self.path, f"element {i} of {key} is not valid UTF-8 "
                                               f"(byte {starts[i] + exc.start})") from None
        return StringArray(data, offsets)

    def _tensor_info(self, name: str, ne: tuple[int, ...], ggml_type: int, offset: int) -> TensorInfo:
        try:
            qtype = gguf.GGMLQuantizationType(ggml_type)
        except ValueError:
            old = REMOVED_GGML_TYPES.get(ggml_type)
            if old is not None:
                raise GGUFError(
                    self.path,
                    f"tensor {name} has type {old} (id {ggml_type}), a format llama.cpp has removed; this file "
                    f"was made by an old version of llama.cpp: download the model again in a current format "
                    f"(for example Q4_0, Q4_K_M or IQ4_NL)",
                ) from None
            raise GGUFError(self.path, f"tensor {name} has unknown GGML type id {ggml_type}") from None
        block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
        if math.prod(ne) > _MAX_ELEMENTS:
            raise GGUFError(self.path, f"corrupt tensor info: {name} has dimensions {list(ne)}")
        if ne[0] % block_elems:
            raise GGUFError(
                self.path,
                f"inconsistent tensor {name}: row length {ne[0]} is not a multiple of {qtype.name}'s block size {block_elems}",
            )
        # Python integers: a hostile dimension near 2^64 cannot wrap the size into something small.
        row_bytes = ne[0] // block_elems * block_bytes
        n_rows = math.prod(ne[1:])
        n_bytes = row_bytes * n_rows
        start = self.data_offset + offset
        if offset % self.alignment:
            raise GGUFError(self.path, f"corrupt tensor info: {name} is not aligned to {self.alignment} bytes")
        if start + n_bytes > self.file_size:
            raise GGUFError(
                self.path,
                f"file is truncated: tensor {name} needs bytes up to {start + n_bytes:,} but the file has {self.file_size:,}",
            )
        data = np.frombuffer(self._mmap, np.uint8, n_bytes, start).reshape(n_rows, row_bytes)
        return TensorInfo(name, ne, ggml_type, start, n_bytes, data)

    # -- access ------------------------------------------------------------------------------
    def use_huge_pages(self) -> HugePages:
        """Have the kernel cache and map the file in 2 MiB pages where it can (engine/page_cache.py:
        faster decode reads); call before reading tensor data. Returns and keeps (``self.huge_pages``)
        a :class:`engine.page_cache.HugePages`; never raises for the kernel's refusals."""
        self.huge_pages = use_huge_pages(self._mmap, self.path, self.data_offset)
        return self.huge_pages

    def pmd_mapped_bytes(self) -> int | None:
        """Bytes of the file this process maps in 2 MiB pages now, or None where the kernel does not say
        (engine/page_cache.py)."""
        return pmd_mapped_bytes(self._mmap)

    def file_bytes(self) -> np.ndarray:
        """The whole file as a read-only uint8 array (file_size,) on the memory map (no copy, page aligned)."""
        return np.frombuffer(self._mmap, np.uint8)

    def get(self, key: str, default: Any = None) -> Any:
        """Return a metadata value, or ``default`` when the key is absent."""
        return self.metadata.get(key, default)

    def _typed(self, key: str, kinds: tuple, what: str) -> Any:
        """The value of a present key, checked to be one of ``kinds`` (bool only where named)."""
        value = self.metadata[key]
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            shown = f"an array of {len(value)}" if isinstance(value, (Sequence, np.ndarray)) \
                and not isinstance(value, str) else repr(value)
            raise GGUFError(self.path, f"metadata key {key} = {shown} must be {what}")
        return value

    def get_int(self, key: str, default: int | None = None, *, lo: int | None = None, hi: int | None = None) -> Any:
        """An integer metadata value (any GGUF integer type), or ``default`` when the key is absent.

        Raises:
            GGUFError: the value is not an integer (a float, string, bool or array), or outside ``lo..hi``.
        """
        if key not in self.metadata:
            return default
        value = self._typed(key, (int,), "an integer")
        if ((lo is not None and value < lo) or (hi is not None and value > hi)):
            span = f"in {lo}..{hi}" if lo is not None and hi is not None else \
                (f"at least {lo}" if lo is not None else f"at most {hi}")
            raise GGUFError(self.path, f"metadata key {key} = {value} must be {span}")
        return value

    def get_float(self, key: str, default: float | None = None, *, lo: float | None = None,
                  hi: float | None = None) -> Any:
        """A finite number (GGUF float or integer types) as ``float``, or ``default`` when the key is absent.

        Raises:
            GGUFError: the value is not a number, is NaN or infinite, or lies outside ``lo..hi``.
        """
        if key not in self.metadata:
            return default
        value = float(self._typed(key, (int, float), "a number"))
        if not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
            span = "a finite number" + (f" in {lo:g}..{hi:g}" if lo is not None and hi is not None else
                                        f" of at least {lo:g}" if lo is not None else
                                        f" of at most {hi:g}" if hi is not None else "")
            raise GGUFError(self.path, f"metadata key {key} = {value!r} must be {span}")
        return value

    def get_str(self, key: str, default: str | None = None) -> Any:
        """A string metadata value, or ``default`` when the key is absent.

        Raises:
            GGUFError: the value is not a string.
        """
        return self._typed(key, (str,), "a string") if key in self.metadata else default

    def get_bool(self, key: str, default: bool | None = None) -> Any:
        """A boolean metadata value, or ``default`` when the key is absent.

        Raises:
            GGUFError: the value is not a bool.
        """
        return self._typed(key, (bool,), "true or false") if key in self.metadata else default

    def require(self, key: str) -> Any:
        """Return a metadata value.

        Raises:
            GGUFError: the key is absent.
        """
        if key not in self.metadata:
            raise GGUFError(self.path, f"missing metadata key {key}")
        return self.metadata[key]

    def tensor(self, name: str) -> TensorInfo:
        """Return a tensor by GGUF name.

        Raises:
            GGUFError: no tensor of that name.
        """
        try:
            return self.tensors[name]
        except KeyError:
            raise GGUFError(self.path, f"missing tensor {name}") from None

    def close(self) -> None:
        """Release the mapping. Views taken from it must not be used afterwards."""
        self.tensors = {}
        mm, self._mmap = getattr(self, "_mmap", None), None
        if mm is not None:
            try:
                mm.close()
            except BufferError:
                # numpy views still reference the mapping; it is unmapped when they are collected.
                pass

    def __enter__(self) -> "GGUFFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
