"""Local checkpoint directory: one file per (topic, partition), written atomically.

Besides partitions, a store keeps named states (keys that are plain strings), for state that is
not tied to one partition, such as open incidents.

Each file starts with a magic line naming the format, so the service only ever unpickles files it
wrote itself; a foreign or truncated file is a clear ``StateError`` rather than arbitrary code run
from a pickle. The write goes to a temporary file, is fsynced, then renamed over the old one, so a
crash mid-write leaves the previous checkpoint intact.

A running service holds an exclusive lock on the directory (``lock``): two instances writing one
directory would overwrite each other's checkpoints, and restore each other's state after a restart.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import re
from pathlib import Path
from typing import Any, BinaryIO

from detector.errors import StateError

MAGIC = b"outage-detector-checkpoint v1\n"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
LOCK_FILE = "outage-detector.lock"  # no checkpoint's name: those end in .ckpt or .state


class CheckpointStore:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._lock_fd: int | None = None

    def lock(self) -> None:
        """Take the directory for this process, or raise StateError naming the process that holds it.

        An flock, not a file that merely exists: the kernel releases it when the process ends, however
        it ends, so a crash leaves nothing to clean up. The holder's pid is written in the file only for
        the message."""
        if self._lock_fd is not None:
            return
        path = self.directory / LOCK_FILE
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StateError(f"cannot lock checkpoint directory {self.directory}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise StateError(
                f"checkpoint directory {self.directory} is in use by another running outage-detector"
                f"{f' (pid {holder})' if holder else ''}; give each instance its own checkpoint.directory"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StateError(f"cannot lock checkpoint directory {self.directory}: {exc}") from exc
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass  # the lock is what counts; the pid only makes the other instance's message better
        self._lock_fd = fd

    def relock(self) -> None:
        """Take the lock again if its file is gone (the directory deleted under the service): the old
        lock is on a file no other instance can find any more."""
        if self._lock_fd is not None and not (self.directory / LOCK_FILE).exists():
            self.unlock()
            self.lock()

    def unlock(self) -> None:
        """Let the directory go (a no-op when not held), e.g. for the next service in this process."""
        if self._lock_fd is not None:
            try:
                os.ftruncate(self._lock_fd, 0)  # no pid left behind for a reload to signal
            except OSError:
                pass
            os.close(self._lock_fd)  # closing the file releases its flock
            self._lock_fd = None

    def path(self, topic: str, partition: int | None = None) -> Path:
        if partition is None:  # a named state
            return self.directory / f"{_SAFE.sub('_', topic)}.state"
        return self.directory / f"{_SAFE.sub('_', topic)}-{partition}.ckpt"

    def save(self, topic: str, partition: int | None, state: Any) -> None:
        self.save_many({(topic, partition): state})

    def save_many(self, states: dict[tuple[str, int | None], Any]) -> None:
        self.sync(self.write(states))

    def write(self, states: dict[tuple[str, int | None], Any]) -> list[tuple[BinaryIO, Path]]:
        """Pickle each state to a temporary file beside its checkpoint; nothing replaces a checkpoint
        until ``sync``. Apart from it so that a caller can hold a lock while the states are pickled (they
        must not change meanwhile), and not while the files are made durable, which can take longer."""
        pending: list[tuple[BinaryIO, Path]] = []
        target = self.directory
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for (topic, partition), state in states.items():
                target = self.path(topic, partition)
                fh = open(target.with_suffix(".tmp"), "wb")
                pending.append((fh, target))
                fh.write(MAGIC)
                pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:
            self._discard(pending)
            if isinstance(exc, OSError):
                raise self._write_error(target, exc) from exc
            raise
        return pending

    def sync(self, pending: list[tuple[BinaryIO, Path]]) -> None:
        """Make what ``write`` pickled durable, then rename it over the checkpoints."""
        try:
            for fh, target in pending:
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()
                os.replace(fh.name, target)
            target = self.directory
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # make the renames durable before offsets are committed
            finally:
                os.close(dir_fd)
        except OSError as exc:
            self._discard(pending)
            raise self._write_error(target, exc) from exc

    @staticmethod
    def _discard(pending: list[tuple[BinaryIO, Path]]) -> None:
        """A write that failed leaves no temporary file behind (it would hold a full disk's space)."""
        for fh, _ in pending:
            try:
                fh.close()
            except OSError:
                pass  # its buffer could not be written either: the write has failed already
            Path(fh.name).unlink(missing_ok=True)

    @staticmethod
    def _write_error(path: Path, exc: OSError) -> StateError:
        return StateError(f"cannot write checkpoint {path}: {exc}")

    def load(self, topic: str, partition: int | None = None) -> Any | None:
        """The saved state, or None when this partition has never been checkpointed here."""
        path = self.path(topic, partition)
        try:
            with open(path, "rb") as fh:
                if fh.read(len(MAGIC)) != MAGIC:
                    raise StateError(f"{path} is not an outage-detector checkpoint; move it away to start fresh")
                return pickle.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            raise StateError(f"cannot read checkpoint {path}: {exc}; move it away to start fresh") from exc
