"""Every process the harness starts: pinned to a CPU (``taskset``), optionally niced, in its
own session, and stopped by process-group id (never by name) on exit, error and signals."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from .log import log
from .procfs import pgrp_members, pid_in_group, proc_tree
from .workload import BENCH_DIR

Popen = subprocess.Popen[bytes]


class Procs:
    """The processes of one run, and how they are pinned: ``pin`` (CPU affinity through
    ``taskset -c``) and ``nice`` apply to everything started after they are set."""

    def __init__(self) -> None:
        self.items: list[tuple[str, subprocess.Popen[bytes] | subprocess.Popen[str]]] = []
        self.lock = threading.Lock()
        self.pin = True
        self.nice = 0

    def pin_argv(self, cpu: int | None) -> list[str]:
        prefix = ["nice", "-n", str(self.nice)] if self.nice else []
        if cpu is None or not self.pin:
            return prefix
        if shutil.which("taskset"):
            return [*prefix, "taskset", "-c", str(cpu)]
        # No taskset: the same syscall through python, which then execs the program.
        return [
            *prefix,
            sys.executable,
            "-c",
            "import os,sys; os.sched_setaffinity(0,{int(sys.argv[1])}); "
            "os.execvp(sys.argv[2], sys.argv[2:])",
            str(cpu),
        ]

    def start(
        self,
        name: str,
        argv: list[str],
        logfile: Path,
        cpu: int | None,
        env: dict[str, str] | None = None,
        cwd: Path = BENCH_DIR,
    ) -> Popen:
        argv = self.pin_argv(cpu) + argv
        with open(logfile, "ab") as out:
            p = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=cwd,
            )
        self.track(name, p)
        return p

    def track(self, name: str, p: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
        with self.lock:
            self.items.append((name, p))

    def forget(self, p: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
        with self.lock:
            self.items[:] = [it for it in self.items if it[1] is not p]

    def stop(self, p: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float = 5.0) -> None:
        """SIGTERM the group p leads, then SIGKILL whatever of p's own tree is left.

        Only PIDs seen as p's descendants and still in p's process group are signalled,
        so an exited-and-reused PID can never be hit."""
        if p.poll() is not None and not pgrp_members(p.pid):
            return
        tree = proc_tree(p.pid) if p.poll() is None else pgrp_members(p.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)  # p was started as leader of its own session/group
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (
            p.poll() is None or any(pid_in_group(x, p.pid) for x in tree)
        ):
            time.sleep(0.05)
        if p.poll() is None:
            p.kill()
        for pid in tree:
            if pid != p.pid and pid_in_group(pid, p.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=5)

    def stop_all(self) -> None:
        with self.lock:
            items = list(reversed(self.items))
            self.items.clear()
        for _name, p in items:
            self.stop(p)


def raise_exit(signum: int, _frame: FrameType | None) -> None:
    """A signal handler: unwind (``finally`` blocks stop every process this run started)."""
    log(f"got signal {signum}; stopping everything this run started")
    raise SystemExit(128 + signum)
