"""Accounts' own outbound limits (PATCH /api/account maxConcurrentCalls, callsPerSecond)
and the targets an agent's coldTransfer may take (agents' `transfers`)."""
from trunx.models import Account, Agent


def up(ops):
    ops.add_column(Account, "max_concurrent_calls")
    ops.add_column(Account, "calls_per_second")
    ops.add_column(Agent, "transfers")
