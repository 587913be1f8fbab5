"""Download GGUF models from Hugging Face into the models folder (no Qt: the CLI and the GUI share it).

Searching uses ``HfApi.list_models`` (``GET /api/models?search=...&filter=gguf``). Listing uses ``HfApi.list_repo_tree`` (``GET /api/models/{repo}/tree/{revision}``). A download is
``HEAD /{repo}/resolve/{revision}/{file}`` through ``huggingface_hub.get_hf_file_metadata`` (which
follows the Hub's redirects and reads ``X-Repo-Commit``, ``X-Linked-Etag``, ``X-Linked-Size``),
then a streamed ``GET`` of the file through huggingface_hub's own HTTP session and error mapping
(``get_session``, ``http_stream_backoff``, ``hf_raise_for_status``, ``build_hf_headers``).

The byte loop is ours rather than ``hf_hub_download`` because huggingface_hub 2.x writes into a
process-unique temporary file that it deletes on any failure, so an interrupted or cancelled download
restarts from zero; and its retry count, back-off and progress hook cannot be chosen per call. Here:

* the bytes go to ``<name>.gguf.part`` in the destination folder, with ``<name>.gguf.part.json``
  recording the repo, file and ETag; a later call for the same file (same ETag) resumes it with an
  HTTP ``Range: bytes=<done>-`` request, in this process or the next;
* a dropped connection is retried ``retries`` times (the count resets whenever bytes arrive), each
  retry resuming with ``Range``;
* ``cancel`` (a ``threading.Event``) is checked between chunks and stops with :class:`DownloadCancelled`,
  keeping the partial file for a later resume;
* the finished file is checked against the Hub's sha256 (the ETag of LFS files), then opened with
  :class:`engine.gguf_file.GGUFFile` (header and tensor directory must be valid), and only then
  renamed to ``<name>.gguf``.

huggingface_hub reads ``HF_ENDPOINT`` and ``HF_TOKEN`` from the environment; every function here
also takes ``endpoint`` and ``token`` explicitly.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

import httpx2  # huggingface_hub's HTTP client: its exception classes name the network failures
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    GatedRepoError,
    HFValidationError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_stream_backoff
from filelock import FileLock, Timeout  # huggingface_hub's own lock library (one of its dependencies)

import gguf

from . import __version__
from .errors import FiresideError
from .gguf_file import GGUFError, GGUFFile
from .paths import models_dir

PART_SUFFIX = ".part"
META_SUFFIX = ".part.json"
DEFAULT_CHUNK_SIZE = 512 << 10  # bytes per read: progress and cancel are checked this often
DEFAULT_QUANT = "Q4_K_M"  # llama.cpp's usual size/quality balance; the default pick when present
# Network failures worth a resume: the same set huggingface_hub retries (utils/_http.py).
_RETRYABLE = (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)
_SPLIT_RE = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class DownloadError(FiresideError, RuntimeError):
    """A listing or download failed; the message says what to do (one line, user-facing)."""


class DownloadCancelled(Exception):
    """The download was cancelled; the partial file is kept and the next call resumes it."""


@dataclass(frozen=True)
class RemoteFile:
    """One ``.gguf`` file of a Hub repository.

    Attributes:
        path: path in the repository (``"Q4_K_M/model.gguf"`` for files in folders).
        size: size in bytes.
        quant: quantization parsed from the file name (``"Q4_K_M"``), or ``None`` if none is named.
        sha256: the LFS sha256 (hex) when the Hub lists one, else ``None``.
    """

    path: str
    size: int
    quant: str | None
    sha256: str | None = None

    @property
    def name(self) -> str:
        """The file name without folders: the name it gets in the models folder."""
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class CuratedModel:
    """A small chat model of a supported architecture, offered first in the download dialog.

    Attributes:
        repo_id: Hub repository id.
        filename: the preferred file (if the repository no longer has it, :func:`choose_default` picks).
        label: short human description.
    """

    repo_id: str
    filename: str
    label: str


# Small instruction-tuned models of the architectures the engine runs (llama, gemma3), smallest first.
# Files follow each publisher's naming; sizes are approximate.
CURATED_MODELS: tuple[CuratedModel, ...] = (
    CuratedModel("HuggingFaceTB/SmolLM2-360M-Instruct-GGUF", "smollm2-360m-instruct-q8_0.gguf",
                 "SmolLM2 360M Instruct (Q8_0, 0.4 GB)"),
    CuratedModel("ggml-org/gemma-3-1b-it-GGUF", "gemma-3-1b-it-Q4_K_M.gguf",
                 "Gemma 3 1B Instruct (Q4_K_M, 0.8 GB)"),
    CuratedModel("bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
                 "Llama 3.2 1B Instruct (Q4_K_M, 0.8 GB)"),
    CuratedModel("TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF", "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf",
                 "TinyLlama 1.1B Chat (Q4_K_M, 0.7 GB)"),
    CuratedModel("bartowski/SmolLM2-1.7B-Instruct-GGUF", "SmolLM2-1.7B-Instruct-Q4_K_M.gguf",
                 "SmolLM2 1.7B Instruct (Q4_K_M, 1.1 GB)"),
    CuratedModel("bartowski/Llama-3.2-3B-Instruct-GGUF", "Llama-3.2-3B-Instruct-Q4_K_M.gguf",
                 "Llama 3.2 3B Instruct (Q4_K_M, 2.0 GB)"),
)


@dataclass(frozen=True)
class Progress:
    """A progress report.

    Attributes:
        phase: ``"download"`` (bytes received) or ``"verify"`` (bytes hashed).
        done: bytes done so far, counting bytes from an earlier, resumed attempt.
        total: the file size in bytes, or ``None`` if the server did not say.
    """

    phase: str
    done: int
    total: int | None


ProgressCallback = Callable[[Progress], None]


# -- file names ---------------------------------------------------------------------------------
def _quant_names() -> list[str]:
    """Every quantization name a GGUF file name may carry, longest first (so Q4_K_M beats Q4_K)."""
    names = {t.name for t in gguf.GGMLQuantizationType}
    names |= {t.name.removeprefix("MOSTLY_") for t in gguf.LlamaFileType if t.name.startswith("MOSTLY_")}
    return sorted(names, key=len, reverse=True)


# A quant name standing alone between separators, with the _L / _XL suffixes some publishers add
# (Q4_K_L, Q4_K_XL: the same type with larger output/embedding tensors).
_QUANT_RE = re.compile(
    r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, _quant_names())) + r")(_XL|_L)?(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def parse_quant(filename: str) -> str | None:
    """Return the quantization named in a GGUF file name, upper-case, or ``None``.

    ``"SmolLM2-135M-Instruct.Q4_1.gguf"`` -> ``"Q4_1"``; ``"llama-3.2-1b-instruct-q4_k_m.gguf"`` ->
    ``"Q4_K_M"``; ``"model-f16.gguf"`` -> ``"F16"``. Names come from the ``gguf`` package's
    ``GGMLQuantizationType`` and ``LlamaFileType`` (llama.cpp's ``llama_ftype``). The last match wins,
    since the quant is conventionally the final part of the name.
    """
    stem = PurePosixPath(filename).name
    if stem.lower().endswith(".gguf"):
        stem = stem[:-5]
    matches = list(_QUANT_RE.finditer(stem))
    if not matches:
        return None
    m = matches[-1]
    return (m.group(1) + (m.group(2) or "")).upper()


def is_split_file(path: str) -> bool:
    """True for one shard of a split GGUF (``...-00001-of-00003.gguf``), which Fireside cannot load."""
    return _SPLIT_RE.search(path) is not None


def _is_auxiliary(path: str) -> bool:
    """Vision projectors and imatrix files are .gguf but not chat models: never the default pick."""
    name = PurePosixPath(path).name.lower()
    return name.startswith("mmproj") or "imatrix" in name


def choose_default(files: list[RemoteFile], preferred: str | None = None) -> RemoteFile | None:
    """Pick the file to download when the user did not name one.

    Order: ``preferred`` if listed; else the smallest ``Q4_K_M`` file; else the smallest file. Vision
    projectors (``mmproj*``) and imatrix files are skipped unless nothing else is listed.

    Returns:
        The chosen file, or ``None`` for an empty list.
    """
    if preferred is not None:
        for f in files:
            if f.path == preferred or f.name == preferred:
                return f
    models = [f for f in files if not _is_auxiliary(f.path)] or list(files)
    if not models:
        return None
    q4km = [f for f in models if f.quant == DEFAULT_QUANT]
    return min(q4km or models, key=lambda f: f.size)


# -- listing ------------------------------------------------------------------------------------
def _endpoint(endpoint: str | None) -> str:
    return (endpoint or hf_constants.ENDPOINT).rstrip("/")


def _hub_error(exc: Exception, repo_id: str, endpoint: str, what: str) -> DownloadError:
    """Turn a huggingface_hub / network exception into one actionable line."""
    if isinstance(exc, GatedRepoError):
        return DownloadError(f"{repo_id} is gated: accept its license on {endpoint}/{repo_id} and log in "
                             f"(`hf auth login` or HF_TOKEN)")
    if isinstance(exc, RepositoryNotFoundError):
        return DownloadError(f"repository {repo_id!r} not found on {endpoint} (check the id; private repositories "
                             f"need a token: `hf auth login` or HF_TOKEN)")
    if isinstance(exc, RevisionNotFoundError):
        return DownloadError(f"{repo_id}: revision not found ({what})")
    if isinstance(exc, RemoteEntryNotFoundError):
        return DownloadError(f"{what} not found in {repo_id} (`fireside pull {repo_id}` lists its .gguf files)")
    if isinstance(exc, HFValidationError):
        return DownloadError(f"invalid repository id {repo_id!r}: expected owner/name")
    if isinstance(exc, OfflineModeIsEnabled):
        return DownloadError("HF_HUB_OFFLINE is set: downloads are disabled")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        return DownloadError(f"{endpoint} answered HTTP {status} for {what}")
    if isinstance(exc, httpx2.HTTPError):
        return DownloadError(f"cannot reach {endpoint} ({type(exc).__name__}: {exc}); check the connection")
    return DownloadError(f"{what}: {exc}")


def list_gguf_files(repo_id: str, *, endpoint: str | None = None, token: str | bool | None = None,
                    revision: str | None = None) -> list[RemoteFile]:
    """List the loadable ``.gguf`` files of a Hub model repository, sorted by size.

    Shards of split models (``-00001-of-0000N.gguf``) are left out: the engine loads single files.

    Args:
        repo_id: ``owner/name``.
        endpoint: Hub URL (default ``HF_ENDPOINT`` or https://huggingface.co).
        token: access token (default: huggingface_hub's saved login or ``HF_TOKEN``).
        revision: branch, tag or commit (default ``main``).

    Raises:
        DownloadError: repository missing, gated, unreachable; or it holds no single-file ``.gguf``.
    """
    ep = _endpoint(endpoint)
    api = HfApi(endpoint=ep, token=token, library_name="fireside", library_version=__version__)
    try:
        entries = list(api.list_repo_tree(repo_id, recursive=True, revision=revision))
    # ValueError: HFValidationError (a bad id), or a non-JSON answer from a server that is not a hub.
    except (HfHubHTTPError, ValueError, OfflineModeIsEnabled, httpx2.HTTPError) as exc:
        raise _hub_error(exc, repo_id, ep, "the file list") from None
    files, shards = [], 0
    for entry in entries:
        size = getattr(entry, "size", None)
        if size is None or not entry.path.lower().endswith(".gguf"):
            continue  # folders and other files
        if is_split_file(entry.path):
            shards += 1
            continue
        lfs = getattr(entry, "lfs", None)
        files.append(RemoteFile(entry.path, int(lfs.size if lfs else size), parse_quant(entry.path),
                                lfs.sha256 if lfs else None))
    if not files:
        detail = f" ({shards} split-model shards, which Fireside cannot load yet)" if shards else ""
        raise DownloadError(f"{repo_id} has no single-file .gguf model{detail}")
    return sorted(files, key=lambda f: (f.size, f.path))


# -- search -------------------------------------------------------------------------------------
#: Repositories a search returns at most (the Hub's most downloaded first).
SEARCH_LIMIT = 30


@dataclass(frozen=True)
class RepoMatch:
    """One Hub repository found by :func:`search_gguf_repos`.

    Attributes:
        repo_id: ``owner/name``.
        downloads: downloads in the last 30 days as the Hub counts them, or ``None``.
        likes: the Hub's like count, or ``None``.
        gguf_files: the single-file ``.gguf`` paths of the repository (split shards left out), from the
            Hub's ``siblings`` (names only: sizes come from :func:`list_gguf_files`).
        architecture: ``general.architecture`` as the Hub read it from the files (its ``gguf`` field), or None.
        n_params: parameter count the Hub read from the files, or None.
        context_length: trained context length in tokens the Hub read, or None.
    """

    repo_id: str
    downloads: int | None = None
    likes: int | None = None
    gguf_files: tuple[str, ...] = ()
    architecture: str | None = None
    n_params: int | None = None
    context_length: int | None = None


def _positive_int(value) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def search_gguf_repos(query: str, *, limit: int = SEARCH_LIMIT, endpoint: str | None = None,
                      token: str | bool | None = None) -> list[RepoMatch]:
    """Search the Hub for GGUF model repositories whose id matches ``query``, most downloaded first.

    One ``GET /api/models?search=<query>&filter=gguf&sort=downloads&limit=<limit>&expand=...`` through
    ``HfApi.list_models`` (the Hub's model search: ``query`` is matched against repository ids).

    Args:
        query: words to look for, e.g. ``"llama 1b instruct"``.
        limit: at most this many repositories.
        endpoint: Hub URL (default ``HF_ENDPOINT`` or https://huggingface.co).
        token: access token (default: huggingface_hub's saved login or ``HF_TOKEN``).

    Returns:
        The matches in the Hub's order (may be empty).

    Raises:
        DownloadError: an empty query, the Hub unreachable (after huggingface_hub's retries), an HTTP
            error, or an answer that is not a Hub's.
    """
    q = " ".join(query.split())
    if not q:
        raise DownloadError('type a few words to search for, e.g. "llama 1b instruct"')
    ep = _endpoint(endpoint)
    api = HfApi(endpoint=ep, token=token, library_name="fireside", library_version=__version__)
    try:
        models = list(api.list_models(search=q, filter="gguf", sort="downloads", limit=limit,
                                      expand=["downloads", "likes", "siblings", "gguf"]))
    # ValueError / KeyError / TypeError: an answer that is not the Hub's JSON (a server that is not a hub).
    except (HfHubHTTPError, OfflineModeIsEnabled, httpx2.HTTPError) as exc:
        raise _hub_error(exc, q, ep, f"the search for {q!r}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DownloadError(f"{ep} did not answer the search like a Hugging Face hub ({type(exc).__name__})") from None
    out = []
    for m in models:
        names = tuple(sorted(s.rfilename for s in (m.siblings or [])
                             if s.rfilename.lower().endswith(".gguf") and not is_split_file(s.rfilename)))
        meta = m.gguf if isinstance(m.gguf, dict) else {}
        arch = meta.get("architecture")
        out.append(RepoMatch(m.id, _positive_int(m.downloads), _positive_int(m.likes), names,
                             arch if isinstance(arch, str) else None, _positive_int(meta.get("total")),
                             _positive_int(meta.get("context_length"))))
    return out


# -- partial files ------------------------------------------------------------------------------
def _part_paths(dest_dir: Path, name: str) -> tuple[Path, Path]:
    return dest_dir / (name + PART_SUFFIX), dest_dir / (name + META_SUFFIX)


def partial_download(filename: str, dest_dir: str | Path | None = None) -> tuple[int, int | None] | None:
    """Bytes already downloaded of an interrupted download of ``filename``.

    Returns:
        ``(done_bytes, total_bytes_or_None)``, or ``None`` when there is no partial file.
    """
    dest = models_dir() if dest_dir is None else Path(dest_dir)
    part, meta = _part_paths(dest, PurePosixPath(filename).name)
    if not part.is_file():
        return None
    total = None
    try:
        total = json.loads(meta.read_text(encoding="utf-8")).get("size")
    except (OSError, ValueError):
        pass
    return part.stat().st_size, total


def _discard_partial(part: Path, meta: Path) -> None:
    part.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)


# -- download -----------------------------------------------------------------------------------
def _content_range_start(value: str | None) -> int | None:
    """First byte of ``Content-Range: bytes START-END/TOTAL`` (RFC 9110 14.4), or None."""
    m = re.match(r"bytes (\d+)-\d+/(?:\d+|\*)$", (value or "").strip())
    return int(m.group(1)) if m else None


def _stream_once(url: str, f, headers: dict[str, str], start: int, total: int | None, chunk_size: int,
                 report: Callable[[int, int | None], None], cancel: threading.Event | None) -> int | None:
    """One GET of ``url`` from byte ``start`` into ``f`` (positioned at ``start``); returns the total size.

    Raises:
        DownloadCancelled: ``cancel`` was set (the bytes so far are in ``f``).
        HfHubHTTPError: an HTTP error status.
        httpx2.HTTPError: a network failure (the caller resumes from ``f.tell()``).
    """
    req_headers = dict(headers)
    if start:
        req_headers["Range"] = f"bytes={start}-"
    # Status-code retries (429, 5xx) with huggingface_hub's back-off; network errors are the caller's,
    # so that a resume continues from the bytes already written.
    with http_stream_backoff("GET", url, headers=req_headers, timeout=hf_constants.HF_HUB_DOWNLOAD_TIMEOUT,
                             retry_on_exceptions=(), max_retries=3) as response:
        hf_raise_for_status(response)
        if start:
            if response.status_code == 206 and _content_range_start(response.headers.get("Content-Range")) != start:
                raise DownloadError(f"the server resumed at the wrong offset "
                                    f"({response.headers.get('Content-Range')!r} for bytes={start}-)")
            if response.status_code != 206:
                # The server ignored Range: start over (RFC 9110 allows it).
                f.seek(0)
                f.truncate()
                start = 0
        if response.headers.get("Content-Encoding", "identity").lower() == "identity":
            length = response.headers.get("Content-Length")
            if total is None and length is not None:
                total = start + int(length)
        done = start
        report(done, total)
        for chunk in response.iter_bytes(chunk_size=chunk_size):
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled()
            f.write(chunk)
            done += len(chunk)
            report(done, total)
    return total


def _sha256_file(path: Path, total: int, on_progress: ProgressCallback | None,
                 cancel: threading.Event | None) -> str:
    digest, done = hashlib.sha256(), 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(8 << 20), b""):
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled()
            digest.update(block)
            done += len(block)
            if on_progress is not None:
                on_progress(Progress("verify", done, total))
    return digest.hexdigest()


def _download_part(url: str, part: Path, headers: dict[str, str], total: int | None, chunk_size: int,
                   report: Callable[[int, int | None], None], cancel: threading.Event | None,
                   retries: int, retry_delay: float) -> int | None:
    """Fill ``part`` with the bytes of ``url``, appending to what it holds; returns the total size.

    Raises:
        DownloadCancelled, DownloadError: as :func:`download_gguf`.
        HfHubHTTPError: an HTTP error status.
    """
    failures = 0
    with open(part, "r+b" if part.exists() else "wb") as f:
        f.seek(0, os.SEEK_END)
        while total is None or f.tell() < total:
            start = f.tell()
            try:
                return _stream_once(url, f, headers, start, total, chunk_size, report, cancel)
            except _RETRYABLE as exc:
                f.flush()
                failures = 0 if f.tell() > start else failures + 1
                if failures > retries:
                    raise DownloadError(
                        f"connection lost while downloading {part.name[:-len(PART_SUFFIX)]} "
                        f"({type(exc).__name__}); {f.tell() / 2**20:.1f} MiB kept, "
                        f"run the download again to resume") from None
                # Wait before resuming, but wake up at once for a cancel.
                if (cancel or threading.Event()).wait(retry_delay):
                    raise DownloadCancelled() from None
    return total


def verify_gguf(path: str | Path) -> None:
    """Check that ``path`` is a GGUF model the engine can open (header, metadata, tensor directory).

    Raises:
        GGUFError: it is not (the message names the file and the problem).
    """
    with GGUFFile(path) as g:
        g.require("general.architecture")


def download_gguf(repo_id: str, filename: str, *, dest_dir: str | Path | None = None,
                  endpoint: str | None = None, token: str | bool | None = None, revision: str | None = None,
                  on_progress: ProgressCallback | None = None, cancel: threading.Event | None = None,
                  retries: int = 5, retry_delay: float = 1.0, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Path:
    """Download one ``.gguf`` file of a Hub repository into the models folder, resuming if possible.

    Args:
        repo_id: ``owner/name``.
        filename: path of the file in the repository.
        dest_dir: destination folder (default: :func:`engine.paths.models_dir`).
        endpoint: Hub URL (default ``HF_ENDPOINT`` or https://huggingface.co).
        token: access token (default: huggingface_hub's saved login or ``HF_TOKEN``).
        revision: branch, tag or commit (default ``main``).
        on_progress: called with a :class:`Progress` after every chunk (download, then sha256 check),
            on the calling thread.
        cancel: when set, the download stops at the next chunk with :class:`DownloadCancelled`.
        retries: consecutive network failures tolerated (reset whenever bytes arrive); each retry resumes.
        retry_delay: seconds between network retries.
        chunk_size: bytes per read.

    Returns:
        The path of the verified file, ``<dest_dir>/<file name>``. If that file already exists with the
        Hub's size, it is returned without downloading.

    Raises:
        DownloadCancelled: ``cancel`` was set; ``<name>.part`` is kept for a resume.
        DownloadError: not found, gated, unreachable after ``retries`` attempts (partial kept), a checksum
            or size mismatch, or the file is not a valid GGUF (partial deleted).
    """
    ep = _endpoint(endpoint)
    name = PurePosixPath(filename).name
    if not name.lower().endswith(".gguf"):
        raise DownloadError(f"{filename!r} is not a .gguf file")
    dest = models_dir() if dest_dir is None else Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / name
    part, meta_path = _part_paths(dest, name)

    try:
        url = hf_hub_url(repo_id, filename, revision=revision, endpoint=ep)
        meta = get_hf_file_metadata(url, token=token, endpoint=ep, library_name="fireside",
                                    library_version=__version__)
    except (HfHubHTTPError, HFValidationError, OfflineModeIsEnabled, httpx2.HTTPError) as exc:
        raise _hub_error(exc, repo_id, ep, repr(filename)) from None
    if meta.etag is None or meta.commit_hash is None:
        raise DownloadError(f"{ep} does not look like a Hugging Face hub (no ETag / X-Repo-Commit on {url})")
    total = meta.size
    if target.is_file() and total is not None and target.stat().st_size == total:
        return target

    headers = build_hf_headers(token=token, library_name="fireside", library_version=__version__)
    headers["Accept-Encoding"] = "identity"  # byte ranges and sizes must refer to the file itself
    # A redirect target on another origin (a CDN) gets no token, as in huggingface_hub's own download path.
    if _origin(meta.location) != _origin(url):
        headers.pop("authorization", None)

    # One writer per partial file: a second window or `fireside pull` of the same file fails at once.
    lock = FileLock(str(part) + ".lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise DownloadError(f"{name} is already being downloaded into {dest}") from None
    try:
        return _fetch_and_verify(meta, repo_id, filename, part, meta_path, target, headers,
                                 on_progress, cancel, retries, retry_delay, chunk_size)
    except HfHubHTTPError as exc:
        raise _hub_error(exc, repo_id, ep, repr(filename)) from None
    finally:
        lock.release()
        Path(lock.lock_file).unlink(missing_ok=True)


def _fetch_and_verify(meta, repo_id: str, filename: str, part: Path, meta_path: Path, target: Path,
                      headers: dict[str, str], on_progress: ProgressCallback | None, cancel: threading.Event | None,
                      retries: int, retry_delay: float, chunk_size: int) -> Path:
    """The locked part of :func:`download_gguf`: resume or start ``part``, check it, move it to ``target``."""
    name = target.name
    total = meta.size
    # Resume only bytes of the same file version: the ETag changes when the file does.
    try:
        previous = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = None
    if part.is_file() and (previous is None or previous.get("etag") != meta.etag
                           or (total is not None and part.stat().st_size > total)):
        _discard_partial(part, meta_path)
    record = {"repo_id": repo_id, "filename": filename, "etag": meta.etag, "commit": meta.commit_hash, "size": total}
    meta_path.write_text(json.dumps(record), encoding="utf-8")

    def report(done: int, size: int | None) -> None:
        if on_progress is not None:
            on_progress(Progress("download", done, size))

    total = _download_part(meta.location, part, headers, total, chunk_size, report, cancel, retries, retry_delay)
    size = part.stat().st_size
    if total is not None and size != total:
        _discard_partial(part, meta_path)
        raise DownloadError(f"{name}: got {size:,} bytes, expected {total:,}; download it again")
    if _SHA256_RE.match(meta.etag):  # LFS files: the ETag is the content's sha256
        digest = _sha256_file(part, size, on_progress, cancel)
        if digest != meta.etag:
            _discard_partial(part, meta_path)
            raise DownloadError(f"{name}: sha256 {digest} does not match the hub's {meta.etag}; download it again")
    try:
        verify_gguf(part)
    except GGUFError as exc:
        _discard_partial(part, meta_path)
        raise DownloadError(f"{name} is not a usable GGUF file: {exc.problem}") from None
    os.replace(part, target)
    meta_path.unlink(missing_ok=True)
    return target


def _origin(url: str) -> tuple[str, str, int | None]:
    u = httpx2.URL(url)
    return u.scheme, u.host, u.port
