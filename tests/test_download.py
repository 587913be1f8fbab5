"""Downloads from a Hugging Face hub: the real huggingface_hub code path against tests/fake_hub.py.

The stand-in hub on 127.0.0.1 answers like huggingface.co (tree listing, HEAD/GET on resolve URLs with a
redirect to a CDN origin, Range requests, the Hub's error headers) and can drop connections. The file it
serves is a small real GGUF written from the SmolLM2 starter model's metadata and first block.
"""
from __future__ import annotations

import hashlib
import threading

import pytest

from engine import download as dl
from engine.cli import main as cli_main
from engine.gguf_file import GGUFFile
from fake_hub import FakeHub, make_small_gguf

REPO = "fireside-test/Tiny-GGUF"
FILE = "Tiny-Q4_K_M.gguf"
CHUNK = 64 << 10


@pytest.fixture(scope="session")
def small_gguf(smollm2_path, tmp_path_factory) -> bytes:
    path = make_small_gguf(smollm2_path, tmp_path_factory.mktemp("gguf") / "small.gguf")
    return path.read_bytes()


@pytest.fixture()
def hub(small_gguf):
    with FakeHub() as h:
        h.add_file(REPO, FILE, small_gguf)
        h.add_file(REPO, "Tiny-Q8_0.gguf", small_gguf + b"\0" * 4096)  # larger, still a valid GGUF
        h.add_file(REPO, "README.md", b"# Tiny\n", lfs=False)
        yield h


def _download(hub, dest, **kw):
    kw.setdefault("chunk_size", CHUNK)
    kw.setdefault("retry_delay", 0.01)
    return dl.download_gguf(REPO, kw.pop("filename", FILE), dest_dir=dest, endpoint=hub.url, **kw)


def _range_start(request) -> int | None:
    value = request.headers.get("Range")
    return None if value is None else int(value.removeprefix("bytes=").rstrip("-"))


# -- names ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, quant", [
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
    ("llama-3.2-1b-instruct-q4_k_m.gguf", "Q4_K_M"),
    ("Llama-3.2-3B-Instruct-IQ4_XS.gguf", "IQ4_XS"),
    ("gemma-3-1b-it-BF16.gguf", "BF16"),
    ("Phi-UD-Q4_K_XL.gguf", "Q4_K_XL"),
    ("Q8_0/model-Q8_0.gguf", "Q8_0"),
    ("model.gguf", None),
])
def test_parse_quant(name, quant):
    assert dl.parse_quant(name) == quant


def test_choose_default_prefers_q4_k_m_then_smallest():
    f = lambda path, size: dl.RemoteFile(path, size, dl.parse_quant(path))  # noqa: E731
    files = [f("m-Q2_K.gguf", 10), f("mmproj-m-f16.gguf", 1), f("m-Q4_K_M.gguf", 30), f("m-Q8_0.gguf", 50)]
    assert dl.choose_default(files).path == "m-Q4_K_M.gguf"
    assert dl.choose_default([x for x in files if x.quant != "Q4_K_M"]).path == "m-Q2_K.gguf"  # not the mmproj
    assert dl.choose_default(files, preferred="m-Q8_0.gguf").path == "m-Q8_0.gguf"
    assert dl.choose_default([]) is None


# -- listing -------------------------------------------------------------------------------------
def test_list_files_with_sizes_quant_and_paging(small_gguf):
    with FakeHub(page_size=2) as hub:  # 2 entries per page: the listing must follow the Link header
        hub.add_file(REPO, FILE, small_gguf)
        hub.add_file(REPO, "q8/Tiny-Q8_0.gguf", small_gguf + b"\0" * 10)
        hub.add_file(REPO, "Big-Q4_0-00001-of-00002.gguf", b"x" * 10)  # split shard: not loadable
        hub.add_file(REPO, "config.json", b"{}", lfs=False)
        files = dl.list_gguf_files(REPO, endpoint=hub.url)
        tree_calls = [r for r in hub.requests if "/tree/" in r.path]
    assert [(f.path, f.size, f.quant) for f in files] == [
        (FILE, len(small_gguf), "Q4_K_M"), ("q8/Tiny-Q8_0.gguf", len(small_gguf) + 10, "Q8_0")]
    assert files[0].sha256 == hashlib.sha256(small_gguf).hexdigest()
    assert files[1].name == "Tiny-Q8_0.gguf"
    assert len(tree_calls) >= 3 and "cursor=" in tree_calls[-1].path


