#!/usr/bin/env python3
"""Runs a command and prints how the machine's CPU was shared while it ran.

Usage: scripts/cpu_share.py -- COMMAND [ARGS...]

Every process's user+system ticks are read from /proc before and after; the difference is
grouped by program (nginx, ingress, worker, RabbitMQ's beam.smp, mariadbd, redis-server, the
command itself) and printed as a share of all cores over the wall time, then as one JSON line
on stderr so a benchmark script can keep it. The command's own stdout and exit code pass
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
        ticks[int(name)] = (comm, int(fields[11]) + int(fields[12]), fields[19])
    return ticks


def idle_ticks():
    with open("/proc/stat") as f:
        cpu = f.readline().split()[1:]
    values = [int(v) for v in cpu]
    return values[3] + values[4], sum(values)


def main():
    args = sys.argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    before = snapshot()
    idle0, total0 = idle_ticks()
    started = time.monotonic()
    code = subprocess.call(args)
    wall = time.monotonic() - started
    after = snapshot()
    idle1, total1 = idle_ticks()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)

    used = {}
    for pid, (comm, ticks, started_at) in after.items():
        if pid == os.getpid():
            continue
        # A pid that is new, or reused by another process, started from zero.
        _, old_ticks, old_started_at = before.get(pid, (comm, 0, started_at))
        start = old_ticks if old_started_at == started_at else 0
        group = GROUPS.get(comm, "other")
        used[group] = used.get(group, 0.0) + (ticks - start) / TICK
    used["loadgen"] = used.get("loadgen", 0.0) + usage.ru_utime + usage.ru_stime
    capacity = wall * CORES
    shares = {k: round(100.0 * v / capacity, 1) for k, v in sorted(used.items(), key=lambda kv: -kv[1])}
    idle = round(100.0 * (idle1 - idle0) / max(1, total1 - total0), 1)
    print(f"\nCPU share of {CORES} cores over {wall:.1f} s (idle {idle} %):", file=sys.stderr)
    for group, share in shares.items():
        if share >= 0.1:
            print(f"  {group:<10} {share:5.1f} %", file=sys.stderr)
    print(json.dumps({"cpu_share_percent": shares, "idle_percent": idle, "wall_secs": round(wall, 2)}), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
