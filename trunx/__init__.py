"""trunx: the shared domain both processes import (config, models, Redis schema, IVR trees)."""

__version__ = "0.1.0"   # the one place the version is written (setup.cfg reads it)
