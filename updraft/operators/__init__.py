"""Operators: the kinds of task a DAG is made of."""
