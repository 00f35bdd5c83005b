"""Shared pytest set-up. Each fixtures module owns one kind of real dependency (video, GCS emulator, ...)."""

pytest_plugins = [
    "igait_pipeline_tests.fixtures.media",
    "igait_pipeline_tests.fixtures.walkers",
    "igait_pipeline_tests.fixtures.gcs",
    "igait_pipeline_tests.fixtures.gcs_faults",
    "igait_pipeline_tests.fixtures.postgres",
    "igait_pipeline_tests.fixtures.firestore",
    "igait_pipeline_tests.fixtures.smtp",
    "igait_pipeline_tests.fixtures.otlp",
]
