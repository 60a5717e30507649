"""trunx: the shared domain both processes import (config, models, Redis schema, IVR trees)."""
