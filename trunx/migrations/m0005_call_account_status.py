"""An index on call (account, status): every POST /api/voice counts the account's queued
and live calls (admin_api/quotas.check_calls); without it the count read every call row
of the account, so a campaign's burst slowed as its own queue grew (2,000 queued calls:
~0.9 ms a request). With it the count reads index entries only."""
from trunx import models


def up(ops):
    ops.add_index(models.Call, "account", "status")
