"""The four experiment stages: what each asks for, when it is complete, how one seeds the next.

Pure logic over the journal; engine/stage_runner.py runs them."""
from stages.spec import STAGE_NAMES, StagesConfig, StageSettings, stage_goal

__all__ = ["STAGE_NAMES", "StageSettings", "StagesConfig", "stage_goal"]
