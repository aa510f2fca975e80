"""Provenance of a results file: software versions, input-file fingerprints, timings."""

from __future__ import annotations

import functools
import os
import platform
import time
from pathlib import Path
from typing import Any

from .movie import movie_files


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in (
        "napari-caiman",
        "numpy",
        "scipy",
        "opencv-python-headless",
        "h5py",
        "tifffile",
        "napari",
    ):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return tuple(out.items())


def software_versions() -> dict[str, str]:
    """Return the versions of the software that matters for reproducing a result.

    Read once per process: package metadata is slow to parse.
    """
    return dict(_versions())


def file_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Identify one input file cheaply.

    Path, size, mtime, the SHA-256 of its first MiB (``header_sha256``) and of a sample of its
    content (``content_sha256``: size, first and last MiB, and 16 blocks of 64 KiB spread evenly in
    between). The content hash does not depend on the file's name or location, so a copied movie is
    recognised; reading ~3 MiB costs milliseconds even for a file of many GB.
    """
    import hashlib

    p = Path(path)
    st = p.stat()
    size = st.st_size
    head = hashlib.sha256()
    content = hashlib.sha256(str(size).encode())
    mib = 1 << 20
    with open(p, "rb") as fh:
        first = fh.read(mib)
        head.update(first)
        content.update(first)
        if size > 2 * mib:
            block = 64 << 10
            for i in range(1, 17):
                fh.seek(mib + (size - 2 * mib - block) * i // 17)
                content.update(fh.read(block))
            fh.seek(size - mib)
            content.update(fh.read(mib))
        elif size > mib:
            content.update(fh.read())
    return {
        "path": str(p.resolve()),
        "size": size,
        "mtime": st.st_mtime,
        "header_sha256": head.hexdigest(),
        "content_sha256": content.hexdigest(),
    }


def input_files(source: str | os.PathLike | list) -> list[Path]:
    """Return the files a movie source consists of (a folder expands to its movie files)."""
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    files: list[Path] = []
    for s in sources:
        p = Path(s)
        files.extend(movie_files(p) if p.is_dir() else [p])
    return files


def recorded_movie(prov: dict[str, Any] | None) -> tuple[str, list[dict[str, Any]]]:
    """Return ``(what, fingerprints)`` of the movie a result was computed on.

    The saved motion-corrected movie when the run corrected motion, else its input; ``what`` names
    which ("motion-corrected movie" / "input movie"); no fingerprints when none were recorded.
    """
    prov = prov or {}
    if "motion" in (prov.get("steps") or []):
        return "motion-corrected movie", list(prov.get("corrected_files") or [])
    return "input movie", list(prov.get("input_files") or [])


def content_matches(source: str | os.PathLike | list, hashes: list[Any]) -> bool:
    """Whether a movie source's files have these sampled-content hashes, in order.

    See :func:`file_fingerprint`. The file count is compared first and the files are hashed
    one by one until one differs, so a folder of many TIFFs that is not the movie costs little.
    """
    files = [f for f in input_files(source) if f.is_file()]
    if len(files) != len(hashes):
        return False
    return all(
        file_fingerprint(f)["content_sha256"] == h for f, h in zip(files, hashes, strict=True)
    )


def make_provenance(
    input_path: str | os.PathLike | list | None = None,
    timings: dict[str, float] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Provenance record.

    Versions, input file(s) (path, size, mtime, header and sampled-content hashes), timings, plus
    ``extra`` (steps, backend, start/end times ...).
    """
    prov: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": software_versions(),
    }
    if input_path:
        files = input_files(input_path)
        prov["input_path"] = (
            str(files[0].resolve()) if files and files[0].exists() else str(input_path)
        )
        if files and all(f.is_file() for f in files):
            prints = [file_fingerprint(f) for f in files]
            prov["input_size"] = sum(fp["size"] for fp in prints)
            prov["input_mtime"] = prints[0]["mtime"]
            prov["input_header_sha256"] = prints[0]["header_sha256"]
            prov["input_files"] = prints
    if timings:
        prov["timings"] = {k: float(v) for k, v in timings.items()}
    prov.update(extra)
    return prov
