#!/usr/bin/env python3
"""Summarise loadgen JSONL results: one markdown table per scenario.

Each cell is the median over the runs with the same label ("<anchor> <scenario>"),
taken metric by metric; "runs" says how many runs there were.

  python3 bench/report.py bench/results/run-*.jsonl
  python3 bench/report.py --summary run.jsonl   # + one summary table with ratios and the targets

Copied from the shared harness (../shared/bench/report.py); --summary is new.
"""
import json
import statistics
import sys
from collections import OrderedDict


def lost_subscribed(r):
    """Messages lost on connections that were subscribed when publishing began.

    "lost" counts every expected delivery, including those to connections that
    failed to connect or were never subscribed; this one does not.
    """
    if "expected_subscribed" in r:
        return r["expected_subscribed"] - r.get("delivered", 0)
    if r.get("delivered") is None or r.get("subscribed") is None:
        return None
    m, n = r.get("messages", 0), r.get("conns", 1)
    per_conn = m if not r.get("targeted") else (m / n if m % n == 0 else None)
    if per_conn is None:
        return None
    return int(r["subscribed"] * per_conn - r["delivered"])


def med(rows, key, sub=None):
    vals = []
    for r in rows:
        v = lost_subscribed(r) if key == "lost_subscribed" else r.get(key)
        if sub is not None:
            v = (v or {}).get(sub)
        if isinstance(v, (int, float)):
            vals.append(v)
    if not vals:
        return None
    return statistics.median(vals)


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.{nd}f}"
    return f"{int(v):,}"


def errs(rows):
    out = {}
    for r in rows:
        for k, v in (r.get("connect_errors") or {}).items():
            out[k] = out.get(k, 0) + v
    return "; ".join(f"{k} x{v}" for k, v in out.items()) or "0"


COLS = {
    "S1": [("runs", None), ("connected", "connected"), ("drops", "disconnects"),
           ("deliv/s", "deliveries_per_s"), ("lost", "lost"), ("lost (subscribed)", "lost_subscribed"),
           ("late", "late_after_nudge"), ("p50 ms", "lat_p50_ms"), ("p95 ms", "lat_p95_ms"),
           ("p99 ms", "lat_p99_ms"), ("max ms", "lat_max_ms"),
           ("srv CPU%", ("cpu_pct_publish_phase", "server")),
           ("redis CPU%", ("cpu_pct_publish_phase", "redis")),
           ("pub CPU%", ("cpu_pct_publish_phase", "publisher")),
           ("loadgen CPU%", ("cpu_pct_publish_phase", "loadgen")),
           ("busy: srv/redis/pub/loadgen CPU%", "BUSY")],
    "S2": [("runs", None), ("connected", "connected"), ("conn/s", "connect_rate"),
           ("srv KB/conn", "server_rss_per_conn_kb"), ("redis KB/conn", "redis_rss_per_conn_kb"),
           ("srv RSS MB", "server_rss_conn_kb"), ("subscribed", "subscribed"),
           ("drops", "disconnects"), ("connect errors", "ERR"),
           ("srv CPU% (connect)", ("connect_cpu_pct", "server")),
           ("loadgen CPU% (connect)", ("connect_cpu_pct", "loadgen"))],
    "S3": [("runs", None), ("connected", "connected"), ("pub msg/s", "publish_rate"),
           ("deliv/s", "deliveries_per_s"), ("delivered", "delivered"), ("lost", "lost"),
           ("lost (subscribed)", "lost_subscribed"), ("late", "late_after_nudge"),
           ("drops", "disconnects"), ("misdeliv", "misdelivered"), ("p50 ms", "lat_p50_ms"), ("p95 ms", "lat_p95_ms"),
           ("p99 ms", "lat_p99_ms"), ("max ms", "lat_max_ms"),
           ("srv CPU%", ("cpu_pct_publish_phase", "server")),
           ("pub CPU%", ("cpu_pct_publish_phase", "publisher")),
           ("loadgen CPU%", ("cpu_pct_publish_phase", "loadgen")),
           ("busy: srv/redis/pub/loadgen CPU%", "BUSY")],
    "S4": [("runs", None), ("pub msg/s", "publish_rate"), ("deliv/s", "deliveries_per_s"),
           ("delivered", "delivered"), ("lost", "lost"), ("late", "late_after_nudge"),
           ("drops", "disconnects"), ("p50 ms", "lat_p50_ms"),
           ("p99 ms", "lat_p99_ms"), ("max ms", "lat_max_ms"),
           ("RSS growth MB", "server_rss_growth_kb"), ("ended by", "ended_by"),
           ("srv CPU%", ("cpu_pct_publish_phase", "server")),
           ("pub CPU%", ("cpu_pct_publish_phase", "publisher")),
           ("loadgen CPU%", ("cpu_pct_publish_phase", "loadgen")),
           ("busy: srv/redis/pub/loadgen CPU%", "BUSY")],
}


