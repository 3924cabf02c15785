#!/usr/bin/env python3
"""Counts the engine's SQL statements in a MariaDB general log, by shape.

Usage: scripts/statement_census.py GENERAL_LOG [CONTRACTS] [TOP]

Each statement (a query or an execute of a prepared statement) is reduced to its shape:
literals become `?` or `N`, `IN (…)` lists and the rows of a multi-row `VALUES` collapse, and
the text is cut at 110 characters. Connections that logged in as root in the log are left
out: the load generator's own reads (and xyzctl's) connect as root, the engine as its own
user (a pool opened before the log started has no login line, and counts as the engine).
Prints the total, then the TOP (default 30) most frequent shapes; with CONTRACTS, also per
approved contract.
"""
import collections
import re
import sys

LINE = re.compile(
    r"^(?:\d{6}\s+[\d:]+\s+)?\s*(\d+)\s+(Query|Execute|Connect)\s?(.*)$"
)


def shape(text):
    t = re.sub(r"'(?:[^'\\]|\\.)*'", "?", text)
    t = re.sub(r"\b\d+(\.\d+)?\b", "N", t)
    t = re.sub(r"IN \([^)]*\)", "IN (...)", t)
    t = re.sub(r"VALUES\s*\(.*", "VALUES (...)", t)
    return re.sub(r"\s+", " ", t).strip()[:110]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    contracts = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    root = {}
    counts = collections.Counter()
    with open(sys.argv[1], errors="replace") as log:
        for line in log:
            m = LINE.match(line)
            if not m:
                continue
            thread, kind, text = m.groups()
            if kind == "Connect":
                root[thread] = text.startswith("root@")
                continue
            if root.get(thread):
                continue
            counts[shape(text)] += 1
    total = sum(counts.values())
    per = f", {total / contracts:.2f} per approved contract" if contracts else ""
    print(f"  engine statements: {total}{per}")
    for text, n in counts.most_common(top):
        share = f"{n / contracts:6.2f}" if contracts else ""
        print(f"  {n:7d} {share}  {text}")


if __name__ == "__main__":
    main()
