"""Gail scoring throughput: pandas in one process vs Dask on a LocalCluster of this machine.

Usage::

    python benchmarks/dask_throughput.py [--rows 2000000] [--workers 2] [--partitions 16] [--repeats 2]

A synthetic cohort (``riskmodel.synthetic.make_cohort``, 13 canonical columns) of ``--rows``
women is scored for five-year risk three ways, and each result is checked equal to the pandas
result, row for row:

* ``pandas``: ``riskmodel.predict_risk`` on the DataFrame in memory (one process);
* ``dask_persisted``: ``predict_risk_dask`` on the cohort already held by the workers
  (``--partitions`` partitions, ``client.persist``), result gathered to the client;
* ``dask_from_parquet``: the workers read the cohort from ``--partitions`` Parquet files, score
  them and send the result to the client; its pandas counterpart reads the same files
  (``pandas_from_parquet``);
* ``dask_parquet_to_parquet``: the same, but the workers write the result as Parquet files
  (``.to_parquet``) instead of sending it to the client (the result is read back to check it).

Timings are the best of ``--repeats`` (all are recorded); before each Dask repeat the scheduler
must have forgotten the previous repeat's results, which share its keys. The LocalCluster has
``--workers`` worker processes with one thread each. Writes ``benchmarks/results/dask_throughput.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _report import machine_info, publish, utc_now

import riskmodel
from riskmodel.synthetic import make_cohort

RESULTS = Path(__file__).parent / "results" / "dask_throughput.json"
COLUMNS = ["age", "race", "age_at_menarche", "age_at_first_birth", "nulliparous", "n_biopsies",
           "atypical_hyperplasia", "first_degree_relatives", "density", "brca", "prs"]


def cohort(rows: int) -> pd.DataFrame:
    """``rows`` synthetic women (drawn in blocks of 500,000), unique integer ids."""
    starts = range(0, rows, 500_000)
    blocks = [make_cohort(min(500_000, rows - first), seed=i)[COLUMNS] for i, first in enumerate(starts)]
    data = pd.concat(blocks, ignore_index=True)
    data.insert(0, "id", np.arange(1, rows + 1))
    return data


def best(fn, repeats: int, settle=None) -> tuple[list[float], object]:
    """Seconds of each of ``repeats`` calls of ``fn`` (``settle()`` before each), and the last result."""
    times, out = [], None
    for _ in range(repeats):
        if settle is not None:
            settle()
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return times, out


def settled(client, keep: int, timeout: float = 30.0):
    """A function that waits until the scheduler holds at most ``keep`` tasks (the persisted cohort):
    a repeat must not find the previous repeat's results still in the workers' memory (same keys)."""

    def wait() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) <= keep:
                return
            time.sleep(0.1)
        raise RuntimeError("the scheduler still holds results of an earlier repeat")

    return wait


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only; do not write results/")
    args = parser.parse_args()

    import dask
    import dask.dataframe as dd
    from distributed import Client, LocalCluster, wait

    from riskmodel.distributed import predict_risk_dask

    data = cohort(args.rows)
    results: dict[str, dict[str, object]] = {}

    def record(name: str, times: list[float], out: pd.DataFrame, reference: pd.DataFrame | None) -> None:
        seconds = min(times)
        results[name] = {"rows": args.rows, "seconds": round(seconds, 3), "rows_per_second": round(args.rows / seconds),
                         "seconds_all_repeats": [round(t, 3) for t in times],
                         "ok_rows": int((out["status"] == "ok").sum())}
        if reference is not None:
            same = out.reset_index(drop=True).equals(reference.reset_index(drop=True))
            results[name]["equal_to_pandas_row_for_row"] = bool(same)

    times, reference = best(lambda: riskmodel.predict_risk(data, horizon=5.0), args.repeats)
    record("pandas", times, reference, None)

    with tempfile.TemporaryDirectory(prefix="riskmodel-dask-") as folder:
        size = -(-args.rows // args.partitions)
        for i, first in enumerate(range(0, args.rows, size)):
            data.iloc[first:first + size].to_parquet(Path(folder) / f"part-{i:04d}.parquet")
        files = sorted(str(p) for p in Path(folder).glob("*.parquet"))
        times, out = best(lambda: riskmodel.predict_risk(pd.concat([pd.read_parquet(f) for f in files]),
                                                        horizon=5.0), args.repeats)
        record("pandas_from_parquet", times, out, reference)

        with dask.config.set({"dataframe.convert-string": False}), \
                LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                             dashboard_address=":0") as cluster, Client(cluster) as client:
            client.wait_for_workers(args.workers)
            ddf = client.persist(dd.from_pandas(data, npartitions=args.partitions, sort=False))
            wait(ddf)
            times, out = best(lambda: predict_risk_dask(ddf, horizon=5.0).compute(), args.repeats,
                              settled(client, ddf.npartitions))
            record("dask_persisted", times, out, reference)
            times, out = best(lambda: predict_risk_dask(dd.read_parquet(files), horizon=5.0).compute(),
                              args.repeats, settled(client, ddf.npartitions))
            record("dask_from_parquet", times, out, reference)
            target = Path(folder) / "risks"
            times, _ = best(lambda: predict_risk_dask(dd.read_parquet(files), horizon=5.0).to_parquet(
                target, write_index=False), args.repeats, settled(client, ddf.npartitions))
            parts = sorted(target.glob("part.*.parquet"), key=lambda f: int(f.name.split(".")[1]))  # part.10 after 9
            written = pd.concat([pd.read_parquet(f) for f in parts], ignore_index=True)
            record("dask_parquet_to_parquet", times, written, reference)
            workers = len(client.scheduler_info()["workers"])

    for name in ("dask_persisted", "dask_from_parquet", "dask_parquet_to_parquet"):
        base = results["pandas" if name == "dask_persisted" else "pandas_from_parquet"]["seconds"]
        results[name]["speedup_vs_pandas"] = round(base / results[name]["seconds"], 2)
    report = {
        "benchmark": "dask_throughput",
        "date": utc_now(),
        "command": (f"python benchmarks/dask_throughput.py --rows {args.rows} --workers {args.workers} "
                    f"--partitions {args.partitions} --repeats {args.repeats}"),
        "machine": machine_info(),
        "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()],
        "dask": dask.__version__,
        "cluster": {"kind": "LocalCluster", "worker_processes": workers, "threads_per_worker": 1},
        "partitions": args.partitions,
        "results": results,
    }
    publish(report, RESULTS, write=not args.no_write)


if __name__ == "__main__":
    main()
