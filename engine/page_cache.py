"""A model file's page cache in 2 MiB pages, where the kernel offers them (Linux).

Decode reads every weight once per token, straight from the memory-mapped file, so its speed is the
speed of reading the mapping. A file cached in 4 KiB pages costs a TLB entry (and, every 4 KiB, a page
walk) per page; cached in 2 MiB folios the kernel maps it with one entry per 2 MiB (the smaps field
``FilePmdMapped``). Measured on a Sapphire Rapids VM (Linux 6.18, ext4), 600 MB of a model file, plain
read loop: 12.8 GB/s on 1 thread and 25.3 on 2 in 4 KiB pages, 18.3 and 34.5 in 2 MiB pages; a 1B
Q4_K_M decode went from 21.6 to 28.2 tokens/s.

How the file's pages get that size (Documentation/admin-guide/mm/transhuge.rst; mm/filemap.c,
do_sync_mmap_readahead): a fault in a mapping advised ``MADV_HUGEPAGE`` reads the file ahead in
PMD-sized (2 MiB) folios, on file systems whose page cache takes large folios (XFS, and ext4 and
others on recent kernels). Pages already cached keep the size they were read or written in (a model
just downloaded or quantized sits in small ones), so :func:`use_huge_pages` first tests a sample of the
file; if it is in small pages and the kernel shows (on one 2 MiB piece) that it would cache it in large
ones, it writes out the file's dirty pages, if any (``fdatasync``), asks the kernel to drop its clean
cached pages (``posix_fadvise(POSIX_FADV_DONTNEED)``, which never drops dirty pages or pages other
processes map: nothing is lost), and the next reads bring
them back from disk in 2 MiB folios: one extra read of the file, once, which the first forward passes
pay for. ``FIRESIDE_HUGE_PAGES=0`` turns all of this off. Nothing here changes any result.
"""
from __future__ import annotations

import mmap
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Bytes of one huge page (x86-64 and arm64 with 4 KiB base pages: the PMD size).
HUGE_PAGE = 2 * 1024 * 1024
#: Files smaller than this are left alone (the starter models are 94 and 241 MiB).
MIN_FILE_BYTES = 64 * 1024 * 1024
#: 2 MiB pieces of the file sampled to see how it is cached (a file can be cached partly in small pages,
#: partly in large ones: after memory pressure, say, its pages come back through other mappings).
N_SAMPLES = 32
_THP_ENABLED = Path("/sys/kernel/mm/transparent_hugepage/enabled")


@dataclass(frozen=True)
class HugePages:
    """What :func:`use_huge_pages` found and did.

    Attributes:
        state: "huge" (the sampled pieces are mapped in 2 MiB pages), "recached" (the file was in small
            pages; its cached pages were dropped so that they come back in 2 MiB ones), "small" (small
            pages, and the kernel does not cache this file in large ones), or "off" (not tried: see
            ``reason``).
        reason: a sentence for the log.
    """

    state: str
    reason: str


def _smaps_pmd_bytes(addr: int) -> int | None:
    """``FilePmdMapped`` (bytes) of this process's mapping that starts at ``addr``, from
    /proc/self/smaps (Documentation/filesystems/proc.rst); None if the file or the field is missing."""
    try:
        with open("/proc/self/smaps", encoding="ascii", errors="replace") as f:
            inside = False
            for line in f:
                head = line.split(" ", 1)[0]
                if "-" in head and not head.endswith(":"):
                    start = head.split("-", 1)[0]
                    inside = int(start, 16) == addr
                elif inside and head == "FilePmdMapped:":
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def _address(mm: mmap.mmap) -> int:
    return int(np.frombuffer(mm, np.uint8, 1).ctypes.data)


def pmd_mapped_bytes(mm: mmap.mmap) -> int | None:
    """Bytes of ``mm`` this process maps in 2 MiB pages now (its smaps ``FilePmdMapped``), or None where
    the kernel does not say (not Linux, no /proc)."""
    if not sys.platform.startswith("linux"):
        return None
    return _smaps_pmd_bytes(_address(mm))


