"""Faults: killed processes, broker restarts, commit conflicts, an unwritable warehouse."""
