"""Results-folder paths: local folders, or object stores (``gs://``, ...) via etils.epath.

``results_path`` turns ``--out`` (or a library caller's folder) into the path
type every writer of a results folder uses: a ``pathlib.Path`` for a local
folder, whose behaviour is exactly what it always was (appends, the ``flock``
writer lock, ``shutil.move``), and an ``etils.epath.Path`` for a URI, the type
orbax itself takes (its checkpoints reach GCS through tensorstore). Code that
touches a results folder uses only what both types have (``/``, ``exists``,
``is_dir``, ``iterdir``, ``mkdir``, ``read_bytes``, ``write_bytes``, ...) and
asks ``is_local`` where the two differ:

* **No append on object stores.** ``append_text`` rewrites the whole object
  (its old bytes, then the new ones) in one upload. An upload is atomic there
  (readers see the old object or the new one, never half of one), so nothing
  already saved is ever lost or torn; every byte already written is written
  again unchanged. It also notices a file that changed since this process last
  wrote it (another writer) and refuses to overwrite it (``ConfigError``).
* **No lock on object stores** (``lock.writer_lock``): see docs/design.md,
  "Results folders on object stores".
* **Figures** render to a local temporary file, then are copied
  (``copy_local_file``).

A URI whose filesystem is not installed (``gs://`` without gcsfs or
TensorFlow) is a ``ConfigError`` from ``results_path``: one line, before
anything compiles.
"""

import hashlib
import importlib.util
import os
import pathlib
from typing import Any

from etils import epath

from cmrl_jax.errors import ConfigError

# Schemes etils.epath serves, and the package that gives it each one (through fsspec).
FILESYSTEMS = {"gs": "gcsfs", "s3": "s3fs", "az": "adlfs", "hf": "huggingface_hub"}
FSSPEC_PROTOCOL = {"gs": "gcs", "s3": "s3", "az": "az", "hf": "hf"}

ResultsPath = pathlib.Path | epath.Path
"""A local folder's ``pathlib.Path`` or an object store's ``epath.Path``: see ``results_path``."""

# Per object-store file: sha256 of the bytes this process last wrote there.
_WRITTEN: dict[str, str] = {}


def scheme(path: Any) -> str | None:
    """``"gs"`` for ``gs://bucket/x``; None for a local path."""
    text = os.fspath(path)
    return text.split("://", 1)[0] if "://" in text else None


def is_local(path: Any) -> bool:
    """Whether ``path`` is on a local (POSIX) filesystem: appends and ``flock`` work there.

    The one place the two behaviours split; tests replace it to drive the
    object-store code on a local folder.
    """
    return scheme(path) is None


def _available(name: str) -> bool:
    """Whether etils.epath can open ``name://`` here (fsspec's filesystem, or TensorFlow's)."""
    if name == "gs" and importlib.util.find_spec("tensorflow") is not None:
        return True  # epath then uses tf.io.gfile
    try:
        import fsspec

        fsspec.get_filesystem_class(FSSPEC_PROTOCOL[name])
    except (ImportError, ValueError):
        return False
    return True


def results_path(path: Any, flag: str = "--out") -> ResultsPath:
    """The path object for a results folder (or a file in one) named by ``path``.

    Local: ``pathlib.Path(path)``. A URI: ``etils.epath.Path(path)``, once its
    filesystem is known to be installed. ConfigError (one line) for a scheme
    epath does not serve or whose filesystem is missing.
    """
    name = scheme(path)
    if name is None:
        return path if isinstance(path, pathlib.Path) else pathlib.Path(path)
    if name not in FILESYSTEMS:
        raise ConfigError(f"{flag} {path}: unknown scheme {name}://; use a local folder or "
                          f"one of {', '.join(s + '://' for s in FILESYSTEMS)}")
    if not _available(name):
        raise ConfigError(f"{flag} {path}: no {name}:// filesystem is installed; "
                          f"pip install {FILESYSTEMS[name]} (nothing was changed)")
    return epath.Path(os.fspath(path))


def forget_writes(folder: ResultsPath) -> None:
    """Start a writer session of ``folder``: forget what earlier sessions of this process wrote
    under it (``read_object`` then checks against this session's writes only)."""
    prefix = os.fspath(folder).rstrip("/") + "/"
    for key in [k for k in list(_WRITTEN) if k.startswith(prefix)]:  # programs' threads
        _WRITTEN.pop(key, None)


def local_path(path: Any, flag: str = "--out") -> pathlib.Path:
    """``pathlib.Path(path)`` for an output that must be local (a figure for docs/);
    ConfigError (one line) for a URI, which pathlib would turn into a folder named ``gs:``."""
    if scheme(path) is not None:
        raise ConfigError(f"{flag} {path}: must be a local file (copy it to the bucket "
                          "afterwards; nothing was changed)")
    return pathlib.Path(path)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_object(path: ResultsPath, data: bytes) -> None:
    """Write the whole file ``path`` in one upload and remember what was written."""
    path.write_bytes(data)
    _WRITTEN[os.fspath(path)] = _digest(data)


def read_object(path: ResultsPath) -> bytes:
    """The bytes of ``path`` (empty if absent); ConfigError when another process has changed
    it since this process last wrote it."""
    data = path.read_bytes() if path.exists() else b""
    expected = _WRITTEN.get(os.fspath(path))
    if expected is not None and _digest(data) != expected:
        raise ConfigError(
            f"{path} changed since this process last wrote it: another process is writing "
            "this results folder (object stores have no writer lock); stopped without "
            "overwriting it"
        )
    return data


def append_text(path: ResultsPath, text: str) -> None:
    """Append ``text`` to the file ``path`` (created if absent).

    Local: one ``open("a")`` write. Object store (no append): the file is
    rewritten whole, its old bytes then ``text``, in one atomic upload.
    """
    if is_local(path):
        with path.open("a") as f:
            f.write(text)
        return
    write_object(path, read_object(path) + text.encode())


def copy_local_file(source: pathlib.Path, target: ResultsPath) -> None:
    """Copy a local file to ``target`` (any results path), creating its folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())
