"""The schema as trunx had it when migrations began: every model's table; on a database
made before then (columns added at start by every process), the columns it lacks."""
from trunx import models

# tables a later migration creates are that migration's (m0003 fills CallNodeVisit from the
# calls already recorded as it creates it)
BASELINE = [m for m in models.ALL_MODELS if m is not models.CallNodeVisit]


def up(ops):
    ops.create_tables(*BASELINE)
    ops.add_missing_columns(*BASELINE)
