"""Hugging Face search (engine.download.search_gguf_repos) and the download dialog's search box and memory
column, against the stand-in hub of tests/fake_hub.py (which answers the Hub's model search endpoint).

huggingface_hub takes the endpoint as ``HfApi(endpoint=...)`` (and ``HF_ENDPOINT``), so the real
``HfApi.list_models`` request goes to a local server here: no network is needed.
"""
from __future__ import annotations

import os
import socket

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from engine import download as dl  # noqa: E402
from engine import memory_fit as mf  # noqa: E402
from fake_hub import FakeHub, make_small_gguf  # noqa: E402
from gui.download_dialog import DownloadDialog  # noqa: E402

SEARCH_TIMEOUT_MS = 60_000
REPO = "fireside-test/Tiny-Llama-GGUF"
OTHER = "someone/tiny-llama-mamba-GGUF"
NO_GGUF = "fireside-test/tiny-llama-safetensors"
HUB_GGUF = {REPO: {"total": 134_515_008, "architecture": "llama", "context_length": 8192},
            OTHER: {"total": 130_000_000, "architecture": "mamba", "context_length": 2048}}
DOWNLOADS = {REPO: 1500, OTHER: 2_500_000, NO_GGUF: 9}


@pytest.fixture(scope="module")
def small_gguf(smollm2_path, tmp_path_factory) -> bytes:
    return make_small_gguf(smollm2_path, tmp_path_factory.mktemp("gguf") / "small.gguf").read_bytes()


@pytest.fixture()
def hub(small_gguf):
    with FakeHub() as h:
        h.downloads, h.gguf_info = DOWNLOADS, HUB_GGUF
        h.add_file(REPO, "Tiny-Llama-Q4_K_M.gguf", small_gguf)
        h.add_file(REPO, "Tiny-Llama-Q8_0.gguf", small_gguf + b"\0" * 8192)
        h.add_file(REPO, "big/Tiny-Llama-F16-00001-of-00002.gguf", small_gguf)  # a shard: left out
        h.add_file(OTHER, "mamba-Q4_0.gguf", small_gguf)
        h.add_file(NO_GGUF, "model.safetensors", b"\0" * 100)
        yield h


