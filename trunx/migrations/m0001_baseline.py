"""The schema as trunx had it when migrations began: every model's table; on a database
made before then (columns added at start by every process), the columns it lacks."""
from trunx import models

# tables a later migration creates are that migration's (m0003 fills CallNodeVisit from the
# calls already recorded as it creates it; m0004 makes the outbox)
BASELINE = [m for m in models.ALL_MODELS if m not in (models.CallNodeVisit, models.OutboxEntry)]


def up(ops):
    ops.create_tables(*BASELINE)
    ops.add_missing_columns(*BASELINE)
