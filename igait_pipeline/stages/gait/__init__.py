"""Stage 5's pieces, by concern (see igait_pipeline.stages.cycles for the stage itself): settings, signals, events,
parameters, kinematics, plot. No Dagster import here."""
