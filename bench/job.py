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

    .venv/bin/python -m bench.job [--front PATH] [--side PATH] [--rounds 3] [--seconds 60]

Without --front, the sample (a side view: the only licensed walking clip) stands in for both views.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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
from igait_pipeline.layout import CONVERTED, PIPELINE_STAGES, REFRAMED, VIEWS, stage_of_asset, view_of_asset  # noqa: E402

METADATA = {"age": 34, "sex": "F", "height": "176 cm", "weight": "72 kg", "ethnicity": "not stated",
            "email": "family@example.org"}  # the sample's walker is an adult (as `igait demo` says)
TARGET_CPU = 1.25  # issue 27: job CPU within 1.25x the raw tools' CPU
TARGET_WALL = 1.10  # and the whole job within 1.10x the serial raw sum
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
              ) -> tuple[dict[str, dict[int, float]], dict[str, dict[int, float]]]:
    """Per view: wall seconds and CPU seconds of the stage-1 conversion, the stage-3 crop and the bare pose loop,
    run serially."""
    times: dict[str, dict[int, float]] = {}
    cpu: dict[str, dict[int, float]] = {}
    for view in VIEWS:
        conv, cropped = tmp / f"raw_{view}_conv.mp4", tmp / f"raw_{view}_crop.mp4"
        times[view], cpu[view] = {}, {}
        for stage, (wall, used) in ((1, _timed_run(raw_ffmpeg(videos[view], conv))),
                                    (3, _timed_run(raw_crop(conv, cropped, crops[view]))),
                                    (4, bare_pose(cropped))):
            times[view][stage], cpu[view][stage] = wall, used
    return times, cpu


BARE_DECODE = """
import json, resource, cv2
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
c = cpu()
cap = cv2.VideoCapture({video!r}); n = 0
while cap.grab(): n += 1
print(json.dumps({{"frames": n, "cpu_seconds": cpu() - c}}))
"""


