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
import contextvars
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


def check_output(path: PathLike, *, force: bool | None = None, inputs: Iterable[PathLike | None] = ()) -> str:
    """Refuse an output that is one of ``inputs``, or that exists when ``force`` is false (``None``: as
    :func:`overwriting` says, by default true). A cheap early check: :func:`atomic_output` names the file
    with a link that fails if another process created it meanwhile."""
    target = os.fspath(path)
    force = _FORCE.get() if force is None else force
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


# Signals received while signals_as_exceptions() was in force (process-wide): an output is never named after
# one of them, even when library code (torch's tracer, a callback) swallowed the exception it raised.
_received: list[int] = []
# replace an existing output: the library's default; the CLI sets it from --force for the whole command
_FORCE = contextvars.ContextVar("darkweights_force", default=True)


def interrupted() -> int | None:
    """The first SIGINT/SIGTERM received while :func:`signals_as_exceptions` was in force, else ``None``."""
    return _received[0] if _received else None


def _raise_for(signum: int) -> None:
    import signal

    raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated()


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """SIGINT raises ``KeyboardInterrupt`` and SIGTERM :class:`Terminated` (so cleanup runs), each recorded for
    :func:`interrupted`; also when the process started with SIGINT ignored (a script's background job): a writer
    is stopped by either. The main thread only; nested uses keep the outer handlers."""
    import signal  # here, not at import: `import darkweights` stays light
    import threading

    if threading.current_thread() is not threading.main_thread() or getattr(_handler, "active", False):
        yield
        return
    saved = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            saved[sig] = signal.signal(sig, _handler)
    except (ValueError, OSError):  # pragma: no cover - e.g. embedded interpreters
        for sig, old in saved.items():
            signal.signal(sig, old)
        yield
        return
    _handler.active = True  # type: ignore[attr-defined]
    _received.clear()  # a new command (or outermost write): earlier signals were handled
    try:
        yield
    finally:
        _handler.active = False  # type: ignore[attr-defined]
        for sig, old in saved.items():
            signal.signal(sig, old)


def _handler(signum: int, frame: object) -> None:
    _received.append(signum)
    _raise_for(signum)


@contextlib.contextmanager
def overwriting(force: bool) -> Iterator[None]:
    """Whether outputs opened inside may replace an existing file (``force=None`` of :func:`atomic_output`)."""
    token = _FORCE.set(force)
    try:
        yield
    finally:
        _FORCE.reset(token)


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


def _exists(target: str) -> OutputError:
    return OutputError("the output exists: pass --force (force=True) to replace it", file=target)


def _link_into_place(fd: int, directory: str, target: str, force: bool) -> None:
    """Name the anonymous file: without ``force`` link it to the target directly (fails if the target exists,
    whoever made it); with ``force`` give it a hidden unique name, then rename that over the target."""
    import secrets

    proc = os.open("/proc/self/fd", os.O_RDONLY)
    try:
        # linkat(AT_SYMLINK_FOLLOW) on the /proc entry: the documented way to name an O_TMPFILE
        # file (a plain link() of /proc/self/fd/N fails with EXDEV)
        if not force:
            try:
                os.link(str(fd), target, src_dir_fd=proc, follow_symlinks=True)
            except FileExistsError:
                raise _exists(target) from None
            return
        for _ in range(100):
            tmp = os.path.join(directory, f".{os.path.basename(target)}.{secrets.token_hex(4)}.tmp")
            try:
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


def _rename_into_place(tmp: str, target: str, force: bool) -> None:
    """The named temporary file becomes the target (without ``force``: a link that fails if it exists)."""
    if force:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise _exists(target) from None
    except OSError as exc:  # a filesystem without hard links: the check-then-rename of old
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
        if os.path.lexists(target):
            raise _exists(target) from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def _check_signals() -> None:
    """A SIGINT/SIGTERM that arrived while writing stops the output from being named, even if swallowed."""
    signum = interrupted()
    if signum is not None:
        _raise_for(signum)


@contextlib.contextmanager
def atomic_output(
    path: PathLike, mode: str = "wb", *, force: bool | None = None, inputs: Iterable[PathLike | None] = ()
) -> Iterator[IO]:
    """A file object that becomes ``path`` only when the ``with`` block completes.

    On an exception, ``SIGINT`` (``KeyboardInterrupt``) or ``SIGTERM`` (:class:`Terminated`) the
    partial data is discarded and ``path`` is untouched (an existing file keeps its content). Without
    ``force`` (``None``: as :func:`overwriting` says) an existing ``path`` is never replaced, not even one
    another process created while this one was writing.
    """
    force = _FORCE.get() if force is None else force
    target = check_output(path, force=force, inputs=inputs)
    directory = os.path.dirname(target) or "."
    tmp: str | None = None
    with signals_as_exceptions():
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
                _check_signals()
                if tmp is None:
                    _link_into_place(f.fileno(), directory, target, force)
            if tmp is not None:
                _check_signals()
                _rename_into_place(tmp, target, force)
                tmp = None
        except OutputError:
            raise
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
