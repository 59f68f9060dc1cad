"""Thin kopf handlers: they feed the state machine and carry out its actions."""
