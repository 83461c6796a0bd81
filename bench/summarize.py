#!/usr/bin/env python3
"""Summarises bench/run.sh results: the median of every figure over the runs, beside the targets,
the Django figures and PostgreSQL's own (pgbench).

    bench/summarize.py RESULTS_FILE [CPU_FILE]

RESULTS_FILE holds lines `RESULT run=N scenario=NAME key=value ...` (shop-loadgen's RESULT lines
with run= added, and the lines run.sh makes from wrk, pgbench and pg_test_fsync). CPU_FILE holds
lines `CPU run=N scenario=NAME command=NAME cpu=PERCENT` (pidstat averages; 100 = one core).
Prints Markdown.
"""
import statistics
import sys
from collections import defaultdict

# scenario: (label, unit, target text, check(rate, p99) -> bool or None, Django figure)
SCENARIOS = [
    ("list", "GET /api/products?limit=20 (wrk)", "req/s",
     ">= 20,000 req/s, p99 <= 10 ms", lambda m: m["rate"] >= 20000 and m["p99_ms"] <= 10, "~190"),
    ("product", "GET /api/products/{id} (wrk)", "req/s", "-", None, "-"),
    ("add-to-cart", "POST /api/cart/items", "commands/s", ">= 3,000 commands/s",
     lambda m: m["rate"] >= 3000, "~105"),
    ("checkout", "add-to-cart + POST /api/orders", "orders/s", ">= 1,000 orders/s",
     lambda m: m["rate"] >= 1000, "~43"),
    ("visibility", "command -> query visible (X-Min-Position), paced background",
     "probes/s", "p99 <= 50 ms", lambda m: m["p99_ms"] <= 50, "-"),
    ("visibility-max", "the same beside as many adds as 16 connections make", "probes/s",
     "p99 <= 50 ms", lambda m: m["p99_ms"] <= 50, "-"),
]

PG = [
    ("pgbench-N", "pgbench -N (durable single-row writes), 16 clients", "tps", "~4,800"),
    ("pgbench-S", "pgbench -S (select only), 16 clients", "tps", "~34,000"),
    ("pgbench-copy", "COPY (pgbench -i client-side generate)", "rows/s", "~100,000"),
    ("fsync", "pg_test_fsync: fdatasync of one 8 kB write", "ops/s", "-"),
]


def number(v):
    try:
        return float(v)
    except ValueError:
        return None


def load(path, prefix):
    rows = []
    with open(path) as f:
        for line in f:
            if not line.startswith(prefix + " "):
                continue
            fields = {}
            for part in line.split()[1:]:
                if "=" in part:
                    k, v = part.split("=", 1)
                    fields[k] = v
            rows.append(fields)
    return rows


def medians(rows):
    by = defaultdict(lambda: defaultdict(list))
    runs = defaultdict(set)
    for r in rows:
        s = r.get("scenario")
        runs[s].add(r.get("run"))
        for k, v in r.items():
            n = number(v)
            if n is not None:
                by[s][k].append(n)
    out = {}
    for s, keys in by.items():
        out[s] = {k: statistics.median(vs) for k, vs in keys.items()}
        out[s]["_runs"] = len(runs[s])
        out[s]["_values"] = keys
    return out


def f(v, d=1):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{d}f}"


def main():
    rows = load(sys.argv[1], "RESULT")
    m = medians(rows)
    print("| scenario | what | median | p50 ms | p90 ms | p99 ms | max ms | errors | target | "
          "met? | Django |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for key, label, unit, target, check, django in SCENARIOS:
        if key not in m:
            print(f"| {key} | {label} | not run | | | | | | {target} | | {django} |")
            continue
        x = m[key]
        met = "-" if check is None else ("yes" if check(x) else "**NO**")
        rate = f"{f(x.get('rate'))} {unit}"
        if key.startswith("visibility"):
            rate = f"{f(x.get('rate'))} probes/s beside {f(x.get('background_rate'))} adds/s"
        print(f"| {key} | {label} | {rate} | {f(x.get('p50_ms'), 2)} | {f(x.get('p90_ms'), 2)} | "
              f"{f(x.get('p99_ms'), 2)} | {f(x.get('max_ms'), 2)} | {f(x.get('errors'), 0)} | "
              f"{target} | {met} | {django} |")
    print()
    print("| PostgreSQL on the same server | median | reference machine |")
    print("|---|---|---|")
    for key, label, unit, ref in PG:
        if key in m:
            extra = ""
            if "latency_ms" in m[key]:
                extra = f" (avg latency {f(m[key]['latency_ms'], 2)} ms)"
            print(f"| {label} | {f(m[key].get('rate'))} {unit}{extra} | {ref} |")
        else:
            print(f"| {label} | not run | {ref} |")
    if "projector-catch-up" in m:
        x = m["projector-catch-up"]
        print()
        print(f"Projector after add-to-cart: {f(x.get('events'), 0)} events behind when the load "
              f"stopped, caught up in {f(x.get('seconds'), 2)} s ({f(x.get('rate'))} events/s "
              "with nothing else running); medians.")
    print()
    # Every run, so that the spread is visible.
    print("Per run (rate; p99 ms; CPU % used meanwhile by processes that are not part of the run):")
    print()
    for key in [s[0] for s in SCENARIOS] + [p[0] for p in PG] + ["projector-catch-up"]:
        if key not in m:
            continue
        vals = m[key]["_values"]
        rates = ", ".join(f(v) for v in vals.get("rate", []))
        p99 = ", ".join(f(v, 2) for v in vals.get("p99_ms", []))
        other = ", ".join(f"{v:.0f}" for v in vals.get("other_cpu", []))
        print(f"- {key}: {rates}" + (f"; p99 {p99}" if p99 else "") +
              (f"; other CPU {other}" if other else ""))
    if len(sys.argv) > 2:
        cpu = load(sys.argv[2], "CPU")
        if cpu:
            print()
            print("CPU by process during each measurement (pidstat average, % of one core; "
                  "the machine has 200 %), median over runs; \"kernel\" is kernel threads (disk and network work), \"other\" "
                  "every other process (someone else's compiler or database, pidstat):")
            print()
            table = defaultdict(lambda: defaultdict(list))
            commands = []
            for r in cpu:
                c = r["command"]
                if c not in commands:
                    commands.append(c)
                table[r["scenario"]][c].append(float(r["cpu"]))
            order = ["postgres", "projector", "command-api", "query-api", "wrk", "shop-loadgen",
                     "pgbench", "kernel", "other"]
            commands.sort(key=lambda c: order.index(c) if c in order else len(order))
            print("| scenario | " + " | ".join(commands) + " | total |")
            print("|---|" + "---|" * (len(commands) + 1))
            for s, byc in table.items():
                vals = [statistics.median(byc[c]) if c in byc else 0.0 for c in commands]
                print(f"| {s} | " + " | ".join(f"{v:.0f}" for v in vals) +
                      f" | {sum(vals):.0f} |")


if __name__ == "__main__":
    main()
