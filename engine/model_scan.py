"""Describe a ``.gguf`` file without loading it: what the model library lists for each installed model.

Only the header is read (:class:`engine.gguf_file.GGUFFile` maps the file and parses the metadata and
tensor directory; no tensor byte is touched). Whether the engine runs the file is the engine's own check
short of loading: ``engine.model.read_hparams`` (architecture known, not an unsupported mixture of
experts, hyper-parameters valid) and ``cython_kernels.quants.type_supported`` for every tensor's type,
the check ``load_model`` makes tensor by tensor.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cython_kernels.quants import type_supported

from .gguf_file import GGUFError, GGUFFile, ggml_type_name
from .memory_fit import MemoryShape, generic_shape, shape_from_hparams
from .model import quantization_name, read_hparams


@dataclass(frozen=True)
class ModelEntry:
    """One file of the models folder, as the library shows it.

    Attributes:
        path: the file.
        file_size: bytes (0 if it could not be read).
        name: ``general.name``, else the file stem.
        architecture: ``general.architecture``, or None if unreadable.
        quantization: llama.cpp's file-type name (``"Q4_K_M"``; ``general.file_type``, else the most
            common matrix type), or None.
        n_params: parameters (sum of tensor elements), or None.
        n_ctx_train: trained context length in tokens, or None.
        supported: the engine can run it.
        problem: why it cannot (unsupported architecture or tensor type, bad metadata), or None.
        error: the file could not be read at all (not a GGUF, truncated, unreadable); the other fields
            are then empty. None for a readable file.
        shape: what :func:`engine.memory_fit.estimate` needs, or None when unknown.
    """

    path: Path
    file_size: int
    name: str
    architecture: str | None = None
    quantization: str | None = None
    n_params: int | None = None
    n_ctx_train: int | None = None
    supported: bool = False
    problem: str | None = None
    error: str | None = None
    shape: MemoryShape | None = None


def _unsupported_types(gf: GGUFFile) -> list[str]:
    """Names of the tensor types in the file that the kernels do not compute with, sorted."""
    return sorted({ggml_type_name(t.ggml_type) for t in gf.tensors.values() if not type_supported(t.ggml_type)})


def scan_model(path: str | Path) -> ModelEntry:
    """Describe ``path`` from its GGUF header. Never raises for a bad file: the entry carries the error.

    Args:
        path: a ``.gguf`` file.

    Returns:
        :class:`ModelEntry`; ``error`` set for a file that is not a readable GGUF, ``problem`` for one the
        engine cannot run.
    """
    path = Path(path)
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        return ModelEntry(path, 0, path.stem, error=f"cannot read the file ({exc.strerror or exc})")
    try:
        gf = GGUFFile(path)
    except GGUFError as exc:
        return ModelEntry(path, size, path.stem, error=exc.problem)
    except OSError as exc:
        return ModelEntry(path, size, path.stem, error=f"cannot read the file ({exc.strerror or exc})")
    with gf:
        arch = gf.get("general.architecture")
        name = str(gf.get("general.name", path.stem))
        common = dict(architecture=arch if isinstance(arch, str) else None, quantization=quantization_name(gf),
                      n_params=sum(t.n_elements for t in gf.tensors.values()) or None)
        problem = None
        shape = None
        try:
            hp = read_hparams(gf)
        except GGUFError as exc:
            problem = exc.problem
            try:
                shape = generic_shape(gf)
            except GGUFError:
                shape = None
            n_ctx_train = shape.n_ctx_train if shape is not None and shape.n_ctx_train else None
        else:
            shape = shape_from_hparams(hp, size)
            n_ctx_train = hp.n_ctx_train
            bad = _unsupported_types(gf)
            if bad:
                problem = f"tensor type{'s' if len(bad) > 1 else ''} {', '.join(bad)} not supported by Fireside"
    return ModelEntry(path, size, name, n_ctx_train=n_ctx_train, supported=problem is None, problem=problem,
                      shape=shape, **common)
