"""Local stand-ins for the outside world (providers, an SSH host), run for real in tests."""
