"""One whole job against the raw tools, measured in the same bench run.

Each round, one after the other on the same machine:

- raw: the tools the per-view stages run, by hand, serially: per view the stage-1 ffmpeg conversion (the same
  command line as `media.convert`), the stage-3 ffmpeg crop (the same crop box the job chose), and a bare
  MediaPipe loop (decode, colour conversion, BlazePose model_complexity=1; nothing kept) over the reframed video;
- job: `igait run` in a fresh interpreter on a fresh Dagster instance and storage, as a researcher runs it without
  a daemon (submit, record the upload, the whole graph with the multiprocess executor: both views at once).

It prints, over the rounds (min / median / max), the ratio whole-job wall / serial raw sum (the command's wall,
interpreter start included, and the run's own wall from the event log), each stage's wall time and share of the
run, each per-view step's overhead (step wall - its raw tool's time on that view), where the rest goes (process
start and imports before the run, time between steps), the peak memory (sum of the PSS of every process of
the job, sampled every 0.2 s), and the CPU seconds of the raw tools and of the job. The raw tools' CPU seconds over
the cores is a floor no job running the same tool commands can go under ("raw floor", as a ratio to the serial raw
sum); the job's own CPU seconds over the cores is the floor of this job's work, perfectly packed ("job floor").

    .venv/bin/python -m bench.job [--front PATH] [--side PATH] [--rounds 3]

Without --front, the sample (a side view: the only licensed walking clip) stands in for both views.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stages import BARE, raw_ffmpeg  # noqa: E402
from igait_pipeline.layout import PIPELINE_STAGES, REFRAMED, VIEWS, stage_of_asset  # noqa: E402

METADATA = {"age": 34, "sex": "F", "height": "176 cm", "weight": "72 kg", "ethnicity": "not stated",
            "email": "family@example.org"}  # the sample's walker is an adult (as `igait demo` says)
QUIET = {"GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}


def _timed_run(args: list[str], **kw) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the command, all its threads)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(args, check=True, **kw)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def raw_crop(src: Path, dst: Path, box: list[int]) -> list[str]:
    """The same crop as media.crop (stage 3), as one plain ffmpeg command line."""
    from igait_pipeline.stages import media

    x, y, w, h = box
    return ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-vf",
            f"crop={w}:{h}:{x}:{y}", "-c:v", "libx264", "-preset", media.X264_PRESET, "-crf", str(media.X264_CRF),
            "-pix_fmt", "yuv420p", "-an", "-movflags", "+faststart", "-f", "mp4", str(dst)]


def bare_pose(video: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of the bare MediaPipe loop (model load included, interpreter start and imports not)."""
    out = subprocess.run([sys.executable, "-c", BARE.format(video=str(video))], capture_output=True, text=True,
                         cwd=ROOT, check=True, env={**os.environ, **QUIET, "PYTHONPATH": str(ROOT)})
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return res["seconds"], res["cpu_seconds"]


def raw_tools(videos: dict[str, Path], crops: dict[str, list[int]], tmp: Path
              ) -> tuple[dict[str, dict[int, float]], float]:
    """Per view: wall seconds of the stage-1 conversion, the stage-3 crop and the bare pose loop, run serially;
    and the CPU seconds all of them used."""
    times: dict[str, dict[int, float]] = {}
    cpu = 0.0
    for view in VIEWS:
        conv, cropped = tmp / f"raw_{view}_conv.mp4", tmp / f"raw_{view}_crop.mp4"
        times[view] = {}
        for stage, (wall, used) in ((1, _timed_run(raw_ffmpeg(videos[view], conv))),
                                    (3, _timed_run(raw_crop(conv, cropped, crops[view]))),
                                    (4, bare_pose(cropped))):
            times[view][stage] = wall
            cpu += used
    return times, cpu


