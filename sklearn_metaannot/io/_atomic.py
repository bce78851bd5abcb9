"""Output files of the command line: checked before the work, written all or nothing.

:func:`check_output_path` tells, before anything is fitted, whether a file can be
created at a path. :class:`AtomicOutputs` hands out temporary paths next to the
final ones and moves every output into place only when the whole run succeeded;
a failed or interrupted run leaves no new file, no half-written file, and every
existing file as it was.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path

#: Signals held back while the outputs are moved into place.
_HELD_SIGNALS = {
    getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name)
}


class OutputPathError(ValueError):
    """An output path where no file can be written; the message names the path.

    Examples
    --------
    >>> from sklearn_metaannot.io._atomic import check_output_path
    >>> check_output_path("/nonexistent/dir/p.csv", "-o")
    Traceback (most recent call last):
    ...
    sklearn_metaannot.io._atomic.OutputPathError: /nonexistent/dir/p.csv (-o): the \
directory /nonexistent/dir does not exist
    """


def _reason(exc):
    """The plain words of an OSError (``Permission denied``), without errno."""
    return exc.strerror or str(exc)


def check_output_path(path, option):
    """Check that a file can be created at ``path``, without leaving anything.

    The directory must exist, ``path`` must not be a directory, and creating a
    file in the directory must work (checked by creating and removing a
    temporary directory there, which also catches read-only file systems and
    permissions that ``os.access`` cannot see, e.g. for root).

    Parameters
    ----------
    path : str or path-like
        The output path.
    option : str
        The command-line option that named it, for the message (e.g. ``"-o"``).

    Raises
    ------
    OutputPathError
        If no file can be written at ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklearn_metaannot.io._atomic import check_output_path
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> check_output_path(folder / "p.csv", "-o")
    >>> sorted(folder.iterdir())
    []
    """
    path = Path(path)
    parent = path.parent
    where = f"{path} ({option})"
    if not parent.exists():
        raise OutputPathError(f"{where}: the directory {parent} does not exist")
    if not parent.is_dir():
        raise OutputPathError(f"{where}: {parent} is not a directory")
    if path.is_dir():
        raise OutputPathError(f"{where}: is a directory; give a file name")
    try:
        with _signals_held():  # an interruption leaves no probe behind
            os.rmdir(
                tempfile.mkdtemp(dir=parent, prefix=f".{path.name}.", suffix=".check")
            )
    except OSError as exc:
        raise OutputPathError(
            f"{where}: cannot write in {parent} ({_reason(exc)})"
        ) from None


def _remove(path):
    """Remove a file, a link or a directory tree; nothing if it is not there."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _set_aside(final, folder):
    """Keep what is at ``final`` in ``folder`` (to put it back); None if nothing.

    A file is hard-linked (or copied), so that it stays at ``final`` until the
    new one atomically replaces it; a directory is moved.
    """
    if not (final.exists() or final.is_symlink()):
        return None
    backup = folder / "previous"
    if final.is_dir() and not final.is_symlink():
        os.replace(final, backup)
        return backup
    try:
        os.link(final, backup, follow_symlinks=False)
    except OSError:
        shutil.copy2(final, backup, follow_symlinks=False)
    return backup


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT and SIGTERM back (POSIX) until the block ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class AtomicOutputs:
    """Outputs written to temporary paths, moved into place all together.

    Use it as a context manager: :meth:`path` gives, for each final path, a
    temporary path in a hidden directory next to it (same file system, so that
    the final move is a rename); at the end of a ``with`` block that raised
    nothing, every output is moved into place (:meth:`commit`); otherwise the
    temporary paths are removed (:meth:`discard`) and the final paths keep what
    they held. An output may be a file or a directory.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklearn_metaannot.io._atomic import AtomicOutputs
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with AtomicOutputs() as outputs:
    ...     _ = outputs.path(folder / "a.txt").write_text("a")
    ...     _ = outputs.path(folder / "b.txt").write_text("b")
    >>> sorted(p.name for p in folder.iterdir())
    ['a.txt', 'b.txt']
    >>> try:
    ...     with AtomicOutputs() as outputs:
    ...         _ = outputs.path(folder / "a.txt").write_text("new")
    ...         raise KeyboardInterrupt
    ... except KeyboardInterrupt:
    ...     pass
    >>> (folder / "a.txt").read_text(), len(list(folder.iterdir()))
    ('a', 2)
    """

    def __init__(self):
        self._pending = []  # (temporary folder, temporary path, final path)

    def path(self, final):
        """A temporary path to write the output ``final`` to.

        Parameters
        ----------
        final : str or path-like
            Where the output goes when the run succeeds.

        Returns
        -------
        pathlib.Path
            A path that does not exist yet, in a new hidden directory next to
            ``final``.
        """
        final = Path(final)
        with _signals_held():  # no interruption between creating and recording
            folder = Path(
                tempfile.mkdtemp(
                    dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"
                )
            )
            self._pending.append((folder, folder / final.name, final))
        return folder / final.name

    def commit(self):
        """Move every output into place; on any failure, undo the moves done."""
        done = []  # (final, backup, placed)
        with _signals_held():
            try:
                for folder, temporary, final in self._pending:
                    if not (temporary.exists() or temporary.is_symlink()):
                        raise FileNotFoundError(
                            f"{final}: the output was not written ({temporary})"
                        )
                    done.append([final, _set_aside(final, folder), False])
                    os.replace(temporary, final)
                    done[-1][2] = True
            except BaseException:
                for final, backup, placed in reversed(done):
                    if placed:
                        _remove(final)
                    if backup is not None:
                        os.replace(backup, final)
                self.discard()
                raise
            self.discard()

    def discard(self):
        """Remove the temporary paths (and what was set aside); keep the finals."""
        for folder, _, _ in self._pending:
            _remove(folder)
        self._pending = []

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.discard()
        return False
