"""camera.py: the background's shift between two frames of real footage (the sample's room, moved by a known number
of pixels as a panning camera moves it), unknown on a blank picture, and the pan track over a walk."""
import numpy as np
import pytest

from igait_pipeline.stages import camera, media


@pytest.fixture(scope="module")
def room(sample_video) -> np.ndarray:
    """One real frame of the sample (1920×1080): the room, with the walker in it."""
    return next(frame for i, _, frame in media.iter_frames(sample_video, step=60) if i == 120)


@pytest.mark.parametrize("pixels", [-96, -30, 0, 45, 120])
def test_a_known_pan_of_real_footage_is_measured(room, pixels):
    """Two 1280-pixel-wide windows of the same frame, `pixels` apart: what a camera turning by that much sees
    (the background slides the other way)."""
    w = 1280
    a = room[:, 300:300 + w]
    b = room[:, 300 + pixels:300 + pixels + w]
    shift = camera.background_shift(camera.small_grey(a), camera.small_grey(b), [])
    assert shift == pytest.approx(-pixels / w, abs=1.5 / camera.PAN.width)


def test_a_padded_portrait_picture_is_measured_inside_its_bars_without_its_people(room):
    """Stage 1 pads a portrait phone picture with black bars (608 of 1920 pixels wide): the shift is measured on
    the picture alone, at full measuring width, people's boxes left out, and given in shares of the whole frame."""
    def padded(x0):
        frame = np.zeros((room.shape[0], 1280, 3), np.uint8)
        frame[:, 440:840] = room[:, x0 + 440:x0 + 840]
        return frame
    a, b = padded(300), padded(330)  # the camera turns 30 pixels: the background slides 30 pixels left
    picture = (440 / 1280, 0.0, 840 / 1280, 1.0)
    ga, gb = camera.small_grey(a, picture=picture), camera.small_grey(b, picture=picture)
    assert ga.shape[1] == camera.PAN.width
    walker = (0.36, 0.1, 0.5, 0.95)  # a box over the picture's left third
    shift = camera.background_shift(ga, gb, [walker], picture=picture)
    assert shift == pytest.approx(-30 / 1280, abs=1.5 / camera.PAN.width * 400 / 1280)
    # Nothing left to measure: unknown, never a guess.
    assert camera.background_shift(ga, gb, [(0.0, 0.0, 1.0, 1.0)], picture=picture) is None


def test_a_blank_picture_gives_no_shift():
    grey = np.full((144, 256), 90, np.uint8)
    assert camera.background_shift(grey, grey, []) is None


def test_the_pan_track_sums_the_shifts_and_fills_unknown_ones_from_their_neighbours():
    t, x = camera.pan_track([0.0, 0.2, 0.4, 0.6, 0.8], [None, 0.05, None, 0.07, None])
    assert list(t) == [0.0, 0.2, 0.4, 0.6, 0.8]
    assert x == pytest.approx([0.0, 0.05, 0.11, 0.18, 0.25])  # 0.06 between 0.05 and 0.07; the last as 0.07
    _, still = camera.pan_track([0.0, 0.2, 0.4], [None, None, None])
    assert list(still) == [0.0, 0.0, 0.0]
