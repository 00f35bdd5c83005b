"""iGait processing back end as a job-partitioned Dagster asset graph."""
import warnings

__version__ = "0.1.0"

# The instance's python_logs handlers (igait_pipeline.observability, in dagster.yaml) are a Dagster feature marked
# beta: Dagster says so in every process that builds a log manager (each run worker and step process). Known and
# chosen (docs/observability.md); kept out of `dagster dev`'s output.
warnings.filterwarnings("ignore", message="Handling yaml-defined logging configuration")
