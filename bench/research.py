"""Research-layer benches: the feature table at 10,000 jobs, and the candidate's cross-validated metrics on a
simulated cohort. Numbers are ratios against a baseline measured in the same run.

    .venv/bin/python -m bench.research table [--jobs 10000]
    .venv/bin/python -m bench.research cohort [--per-class 40] [--jobs-per-participant 3]

`table`: N jobs in local storage (cycles.json + metadata.json of 40 simulated jobs, copied under N job IDs, each
file its own object). Baseline: reading and JSON-parsing every job's two files, nothing else (the floor of any
table built from them). Then the table as the asset builds it: a full build (no previous table), an incremental
build with nothing changed, one with 1 % of the jobs changed, and the CSV written and read back.

`cohort`: simulated participants (both classes, several jobs each), stage 5 by the pipeline's own stage code,
then `training.train_candidate`: grouped cross-validation of the logistic regression and the network.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from igait_pipeline.layout import job_key
from igait_pipeline.research import cohort, labels, table, training
from igait_pipeline.storage import LocalStorage


def _reader(storage):
    def read(job_id, what):
        return storage.read_bytes(job_key(job_id, 5, "cycles.json") if what == "cycles" else
                                  job_key(job_id, 0, "metadata.json"))
    return read


def bench_table(n: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="igait-bench-table-"))
    try:
        st = LocalStorage(root)
        seeds = cohort.write_cohort(st, cohort.CohortSettings(participants_per_class=20, jobs_per_participant=1,
                                                               overlay_width=0))
        cohort.write_stage5(st, seeds)
        src = [(st.local_path(job_key(j.job_id, 5, "cycles.json")), st.local_path(job_key(j.job_id, 0,
                                                                                            "metadata.json")))
               for j in seeds]
        t = time.perf_counter()
        for i in range(n):
            c, m = src[i % len(src)]
            job = f"bench{i // 3:05d}_{i % 3 + 1}"
            for s, stage, name in ((c, 5, "cycles.json"), (m, 0, "metadata.json")):
                d = root / job_key(job, stage, name)
                d.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(s, d)
        for j in seeds:
            shutil.rmtree(root / "jobs" / j.job_id)
        print(f"{n} jobs written in {time.perf_counter() - t:.1f} s "
              f"({sum(f.stat().st_size for f in (root / 'jobs').rglob('cycles.json')) / 1e6:.0f} MB of cycles.json)")

        t = time.perf_counter()
        jobs = table.finished_jobs(st)
        t_list = time.perf_counter() - t
        read = _reader(st)
        t = time.perf_counter()
        for j in jobs:
            json.loads(read(j.job_id, "cycles"))
            json.loads(read(j.job_id, "metadata"))
        base = time.perf_counter() - t
        t = time.perf_counter()
        full, stats = table.build_rows(jobs, read)
        t_full = time.perf_counter() - t
        # The formats are compared on rows made distinct (every float ×(1 + 1 % noise)): the 10,000 rows are copies
        # of 40 simulated jobs, which Parquet's dictionary encoding would shrink far more than real jobs.
        rng = np.random.default_rng(0)
        distinct = full.copy()
        floats = distinct.select_dtypes("float64").columns
        distinct[floats] = distinct[floats] * rng.normal(1.0, 0.01, size=(len(distinct), len(floats)))
        t = time.perf_counter()  # the format before (issue 25): CSV, the baseline of the Parquet numbers below
        csv = distinct.to_csv(index=False, float_format="%.6g").encode()
        st.write_bytes("research/gait_feature_table.csv", csv)
        t_csv_write = time.perf_counter() - t
        t = time.perf_counter()
        pd.read_csv(io.BytesIO(st.read_bytes("research/gait_feature_table.csv")),
                    dtype={"job_id": str, "participant": str, "version": str})
        t_csv_read = time.perf_counter() - t
        t = time.perf_counter()
        data = table.to_parquet(distinct)
        st.write_bytes("research/distinct.parquet", data)
        t_write = time.perf_counter() - t
        t = time.perf_counter()
        table.from_parquet(st.read_bytes("research/distinct.parquet"))
        t_read = time.perf_counter() - t
        st.write_bytes(table.TABLE_KEY, table.to_parquet(full))
        prev = table.from_parquet(st.read_bytes(table.TABLE_KEY))
        t = time.perf_counter()
        same, s_same = table.build_rows(table.finished_jobs(st), read, prev)
        t_same = time.perf_counter() - t
        for j in jobs[:: 100]:  # 1 % of the jobs get a new cycles.json (a re-run of stage 5)
            p = root / job_key(j.job_id, 5, "cycles.json")
            p.write_bytes(p.read_bytes())
            os.utime(p, (time.time() + 10, time.time() + 10))
        t = time.perf_counter()
        some, s_some = table.build_rows(table.finished_jobs(st), read, prev)
        t_some = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"listing (two globbed scans): {t_list:.2f} s")
        print(f"baseline, read + json.loads of every job's two files: {base:.2f} s")
        print(f"full build: {t_full:.2f} s = {t_full / base:.2f}x baseline ({stats['computed']} rows, "
              f"{len(full.columns)} columns)")
        print(f"CSV (before): {len(csv) / 1e6:.1f} MB, written in {t_csv_write:.2f} s, read back in {t_csv_read:.2f} s")
        print(f"Parquet: {len(data) / 1e6:.1f} MB = {len(data) / len(csv):.2f}x CSV, written in {t_write:.2f} s = "
              f"{t_write / t_csv_write:.2f}x CSV, read back in {t_read:.2f} s = {t_read / t_csv_read:.2f}x CSV")
        print(f"incremental, nothing changed: {t_same:.2f} s = {t_same / base:.2f}x baseline "
              f"({s_same['reused']} reused, {s_same['computed']} computed)")
        print(f"incremental, 1 % changed: {t_some:.2f} s = {t_some / base:.2f}x baseline "
              f"({s_some['reused']} reused, {s_some['computed']} computed)")
        print(f"peak memory (RSS) {rss:.0f} MB")
        print(f"table: {n} jobs, full {t_full:.1f} s ({t_full / base:.2f}x read), incremental 1 % "
              f"{t_some + t_read:.1f} s incl. reading the previous table ({(t_some + t_read) / base:.2f}x read)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_cohort(per_class: int, jobs_per_participant: int, seed: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="igait-bench-cohort-"))
    try:
        st = LocalStorage(root)
        settings = cohort.CohortSettings(participants_per_class=per_class, jobs_per_participant=jobs_per_participant,
                                         overlay_width=0, seed=seed)
        jobs = cohort.write_cohort(st, settings)
        cohort.write_stage5(st, jobs)
        rows, stats = table.build_rows(table.finished_jobs(st), _reader(st))
        tab = table.with_labels(rows, labels.parse_labels(cohort.cohort_labels(jobs, settings)))
        t = time.perf_counter()
        cand = training.train_candidate(tab, "igait-screening")
        print(f"{len(jobs)} jobs of {2 * per_class} simulated participants ({len(stats['skipped'])} left out), "
              f"trained and cross-validated in {time.perf_counter() - t:.1f} s")
        for name in ("cross_validated", "cross_validated_mlp"):
            print(name, json.dumps(cand.card["metrics"][name]))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("table")
    p.add_argument("--jobs", type=int, default=10_000)
    p = sub.add_parser("cohort")
    p.add_argument("--per-class", type=int, default=40)
    p.add_argument("--jobs-per-participant", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.what == "table":
        bench_table(a.jobs)
    else:
        bench_cohort(a.per_class, a.jobs_per_participant, a.seed)


if __name__ == "__main__":
    main()