def bare_decode(video: Path) -> float:
    """CPU seconds of decoding every frame of a video once with OpenCV (as stages 2 and 4 read theirs), measured
    in a fresh interpreter from after its imports."""
    out = subprocess.run([sys.executable, "-c", BARE_DECODE.format(video=str(video))], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["cpu_seconds"]


class MemorySampler(threading.Thread):
    """Peak of the summed PSS of a process and all its descendants (shared pages counted once, pro rata), and the
    CPU seconds (user + system) each of them used: each process's last sampled value, so a process that lives less
    than a sampling interval (an ffprobe) is missed, and the last interval of each is: a slight undercount. The
    root process's CPU is also kept over time (to split it at the run's start)."""

    def __init__(self, pid: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak_kib, self.stop = pid, every, 0, threading.Event()
        # (pid, start time) -> {"ppid", "comm", "ticks": utime + stime in clock ticks}
        self.procs: dict[tuple[int, int], dict] = {}
        self.root_history: list[tuple[float, int]] = []  # (time.time(), the root's own ticks)

    @staticmethod
    def seconds(ticks: int) -> float:
        return ticks / os.sysconf("SC_CLK_TCK")

    @property
    def cpu_seconds(self) -> float:
        return self.seconds(sum(p["ticks"] for p in self.procs.values()))

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
                    raw = Path(f"/proc/{p}/stat").read_text()
                    comm = raw[raw.index("(") + 1:raw.rindex(")")]
                    stat = raw.rsplit(")", 1)[1].split()
                    ticks = int(stat[11]) + int(stat[12])  # fields 14, 15: utime, stime
                    self.procs[(p, int(stat[19]))] = {"ppid": int(stat[1]), "comm": comm, "ticks": ticks}
                    if p == self.pid:
                        self.root_history.append((time.time(), ticks))
                    for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                        if line.startswith("Pss:"):
                            total += int(line.split()[1])
                except (OSError, ValueError):
                    pass
            self.peak_kib = max(self.peak_kib, total)
            self.stop.wait(self.every)

    def accounts(self, step_pids: dict[str, int], run_start: float) -> dict:
        """CPU seconds by who spent them: the root process before the run (interpreter, imports, submit) and during
        it (the run's coordinator); each step's process and its descendants (tools); the step processes' parent
        (the forkserver: the preloaded imports); anything else."""
        by_pid: dict[int, dict] = {}
        for (pid, _), p in self.procs.items():  # a pid reused within the run is not expected; the last one wins
            by_pid[pid] = p
        step_of = {pid: step for step, pid in step_pids.items()}
        out = {"steps": {s: {"own": 0.0, "tools": 0.0} for s in step_pids}, "forkserver": 0.0, "other": 0.0,
               "root_before_run": 0.0, "root_during_run": 0.0}
        before = max((t for ts, t in self.root_history if ts <= run_start), default=0)
        root = by_pid.get(self.pid, {"ticks": 0})["ticks"]
        out["root_before_run"], out["root_during_run"] = self.seconds(before), self.seconds(root - before)
        parents = {by_pid[pid]["ppid"] for pid in step_of if pid in by_pid}
        for pid, p in by_pid.items():
            if pid == self.pid:
                continue
            secs, anc = self.seconds(p["ticks"]), pid
            while anc in by_pid and anc not in step_of and anc != self.pid:
                anc = by_pid[anc]["ppid"]
            if pid in step_of:
                out["steps"][step_of[pid]]["own"] += secs
            elif anc in step_of:
                out["steps"][step_of[anc]]["tools"] += secs
            elif pid in parents:
                out["forkserver"] += secs
            else:
                out["other"] += secs
        return out


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
    log_data = _event_log(home, job_id)
    steps, run_wall = log_data["steps"], log_data["run_wall"]
    storage = tmp / "storage"
    crops = {v: json.loads((storage / REFRAMED.key(job_id, f"{v}_crop.json")).read_text())["box_px"] for v in VIEWS}
    # what stages 2 and 4 decode: the stage-1 and stage-3 videos, each decoded once by a bare OpenCV loop
    decode = {(stage.number, v): bare_decode(storage / stage.key(job_id, f"{v}.mp4"))
              for stage in (CONVERTED, REFRAMED) for v in VIEWS}
    return {"wall": wall, "run_wall": run_wall, "steps": steps, "peak_pss_mib": sampler.peak_kib / 1024,
            "crops": crops, "cpu": sampler.cpu_seconds, "decode": decode, "step_cpu": log_data["step_cpu"],
            "accounts": sampler.accounts(log_data["pids"], log_data["run_start"])}


def _event_log(home: Path, job_id: str) -> dict:
    """From the run's event log: each step's (start, end) seconds from the run's start, the run's wall and start
    (epoch seconds), each step's process id and the CPU line each stage step logs at its end."""
    code = f"""
import json
from dagster import DagsterEventType, DagsterInstance, RunsFilter
inst = DagsterInstance.get()
run = inst.get_runs(filters=RunsFilter(tags={{"dagster/partition": {job_id!r}}}), limit=1)[0]
out = {{"steps": {{}}, "pids": {{}}, "messages": []}}
for rec in inst.all_logs(run.run_id):
    de = rec.dagster_event
    if de is None:
        if rec.step_key and " CPU " in (rec.user_message or ""):
            out["messages"].append([rec.step_key, rec.user_message])
        continue
    if de.event_type in (DagsterEventType.RUN_START, DagsterEventType.RUN_SUCCESS):
        out[de.event_type.name] = rec.timestamp
    elif de.event_type in (DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS):
        out["steps"].setdefault(de.step_key, {{}})[de.event_type.name] = rec.timestamp
        if de.event_type == DagsterEventType.STEP_START:
            out["pids"][de.step_key] = de.pid
print(json.dumps(out))
"""
    from igait_pipeline.assets import step_cpu_of

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)})
    data = json.loads(out.stdout.strip().splitlines()[-1])
    t0 = data["RUN_START"]
    steps = {k: (v["STEP_START"] - t0, v["STEP_SUCCESS"] - t0) for k, v in data["steps"].items()}
    step_cpu = {key: cpu for key, msg in data["messages"] if (cpu := step_cpu_of(msg))}
    return {"steps": steps, "run_wall": data["RUN_SUCCESS"] - t0, "run_start": t0, "pids": data["pids"],
            "step_cpu": step_cpu}


