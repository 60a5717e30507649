"""Answering-machine detection: the detector core (pure, no I/O)."""
