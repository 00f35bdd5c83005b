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


def _interrupts_not_ignored() -> None:
    """A test run started in the background by a non-interactive shell (`nohup … &`, some CI runners) inherits
    SIGINT ignored. Dagster copies SIGINT's handler onto SIGTERM whenever it wraps an execution in the main thread
    (dagster._utils.interrupts), so SIGTERM became ignored in the test process and in every service it then
    started (an ignored signal stays ignored across exec): the metrics exporter, `dagster dev` and the emulators
    no longer stopped on SIGTERM, and the tests that stop them failed or waited for SIGKILL. Give both signals
    their defaults back."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


_interrupts_not_ignored()