def _stage_of_step(step: str) -> tuple[int, str | None]:
    """(stage number, view or None) of a step key: the asset's key (`keypoints_front`)."""
    return stage_of_asset(step).number, view_of_asset(step)


def _mmm(xs: list[float]) -> str:
    return f"{min(xs):.3f} / {statistics.median(xs):.3f} / {max(xs):.3f}"


def main() -> None:
    from igait_pipeline import sample

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--front", type=Path, default=None, help="front-view clip (default: the sample)")
    ap.add_argument("--side", type=Path, default=None, help="side-view clip (default: the sample)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=None,
                    help="lengthen each clip to this many seconds first (see `lengthen`), to see how the job scales")
    args = ap.parse_args()
    side = (args.side or sample.fetch_sample()).resolve()
    videos = {"front": args.front.resolve() if args.front else side, "side": side}
    if args.seconds:
        made = Path(tempfile.mkdtemp(prefix="igait-bench-long-"))
        videos = {v: lengthen(p, args.seconds, made / f"{v}_{args.seconds:g}s.mp4") for v, p in videos.items()}
    rounds = []
    for i in range(args.rounds):
        tmp = Path(tempfile.mkdtemp(prefix=f"igait-bench-job{i}-"))
        load = os.getloadavg()[0]
        job = whole_job(videos, tmp, f"bench_{i + 1}")
        raw, raw_cpu = raw_tools(videos, job["crops"], tmp)
        raw_sum = sum(sum(per.values()) for per in raw.values())
        raw_cpu_sum = sum(sum(per.values()) for per in raw_cpu.values())
        rounds.append({"job": job, "raw": raw, "raw_sum": raw_sum, "raw_cpu": raw_cpu, "raw_cpu_sum": raw_cpu_sum,
                       "load": load})
        print(f"round {i + 1}: job {job['wall']:.1f} s (run {job['run_wall']:.1f} s), raw tools serially "
              f"{raw_sum:.1f} s, ratio {job['wall'] / raw_sum:.3f}; CPU job {job['cpu']:.1f} s, raw "
              f"{raw_cpu_sum:.1f} s, ratio {job['cpu'] / raw_cpu_sum:.3f}; load before {load:.2f}", flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
    report(videos, rounds)


def lengthen(src: Path, seconds: float, dst: Path) -> Path:
    """A longer walk from a clip: the clip, then the clip played backwards (the walker goes back the way they came,
    from where the clip left them: no jump), and again, cut at `seconds`; one ffmpeg command, near-lossless. (The
    clip then its mirror image was tried first: the sample's walker leaves the frame at its end, and stage 2 rightly
    refused a walk whose whole body is seen in only 24 % of the frames.)"""
    from igait_pipeline.stages import media

    if dst.exists():
        return dst
    passes = int(seconds // media.probe(src).duration) + 1
    chain = "".join(f"[{i}:v]{'reverse,' if i % 2 else ''}setpts=PTS-STARTPTS[v{i}];" for i in range(passes))
    chain += "".join(f"[v{i}]" for i in range(passes)) + f"concat=n={passes}:v=1:a=0[out]"
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                    *[a for _ in range(passes) for a in ("-i", str(src))], "-filter_complex", chain,
                    "-map", "[out]", "-t", f"{seconds}", "-c:v", "libx264", "-preset", "veryfast", "-crf", "14",
                    "-pix_fmt", "yuv420p", "-an", str(dst)], check=True)
    return dst


