"""Metric sinks: the loop hands one dict per generation to a MetricLogger; TensorBoard, the console progress line
and summary.json are sinks. Tags are grouped by prefix: fitness/, eval/, es/, perf/, comm/."""
from esrun.logging.sinks import ConsoleSink, MetricLogger, TensorBoardSink, write_summary

__all__ = ["MetricLogger", "TensorBoardSink", "ConsoleSink", "write_summary"]
