"""The status sensor beside the real pipeline: the real uploads sensor sees a job, the real igait_job runs it.

Cheap on purpose: the "videos" are not videos, so stage 1 refuses them after one ffprobe call and no video is
processed; what is tested is how the real graph's events land in the job document and the e-mail.
"""
import json
import re

from dagster import Definitions, SensorResult, build_sensor_context, instance_for_test

from igait_pipeline import assets
from igait_pipeline.jobs import igait_job
from igait_pipeline.layout import job_key
from igait_pipeline.resources import JobStatusResource, SmtpResource, build_resources
from igait_pipeline.sensors import uploads_sensor
from igait_pipeline.status.jobdoc import JobDocument, job_store_from_uri
from igait_pipeline.status.sensors import job_status_sensor
from igait_pipeline.storage import LocalStorage
from igait_pipeline_tests.status.test_notify import forbidden_details

METADATA = {"age": 6, "sex": "M", "height": "3'11\"", "weight": "21 kg", "ethnicity": "Not Hispanic or Latino",
            "email": "family@example.org"}


def test_real_uploads_sensor_and_real_job_drive_the_document(tmp_path, smtp_server):
    root = tmp_path / "storage"
    st = LocalStorage(root)
    for view in ("front", "side"):
        st.write_bytes(job_key("kid-42_1", 0, f"{view}.mp4"), b"these bytes are not a video")
    st.write_bytes(job_key("kid-42_1", 0, "metadata.json"), json.dumps(METADATA).encode())
    resources = {**build_resources(str(root)),
                 "job_status": JobStatusResource(uri=f"sqlite:{tmp_path}/status.sqlite3"),
                 "smtp": SmtpResource(host=smtp_server.host, port=smtp_server.port, timeout=5)}
    defs = Definitions(assets=[assets.upload, *assets.STAGE_ASSETS], jobs=[igait_job],
                       sensors=[uploads_sensor, job_status_sensor], resources=resources)
    store = job_store_from_uri(f"sqlite:{tmp_path}/status.sqlite3")

    with instance_for_test() as instance:
        def tick(sensor, cursor=None):
            with build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                      resources=resources) as ctx:
                return sensor(ctx)

        found: SensorResult = tick(uploads_sensor)
        (request,) = found.run_requests
        # what the daemon does with the uploads sensor's result
        for add in found.dynamic_partitions_requests:
            instance.add_dynamic_partitions(add.partitions_def_name, add.partition_keys)
        for event in found.asset_events:
            instance.report_runless_asset_event(event)

        status = tick(job_status_sensor)
        doc = store.get("kid-42_1")
        JobDocument.model_validate(doc)
        assert doc["status"] == "submitted" and doc["user_id"] == "kid-42"
        assert doc["patient"]["height"] == 119.4 and doc["email"] == "family@example.org"

        run = defs.resolve_job_def("igait_job").execute_in_process(
            partition_key=request.partition_key, tags=request.tags, instance=instance, raise_on_error=False)
        assert not run.success
        tick(job_status_sensor, status.cursor)
        doc = store.get("kid-42_1")
        JobDocument.model_validate(doc)
        assert doc["status"] == "failed" and doc["current_stage"] == 1
        assert doc["stages"]["1"]["status"] == "failed" and "video" in doc["stages"]["1"]["error"]
        assert all(doc["stages"][str(n)]["status"] in ("skipped", "pending") for n in range(2, 8))
        assert any(doc["stages"][str(n)]["status"] == "skipped" for n in range(2, 8))
        assert doc["email_sent"] is True

    (mail,) = smtp_server.messages
    body = mail.message.get_content()
    assert mail.rcpt_tos == ["family@example.org"]
    assert "We could not read one of the videos" in body and "kid-42_1" in body
    # Paths (the archive link, pytest's numbered temp dirs) may hold any digits: check the prose around them.
    prose = re.sub(r"\S*/\S*", "", body).replace("kid-42_1", "")
    assert forbidden_details(prose) == [] and "119" not in prose and "21" not in prose
