"""The model library page (gui/model_library.py) on real model files, offscreen.

The starter models are copied once into a module folder; each test gets its own folder of hard links to
those copies, so a Delete removes the test's link and never the originals in the models folder.
"""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import gguf  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import Qt, QThread  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from conftest import GEMMA3_FILE, SMOLLM2_FILE, loaded_model, model_path  # noqa: E402
from engine import memory_fit as mf  # noqa: E402
from engine.model_scan import scan_model  # noqa: E402
from gui.model_card import format_params, format_size  # noqa: E402
from gui.model_library import (COL_ARCH, COL_MEMORY, COL_NAME, COL_PARAMS, COL_QUANT, COL_RUNS, COL_SIZE,  # noqa: E402
                               ModelLibraryPage)

SCAN_TIMEOUT_MS = 30_000
TRUNCATED = "truncated.gguf"
NOT_GGUF = "notes.gguf"
UNSUPPORTED = "tiny-bert.gguf"


def _write_unsupported(path: Path) -> None:
    """A valid GGUF of an architecture Fireside does not run (bert), with llama.cpp's attention keys."""
    w = gguf.GGUFWriter(path, "bert")
    w.add_block_count(2)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_context_length(512)
    w.add_feed_forward_length(128)
    w.add_tensor("token_embd.weight", np.zeros((100, 64), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """Copies of the starter models plus three bad files, made once for the module."""
    d = tmp_path_factory.mktemp("pristine")
    for name in (SMOLLM2_FILE, GEMMA3_FILE):
        shutil.copyfile(model_path(name), d / name)
    (d / TRUNCATED).write_bytes((d / SMOLLM2_FILE).read_bytes()[: 1 << 20])
    (d / NOT_GGUF).write_text("not a model\n")
    _write_unsupported(d / UNSUPPORTED)
    return d


@pytest.fixture()
def folder(pristine, tmp_path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    for p in pristine.iterdir():
        os.link(p, d / p.name)
    return d


@pytest.fixture()
def page(qtbot):
    p = ModelLibraryPage(n_ctx=1024, n_parallel=1, n_threads=2)
    qtbot.addWidget(p)
    p.show()
    yield p
    p.shutdown()


def scan(qtbot, page: ModelLibraryPage, folders) -> None:
    with qtbot.waitSignal(page.scan_finished, timeout=SCAN_TIMEOUT_MS):
        page.refresh(folders)


def row(page: ModelLibraryPage, name: str) -> list[str]:
    (found,) = [r for r in page.rows() if r[COL_NAME].split("  ")[0] == name]
    return found


def test_lists_models_with_facts_from_their_headers(qtbot, page, folder):
    scan(qtbot, page, folder)
    assert sorted(r[COL_NAME] for r in page.rows()) == sorted(p.name for p in folder.iterdir())
    for name in (SMOLLM2_FILE, GEMMA3_FILE):
        info = loaded_model(name).info  # what the engine says once the model is really loaded
        r = row(page, name)
        assert r[COL_SIZE] == format_size(info.file_size)
        assert (r[COL_QUANT], r[COL_ARCH], r[COL_PARAMS]) == (info.quantization, info.architecture,
                                                              format_params(info.n_params))
        assert r[COL_RUNS] == "Yes"
        est = mf.estimate_file(folder / name, 1024, 1, n_threads=2)
        assert r[COL_MEMORY].startswith(mf.format_bytes(est.needed_bytes) + " · ")
    assert row(page, GEMMA3_FILE)[COL_QUANT] == "Q4_K_M" and row(page, SMOLLM2_FILE)[COL_QUANT] == "Q4_1"
    assert page.status.text() == "5 model file(s), 2 unreadable."


def test_bad_files_are_rows_with_their_error(qtbot, page, folder):
    scan(qtbot, page, folder)
    assert row(page, TRUNCATED)[COL_RUNS].startswith("Error: file is truncated")
    assert row(page, NOT_GGUF)[COL_RUNS].startswith("Error: not a GGUF file")
    bert = row(page, UNSUPPORTED)
    assert bert[COL_ARCH] == "bert" and bert[COL_RUNS].startswith("No: unsupported architecture 'bert'")
    assert bert[COL_MEMORY].startswith("≈ ")  # llama.cpp's generic keys: an approximate estimate
    for name in (TRUNCATED, NOT_GGUF, UNSUPPORTED):
        page.select(folder / name)
        assert not page.load_button.isEnabled() and page.delete_button.isEnabled()
    page.select(folder / TRUNCATED)
    assert "This file cannot be read: file is truncated" in page.details.text()


def test_memory_column_follows_the_context_setting(qtbot, page, folder):
    scan(qtbot, page, folder)
    path = folder / GEMMA3_FILE
    before = row(page, GEMMA3_FILE)[COL_MEMORY]
    page.set_context(8192, 3, 2)
    est = mf.estimate_file(path, 8192, 3, n_threads=2)
    after = row(page, GEMMA3_FILE)[COL_MEMORY]
    assert after != before and after.startswith(mf.format_bytes(est.needed_bytes) + " · ")
    assert "8,192 tokens × 3 slots" in page.item_for(path).toolTip(COL_MEMORY)
    assert "8,192 tokens × 3 slots" in page.summary.text()
    page.select(path)
    assert "8,192 tokens × 3 slots" in page.details.text()
    page.set_context(0, 1, 2)  # 0: the model's default context, as the engine picks it
    assert "4,096 tokens" in page.item_for(path).toolTip(COL_MEMORY)


def test_load_emits_the_path(qtbot, page, folder):
    scan(qtbot, page, folder)
    path = folder / SMOLLM2_FILE
    assert page.select(path) and page.load_button.isEnabled()
    with qtbot.waitSignal(page.load_requested, timeout=1000) as blocker:
        page.load_button.click()
    assert blocker.args == [str(path)]
    page.set_loaded(path)  # loaded now: nothing to load, nothing to delete
    assert not page.load_button.isEnabled() and not page.delete_button.isEnabled()
    assert page.item_for(path).text(COL_NAME) == f"{SMOLLM2_FILE}  (loaded)"


def _answer(qtbot, page: ModelLibraryPage, button) -> None:
    box = page.confirm_box
    assert box is not None and box.isVisible() and box.windowModality() == Qt.WindowModality.WindowModal
    with qtbot.waitSignal(box.finished, timeout=1000):
        box.button(button).click()


def test_delete_asks_first_and_removes_only_that_file(qtbot, page, folder):
    scan(qtbot, page, folder)
    path = folder / GEMMA3_FILE
    page.select(path)
    page.delete_button.click()
    assert "Delete gemma-3-270m-q4_k_m.gguf (241 MiB) from disk?" == page.confirm_box.text()
    _answer(qtbot, page, QMessageBox.StandardButton.Cancel)
    assert path.is_file() and page.status.text() == "Nothing was deleted." and page.confirm_box is None

    page.select(path)
    with qtbot.waitSignal(page.model_deleted, timeout=1000) as blocker:
        page.delete_button.click()
        _answer(qtbot, page, QMessageBox.StandardButton.Yes)
    assert blocker.args == [str(path)]
    assert not path.exists() and page.item_for(path) is None and page.status.text() == f"Deleted {GEMMA3_FILE}."
    assert model_path(GEMMA3_FILE).is_file() and (folder / SMOLLM2_FILE).is_file()
    scan(qtbot, page, folder)  # a fresh scan agrees
    assert GEMMA3_FILE not in [r[COL_NAME] for r in page.rows()]


def test_the_loaded_model_is_never_deleted(qtbot, page, folder):
    scan(qtbot, page, folder)
    path = folder / SMOLLM2_FILE
    page.select(path)
    page.delete_button.click()  # the box is open when the model gets loaded
    page.set_loaded(str(path))
    _answer(qtbot, page, QMessageBox.StandardButton.Yes)
    assert path.is_file() and "is loaded" in page.status.text()
    assert not page.delete(path) and path.is_file()
    page.set_loaded(None)
    assert page.delete_button.isEnabled()


def test_a_failed_delete_is_reported(qtbot, page, folder):
    scan(qtbot, page, folder)
    path = folder / NOT_GGUF
    path.unlink()  # gone behind the page's back
    assert not page.delete(path)
    assert page.status.text().startswith(f"Could not delete {NOT_GGUF}: ")


def test_scanning_is_off_the_gui_thread_and_a_new_scan_replaces_the_old(qtbot, page, folder, tmp_path):
    assert page._scanner.thread() is not QApplication.instance().thread()
    assert isinstance(page._scanner.thread(), QThread) and page._scanner.thread().isRunning()
    other = tmp_path / "other"
    other.mkdir()
    os.link(folder / SMOLLM2_FILE, other / "only.gguf")
    page.refresh(folder)
    assert page.rows() == []  # refresh() returned without reading anything: the scanner does it
    scan(qtbot, page, other)  # supersedes the first scan before its results are shown
    assert [r[COL_NAME] for r in page.rows()] == ["only.gguf"]
    assert page.entries[str(other / "only.gguf")] == scan_model(other / "only.gguf")


def test_models_of_later_folders_and_empty_folders(qtbot, page, folder, tmp_path):
    extra = tmp_path / "next-to-app"
    extra.mkdir()
    os.link(folder / SMOLLM2_FILE, extra / SMOLLM2_FILE)  # hidden by the models folder's file of that name
    os.link(folder / GEMMA3_FILE, extra / "bundled.gguf")
    (folder / GEMMA3_FILE).unlink()
    scan(qtbot, page, [folder, extra, tmp_path / "missing"])
    names = [r[COL_NAME] for r in page.rows()]
    assert names.count(SMOLLM2_FILE) == 1 and "bundled.gguf" in names
    assert page.item_for(folder / SMOLLM2_FILE) is not None and page.item_for(extra / "bundled.gguf") is not None
    empty = tmp_path / "empty"
    empty.mkdir()
    scan(qtbot, page, empty)
    assert page.rows() == [] and page.status.text().startswith(f"No .gguf models in {empty}")


def test_wired_to_the_real_window_load_then_the_file_is_protected(qtbot, page, folder, tmp_path, monkeypatch):
    """The wiring MainWindow would need (load_requested -> open_model, model_ready -> set_loaded), with the
    real window and the real SmolLM2 model."""
    import shiboken6
    from PySide6.QtCore import QEvent

    from gui.main_window import MainWindow
    from gui.settings import AppSettings, Settings

    monkeypatch.setenv("FIRESIDE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FIRESIDE_MODELS", str(folder))
    Settings().save(AppSettings(n_ctx=512, n_threads=2, n_parallel=1))
    window = MainWindow()
    try:
        page.load_requested.connect(window.open_model)
        window.model_ready.connect(lambda loaded: page.set_loaded(loaded.path))
        s = window.app_settings
        page.set_context(s.n_ctx, s.n_parallel, s.n_threads)
        scan(qtbot, page, window.settings.models_folder())
        path = folder / SMOLLM2_FILE
        page.select(path)
        with qtbot.waitSignal(window.model_ready, timeout=60_000) as blocker:
            page.load_button.click()
        assert same_path(blocker.args[0].path, path)
        assert page.item_for(path).text(COL_NAME).endswith("(loaded)") and not page.delete_button.isEnabled()
        assert not page.delete(path) and path.is_file()
        est = mf.estimate_file(path, 512, 1, n_threads=2)
        assert blocker.args[0].n_ctx == est.n_ctx == 512
    finally:
        if shiboken6.isValid(window):
            window.close()
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def same_path(a, b) -> bool:
    return os.path.samefile(a, b)


def test_a_model_being_loaded_is_protected_too(qtbot, page, folder):
    scan(qtbot, page, folder)
    loaded, loading = folder / SMOLLM2_FILE, folder / GEMMA3_FILE
    page.set_loaded(loaded, loading)  # switching models: the old one stays loaded until the new one is ready
    for path in (loaded, loading):
        page.select(path)
        assert not page.delete_button.isEnabled() and not page.delete(path) and path.is_file()
    page.set_loaded(None, loading)  # the old one is released
    page.select(loaded)
    assert page.delete_button.isEnabled()
    page.set_loaded()
    page.select(loading)
    assert page.delete_button.isEnabled() and page.item_for(loading).text(COL_NAME) == GEMMA3_FILE
