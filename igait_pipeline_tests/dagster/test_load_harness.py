"""bench/load.py with a tiny N: three real jobs uploaded within five seconds into a fresh instance served by a real
`dagster-daemon` (SQLite, this repository's dagster.yaml with its run-queue limits), the daemon SIGKILLed once a
run has ended (the other two queued or running) and started again 3 s later, the real SMTP server catching the
e-mails.
Nothing is lost, no job runs twice, each family gets exactly one e-mail, the run queue's limits hold. Then
`igait rescore` of the three (one asset backfill of prediction + results_archive, run by the same daemon): the
backfill completes, each job is re-scored by exactly one run, its document shows it, and no family is e-mailed a
second time (checked once two status-sensor ticks have ended after the last run: the sensor's interval is 5 s here
instead of 15, through $IGAIT_STATUS_SENSOR_INTERVAL_S)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_three_jobs_survive_a_killed_daemon(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "bench.load", "--n", "3", "--spread", "5", "--down", "3",
                           "--no-solo", "--rescore", "--status-interval", "5",
                           "--timeout", "1500", "--keep", str(tmp_path / "work")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1700)
    out = proc.stdout
    daemon_log = tmp_path / "work" / "daemon.log"
    tail = daemon_log.read_text()[-4000:] if daemon_log.exists() else ""
    assert proc.returncode == 0, f"{out}\n{proc.stderr[-3000:]}\n--- daemon.log (end) ---\n{tail}"
    killed = re.search(r"daemon SIGKILLed at \+\d+ s \((\d+) runs ended, (\d+) running, (\d+) queued", out)
    assert killed and int(killed[1]) < 3 and int(killed[2]) + int(killed[3]) >= 1, out  # killed with runs in flight
    assert "daemon restarted" in out, out
    assert out.rstrip().splitlines()[-1] == "load: 3 jobs, 3 completed, 0 lost, 0 duplicate runs, 3 e-mails", out
    m = re.search(r"runs running at once: max (\d+) .*limit max_concurrent_runs=(\d+); "
                  r"jobs with overlapping runs \(tag limit 1\): (\d+)", out)
    assert m and 1 <= int(m[1]) <= int(m[2]) == 2 and m[3] == "0", out
    assert "orphaned processes after the daemon stopped 0" in out, out
    rescored = re.search(r"rescore: backfill \w+ (\w+) in \d+ s with (.+?); (\d+) of 3 jobs re-scored by exactly one "
                         r"successful run; (\d+) documents updated", out)
    assert rescored and rescored[1] == "COMPLETED_SUCCESS" and rescored[3] == rescored[4] == "3", out
    assert rescored[2].startswith("igait-reference-mlp "), out  # the model in use: the bundled reference
