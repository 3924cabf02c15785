#!/usr/bin/env python3
"""What the disk and the file system were doing while a command ran: the kernel's own trace.

    python3 scripts/trace_stalls.py [--records r.csv] [--slow-ms 10] -- <command...>

Records, through tracefs (root only), every fsync/fdatasync with the thread that made it,
every block request's latency, and every ext4 journal (jbd2) commit, while the command runs.
Prints their distributions per program. Given the load generator's per-request CSV
(`loadgen run --records-csv`, which has each request's wall-clock send time), it also finds
the clusters of slow acceptances and prints what was syncing while each one waited: whether
the disk explains tens of broker confirms late at once (BENCHMARKS.md: it does not).

Kernel timestamps use the monotonic clock; the offset to wall-clock time is read once.
"""
import argparse
import bisect
import csv
import os
import re
import subprocess
import sys
import threading
import time

TRACEFS = "/sys/kernel/tracing"
EVENTS = [
    "syscalls/sys_enter_fsync",
    "syscalls/sys_exit_fsync",
    "syscalls/sys_enter_fdatasync",
    "syscalls/sys_exit_fdatasync",
    "jbd2/jbd2_run_stats",
    "jbd2/jbd2_start_commit",
    "block/block_rq_issue",
    "block/block_rq_complete",
]
# "comm-pid [cpu] flags ts: event: details"; syscalls print "sys_fsync(fd: 3)" on entry and
# "sys_fsync -> 0x0" on exit, with no event name before them.
LINE = re.compile(r"^\s*(?P<comm>.+?)-(?P<pid>\d+)\s+\[\d+\]\s+\S+\s+(?P<ts>\d+\.\d+):\s+(?P<body>.*)$")
SYSCALL = re.compile(r"^sys_(?P<name>fsync|fdatasync)(?P<exit> ->)?")


def write(path, value):
    with open(os.path.join(TRACEFS, path), "w") as f:
        f.write(value)


def read(path):
    with open(os.path.join(TRACEFS, path)) as f:
        return f.read()


def pct(values, q):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def summary(values):
    return (f"n {len(values)}, p50 {pct(values, 0.5):.2f}, p99 {pct(values, 0.99):.2f}, "
            f"max {max(values, default=0):.2f} ms")