class MemorySampler(threading.Thread):
    """Peak of the summed PSS of a process and all its descendants (shared pages counted once, pro rata), and the
    CPU seconds (user + system) they used: each process's last sampled value, so a process that lives less than a
    sampling interval (an ffprobe) is missed and the total is a slight undercount."""

    def __init__(self, pid: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak_kib, self.stop = pid, every, 0, threading.Event()
        self.cpu_ticks: dict[tuple[int, int], int] = {}  # (pid, start time) -> utime + stime, in clock ticks

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = defaultdict(list)
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children[ppid].append(int(d.name))
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo += children.get(p, [])
        return out

    def run(self) -> None:
        while not self.stop.is_set():
            total = 0
            for p in self._tree():
                try:
                    stat = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
                    self.cpu_ticks[(p, int(stat[19]))] = int(stat[11]) + int(stat[12])  # fields 22, 14, 15
                    for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                        if line.startswith("Pss:"):
                            total += int(line.split()[1])
                except OSError:
                    pass
            self.peak_kib = max(self.peak_kib, total)
            self.stop.wait(self.every)


def whole_job(videos: dict[str, Path], tmp: Path, job_id: str) -> dict:
    """`igait run` in a fresh interpreter on a fresh instance; its wall, the run's step times, its peak memory."""
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    meta = tmp / "metadata.json"
    meta.write_text(json.dumps(METADATA))
    env = {**os.environ, **QUIET, "DAGSTER_HOME": str(home), "IGAIT_STORAGE_ROOT": str(tmp / "storage"),
           "IGAIT_CACHE_DIR": str(tmp / "cache"), "IGAIT_STATUS_URI": f"sqlite:{tmp}/status.sqlite3",
           "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "igait_pipeline.cli", "run", "--front", str(videos["front"]),
                             "--side", str(videos["side"]), "--metadata", str(meta), "--job-id", job_id,
                             "--view-check", "warn"],  # the licensed clips are all side views
                            cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = MemorySampler(proc.pid)
    sampler.start()
    log, _ = proc.communicate()
    wall = time.perf_counter() - t
    sampler.stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"igait run failed:\n{log[-3000:]}")
    steps, run_wall = _step_times(home, job_id)
    storage = tmp / "storage"
    crops = {v: json.loads((storage / REFRAMED.key(job_id, f"{v}_crop.json")).read_text())["box_px"] for v in VIEWS}
    return {"wall": wall, "run_wall": run_wall, "steps": steps, "peak_pss_mib": sampler.peak_kib / 1024,
            "crops": crops, "cpu": sampler.cpu_seconds}


