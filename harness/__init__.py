"""A benchmark and evaluation harness for model merging and transfer methods."""

__version__ = "0.1.0"
