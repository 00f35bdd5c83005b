"""The `Definitions` of the iGait research code location: the cohort-level assets (unpartitioned), over the same
storage and model store as the per-job location (igait_pipeline.definitions).

    gait_cycles[job] ─┐
    upload[job] ──────┼─ gait_feature_table ── candidate_model ──(blocking checks)── screening_model ── prediction[job]
    clinical_labels ──┘

`gait_cycles`, `upload` and `prediction` belong to the per-job location: here they are external assets, so a
cohort run never runs a job's stage, and a job's run never runs a cohort asset. The daemon observes
`clinical_labels` from this location; the UI shows both locations in one lineage graph. Nothing imports this
module but `igait model …` (igait_pipeline.model_commands), which materializes the research assets in-process.
"""
from dagster import Definitions

from igait_pipeline import research_assets
from igait_pipeline.resources import build_resources

defs = Definitions(assets=research_assets.RESEARCH_ASSETS, resources=build_resources())
