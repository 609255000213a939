"""Latency of ``riskmodel serve`` over loopback: one woman (POST /assess) and a 1,000-row list (POST /clinic),
with 1 and 8 concurrent clients; p50/p95 in milliseconds → ``benchmarks/results/serve_latency.json``.

Bounded loops (``--requests`` per client). The server is a ``riskmodel serve`` process of its own (uvicorn, one
worker), as a clinic runs it; the clients are threads of this process using httpx. Numbers depend on the machine
and its load: both are recorded.

    PYTHONPATH=. python benchmarks/serve_latency.py --requests 20
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np

from riskmodel.synthetic import make_cohort

WOMAN = {"id": "B1", "age": "52", "race": "white", "age_at_menarche": "12", "age_at_first_birth": "28",
         "first_degree_relatives": "1", "n_biopsies": "1", "atypical_hyperplasia": "0"}
OUT = Path(__file__).resolve().parent / "results" / "serve_latency.json"


def start() -> tuple[str, subprocess.Popen]:
    """Start ``riskmodel serve`` on a free loopback port; return its address once /health answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = str(Path(sys.executable).with_name("riskmodel"))
    proc = subprocess.Popen([cli, "serve", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return base, proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("riskmodel serve did not answer /health within 120 s")


def timed(base: str, clients: int, requests: int, call) -> dict[str, float]:
    """``clients`` threads each making ``requests`` calls; p50/p95/max of the per-request wall times (ms)."""
    def worker(_: int) -> list[float]:
        out = []
        with httpx.Client(base_url=base, timeout=600) as c:
            for _ in range(requests):
                t = time.perf_counter()
                r = call(c)
                r.raise_for_status()
                out.append((time.perf_counter() - t) * 1000)
        return out

    with ThreadPoolExecutor(clients) as pool:
        times = np.concatenate([np.asarray(x) for x in pool.map(worker, range(clients))])
    return {"clients": clients, "requests": int(times.size), "p50_ms": round(float(np.percentile(times, 50)), 1),
            "p95_ms": round(float(np.percentile(times, 95)), 1), "max_ms": round(float(times.max()), 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=20, help="one-woman requests per client (default 20)")
    p.add_argument("--list-requests", type=int, default=2, help="1,000-row list uploads per client (default 2)")
    args = p.parse_args()
    cohort = make_cohort(1000, seed=0)
    buf = io.StringIO()
    cohort.to_csv(buf, index=False)
    listing = buf.getvalue().encode()
    load_before = os.getloadavg()
    base, srv = start()
    with httpx.Client(base_url=base) as c:  # warm-up: first import and table loads
        c.post("/assess", data=WOMAN).raise_for_status()
    one = [timed(base, k, args.requests, lambda c: c.post("/assess", data=WOMAN)) for k in (1, 8)]
    many = [timed(base, k, args.list_requests,
                  lambda c: c.post("/clinic", files={"list": ("day.csv", listing, "text/csv")})) for k in (1, 8)]
    srv.terminate()
    srv.wait(timeout=30)
    result = {"one_woman": one, "list_1000_rows": many,
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": "python benchmarks/serve_latency.py " + " ".join(sys.argv[1:]),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
              "load_average_1_5_15_min_before": [round(x, 2) for x in load_before],
              "load_average_1_5_15_min_after": [round(x, 2) for x in os.getloadavg()],
              "configuration": "riskmodel serve (uvicorn, 1 worker) in its own process, loopback; httpx clients as "
                               "threads of the benchmark process; Gail model, policy uspstf2024; list = "
                               "riskmodel.synthetic.make_cohort(1000, seed=0) as CSV",
              "goal": "one woman p95 under 100 ms on 2 cores"}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
