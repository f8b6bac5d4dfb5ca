"""BaseOperator and the dependency helpers, at Airflow's import path."""

from updraft.operators.base import BaseOperator, chain, chain_linear, cross_downstream

__all__ = ["BaseOperator", "chain", "chain_linear", "cross_downstream"]