def report(videos: dict[str, Path], rounds: list[dict]) -> None:
    n = len(rounds)
    print(f"\nbench on front={videos['front'].name} side={videos['side'].name}, {os.cpu_count()} cores, "
          f"{n} rounds (min / median / max)")
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
    print(f"raw tools                    {_mmm([r['raw_cpu_sum'] for r in rounds])}")
    print(f"whole job                    {_mmm([r['job']['cpu'] for r in rounds])}   (sampled every 0.2 s)")
    print(f"job CPU / raw CPU            {_mmm([r['job']['cpu'] / r['raw_cpu_sum'] for r in rounds])}")
    print(f"raw floor: raw CPU / {cores} cores / serial raw sum   "
          f"{_mmm([r['raw_cpu_sum'] / cores / r['raw_sum'] for r in rounds])}"
          f"   (the same tool work cannot run faster on {cores} cores: no job's ratio goes under it)")
    print(f"job floor: job CPU / {cores} cores / serial raw sum   "
          f"{_mmm([r['job']['cpu'] / cores / r['raw_sum'] for r in rounds])}   (this job's work, perfectly packed)")
    print(f"job's use of the cores: job CPU / ({cores} x wall)  "
          f"{_mmm([r['job']['cpu'] / cores / r['job']['wall'] for r in rounds])}")

    med = sorted(rounds, key=lambda r: r["job"]["wall"] / r["raw_sum"])[n // 2]  # the median round
    job, raw, raw_cpu = med["job"], med["raw"], med["raw_cpu"]
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
    cpu_table(job, raw_cpu)

    ratio = statistics.median([r["job"]["wall"] / r["raw_sum"] for r in rounds])
    cpu_ratio = statistics.median([r["job"]["cpu"] / r["raw_cpu_sum"] for r in rounds])
    loads = ", ".join(f"{r['load']:.2f}" for r in rounds)
    print(f"\ntarget job CPU / raw CPU <= {TARGET_CPU:.2f}: {'met' if cpu_ratio <= TARGET_CPU else 'NOT met'} "
          f"({cpu_ratio:.3f}, median)")
    print(f"target whole job / serial raw sum <= {TARGET_WALL:.2f}: {'met' if ratio <= TARGET_WALL else 'NOT met'} "
          f"({ratio:.3f}, median); 1-minute load average before each round: {loads}")


def cpu_table(job: dict, raw_cpu: dict[str, dict[int, float]]) -> None:
    """Where the median round's CPU seconds went: per step (its own process before, in and after the stage body;
    its tools), and the processes around the steps."""
    acc, lines = job["accounts"], job["step_cpu"]
    print("\nCPU seconds of the median round, by step (own: the step's process, sampled; before / body / after: "
          "the stage body's own split of it, from the line each step logs; tools: ffmpeg children; raw: the same "
          "tool run bare; decode: the step's input decoded once by bare OpenCV)")
    print(f"{'step':<26}{'total':>7}{'own':>7}{'before':>8}{'body':>7}{'after':>7}{'tools':>7}{'raw':>7}"
          f"{'decode':>8}")
    phases = defaultdict(float)
    for key in sorted(acc["steps"], key=lambda k: (_stage_of_step(k)[0], k)):
        a, line = acc["steps"][key], lines.get(key, {})
        stage, view = _stage_of_step(key)
        before, body = line.get("before") or 0.0, line.get("body", 0.0)
        after = max(0.0, a["own"] - before - body)
        raw = raw_cpu.get(view, {}).get(stage) if view else None
        dec = job["decode"].get((stage - 1, view)) if stage in (2, 4) and view else None
        if stage == 2:  # one step decodes both views' stage-1 videos
            dec = sum(job["decode"][(1, v)] for v in VIEWS)
        phases["step start and input loading"] += before
        phases["stage bodies: Python (decode, pose, our code)"] += body
        phases["stage bodies: tools (ffmpeg decode + encode)"] += a["tools"]
        phases["after the body: storing outputs, Dagster events"] += after
        if dec:
            phases["  of the bodies: decoding inputs once (bare OpenCV estimate)"] += dec
        print(f"{key:<26}{a['own'] + a['tools']:>7.2f}{a['own']:>7.2f}{before:>8.2f}{body:>7.2f}{after:>7.2f}"
              f"{a['tools']:>7.2f}{(f'{raw:.2f}' if raw is not None else ''):>7}"
              f"{(f'{dec:.2f}' if dec else ''):>8}")
    phases["before the run: interpreter, imports, submit, record"] = acc["root_before_run"]
    phases["forkserver: the step processes' preloaded imports"] = acc["forkserver"]
    phases["run coordinator: Dagster's executor in the root process"] = acc["root_during_run"]
    phases["other processes"] = acc["other"]
    print("\nby phase (CPU s):")
    for name, secs in phases.items():
        print(f"  {name:<62}{secs:>7.2f}")
    print(f"  {'total (sampled)':<62}{job['cpu']:>7.2f}")


if __name__ == "__main__":
    main()
