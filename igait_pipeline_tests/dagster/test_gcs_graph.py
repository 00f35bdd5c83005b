"""The whole graph on GCS (the real google-cloud-storage client against the emulator): the same layout as local."""
import json
import zipfile

import pytest
from dagster import instance_for_test

from igait_pipeline.cli import DEMO_RUN_CONFIG
from igait_pipeline.definitions import defs
from igait_pipeline.layout import job_key
from igait_pipeline.reference_model import REFERENCE_NAME, REFERENCE_VERSION
from igait_pipeline.resources import build_resources
from igait_pipeline.storage import storage_from_uri
from igait_pipeline_tests.fixtures.media import GOOD_METADATA, put_job


@pytest.mark.slow
def test_whole_graph_materializes_on_gcs(gcs_root, short_clip, tmp_path):
    storage = storage_from_uri(gcs_root)
    assert type(storage).__name__ == "GCSStorage"
    put_job(storage, "gcsuser_1", short_clip, short_clip, GOOD_METADATA)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("jobs", ["gcsuser_1"])
        result = defs.resolve_job_def("igait_job").execute_in_process(
            instance=instance, partition_key="gcsuser_1", resources=build_resources(gcs_root),
            run_config=DEMO_RUN_CONFIG)  # one side-view clip in both slots: the view check only warns
        assert result.success
    keys = {o.key for o in storage.list("jobs/gcsuser_1/")}
    for stage, names in {1: ["front.mp4", "side.mp4"], 2: ["validation.json"], 3: ["side_crop.json", "side.mp4"],
                         4: ["side_keypoints.json", "side_overlay.mp4"], 5: ["cycles.json", "cycles.png"],
                         6: ["prediction.json"], 7: ["results.zip"]}.items():
        for name in names:
            assert job_key("gcsuser_1", stage, name) in keys
    assert not any(".partial" in k for k in keys)
    pred = json.loads(storage.read_bytes(job_key("gcsuser_1", 6, "prediction.json")))
    assert pred["model"]["clinically_validated"] is False
    assert (pred["model"]["name"], pred["model"]["version"]) == (REFERENCE_NAME, REFERENCE_VERSION)
    # Stage 6 may only read models/ (layout.ACCESS): it used the bundled copy in place and stored nothing there.
    assert list(storage.list("models/")) == []
    local_zip = storage.download(job_key("gcsuser_1", 7, "results.zip"), tmp_path / "results.zip")
    with zipfile.ZipFile(local_zip) as z:
        assert "stage_4/side_keypoints.json" in z.namelist()