def _scen_rows(groups, scen, target):
    return groups.get(scen, {}).get(target, [])


def _other_cpu(rs, key):
    """CPU% of the machine not used by server, Redis, publisher or loadgen: other tenants (noise)."""
    vals = []
    for r in rs:
        c = r.get(key) or {}
        if "machine" in c:
            vals.append(c["machine"] - sum(c.get(k, 0) for k in ("server", "redis", "publisher", "loadgen")))
    return statistics.median(vals) if vals else None


def _paired_ratio(rows_a, rows_b, key):
    """Median over runs of a[i] / b[i] (the i-th run of each target: with run.sh they ran back to back)."""
    vals = [ra[key] / rb[key] for ra, rb in zip(rows_a, rows_b) if ra.get(key) and rb.get(key)]
    return f"{statistics.median(vals):.2f}" if vals else "-"


def _ratio(a, b):
    if a is None or not b:
        return "-"
    return f"{a / b:.2f}"


def summary(groups):
    targets = []
    for scen in groups:
        for t in groups[scen]:
            if t not in targets:
                targets.append(t)
    S = lambda scen, t, key, sub=None: med(_scen_rows(groups, scen, t), key, sub)  # noqa: E731

    def bare_for(t):
        w = t.rsplit("-", 1)[-1]
        if t.startswith("bare-frames"):
            return None
        if t.startswith("ws4redis-asgi-"):  # its ceiling is the bare ASGI loop on the same server, not uWSGI's
            c = "bare-asgi-" + w
            return c if c in targets else None
        return f"bare-{w}" if f"bare-{w}" in targets else ("bare-1w" if "bare-1w" in targets else None)

    cols = ["target", "S1 deliv/s", "S1 lost", "S1 p99 ms", "S3 deliv/s", "S3 lost", "S3 p99 ms",
            "S4 deliv/s", "S4 lost", "S4 p99 ms", "S4 / bare (same workers; median of per-run ratios)", "S2 connected",
            "S2 srv KB/conn", "S2 redis KB/conn", "S2 redis pub/sub conns", "S2 workers",
            "other CPU% (S1/S3/S4 busy)"]
    print("\n### Summary (median of runs; ratios are of figures from this same run)\n")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for t in targets:
        b = bare_for(t)
        s4 = S("S4", t, "deliveries_per_s")
        other = "/".join(fmt(_other_cpu(_scen_rows(groups, sc, t), "cpu_pct_busy"), 0) for sc in ("S1", "S3", "S4"))
        cells = [t,
                 fmt(S("S1", t, "deliveries_per_s")), fmt(S("S1", t, "lost")), fmt(S("S1", t, "lat_p99_ms"), 2),
                 fmt(S("S3", t, "deliveries_per_s")), fmt(S("S3", t, "lost")), fmt(S("S3", t, "lat_p99_ms"), 2),
                 fmt(s4), fmt(S("S4", t, "lost")), fmt(S("S4", t, "lat_p99_ms"), 2),
                 _paired_ratio(_scen_rows(groups, "S4", t), _scen_rows(groups, "S4", b), "deliveries_per_s")
                 if b and not t.startswith("bare") else "-",
                 fmt(S("S2", t, "connected")), fmt(S("S2", t, "server_rss_per_conn_kb"), 2),
                 fmt(S("S2", t, "redis_rss_per_conn_kb"), 2), fmt(S("S2", t, "redis_pubsub_clients")),
                 fmt(S("S2", t, "server_workers")), other]
        print("| " + " | ".join(cells) + " |")
    ours = [t for t in targets if t.startswith("ws4redis-")]
    others = [t for t in targets if not t.startswith("ws4redis-")]
    if ours and others:
        print("\n### ws4redis as a multiple of each other target (deliveries/s; S2: their KB/conn / ours)\n")
        hdr = ["vs"] + [f"{o} {k}" for o in ours for k in ("S1", "S3", "S4", "S2 mem")]
        print("| " + " | ".join(hdr) + " |")
        print("|" + "---|" * len(hdr))
        for t in others:
            cells = [t]
            for o in ours:
                for sc in ("S1", "S3", "S4"):
                    cells.append(_ratio(S(sc, o, "deliveries_per_s"), S(sc, t, "deliveries_per_s")))
                cells.append(_ratio(S("S2", t, "server_rss_per_conn_kb"), S("S2", o, "server_rss_per_conn_kb")))
            print("| " + " | ".join(cells) + " |")
    if "S2u" in groups:
        print("\n### S2u (5,000 authenticated sockets, each also subscribe-user: 5,000 Redis channels)\n")
        print("| target | connected | srv KB/conn | redis KB/conn | redis pub/sub conns |")
        print("|---|---|---|---|---|")
        for t, rs in groups["S2u"].items():
            print(f"| {t} | {fmt(med(rs, 'connected'))} | {fmt(med(rs, 'server_rss_per_conn_kb'), 2)} | "
                  f"{fmt(med(rs, 'redis_rss_per_conn_kb'), 2)} | {fmt(med(rs, 'redis_pubsub_clients'))} |")


