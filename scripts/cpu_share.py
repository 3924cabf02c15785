#!/usr/bin/env python3
"""Runs a command and prints how the machine's CPU was shared while it ran.

Usage: scripts/cpu_share.py -- COMMAND [ARGS...]

Every process's user+system ticks are read from /proc before and after; the difference is
grouped by program (nginx, ingress, worker, RabbitMQ's beam.smp, mariadbd, redis-server, the
command itself) and printed as a share of all cores over the wall time, then as one JSON line
on stderr so a benchmark script can keep it. Two more readings say how much the machine
itself delayed the programs: the steal time (a virtual machine's vCPUs ready to run while the
host ran something else) and, per group, the time threads spent runnable but waiting for a
core (`/proc/PID/task/TID/schedstat`), in total and per time slice. The command's own stdout and exit code pass
through unchanged.
"""
import json
import os
import resource
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
GROUPS = {
    "nginx": "nginx",
    "ingress": "ingress",
    "worker": "worker",
    "beam.smp": "rabbitmq",
    "erl_child_setup": "rabbitmq",
    "epmd": "rabbitmq",
    "inet_gethost": "rabbitmq",
    "mariadbd": "mariadb",
    "redis-server": "redis",
}


def snapshot():
    ticks = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        # comm is in parentheses and may contain spaces; the fields after it are fixed.
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        # fields[19] is the start time: it tells a reused pid (a kernel worker renames itself
        # with the work it runs, so the name cannot).
        ticks[int(name)] = (comm, int(fields[11]) + int(fields[12]), fields[19], run_queue_wait(name))
    return ticks


def run_queue_wait(pid):
    """Per thread id: (ns spent runnable but not running, time slices). Threads come and go
    (MariaDB's connection threads do), so deltas are taken thread by thread."""
    threads = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return threads
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                _, waited, ran = (int(v) for v in f.read().split())
        except (OSError, ValueError):
            continue
        threads[tid] = (waited, ran)
    return threads


def idle_ticks():
    """(idle + iowait, steal, all) ticks of all cores."""
    with open("/proc/stat") as f:
        cpu = f.readline().split()[1:]
    values = [int(v) for v in cpu]
    steal = values[7] if len(values) > 7 else 0
    return values[3] + values[4], steal, sum(values)


def main():
    args = sys.argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    before = snapshot()
    idle0, steal0, total0 = idle_ticks()
    started = time.monotonic()
    code = subprocess.call(args)
    wall = time.monotonic() - started
    after = snapshot()
    idle1, steal1, total1 = idle_ticks()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)

    used = {}
    waits = {}
    for pid, (comm, ticks, started_at, threads) in after.items():
        if pid == os.getpid():
            continue
        # A pid that is new, or reused by another process, started from zero.
        _, old_ticks, old_started_at, old_threads = before.get(pid, (comm, 0, started_at, {}))
        same = old_started_at == started_at
        start = old_ticks if same else 0
        group = GROUPS.get(comm, "other")
        used[group] = used.get(group, 0.0) + (ticks - start) / TICK
        if group != "other":
            w = waits.setdefault(group, [0, 0])
            for tid, (wait, slices) in threads.items():
                # A thread id can be reused too: a counter that went down started again.
                old_wait, old_slices = old_threads.get(tid, (0, 0)) if same else (0, 0)
                if wait < old_wait or slices < old_slices:
                    old_wait, old_slices = 0, 0
                w[0] += wait - old_wait
                w[1] += slices - old_slices
    used["loadgen"] = used.get("loadgen", 0.0) + usage.ru_utime + usage.ru_stime
    capacity = wall * CORES
    shares = {k: round(100.0 * v / capacity, 1) for k, v in sorted(used.items(), key=lambda kv: -kv[1])}
    idle = round(100.0 * (idle1 - idle0) / max(1, total1 - total0), 1)
    steal = round(100.0 * (steal1 - steal0) / max(1, total1 - total0), 1)
    # Per group: seconds its threads waited for a core, and the mean wait per time slice.
    wait = {
        g: {"secs": round(w / 1e9, 2), "us_per_slice": round(w / max(1, n) / 1e3, 1)}
        for g, (w, n) in sorted(waits.items(), key=lambda kv: -kv[1][0])
    }
    print(f"\nCPU share of {CORES} cores over {wall:.1f} s (idle {idle} %, stolen by the host {steal} %):", file=sys.stderr)
    for group, share in shares.items():
        if share >= 0.1:
            line = f"  {group:<10} {share:5.1f} %"
            if group in wait:
                line += f"   waited for a core {wait[group]['secs']:6.2f} s ({wait[group]['us_per_slice']} us per slice)"
            print(line, file=sys.stderr)
    print(
        json.dumps(
            {
                "cpu_share_percent": shares,
                "idle_percent": idle,
                "steal_percent": steal,
                "run_queue_wait": wait,
                "wall_secs": round(wall, 2),
            }
        ),
        file=sys.stderr,
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
