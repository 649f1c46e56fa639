"""What a run may spend, and what it is expected to spend.

settings.py   budget.* (conf/budget/default.yaml): the dollar caps (the run, each phase), the GPU-hour cap, the
              projection's tokens per call
guard.py      Budget: checked before every model call and every node; BudgetExhausted when the next could cross a
              cap (the run winds down: engine/nodes/driver.py stops proposing, the phases take their offline path)
compute.py    the compute ledger: node-hours per device kind, CPU-hours, GPU-hours of every node program
projection.py the projected cost of a run, per phase and in total, from each phase's call plan (<phase>/calls.py)
start.py      start-up: the projection printed, caps that cannot work refused, the dry run's plan
"""
