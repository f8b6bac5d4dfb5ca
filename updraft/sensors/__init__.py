"""Sensors: tasks that wait for a condition (a file, a time, another DAG's task...)."""

from updraft.sensors.base import BaseSensorOperator, PokeReturnValue, poke_mode_only

__all__ = ["BaseSensorOperator", "PokeReturnValue", "poke_mode_only"]