def test_list_unknown_repo_is_a_clear_error(hub):
    with pytest.raises(dl.DownloadError, match="repository 'nobody/nothing' not found"):
        dl.list_gguf_files("nobody/nothing", endpoint=hub.url)
    with pytest.raises(dl.DownloadError, match="invalid repository id"):
        dl.list_gguf_files("not a repo id", endpoint=hub.url)


# -- download ------------------------------------------------------------------------------------
def test_download_progress_redirect_and_verified_file(hub, small_gguf, tmp_path):
    reports = []
    path = _download(hub, tmp_path, on_progress=reports.append, token="hf_secret")
    assert path == tmp_path / FILE and path.read_bytes() == small_gguf
    with GGUFFile(path) as g:
        assert g.get("general.architecture") == "llama"
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE]  # no .part, .json or .lock left
    downloads = [r for r in reports if r.phase == "download"]
    done = [r.done for r in downloads]
    assert done == sorted(done) and done[-1] == len(small_gguf) and len(done) > 10
    assert all(r.total == len(small_gguf) for r in downloads)
    assert reports[-1].phase == "verify" and reports[-1].done == len(small_gguf)
    # HEAD on the hub (with the token), then the bytes from the CDN origin (without it).
    head = [r for r in hub.requests if r.server == "hub" and r.method == "HEAD"]
    assert len(head) == 1 and head[0].headers.get("authorization") == "Bearer hf_secret"
    gets = hub.file_gets()
    assert len(gets) == 1 and "authorization" not in {k.lower() for k in gets[0].headers}
    # Already there with the hub's size: returned without downloading again.
    assert _download(hub, tmp_path) == path and len(hub.file_gets()) == 1


def test_cancel_keeps_partial_and_resume_uses_range(hub, small_gguf, tmp_path):
    cancel = threading.Event()

    def stop_after_three_chunks(p):
        if p.done >= 3 * CHUNK:
            cancel.set()

    with pytest.raises(dl.DownloadCancelled):
        _download(hub, tmp_path, on_progress=stop_after_three_chunks, cancel=cancel)
    assert not (tmp_path / FILE).exists()
    done, total = dl.partial_download(FILE, tmp_path)
    assert 3 * CHUNK <= done < len(small_gguf) and total == len(small_gguf)

    reports = []
    path = _download(hub, tmp_path, on_progress=reports.append)
    assert path.read_bytes() == small_gguf
    assert _range_start(hub.file_gets()[-1]) == done
    assert reports[0].done == done  # progress starts where the first attempt stopped
    assert dl.partial_download(FILE, tmp_path) is None


def test_dropped_connection_is_resumed_with_range(hub, small_gguf, tmp_path):
    hub.drops = [300_000]  # the first GET dies after 300 kB; the retry must continue, not restart
    path = _download(hub, tmp_path)
    assert path.read_bytes() == small_gguf
    first, second = hub.file_gets()
    assert _range_start(first) is None and 0 < _range_start(second) <= 300_000


def test_lost_connection_fails_clearly_then_resumes_later(hub, small_gguf, tmp_path):
    hub.drops, hub.outage_after_drop = [500_000], True  # the CDN goes away for good after 500 kB
    with pytest.raises(dl.DownloadError, match="connection lost.*run the download again to resume"):
        _download(hub, tmp_path, retries=2)
    done, _ = dl.partial_download(FILE, tmp_path)
    assert 0 < done <= 500_000
    assert len(hub.file_gets()) == 1 + 3  # the dropped GET, then 1 + retries attempts with no answer

    hub.outage = False  # back online: a new call resumes from the kept bytes
    assert _download(hub, tmp_path).read_bytes() == small_gguf
    assert _range_start(hub.file_gets()[-1]) == done


def test_server_ignoring_range_restarts_cleanly(hub, small_gguf, tmp_path):
    hub.drops, hub.ignore_range = [200_000], True  # the retry gets 200 and the whole file again
    assert _download(hub, tmp_path).read_bytes() == small_gguf
    assert len(hub.file_gets()) == 2


