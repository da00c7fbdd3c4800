"""
How a training run is stopped from outside: Ctrl-C (SIGINT), kill's SIGTERM, or the SIGHUP of a closed terminal,
each the same way.

* While the run sets up (Run's __init__, `setting_up`), it has written nothing: a signal stops it at once, and a
  refusal (SystemExit) or a signal first undoes its claim on the run folder (the lock file, the folders it made).
* Once it runs, the trainer's own handler (`handle`) finishes the step, saves and exits.
* Once it has decided to exit, or has completed, further signals are ignored (`ignore`): Python puts back the
  default handlers while the interpreter shuts down, and a Ctrl-C there was a traceback, or exit 130.
"""

import functools
import os
import signal
from contextlib import contextmanager

SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def handle(handler):
    for sig in SIGNALS:
        signal.signal(sig, handler)


def ignore():
    handle(signal.SIG_IGN)


@contextmanager
def deferred():
    """The signals wait until the block ends: a handler that ran in its middle would find half of what it made."""
    if not hasattr(signal, "pthread_sigmask"):  # not on this platform
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def after_hangup(signum):
    """A closed terminal (SIGHUP) takes stdout and stderr with it: a write there fails (EIO), which would stop the
    run before it saves. Whichever of the two is gone now writes to the null device."""
    if signum != getattr(signal, "SIGHUP", None):
        return
    for fd in (1, 2):
        try:
            os.write(fd, b"")
        except OSError:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)


def setting_up(init):
    """For Run's __init__: a refusal, or a signal, before the run has written anything undoes its claim on the
    folder (self.folder.release()): the refused command leaves every file as it was, and no empty folder."""

    @functools.wraps(init)
    def guarded(self, *args, **kwargs):
        def stop_now(signum, frame):
            release()
            os._exit(128 + signum)  # at once, and raising nothing: the signal can land inside native loading code

        def release():
            if getattr(self, "folder", None) is not None:
                self.folder.release()

        handle(stop_now)
        try:
            init(self, *args, **kwargs)
        except BaseException:
            release()
            raise

    return guarded
