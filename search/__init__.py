"""Tree search core: pure Python, no Ray. Decides what to try next; `engine/` decides where it runs."""
from search.journal import Journal
from search.metric import MetricSpec, MetricValue
from search.node import ExecResult, Node
from search.policy import Action, PolicyConfig, select_action

__all__ = ["Action", "ExecResult", "Journal", "MetricSpec", "MetricValue", "Node", "PolicyConfig",
           "select_action"]