def main(paths):
    want_summary = "--summary" in paths
    paths = [p for p in paths if p != "--summary"]
    rows = []
    for p in paths:
        with open(p) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    groups = OrderedDict()
    for r in rows:
        anchor, _, scen = r.get("label", "").rpartition(" ")
        groups.setdefault(scen, OrderedDict()).setdefault(anchor, []).append(r)
    for scen in sorted(groups):
        cols = COLS.get(scen, COLS["S1"])
        table = []
        for anchor, rs in groups[scen].items():
            cells = []
            for name, key in cols:
                if key is None:
                    cells.append(str(len(rs)))
                elif key == "ERR":
                    cells.append(errs(rs))
                elif key == "BUSY":
                    b = [med(rs, "cpu_pct_busy", k) for k in ("server", "redis", "publisher", "loadgen")]
                    cells.append("/".join(fmt(x, 0) for x in b) if any(x is not None for x in b) else "-")
                elif key == "ended_by":
                    vals = [r.get(key) for r in rs if r.get(key)]
                    cells.append(max(set(vals), key=vals.count) if vals else "-")
                elif isinstance(key, tuple):
                    cells.append(fmt(med(rs, key[0], key[1])))
                else:
                    v = med(rs, key)
                    if v is not None and key.endswith("_kb") and "per_conn" not in key:
                        v = v / 1024.0
                    cells.append(fmt(v, 2 if key.endswith("_ms") or "per_conn" in key else 1))
            table.append((anchor, cells))
        # drop columns that no run has data for
        keep = [j for j in range(len(cols)) if any(c[j] != "-" for _, c in table)]
        print(f"\n### {scen}\n")
        print("| anchor | " + " | ".join(cols[j][0] for j in keep) + " |")
        print("|---|" + "---|" * len(keep))
        for anchor, cells in table:
            print(f"| {anchor} | " + " | ".join(cells[j] for j in keep) + " |")
    if want_summary:
        summary(groups)


if __name__ == "__main__":
    main(sys.argv[1:])
