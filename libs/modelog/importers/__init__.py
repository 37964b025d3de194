"""Bringing history in from other tools (MLflow, Neptune) with its original times and people."""
