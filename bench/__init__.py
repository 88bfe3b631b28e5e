"""Benchmark suite: the gateway's added latency, throughput, concurrency and memory, measured."""
