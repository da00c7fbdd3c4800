"""
A hard time limit that holds on every thread: the call runs in a child process.

SIGALRM only fires on the main thread, so a limit built on it quietly disappears in a worker thread (a
thread pool, a data loader, a server) and the same input can get another verdict there. Here the work runs
in one long-lived child Python process that imports a module and calls its functions by name; the caller
waits at most `timeout` seconds for the answer, and a child that overruns is killed and replaced. So the
bound and the verdict are the same on every thread, and nothing the child does (a hang, a memory blow-up,
a crash) can take the caller down with it.

    worker = Worker("grader")
    worker.call("grade_here", response, gold, timeout=1.0)   # the result, or raises TimeoutError

The child is a plain `python -c` (not multiprocessing), so a training script without a __main__ guard is
never re-imported in it. It reads one JSON request per line on stdin and exits when stdin closes, i.e. when
its parent is gone.
"""

import atexit
import importlib
import json
import os
import queue
import subprocess
import sys
import threading

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repo: tasks/ is a package in it
_START_TIMEOUT = 120.0  # importing sympy on a busy machine; not part of any call's limit
_MEMORY_LIMIT = 4 << 30  # bytes of address space for the child: a blow-up is a MemoryError there, not an OOM here


class Worker:
    def __init__(self, module):
        self.module = module
        self.proc = None
        self.replies = None
        self.lock = threading.Lock()  # one call at a time; each call has the child to itself
        self.timeouts = 0  # calls that overran their limit (each replaced the child): tests count these, not seconds

    def call(self, func, *args, timeout):
        """func(*args) in the child, or TimeoutError after `timeout` seconds (the child is then replaced)."""
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            self.proc.stdin.write(json.dumps([func, args]) + "\n")
            self.proc.stdin.flush()
            try:
                reply = self.replies.get(timeout=timeout)
            except queue.Empty:
                self._stop()
                self.timeouts += 1
                raise TimeoutError(f"{self.module}.{func} took more than {timeout} s") from None
            if reply is None:  # the child died (killed from outside, or crashed hard)
                self._stop()
                raise RuntimeError(f"the {self.module} worker process exited")
            if "error" in reply:
                raise RuntimeError(reply["error"])
            return reply["result"]

    def _start(self):
        code = f"import sys; sys.path.insert(0, {_ROOT!r}); from tasks import timelimit; timelimit.serve({self.module!r})"
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
            env=env,
        )
        self.replies = queue.Queue()
        threading.Thread(target=_read_lines, args=(self.proc.stdout, self.replies), daemon=True).start()
        if self.replies.get(timeout=_START_TIMEOUT) != {"ready": True}:
            self._stop()
            raise RuntimeError(f"the {self.module} worker process did not start")

    def _stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def close(self):
        with self.lock:
            self._stop()


def _read_lines(stream, replies):
    for line in stream:
        replies.put(json.loads(line))
    replies.put(None)  # end of stream: the child is gone


def serve(module):
    """The child's loop: answer each request line with {"result": ...} or {"error": "..."}."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_LIMIT, _MEMORY_LIMIT))
    except (ImportError, ValueError, OSError):  # not on this platform, or a lower limit is already set
        pass
    mod = importlib.import_module(module)
    out = sys.stdout
    sys.stdout = sys.stderr  # anything the module prints must not corrupt the reply stream
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        func, args = json.loads(line)
        try:
            reply = {"result": getattr(mod, func)(*args)}
        except Exception as err:  # reported to the caller, who decides; the child stays up
            reply = {"error": f"{type(err).__name__}: {err}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


_workers = {}
_workers_lock = threading.Lock()


def worker(module):
    """The process-wide worker for `module` (started on first use, stopped at exit)."""
    with _workers_lock:
        if module not in _workers:
            _workers[module] = Worker(module)
        return _workers[module]


@atexit.register
def _close_all():
    for w in list(_workers.values()):
        w.close()
