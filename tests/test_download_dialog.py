"""The "Download model" dialog (gui/download_dialog.py) against the stand-in hub, offscreen."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from engine import download as dl  # noqa: E402
from fake_hub import FakeHub, make_small_gguf  # noqa: E402
from gui.download_dialog import DownloadDialog  # noqa: E402

REPO = "fireside-test/Tiny-GGUF"
FILE = "Tiny-Q4_K_M.gguf"


@pytest.fixture(scope="module")
def small_gguf(smollm2_path, tmp_path_factory) -> bytes:
    return make_small_gguf(smollm2_path, tmp_path_factory.mktemp("gguf") / "small.gguf").read_bytes()


@pytest.fixture()
def hub(small_gguf):
    with FakeHub() as h:
        h.add_file(REPO, "Tiny-Q8_0.gguf", small_gguf + b"\0" * 8192)
        h.add_file(REPO, FILE, small_gguf)
        h.add_file(REPO, "Tiny-F16.gguf", small_gguf + b"\0" * 4096)
        yield h


@pytest.fixture()
def dialog(qtbot, hub, tmp_path):
    d = DownloadDialog(models_dir=tmp_path, endpoint=hub.url)
    qtbot.addWidget(d)
    d.show()
    yield d
    d.reject()  # stops the worker thread


def _list(qtbot, d, repo_id=REPO):
    d.repo.setEditText(repo_id)
    d.list_button.click()
    qtbot.waitUntil(lambda: not d._busy, timeout=10_000)


def test_curated_models_are_offered(dialog):
    assert [dialog.repo.itemText(i) for i in range(dialog.repo.count())] == [m.repo_id for m in dl.CURATED_MODELS]
    assert all(m.filename.endswith(".gguf") and dl.parse_quant(m.filename) for m in dl.CURATED_MODELS)


def test_list_select_default_and_download(qtbot, dialog, hub, small_gguf, tmp_path):
    _list(qtbot, dialog)
    rows = [[dialog.files.topLevelItem(i).text(c) for c in range(3)] for i in range(dialog.files.topLevelItemCount())]
    assert [r[:2] for r in rows] == [[FILE, "Q4_K_M"], ["Tiny-F16.gguf", "F16"], ["Tiny-Q8_0.gguf", "Q8_0"]]
    assert rows[0][2] == "2.1 MiB"
    assert dialog.selected_file().path == FILE  # Q4_K_M is the default pick
    assert dialog.download_button.isEnabled() and dialog.download_button.text() == "Download"

    values = []
    dialog.progress.valueChanged.connect(values.append)
    hub.chunk_delay = 0.01  # ~0.35 s in all: the bar moves through intermediate values (throttled to 20/s)
    with qtbot.waitSignal(dialog.downloaded, timeout=10_000) as blocker:
        dialog.download_button.click()
    assert blocker.args == [str(tmp_path / FILE)]
    assert (tmp_path / FILE).read_bytes() == small_gguf
    assert dialog.progress.value() == dialog.progress.maximum() and len(values) > 2 and values == sorted(values)
    assert "Saved Tiny-Q4_K_M.gguf" in dialog.status.text()
    assert dialog.download_button.isEnabled() and not dialog.cancel_button.isEnabled()


def test_cancel_then_resume(qtbot, dialog, hub, small_gguf, tmp_path):
    _list(qtbot, dialog)
    hub.chunk_delay = 0.05  # ~1.7 s for the file: time to press Cancel mid-way
    dialog.download_button.click()
    assert dialog.cancel_button.isEnabled() and not dialog.download_button.isEnabled()
    qtbot.waitUntil(lambda: 0 < dialog.progress.value() < dialog.progress.maximum(), timeout=10_000)
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: not dialog._busy, timeout=10_000)
    assert dialog.status.text().startswith("Cancelled")
    done, total = dl.partial_download(FILE, tmp_path)
    assert 0 < done < total == len(small_gguf)
    assert dialog.download_button.text() == "Resume"

    hub.chunk_delay = 0.0
    with qtbot.waitSignal(dialog.downloaded, timeout=10_000):
        dialog.download_button.click()
    assert (tmp_path / FILE).read_bytes() == small_gguf
    assert hub.file_gets()[-1].headers.get("Range") == f"bytes={done}-"


def test_unknown_repo_shows_the_error_and_stays_usable(qtbot, dialog, hub):
    _list(qtbot, dialog, "nobody/nothing")
    assert "Error: repository 'nobody/nothing' not found" in dialog.status.text()
    assert dialog.files.topLevelItemCount() == 0 and not dialog.download_button.isEnabled()
    _list(qtbot, dialog)  # a good id afterwards works
    assert dialog.files.topLevelItemCount() == 3
