"""Where and how things run: sandbox, executors, run directory, the pipeline and its entry point."""
