"""Per-stage times for one job on the sample clip, with two ratios measured in the same run:

- stage 1 (conversion through igait_pipeline.stages.media.convert) against the equivalent raw ffmpeg command;
- stage 4 (extract_keypoints: pose + overlay video + keypoints JSON) against a bare MediaPipe loop over the same
  frames (decode, colour conversion, pose; nothing kept);
and the peak memory (max RSS) of stage 4 and of the bare loop, each measured in its own child process.

    .venv/bin/python bench/stages.py [--video PATH] [--repeat N]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _child(code: str) -> dict:
    """Run code in a fresh interpreter; return its printed JSON plus its peak RSS in MiB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "GLOG_minloglevel": "2", "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    res["peak_rss_note"] = "max over child processes so far" if before else "this child"
    return res


STAGE4 = """
import json, time, resource
from igait_pipeline.stages import pose
t = time.perf_counter()
r = pose.extract_keypoints({video!r}, {out!r}, "side", "bench_1")
print(json.dumps({{"seconds": time.perf_counter() - t, "frames": r.frames, "detected": r.detected,
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

BARE = """
import json, time, resource, cv2
import mediapipe as mp
t, cpu = time.perf_counter(), time.process_time()
p = mp.solutions.pose.Pose(model_complexity=1, smooth_landmarks=True)
cap = cv2.VideoCapture({video!r}); n = d = 0
while True:
    ok, f = cap.read()
    if not ok: break
    r = p.process(cv2.cvtColor(f, cv2.COLOR_BGR2RGB)); n += 1; d += r.pose_landmarks is not None
p.close()
print(json.dumps({{"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - cpu, "frames": n,
                  "detected": d, "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def raw_ffmpeg(src: Path, dst: Path) -> list[str]:
    """The same conversion as media.convert, as one plain ffmpeg command line."""
    from igait_pipeline.stages import media

    vf = (f"scale={media.TARGET_WIDTH}:{media.TARGET_HEIGHT}:force_original_aspect_ratio=decrease:flags=bicubic,"
          f"pad={media.TARGET_WIDTH}:{media.TARGET_HEIGHT}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,"
          f"fps=fps={media.TARGET_FPS}")
    return ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-vf", vf,
            "-c:v", "libx264", "-preset", media.X264_PRESET, "-crf", str(media.X264_CRF), "-pix_fmt", "yuv420p",
            "-an", "-movflags", "+faststart", "-f", "mp4", str(dst)]


def timed(fn, *a, **kw):
    t = time.perf_counter()
    r = fn(*a, **kw)
    return time.perf_counter() - t, r


def main() -> None:
    from igait_pipeline import sample
    from igait_pipeline.stages import media, reframe, validity

    ap = argparse.ArgumentParser()
    ap.add_argument("--video", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=2, help="conversion repeats (best of N for both sides)")
    args = ap.parse_args()
    video = args.video or sample.fetch_sample()
    tmp = Path(tempfile.mkdtemp(prefix="igait-bench-"))
    rows = []

    ours, raw = [], []
    for i in range(args.repeat):  # alternate, so drift in machine load hits both sides alike
        raw.append(timed(subprocess.run, raw_ffmpeg(video, tmp / f"raw{i}.mp4"), check=True)[0])
        ours.append(timed(media.convert, video, tmp / f"side{i}.mp4")[0])
    conv = tmp / "side0.mp4"
    rows.append(("1 converted_video (one view)", min(ours), f"raw ffmpeg {min(raw):.2f} s",
                 min(ours) / min(raw)))

    t2, report = timed(validity.validate, {"side": conv}, "bench_1")
    rows.append(("2 validation_report (one view)", t2, f"{report.views['side'].frames_sampled} samples", None))
    t3, _ = timed(reframe.reframe_view, conv, report.views["side"], tmp / "s3" / "side.mp4")
    rows.append(("3 reframed_video (one view)", t3, "", None))

    s4 = _child(STAGE4.format(video=str(tmp / "s3" / "side.mp4"), out=str(tmp / "s4")))
    bare = _child(BARE.format(video=str(tmp / "s3" / "side.mp4")))
    looped = tmp / "s3" / "side_x3.mp4"  # the same clip three times over: does stage 4's memory grow with length?
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-stream_loop", "2", "-i",
                    str(tmp / "s3" / "side.mp4"), "-c", "copy", str(looped)], check=True)
    s4_long = _child(STAGE4.format(video=str(looped), out=str(tmp / "s4_long")))
    rows.append(("4 keypoints (one view)", s4["seconds"],
                 f"bare MediaPipe {bare['seconds']:.2f} s, {s4['frames']} frames", s4["seconds"] / bare["seconds"]))

    try:
        from bench.later_stages import later_stages  # stages 5–7, once present

        rows += later_stages(tmp)
    except ImportError:
        pass

    print(f"\nbench on {video} ({media.probe(video).duration:.1f} s clip), {os.cpu_count()} cores")
    print(f"{'stage':<34}{'seconds':>9}  {'ratio':>6}  baseline")
    for name, sec, base, ratio in rows:
        print(f"{name:<34}{sec:>9.2f}  {'' if ratio is None else f'{ratio:.3f}x':>6}  {base}")
    print(f"\nstage 1 ratio target <= 1.10x: {'met' if rows[0][3] <= 1.10 else 'NOT met'}")
    print(f"stage 4 ratio target <= 1.20x: {'met' if rows[3][3] <= 1.20 else 'NOT met'}")
    print(f"stage 4 peak RSS: {s4['maxrss_mib']:.0f} MiB on {s4['frames']} frames, {s4_long['maxrss_mib']:.0f} MiB on "
          f"{s4_long['frames']} frames (bare MediaPipe loop: {bare['maxrss_mib']:.0f} MiB)")


if __name__ == "__main__":
    main()
