"""The pure rollout state machine and its weight schedule (no I/O)."""