def test_changed_file_on_the_hub_discards_the_old_partial(hub, small_gguf, tmp_path):
    cancel = threading.Event()
    with pytest.raises(dl.DownloadCancelled):
        _download(hub, tmp_path, on_progress=lambda p: cancel.set(), cancel=cancel)
    assert dl.partial_download(FILE, tmp_path) is not None
    new = small_gguf + b"\0" * 1000  # a new version: another ETag
    hub.add_file(REPO, FILE, new)
    assert _download(hub, tmp_path).read_bytes() == new
    assert _range_start(hub.file_gets()[-1]) is None


def test_missing_file_and_repo_are_clear_errors(hub, tmp_path):
    with pytest.raises(dl.DownloadError, match="'Nope-Q4_K_M.gguf' not found in " + REPO):
        _download(hub, tmp_path, filename="Nope-Q4_K_M.gguf")
    with pytest.raises(dl.DownloadError, match="repository 'nobody/nothing' not found"):
        dl.download_gguf("nobody/nothing", FILE, dest_dir=tmp_path, endpoint=hub.url)
    assert list(tmp_path.iterdir()) == []


def test_not_a_gguf_is_refused_and_removed(hub, tmp_path):
    hub.add_file(REPO, "Fake-Q4_K_M.gguf", b"<html>not a model</html>" * 100)
    with pytest.raises(dl.DownloadError, match="not a usable GGUF file"):
        _download(hub, tmp_path, filename="Fake-Q4_K_M.gguf")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(dl.DownloadError, match="not a .gguf file"):
        _download(hub, tmp_path, filename="README.md")


def test_unreachable_hub_during_download(hub, tmp_path):
    hub.outage = True  # the CDN never answers: every retry fails without bytes
    with pytest.raises(dl.DownloadError, match="connection lost"):
        _download(hub, tmp_path, retries=1)
    assert not (tmp_path / FILE).exists()


# -- fireside pull ---------------------------------------------------------------------------------
def test_cli_pull_lists_picks_and_downloads(hub, small_gguf, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FIRESIDE_MODELS", str(tmp_path))
    assert cli_main(["pull", REPO, "--endpoint", hub.url, "--list"]) == 0
    out = capsys.readouterr().out
    assert "Tiny-Q4_K_M.gguf" in out and "Q8_0" in out and "2.1 MiB" in out and "README" not in out
    assert not any(tmp_path.iterdir())

    # Not a terminal: the default pick (Q4_K_M) without asking.
    assert cli_main(["pull", REPO, "--endpoint", hub.url]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tmp_path / FILE)
    assert (tmp_path / FILE).read_bytes() == small_gguf

    assert cli_main(["pull", REPO, "Tiny-Q8_0.gguf", "--endpoint", hub.url]) == 0
    assert (tmp_path / "Tiny-Q8_0.gguf").stat().st_size == len(small_gguf) + 4096

    assert cli_main(["pull", REPO, "Missing.gguf", "--endpoint", hub.url]) == 1
    assert "error: 'Missing.gguf' not found" in capsys.readouterr().err


def test_second_download_of_the_same_file_is_refused(hub, small_gguf, tmp_path):
    from filelock import FileLock

    with FileLock(str(tmp_path / (FILE + ".part.lock"))):  # another window or `fireside pull` holds it
        with pytest.raises(dl.DownloadError, match="already being downloaded"):
            _download(hub, tmp_path)
    assert _download(hub, tmp_path).read_bytes() == small_gguf


def test_cli_pull_asks_on_a_terminal(hub, small_gguf, tmp_path, monkeypatch, capsys):
    import io

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("FIRESIDE_MODELS", str(tmp_path))
    monkeypatch.setattr("sys.stdin", Terminal("7\n2\n"))  # a wrong number first, then the second file
    assert cli_main(["pull", REPO, "--endpoint", hub.url]) == 0
    assert "no file '7'" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["Tiny-Q8_0.gguf"]
    monkeypatch.setattr("sys.stdin", Terminal("q\n"))
    assert cli_main(["pull", REPO, "--endpoint", hub.url]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["Tiny-Q8_0.gguf"]
