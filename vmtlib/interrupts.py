"""Ctrl-C and SIGTERM during training: finish the step, save, and say how to resume.

:class:`GracefulStop` is a context manager that, in the main thread, replaces the
SIGINT and SIGTERM handlers by one that only records the signal; the training loop
checks :attr:`GracefulStop.requested` after every step, saves a checkpoint at the
step reached and raises :class:`TrainingInterrupted`. A second signal restores the
previous handlers and interrupts at once (the checkpoint on disk is whole either way:
checkpoints are written atomically).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by a signal after saving a checkpoint at ``step``."""

    def __init__(self, signum: int, step: int, out: Path) -> None:
        self.signum, self.step, self.out = signum, step, out
        name = signal.Signals(signum).name
        super().__init__(f"{name}: stopped at step {step}, checkpoint saved in {out}; "
                         f"resume with: python -m vmtlib train --resume --out {out}")

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + int(self.signum)


class GracefulStop:
    """Records SIGINT / SIGTERM while active (main thread only; a no-op elsewhere)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # the second signal: stop at once
            self._restore()
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: saving a checkpoint at the end of this step "
              f"(send it again to stop at once)", file=sys.stderr, flush=True)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def __exit__(self, *exc: Any) -> None:
        self._restore()
