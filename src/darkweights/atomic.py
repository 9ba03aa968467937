"""Atomic outputs: every file darkweights writes appears whole or not at all.

:func:`atomic_output` writes into an anonymous file in the target directory (Linux
``O_TMPFILE``: it has no name, so even ``SIGKILL`` leaves nothing behind) and
gives it the target's name only once everything is written. Where ``O_TMPFILE``
is unavailable it falls back to a hidden ``.NAME.XXXX.tmp`` file, removed on any exception,
``SIGINT`` or ``SIGTERM``. An existing output is replaced only with ``force=True``; an output
that is one of the inputs is refused; a full disk gives one :class:`OutputError` and no file.

Every writer (``.weights``, ``.npz``, ``.safetensors``, ``.png``, ``.json``, ``.onnx``) uses it::

    with atomic_output(path, force=args.force, inputs=[cfg, weights]) as f:
        f.write(...)
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Iterator
from typing import IO, Union

from .errors import OutputError

PathLike = Union[str, "os.PathLike[str]"]


class Terminated(BaseException):
    """SIGTERM arrived while an output was being written (raised so the temporary file is removed)."""


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output(path: PathLike, *, force: bool = True, inputs: Iterable[PathLike | None] = ()) -> str:
    """Refuse an output that is one of ``inputs``, or that exists when ``force`` is false."""
    target = os.fspath(path)
    for inp in inputs:
        if (
            inp is not None
            and isinstance(inp, (str, os.PathLike))
            and os.path.exists(inp)
            and _same_file(target, os.fspath(inp))
        ):
            raise OutputError(
                "the output is one of the inputs: refusing to overwrite it (choose another name)", file=target
            )
    if not force and os.path.lexists(target):
        raise OutputError("the output exists: pass --force (force=True) to replace it", file=target)
    if os.path.isdir(target):
        raise OutputError("the output is a directory", file=target)
    return target


@contextlib.contextmanager
def _terminate_as_exception() -> Iterator[None]:
    """While writing, turn SIGTERM into an exception so cleanup runs (the main thread only)."""
    import signal  # here, not at import: `import darkweights` stays light
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):  # pragma: no cover - e.g. embedded interpreters
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _disk_error(exc: OSError, target: str) -> OutputError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"disk full while writing: {exc.strerror}; nothing was written", file=target)
    return OutputError(f"cannot write here: {exc.strerror or exc}", file=target)


def _open_anonymous(directory: str) -> int | None:
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(directory, flag | os.O_RDWR, 0o666)  # the umask applies, as for open(path, "w")
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT) and os.path.isdir(directory):
            return None  # filesystem without O_TMPFILE: named temporary file instead
        raise


def _link_into_place(fd: int, directory: str, target: str) -> None:
    """Give the anonymous file a (hidden, unique) name, then rename it over the target."""
    import secrets

    proc = os.open("/proc/self/fd", os.O_RDONLY)
    try:
        for _ in range(100):
            tmp = os.path.join(directory, f".{os.path.basename(target)}.{secrets.token_hex(4)}.tmp")
            try:
                # linkat(AT_SYMLINK_FOLLOW) on the /proc entry: the documented way to name an O_TMPFILE
                # file (a plain link() of /proc/self/fd/N fails with EXDEV)
                os.link(str(fd), tmp, src_dir_fd=proc, follow_symlinks=True)
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover
            raise FileExistsError(errno.EEXIST, "no free temporary name", directory)
    finally:
        os.close(proc)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_output(
    path: PathLike, mode: str = "wb", *, force: bool = True, inputs: Iterable[PathLike | None] = ()
) -> Iterator[IO]:
    """A file object that becomes ``path`` only when the ``with`` block completes.

    On an exception, ``SIGINT`` (``KeyboardInterrupt``) or ``SIGTERM`` (:class:`Terminated`) the
    partial data is discarded and ``path`` is untouched (an existing file keeps its content).
    """
    target = check_output(path, force=force, inputs=inputs)
    directory = os.path.dirname(target) or "."
    tmp: str | None = None
    with _terminate_as_exception():
        try:
            fd = _open_anonymous(directory)
            if fd is None:
                import tempfile  # lazily: it pulls in random/hashlib, which reading never needs

                fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory)
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual mode
        except OSError as exc:
            raise _disk_error(exc, target) from None
        try:
            with os.fdopen(fd, mode) as f:
                fd = -1  # owned by f now
                yield f
                f.flush()
                if tmp is None:
                    _link_into_place(f.fileno(), directory, target)
            if tmp is not None:
                os.replace(tmp, target)
                tmp = None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT) or getattr(exc, "filename", None) is None:
                raise _disk_error(exc, target) from None
            raise
        finally:
            if fd >= 0:
                os.close(fd)
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
