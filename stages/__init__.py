"""The four experiment stages: how each decides, as objects the driver consults.

    spec.py     the stages in order and their settings (conf/stages/)
    policy.py   StagePolicy (one stage: what to propose next, when it is complete, which node it hands on and on
                what evidence, its seed runs) and StagePlan (the stages of a run, overlapping at their boundaries)
    rules.py    the completion rules, the noise margin, briefs, failure accounts, histories
    seeds.py    the multi-seed evaluation: seed parameters, program variants, aggregation

Pure logic over the journal, no Ray and no files: engine/nodes/driver.py runs whatever the plan asks for, and
engine/experiments/stage_records.py writes the decisions down."""
from stages.spec import STAGE_NAMES, StagesConfig, StageSettings, stage_goal

__all__ = ["STAGE_NAMES", "StageSettings", "StagesConfig", "stage_goal"]
