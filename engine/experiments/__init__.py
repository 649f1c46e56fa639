"""The experiments phase (phase.py: run_phase): the template (template.py), the proposers that write programs
with a model (llm_proposer.py) and the plot critique (plot_critique.py), the stage records written as the stage
plan decides (stage_records.py, seed_plot.py). What each stage decides lives in stages/; where nodes run, in
engine/nodes/."""
