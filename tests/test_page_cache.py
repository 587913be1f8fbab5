"""engine/page_cache.py: a model file's page cache in 2 MiB pages where the kernel offers them.

What must hold everywhere: the bytes read through the mapping never change (dropping clean cached pages
loses nothing), the kernel's refusals are states, not errors, and FIRESIDE_HUGE_PAGES=0 turns it off.
Where the kernel does cache the file in large folios (this repo's Linux 6.18 / ext4 VMs), a "recached"
file must come back mapped in 2 MiB pages and be found "huge" the next time; elsewhere the test says
which state it saw.
"""
from __future__ import annotations

import hashlib
import mmap
import sys

import numpy as np
import pytest

from engine import page_cache
from engine.model import load_model
from engine.page_cache import HUGE_PAGE, MIN_FILE_BYTES, pmd_mapped_bytes, use_huge_pages

STATES = {"huge", "recached", "small", "off"}


def _file(tmp_path, n_bytes: int):
    data = np.random.default_rng(7).integers(0, 256, n_bytes, dtype=np.uint8)
    path = tmp_path / "weights.bin"
    with open(path, "wb", buffering=0) as f:  # 4 KiB writes: the page cache takes them in small folios
        raw = data.tobytes()
        for i in range(0, len(raw), 4096):
            f.write(raw[i:i + 4096])
    return path, hashlib.sha256(data.tobytes()).hexdigest()


def _map(path):
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _digest(mm) -> str:
    return hashlib.sha256(np.frombuffer(mm, np.uint8).tobytes()).hexdigest()


def test_bytes_unchanged_and_state_true(tmp_path):
    path, want = _file(tmp_path, MIN_FILE_BYTES + 9 * HUGE_PAGE + 12345)
    mm = _map(path)
    got = use_huge_pages(mm, path, data_offset=4096)
    assert got.state in STATES and got.reason
    assert _digest(mm) == want  # read everything through the mapping after the drop
    pmd = pmd_mapped_bytes(mm)
    if got.state == "recached":  # the claim: the pages came back from disk in 2 MiB folios
        assert pmd is not None and pmd >= len(mm) // 2, (got, pmd)
    print(f"state {got.state}: {got.reason}; mapped in 2 MiB pages: {pmd}")
    mm2 = _map(path)  # a second mapping of the now re-cached file
    again = use_huge_pages(mm2, path, data_offset=4096)
    if got.state in ("recached", "huge"):
        assert again.state == "huge", again
    assert _digest(mm2) == want


def test_off_by_environment_and_for_small_files(tmp_path, monkeypatch):
    path, _ = _file(tmp_path, MIN_FILE_BYTES + 20 * HUGE_PAGE)
    monkeypatch.setenv("FIRESIDE_HUGE_PAGES", "0")
    got = use_huge_pages(_map(path), path)
    assert got.state == "off" and "FIRESIDE_HUGE_PAGES" in got.reason
    monkeypatch.delenv("FIRESIDE_HUGE_PAGES")
    small = tmp_path / "small.bin"
    small.write_bytes(bytes(3 * HUGE_PAGE))
    assert use_huge_pages(_map(small), small).state == "off"


def test_header_past_the_file_is_off(tmp_path):
    """Too little tensor data past a (huge) header to sample: off, not an error."""
    path, _ = _file(tmp_path, MIN_FILE_BYTES + 4 * HUGE_PAGE)
    got = use_huge_pages(_map(path), path, data_offset=MIN_FILE_BYTES + HUGE_PAGE)
    assert got.state == "off" and "sample" in got.reason


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="smaps is Linux's")
def test_smaps_reading_finds_the_mapping(tmp_path):
    path, _ = _file(tmp_path, 4 * HUGE_PAGE)
    mm = _map(path)
    pmd = pmd_mapped_bytes(mm)
    assert pmd is not None and 0 <= pmd <= len(mm)
    assert page_cache._smaps_pmd_bytes(1) is None  # no mapping starts there


def test_load_model_records_the_state(gemma3_path):
    model = load_model(gemma3_path)
    assert model.gguf.huge_pages is not None and model.gguf.huge_pages.state in STATES