def _closed_port_url() -> str:
    """The URL of a local port nothing listens on: connections are refused, as with no network."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


# -- engine ------------------------------------------------------------------------------------------------
def test_search_asks_the_hub_for_gguf_repos_most_downloaded_first(hub):
    dl.search_gguf_repos("  tiny   LLAMA ", endpoint=hub.url)
    assert hub.searches[-1]["search"] == ["tiny LLAMA"]  # spaces tidied, case kept (the Hub ignores case)
    matches = dl.search_gguf_repos("tiny-llama", endpoint=hub.url)
    assert [m.repo_id for m in matches] == [OTHER, REPO]  # the safetensors-only repo is filtered out
    q = hub.searches[-1]
    assert q["filter"] == ["gguf"] and q["search"] == ["tiny-llama"] and q["sort"] == ["downloads"]
    assert q["limit"] == [str(dl.SEARCH_LIMIT)]
    other, repo = matches
    assert repo.gguf_files == ("Tiny-Llama-Q4_K_M.gguf", "Tiny-Llama-Q8_0.gguf")  # the shard is left out
    assert (repo.downloads, repo.likes, repo.architecture, repo.n_params, repo.context_length) == (
        1500, 7, "llama", 134_515_008, 8192)
    assert other.architecture == "mamba" and other.downloads == 2_500_000


def test_search_errors_are_one_clear_line(hub):
    with pytest.raises(dl.DownloadError, match="type a few words"):
        dl.search_gguf_repos("   ", endpoint=hub.url)
    assert dl.search_gguf_repos("nothing-like-this", endpoint=hub.url) == []


# -- dialog ------------------------------------------------------------------------------------------------
@pytest.fixture()
def dialog(qtbot, hub, tmp_path):
    d = DownloadDialog(models_dir=tmp_path, endpoint=hub.url, n_ctx=2048, n_parallel=2)
    qtbot.addWidget(d)
    d.show()
    yield d
    d.reject()


def _search(qtbot, d, text):
    d.search_box.setText(text)
    qtbot.keyClick(d.search_box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: d.search_button.isEnabled(), timeout=SEARCH_TIMEOUT_MS)


def _click(qtbot, tree, item):
    tree.scrollToItem(item)
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=tree.visualItemRect(item).center())


def test_search_box_lists_repos_and_their_files(qtbot, dialog):
    _search(qtbot, dialog, "tiny-llama")
    top = [dialog.results.topLevelItem(i) for i in range(dialog.results.topLevelItemCount())]
    assert [[t.text(c) for c in range(4)] for t in top] == [[OTHER, "mamba (not supported)", "2.5M", "7"],
                                                            [REPO, "llama", "1.5k", "7"]]
    assert [top[1].child(i).text(0) for i in range(top[1].childCount())] == ["Tiny-Llama-Q4_K_M.gguf",
                                                                             "Tiny-Llama-Q8_0.gguf"]
    assert dialog.results.isVisible() and dialog.search_status.text().startswith("2 repositories match 'tiny-llama'")
    # The curated list and the typed repo id are still there.
    assert dialog.repo.count() == len(dl.CURATED_MODELS)


def test_picking_a_file_lists_the_repo_and_shows_the_memory_estimate(qtbot, dialog, small_gguf):
    _search(qtbot, dialog, "tiny-llama")
    repo_item = dialog.results.topLevelItem(1)
    repo_item.setExpanded(True)
    _click(qtbot, dialog.results, repo_item.child(1))  # Tiny-Llama-Q8_0.gguf
    qtbot.waitUntil(lambda: not dialog._busy and dialog.files.topLevelItemCount() > 0, timeout=SEARCH_TIMEOUT_MS)
    assert dialog.repo_id() == REPO and dialog.selected_file().path == "Tiny-Llama-Q8_0.gguf"  # the one picked
    f = dialog.selected_file()
    # From the size, with the parameter count the Hub read from the files; approximate and said so.
    est = mf.estimate_from_size(f.size, 2048, 2, "Q8_0", n_params=134_515_008, n_ctx_train=8192)
    row = dialog.files.selectedItems()[0]
    assert row.text(3) == est.short and row.text(3).startswith("≈ ")
    assert "approx." in dialog.fit_label.text() and "2,048 tokens × 2 slots" in dialog.fit_label.text()
    assert mf.format_bytes(est.needed_bytes) in dialog.fit_label.text()
    with qtbot.waitSignal(dialog.downloaded, timeout=SEARCH_TIMEOUT_MS):
        dialog.download_button.click()


def test_no_match_and_an_empty_query(qtbot, dialog):
    dialog.search_button.click()
    assert dialog.search_status.text().startswith("Type a few words")
    _search(qtbot, dialog, "nothing-like-this")
    assert dialog.search_status.text() == "No GGUF repository on Hugging Face matches 'nothing-like-this'."
    assert dialog.results.topLevelItemCount() == 0 and not dialog.results.isVisible()


def test_search_without_network_shows_a_message_and_the_dialog_keeps_working(qtbot, tmp_path):
    """A refused connection (no network): huggingface_hub retries it 5 times (1+2+4+8+8 s of back-off),
    then the dialog shows engine.download's one line; meanwhile the dialog keeps working."""
    d = DownloadDialog(models_dir=tmp_path, endpoint=_closed_port_url())
    qtbot.addWidget(d)
    d.show()
    try:
        d.search_box.setText("llama")
        d.search_button.click()  # returns at once: the search runs in its own thread
        assert d.search_status.text() == "Searching Hugging Face for 'llama'…" and not d.search_button.isEnabled()
        d.repo.setEditText("owner/typed-meanwhile")  # the dialog still takes input while the search waits
        assert d.repo_id() == "owner/typed-meanwhile"
        qtbot.waitUntil(lambda: d.search_button.isEnabled(), timeout=SEARCH_TIMEOUT_MS)
        assert d.search_status.text().startswith("Search failed: cannot reach http://127.0.0.1:")
        assert "check the connection" in d.search_status.text()
    finally:
        d.reject()


def test_return_in_the_search_box_searches_and_does_not_download(qtbot, dialog, tmp_path):
    dialog.repo.setEditText(REPO)
    dialog.list_button.click()
    qtbot.waitUntil(lambda: not dialog._busy and dialog.selected_file() is not None, timeout=SEARCH_TIMEOUT_MS)
    dialog.search_box.setFocus()
    _search(qtbot, dialog, "tiny-llama")  # Return: the dialog's default button is Download
    assert dialog.results.topLevelItemCount() == 2
    assert not dialog._busy and not dialog.cancel_button.isEnabled() and list(tmp_path.iterdir()) == []