def _step_times(home: Path, job_id: str) -> tuple[dict[str, tuple[float, float]], float]:
    """(step key -> (start, end) seconds from the run's start), and the run's wall, from the event log."""
    code = f"""
import json
from dagster import DagsterEventType, DagsterInstance, RunsFilter
inst = DagsterInstance.get()
run = inst.get_runs(filters=RunsFilter(tags={{"dagster/partition": {job_id!r}}}), limit=1)[0]
out = {{"steps": {{}}}}
for rec in inst.all_logs(run.run_id):
    de = rec.dagster_event
    if de is None:
        continue
    if de.event_type in (DagsterEventType.RUN_START, DagsterEventType.RUN_SUCCESS):
        out[de.event_type.name] = rec.timestamp
    elif de.event_type in (DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS):
        out["steps"].setdefault(de.step_key, {{}})[de.event_type.name] = rec.timestamp
print(json.dumps(out))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)})
    data = json.loads(out.stdout.strip().splitlines()[-1])
    t0 = data["RUN_START"]
    steps = {k: (v["STEP_START"] - t0, v["STEP_SUCCESS"] - t0) for k, v in data["steps"].items()}
    return steps, data["RUN_SUCCESS"] - t0


def _stage_of_step(step: str) -> tuple[int, str | None]:
    name, _, view = step.partition("__")
    return stage_of_asset(name).number, view or None


def _mmm(xs: list[float]) -> str:
    return f"{min(xs):.3f} / {statistics.median(xs):.3f} / {max(xs):.3f}"


def main() -> None:
    from igait_pipeline import sample

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--front", type=Path, default=None, help="front-view clip (default: the sample)")
    ap.add_argument("--side", type=Path, default=None, help="side-view clip (default: the sample)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    side = (args.side or sample.fetch_sample()).resolve()
    videos = {"front": args.front.resolve() if args.front else side, "side": side}
    rounds = []
    for i in range(args.rounds):
        tmp = Path(tempfile.mkdtemp(prefix=f"igait-bench-job{i}-"))
        load = os.getloadavg()[0]
        job = whole_job(videos, tmp, f"bench_{i + 1}")
        raw, raw_cpu = raw_tools(videos, job["crops"], tmp)
        raw_sum = sum(sum(per.values()) for per in raw.values())
        rounds.append({"job": job, "raw": raw, "raw_sum": raw_sum, "raw_cpu": raw_cpu, "load": load})
        print(f"round {i + 1}: job {job['wall']:.1f} s (run {job['run_wall']:.1f} s), raw tools serially "
              f"{raw_sum:.1f} s, ratio {job['wall'] / raw_sum:.3f}; load before {load:.2f}", flush=True)

    print(f"\nbench on front={videos['front'].name} side={videos['side'].name}, {os.cpu_count()} cores, "
          f"{args.rounds} rounds (min / median / max)")
    if videos["front"] == videos["side"]:
        print("(the sample, a side view, stands in for both views: no licensed front-view clip here)")
    print(f"whole job / serial raw sum   {_mmm([r['job']['wall'] / r['raw_sum'] for r in rounds])}   "
          f"(`igait run` wall, interpreter start and submit included)")
    print(f"run only / serial raw sum    {_mmm([r['job']['run_wall'] / r['raw_sum'] for r in rounds])}   "
          f"(RUN_START to RUN_SUCCESS)")
    print(f"whole job wall (s)           {_mmm([r['job']['wall'] for r in rounds])}")
    print(f"serial raw sum (s)           {_mmm([r['raw_sum'] for r in rounds])}")
    print(f"peak memory, all processes   {_mmm([r['job']['peak_pss_mib'] for r in rounds])} MiB PSS")
    cores = os.cpu_count() or 1
    print(f"\nCPU seconds (user + system, all threads and processes; min / median / max); {cores} cores:")
    print(f"raw tools                    {_mmm([r['raw_cpu'] for r in rounds])}")
    print(f"whole job                    {_mmm([r['job']['cpu'] for r in rounds])}   (sampled every 0.2 s)")
    print(f"raw floor: raw CPU / {cores} cores / serial raw sum   "
          f"{_mmm([r['raw_cpu'] / cores / r['raw_sum'] for r in rounds])}"
          f"   (the same tool work cannot run faster on {cores} cores: no job's ratio goes under it)")
    print(f"job floor: job CPU / {cores} cores / serial raw sum   "
          f"{_mmm([r['job']['cpu'] / cores / r['raw_sum'] for r in rounds])}   (this job's work, perfectly packed)")
    print(f"job's use of the cores: job CPU / ({cores} x wall)  "
          f"{_mmm([r['job']['cpu'] / cores / r['job']['wall'] for r in rounds])}")

    med = sorted(rounds, key=lambda r: r["job"]["wall"] / r["raw_sum"])[len(rounds) // 2]  # the median round
    job, raw = med["job"], med["raw"]
    print(f"\nthe median round: run {job['run_wall']:.1f} s of {job['wall']:.1f} s wall "
          f"({job['wall'] - job['run_wall']:.1f} s before the run: interpreter, imports, submit, record)")
    print("stage wall: its first step's start to its last step's end; raw: its tool on both views, serially;")
    print("overhead: wall - raw (negative: the two views overlapped by more than the stage's own overhead)")
    print(f"{'stage':<22}{'wall s':>8}{'share':>7}{'raw s':>8}{'overhead':>10}   {'step':<24}{'step s':>7}"
          f"{'raw s':>7}")
    busy = []
    for st in PIPELINE_STAGES:
        steps = {k: v for k, v in job["steps"].items() if _stage_of_step(k)[0] == st.number}
        start, end = min(s for s, _ in steps.values()), max(e for _, e in steps.values())
        busy.append((start, end))
        raws = {v: raw[v][st.number] for v in VIEWS if st.number in raw[v]}
        head = f"{st.number} {st.asset:<20}{end - start:>8.2f}{(end - start) / job['run_wall']:>7.0%}"
        head += (f"{sum(raws.values()):>8.2f}{end - start - sum(raws.values()):>+10.2f}" if raws else " " * 18)
        for i, (key, (s, e)) in enumerate(sorted(steps.items())):
            view = _stage_of_step(key)[1]
            base = f"{raws[view]:>7.2f}" if view in raws else ""
            print(f"{head if i == 0 else ' ' * len(head)}   {key:<24}{e - s:>7.2f}{base}")
    covered, last = 0.0, 0.0
    for s, e in sorted(busy):
        covered += max(0.0, e - max(s, last))
        last = max(last, e)
    print(f"between steps (step process start, executor polling): {job['run_wall'] - covered:.2f} s of the run")
    ratio = statistics.median([r["job"]["wall"] / r["raw_sum"] for r in rounds])
    loads = ", ".join(f"{r['load']:.2f}" for r in rounds)
    print(f"\ntarget whole job / serial raw sum <= 0.80: {'met' if ratio <= 0.80 else 'NOT met'} (median); "
          f"1-minute load average before each round: {loads}")


if __name__ == "__main__":
    main()
