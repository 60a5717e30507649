"""The schema as trunx had it when migrations began: every model's table; on a database
made before then (columns added at start by every process), the columns it lacks."""
from trunx import models


def up(ops):
    ops.create_tables(*models.ALL_MODELS)
    ops.add_missing_columns(*models.ALL_MODELS)
