"""Fault injection: hostile node programs, killed processes, malformed inputs and a failing model, each run
several times; the table says whether anything escaped, was lost, or hit an unrelated process.

    python -m benchmarks.faults --out results/faults [--repeat 3] [--kinds home,unix,llm] [--fast]

Writes results/faults.json and results/faults.md (a .json or .md suffix on --out is dropped first) and prints
the markdown table. Kinds (see `--list`): `sandbox_kinds` (hostile programs through engine.nodes.node_exec),
`engine_kinds` (the real launcher: runner and driver killed, malformed template, ideas file, config) and
`llm_kinds` (the loopback model server: 401, 429, 500, timeout, malformed replies). `--fast` runs the subset
the test suite runs (under a minute).
"""
