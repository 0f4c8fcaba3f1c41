"""What /proc says about processes and the machine: trees, process groups, CPU ticks,
RSS, and the CPU used by processes the harness did not start (the noise indicator)."""

from __future__ import annotations

import os
import resource
import threading

CLK_TCK = os.sysconf("SC_CLK_TCK")

# pid -> (utime+stime+cutime+cstime ticks, is a kernel thread, comm)
Snapshot = dict[int, tuple[int, bool, str]]


def _stat_fields(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command name (which may hold spaces)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def pid_in_group(pid: int, pgid: int) -> bool:
    try:
        fields = _stat_fields(pid)
        return fields[0] != "Z" and int(fields[2]) == pgid
    except (OSError, IndexError, ValueError):
        return False


def pgrp_members(pgid: int) -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit() and pid_in_group(int(d), pgid)]


def proc_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(_stat_fields(d)[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, stack = [root], [root]
    while stack:
        for c in children.get(stack.pop(), []):
            out.append(c)
            stack.append(c)
    return out


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def status_kib(pids: list[int], key: str) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
                        break
        except (OSError, ValueError):
            pass
    return total


def reset_hwm(pids: list[int]) -> bool:
    ok = True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
        except OSError:
            ok = False
    return ok


def system_ticks() -> dict[str, int]:
    """Aggregate /proc/stat 'cpu' line. busy = user+nice+system+irq+softirq: with tick-based
    accounting the irq/softirq ticks are also charged to the interrupted task's stime, so this
    is what the per-process utime+stime of all processes add up to."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return {
        "busy": v[0] + v[1] + v[2] + v[5] + v[6],
        "softirq": v[6],
        "steal": v[7] if len(v) > 7 else 0,
    }


def cpu_snapshot() -> Snapshot:
    """pid -> (utime+stime+cutime+cstime ticks, is kernel thread, comm) for every process."""
    snap: Snapshot = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        head, rest = s.rsplit(")", 1)
        v = rest.split()
        try:
            ticks = int(v[11]) + int(v[12]) + int(v[13]) + int(v[14])
            kthread = bool(int(v[6]) & 0x00200000)  # PF_KTHREAD
            snap[int(d)] = (ticks, kthread, head.split("(", 1)[1])
        except (IndexError, ValueError):
            continue
    return snap


def foreign_cpu(
    before: Snapshot, after: Snapshot, ours: set[int]
) -> tuple[int, int, list[tuple[str, int]]]:
    """Ticks used between two snapshots by processes that are not ours: (user space, kernel
    threads, the top three user-space commands)."""
    user = kern = 0
    per: dict[str, int] = {}
    for pid, (ticks, kthread, comm) in after.items():
        if pid in ours:
            continue
        d = ticks - before.get(pid, (0, False, ""))[0]
        if d <= 0:
            continue
        if kthread:
            kern += d
        else:
            user += d
            per[comm] = per.get(comm, 0) + d
    top = sorted(per.items(), key=lambda kv: -kv[1])[:3]
    return user, kern, top


def rusage_s(who: int) -> float:
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


class RssSampler(threading.Thread):
    """The peak of the summed VmRSS of ``pids``, sampled every ``interval`` seconds."""

    def __init__(self, pids: list[int], interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pids, self.interval, self.peak = pids, interval, 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, status_kib(self.pids, "VmRSS"))
            self._halt.wait(self.interval)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak
