"""The outbox (trunx/outbox.py): API writes whose Redis step an engine completes if the
API worker dies between the commit and Redis."""
from trunx import models


def up(ops):
    ops.create_tables(models.OutboxEntry)
