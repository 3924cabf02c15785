#!/usr/bin/env python3
"""The capacity plan of SCALING.md, from one run of scripts/bench.sh.

Usage: scripts/scaling.py .local/bench/<run>.jsonl [--cores 16] [--utilization 0.6]
                          [--rates 10000,100000] [--series e2e-workers-2]

From the series' load-window CPU (what each program used while the load generator sent, as
a share of this machine's cores) and the requests it sent, it prints each program's CPU per
request (median of the runs), then for each target rate the cores each tier needs and the
hosts of `--cores` cores that holds at `--utilization` (headroom for bursts and a lost host).
The tiers that do not spread over hosts by adding processes are named with the figure that
caps them: Redis runs commands on one thread, a quorum queue's leader is one Erlang process,
and every node of a Galera cluster applies every write, so one writer host holds what its
cores give at MariaDB's CPU per request (the SQL ceiling batched as the workers write is
printed beside it: what one writer did on the measured machine with nothing else running).
"""
import argparse
import json
import math
import os
import statistics

STATELESS = ("nginx", "ingress", "worker")
DECIDING = ("worker", "mariadb")


def per_request_us(rows, series, cores):
    """Each program's CPU per request sent, in microseconds: median over the series' runs."""
    runs = [r for r in rows if r["series"] == series and r.get("load_window_cpu")]
    if not runs:
        raise SystemExit(f"no run of {series} with load_window_cpu in this file")
    per = {}
    for r in runs:
        window = r["load_window_cpu"]
        requests = r["counts"]["requests"]
        # Every request is accepted inside the window, but decisions trail it (closed loop:
        # the last ones commit after the last send): the deciding side's CPU is divided by the
        # decisions the window held, at the run's end-to-end rate.
        decided = min(requests, r["decided_per_sec_end_to_end"] * window["secs"])
        for group, share in window["share_percent"].items():
            if group in ("loadgen", "other"):
                continue
            n = decided if group in DECIDING else requests
            us = share / 100 * window["secs"] * cores * 1e6 / max(n, 1)
            per.setdefault(group, []).append(us)
    rate = statistics.median(r["decided_per_sec_end_to_end"] for r in runs)
    return {g: statistics.median(v) for g, v in per.items()}, rate, len(runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--cores", type=int, default=16, help="cores per host of the plan")
    ap.add_argument("--utilization", type=float, default=0.6)
    ap.add_argument("--rates", default="10000,100000")
    ap.add_argument("--series", default="e2e-workers-2")
    ap.add_argument("--machine-cores", type=int, default=os.cpu_count() or 2,
                    help="cores of the machine the run was measured on")
    a = ap.parse_args()
    rows = [json.loads(line) for line in open(a.run)]
    us, rate, n = per_request_us(rows, a.series, a.machine_cores)
    print(f"{a.series}: {n} runs, {rate:.0f} decided requests/s end to end on "
          f"{a.machine_cores} cores")
    print("CPU per request (µs, median): " + ", ".join(
        f"{g} {v:.0f}" for g, v in sorted(us.items(), key=lambda kv: -kv[1]))
          + f"; total {sum(us.values()):.0f}")
    ceiling = [r for r in rows if r["series"] == "sql-ceiling"]
    batched = None
    if ceiling:
        batched = statistics.median(
            max(b["contracts_per_sec"] for b in r["best"] if b["batch"] == 32) for r in ceiling)
        print(f"one MariaDB writer, 32 contracts per transaction (SQL ceiling): {batched:.0f}/s "
              f"on this machine")
    cluster = [r["approved_contracts_per_sec_end_to_end"] for r in rows
               if r["series"] == "e2e-workers-2-cluster"]
    single = [r["approved_contracts_per_sec_end_to_end"] for r in rows
              if r["series"] == "e2e-workers-2"]
    if cluster and single:
        print(f"clusters on this one machine / single node, same run: "
              f"{statistics.median(cluster) / statistics.median(single):.2f}")
    budget = a.cores * a.utilization
    for target in (int(x) for x in a.rates.split(",")):
        print(f"\n{target}/s, hosts of {a.cores} cores at {a.utilization:.0%}:")
        for group, v in sorted(us.items(), key=lambda kv: -kv[1]):
            cores = target * v / 1e6
            line = f"  {group:9s} {cores:7.1f} cores"
            if group in STATELESS:
                line += f" -> {math.ceil(cores / budget)} host(s), processes added freely"
            elif group == "redis":
                line += (f" -> one Redis thread holds {a.utilization * 1e6 / v:.0f}/s: "
                         + ("enough" if target * v / 1e6 <= a.utilization else
                            f"{math.ceil(cores / a.utilization)} shards (Redis Cluster, "
                            "claim keys hash-tagged by merchant)"))
            elif group == "rabbitmq":
                line += (f" -> {math.ceil(cores / budget)} host(s) of brokers; one quorum "
                         f"queue's leader holds about {a.utilization * 1e6 / v:.0f}/s on one core: "
                         + ("one queue" if cores <= a.utilization else
                            f"{math.ceil(cores / a.utilization)} queues split by user "
                            "(consistent-hash exchange)"))
            elif group == "mariadb":
                # Galera adds no write capacity (every node applies every write): one writer
                # host takes what its cores give at this CPU per request; past that, shards.
                holds = budget / v * 1e6
                shards = math.ceil(target / holds)
                line += (f" -> one writer host holds {holds:.0f}/s: "
                         + ("one writer (Galera for failover)" if shards == 1 else
                            f"{shards} shards by user (Vitess), each a Galera cluster or a "
                            "primary with replicas"))
            print(line)


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # piped into head
        pass