def _touch(view: np.ndarray, offsets: list[int]) -> None:
    for off in offsets:
        int(view[off])  # one read faults the page (and, in a MADV_HUGEPAGE mapping, its 2 MiB folio) in


def use_huge_pages(mm: mmap.mmap, path: str | Path, data_offset: int = 0) -> HugePages:
    """Advise ``mm`` (a read-only mapping of the whole file at ``path``) for 2 MiB pages, and re-cache the
    file in them when it sits in small ones (the module's docstring says how and why). Call it before
    anything past ``data_offset`` (bytes; a GGUF file's tensor data) is read through ``mm``: the sample
    is taken there, from pieces this mapping has not mapped yet.

    Returns:
        :class:`HugePages`. Never raises for the kernel's refusals (old kernels, other systems, a
        transparent-huge-page setting of "never"): the mapping then works as before.
    """
    if os.environ.get("FIRESIDE_HUGE_PAGES", "1") == "0":
        return HugePages("off", "FIRESIDE_HUGE_PAGES=0")
    if not sys.platform.startswith("linux") or not hasattr(mmap, "MADV_HUGEPAGE"):
        return HugePages("off", "2 MiB page-cache pages are a Linux feature")
    size = len(mm)
    if size < MIN_FILE_BYTES:
        return HugePages("off", f"file under {MIN_FILE_BYTES >> 20} MiB")
    try:
        if "[never]" in _THP_ENABLED.read_text():
            return HugePages("off", f"transparent huge pages are off ({_THP_ENABLED})")
    except OSError:
        return HugePages("off", "no transparent huge pages in this kernel")
    addr = _address(mm)
    if addr % HUGE_PAGE:
        return HugePages("off", "the mapping is not 2 MiB aligned")
    try:
        mm.madvise(mmap.MADV_HUGEPAGE)
    except OSError as e:
        return HugePages("off", f"madvise(MADV_HUGEPAGE) refused: {e}")
    before = _smaps_pmd_bytes(addr)
    if before is None:
        return HugePages("off", "/proc/self/smaps does not say FilePmdMapped")
    first, n_pages = -(-data_offset // HUGE_PAGE) + 1, size // HUGE_PAGE  # whole pieces past the header
    n_samples = min(N_SAMPLES, n_pages - first)
    if n_samples < 4:
        return HugePages("off", "too few whole 2 MiB pieces past the header to sample")
    picks = sorted({first + (n_pages - 1 - first) * i // (n_samples - 1) for i in range(n_samples)})
    view = np.frombuffer(mm, np.uint8)
    _touch(view, [p * HUGE_PAGE for p in picks])
    after = _smaps_pmd_bytes(addr) or 0
    if after - before >= len(picks) * HUGE_PAGE:
        return HugePages("huge", "the file is cached in 2 MiB pages")
    # Small pages. Would the kernel cache this file in large ones? Drop one sampled piece (our mapping of
    # it first, then the cache) and read it again.
    probe = picks[len(picks) // 2] * HUGE_PAGE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return HugePages("off", f"cannot reopen the file: {e}")
    try:
        # A file just written (a download, the quantizer's output) has dirty pages, which are never dropped:
        # write them out first (what the kernel's writeback does within half a minute anyway).
        os.fdatasync(fd)
        mm.madvise(mmap.MADV_DONTNEED, probe, HUGE_PAGE)
        os.posix_fadvise(fd, probe, HUGE_PAGE, os.POSIX_FADV_DONTNEED)
        base = _smaps_pmd_bytes(addr) or 0
        _touch(view, [probe])
        if (_smaps_pmd_bytes(addr) or 0) - base < HUGE_PAGE:
            return HugePages("small", "the kernel caches this file in small pages (its file system or "
                                      "kernel has no large page-cache folios)")
        mm.madvise(mmap.MADV_DONTNEED)  # our 4 KiB mappings go; the views stay valid and fault back in
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError as e:
        return HugePages("off", f"the kernel refused: {e}")
    finally:
        os.close(fd)
    return HugePages("recached", "the file was cached in 4 KiB pages; it is read again in 2 MiB pages")
