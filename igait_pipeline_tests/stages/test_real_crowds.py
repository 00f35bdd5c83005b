"""Stage 2 on OpenCV's vtest.avi (Apache-2.0 AND BSD-3-Clause; fixtures/walkers.py): a raised camera on a square
where many people walk at once. A job needs one walker in view: several people walking at the same time are
refused with that reason, never measured (issue 16)."""
from igait_pipeline.stages import validity


def test_several_people_walking_at_once_are_refused(vtest_crowd):
    """18 s of vtest: a woman walks away across the grass, alone in the foreground, while several people walk
    along the path behind her (about 12 s). Before issue 16 stage 2 took her as the walker and ignored the others;
    the people on the path are too small for a leg rhythm, but they cross the frame steadily while she walks."""
    v = validity.analyse_view(vtest_crowd, "front")
    (reason,) = [r for r in v.reasons if "several people walk" in r]
    assert reason.startswith("front view: several people walk at the same time") and "no one is measured" in reason
    assert v.walk["walks"] and v.tracks > 2
