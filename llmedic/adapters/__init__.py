"""Adapters: one module per outside system, each a small Protocol plus its real implementation."""