def program(comm):
    """Threads grouped by the program they belong to (beam's threads are named by role)."""
    if re.match(r"^\d+_(dirty_io|dirty_cpu|scheduler|aux)|^beam|^erts", comm):
        return "rabbitmq"
    if comm.startswith(("mariadbd", "ib_", "mysqld")):
        return "mariadb"
    if comm.startswith("jbd2"):
        return "jbd2"
    if comm.startswith("kworker"):
        return "kworker"
    return comm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", help="loadgen's --records-csv file, written by the command")
    ap.add_argument("--slow-ms", type=float, default=10.0)
    ap.add_argument("--out", default="/tmp/trace_stalls.txt", help="the raw trace")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command")
    if not os.path.exists(os.path.join(TRACEFS, "trace")):
        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], check=True)

    # Put back as found: the clock is the bracketed one, the size the first number.
    old_clock = re.search(r"\[(\w+)\]", read("trace_clock"))[1]
    old_size = read("buffer_size_kb").split()[0]
    old_on = read("tracing_on").strip()
    write("tracing_on", "0")
    write("trace", "")
    write("trace_clock", "mono")
    write("buffer_size_kb", "65536")
    for e in EVENTS:
        write(f"events/{e}/enable", "1")
    offset = time.time() - time.monotonic()
    raw = open(args.out, "w")
    stop = threading.Event()

    def drain():
        with open(os.path.join(TRACEFS, "trace_pipe")) as pipe:
            while not stop.is_set():
                line = pipe.readline()
                if line and not stop.is_set():
                    raw.write(line)

    reader = threading.Thread(target=drain, daemon=True)
    write("tracing_on", "1")
    reader.start()
    try:
        rc = subprocess.call(cmd)
    finally:
        write("tracing_on", "0")
        time.sleep(0.5)
        stop.set()
        for e in EVENTS:
            write(f"events/{e}/enable", "0")
        write("buffer_size_kb", old_size)
        write("trace_clock", old_clock)
        write("tracing_on", old_on)
        raw.close()

    syncs = []  # (start wall s, ms, program, comm)
    open_syncs = {}
    blocks = []  # (start wall s, ms, rwbs, sectors)
    issued = {}
    commits = []  # (wall s, dict)
    for line in open(args.out):
        m = LINE.match(line)
        if not m:
            continue
        ts = float(m["ts"]) + offset
        body, pid = m["body"], m["pid"]
        sc = SYSCALL.match(body)
        ev, _, rest = body.partition(": ")
        if sc and not sc["exit"]:
            open_syncs[pid] = ts
        elif sc:
            start = open_syncs.pop(pid, None)
            if start is not None:
                comm = m["comm"].strip()
                syncs.append((start, (ts - start) * 1000, program(comm), comm))
        elif ev == "block_rq_issue":
            f = rest.split()
            # dev rwbs bytes () sector + sectors [comm]
            try:
                key = (f[0], f[f.index("+") - 1])
                issued[key] = (ts, f[1], int(f[f.index("+") + 1]))
            except (ValueError, IndexError):
                pass
        elif ev == "block_rq_complete":
            f = rest.split()
            try:
                key = (f[0], f[f.index("+") - 1])
            except (ValueError, IndexError):
                continue
            if key in issued:
                start, rwbs, sectors = issued.pop(key)
                blocks.append((start, (ts - start) * 1000, rwbs, sectors))
        elif ev == "jbd2_run_stats":
            kv = dict(zip(rest.split()[0::2], rest.split()[1::2]))
            commits.append((ts, kv))

    print(f"trace: {len(syncs)} syncs, {len(blocks)} block requests, {len(commits)} journal commits ({args.out})")
    by_prog = {}
    for s in syncs:
        by_prog.setdefault(s[2], []).append(s[1])
    for p, v in sorted(by_prog.items(), key=lambda kv: -len(kv[1])):
        print(f"  fsync/fdatasync by {p}: {summary(v)}")
    for kind in ("W", "R"):
        v = [b[1] for b in blocks if kind in b[2]]
        if v:
            print(f"  block {'writes' if kind == 'W' else 'reads'}: {summary(v)}; "
                  f"{sum(b[3] for b in blocks if kind in b[2]) * 512 / 1e6:.1f} MB")
    flush = [b[1] for b in blocks if "F" in b[2]]
    if flush:
        print(f"  cache flushes (F): {summary(flush)}")
    if commits:
        for field in ("locked", "flushing", "logging"):
            v = [float(c[1].get(field, 0)) for c in commits]
            print(f"  journal commits, {field} ms: n {len(v)}, p50 {pct(v, .5):.0f}, p99 {pct(v, .99):.0f}, max {max(v):.0f}")
        v = [int(c[1].get("blocks", 0)) for c in commits]
        print(f"  journal commits, blocks: p50 {pct(v, .5)}, max {max(v)}")

    if args.records and os.path.exists(args.records):
        slow = []
        with open(args.records) as f:
            for r in csv.DictReader(f):
                if r.get("accept_ms") and r.get("sent_unix_ms") and float(r["accept_ms"]) > args.slow_ms:
                    slow.append((float(r["sent_unix_ms"]) / 1000, float(r["accept_ms"])))
        slow.sort()
        clusters = []
        for t, ms in slow:
            if clusters and t - clusters[-1][-1][0] < 0.05:
                clusters[-1].append((t, ms))
            else:
                clusters.append([(t, ms)])
        clusters.sort(key=lambda c: -len(c))
        print(f"slow acceptances (> {args.slow_ms} ms): {len(slow)} in {len(clusters)} clusters; the largest:")
        syncs.sort()
        starts = [s[0] for s in syncs]
        for c in clusters[:8]:
            t0 = c[0][0]
            t1 = max(t + ms / 1000 for t, ms in c)
            print(f"  {time.strftime('%H:%M:%S', time.gmtime(t0))}.{int(t0 % 1 * 1000):03d}: "
                  f"{len(c)} requests, worst {max(ms for _, ms in c):.1f} ms, over {(t1 - t0) * 1000:.0f} ms")
            lo = bisect.bisect_left(starts, t0 - 0.2)
            overlapping = [s for s in syncs[lo:] if s[0] < t1 and s[0] + s[1] / 1000 > t0 and s[1] > 2]
            for s in sorted(overlapping, key=lambda s: -s[1])[:5]:
                print(f"      sync by {s[3]} ({s[2]}) {s[1]:.1f} ms, from {(s[0] - t0) * 1000:+.0f} ms")
            long_blocks = [b for b in blocks if b[0] < t1 and b[0] + b[1] / 1000 > t0 and b[1] > 2]
            if long_blocks:
                worst = max(long_blocks, key=lambda b: b[1])
                print(f"      {len(long_blocks)} block requests over 2 ms, worst {worst[1]:.1f} ms ({worst[2]}, {worst[3]} sectors)")
            cm = [c2 for c2 in commits if t0 - 0.1 <= c2[0] <= t1 + 0.1]
            if cm:
                print("      journal commits ending near: " + "; ".join(
                    f"locked {c2[1].get('locked')} flushing {c2[1].get('flushing')} logging {c2[1].get('logging')} blocks {c2[1].get('blocks')}" for c2 in cm[:3]))
    sys.exit(rc)


if __name__ == "__main__":
    main()
