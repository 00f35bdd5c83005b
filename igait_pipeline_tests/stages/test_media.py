"""Stage 1 and the video helpers, on real video through real ffmpeg."""
import subprocess

import cv2
import pytest

from igait_pipeline.stages import media


def test_probe_reads_the_sample(sample_video):
    info = media.probe(sample_video)
    assert (info.width, info.height) == (1768, 994)
    assert info.fps == pytest.approx(30.0)
    assert info.duration == pytest.approx(7.67, abs=0.05)


@pytest.mark.parametrize("clip", ["short_clip", "short_clip_mov", "short_clip_avi"])
def test_convert_accepts_webm_mov_avi_and_gives_canonical_form(clip, request, tmp_path):
    src = request.getfixturevalue(clip)
    seen = []
    out = media.convert(src, tmp_path / "out.mp4", progress=seen.append)
    assert (out.width, out.height, out.codec) == (1920, 1080, "h264")
    assert out.fps == pytest.approx(60.0)
    assert out.duration == pytest.approx(media.probe(src).duration, abs=0.1)
    assert seen[-1] == 1.0 and len(seen) >= 2
    streams = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,pix_fmt", "-of",
                              "csv=p=0", str(tmp_path / "out.mp4")], capture_output=True, text=True).stdout
    assert streams.split() == ["video,yuv420p"]  # no audio track
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no partial file left behind


def test_rotated_phone_video_is_upright_and_padded(short_clip_mov, tmp_path):
    info = media.probe(short_clip_mov)
    assert info.rotation in (90, 270) and info.height > info.width  # displayed as portrait
    media.convert(short_clip_mov, tmp_path / "out.mp4")
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    ok, frame = cap.read()
    assert ok
    # A portrait picture inside a 16:9 frame: black bars left and right, picture in the middle.
    assert frame[:, :100].mean() < 5 and frame[:, -100:].mean() < 5
    assert frame[:, 900:1020].mean() > 30


def test_corrupt_video_is_refused_with_the_cause(corrupt_video, tmp_path):
    with pytest.raises(media.MediaError, match="corrupt.mp4: not a readable video"):
        media.convert(corrupt_video, tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == []


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(media.MediaError, match="missing"):
        media.probe(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(media.MediaError, match="empty"):
        media.probe(tmp_path / "empty.mp4")


def test_crop_and_streamed_frames(short_clip, tmp_path):
    out = media.crop(short_clip, tmp_path / "c.mp4", (100, 50, 640, 360))
    assert (out.width, out.height) == (640, 360)
    frames = list(media.iter_frames(tmp_path / "c.mp4", step=10))
    assert len(frames) == pytest.approx(out.frames / 10, abs=1)
    assert frames[1][0] == 10 and frames[1][2].shape == (360, 640, 3)


def test_video_writer_is_atomic(tmp_path):
    import numpy as np

    w = media.VideoWriter(tmp_path / "v.mp4", 320, 240, 30)
    for i in range(30):
        w.write(np.full((240, 320, 3), i * 8, np.uint8))
    w.abort()
    assert list(tmp_path.iterdir()) == []
    w = media.VideoWriter(tmp_path / "v.mp4", 320, 240, 30)
    for i in range(30):
        w.write(np.full((240, 320, 3), i * 8, np.uint8))
    w.close()
    assert media.probe(tmp_path / "v.mp4").frames == 30
