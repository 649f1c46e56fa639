"""Benchmarks: engine throughput, ICLR review accuracy, scaling analysis."""
