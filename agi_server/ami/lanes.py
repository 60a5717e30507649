"""Queued calls by account, taken in turn: one account's backlog never holds back another's.

The dialer reads the originate stream ahead into one lane per account and takes the head
of each lane in rotation, at the shared calls-per-second pace. With account A holding
5,000 queued calls and B one, B's call is the next but one to go, not the 5,001st. Within
an account, calls keep their order.
"""
from __future__ import annotations

from collections import OrderedDict, deque


class Lanes:
    def __init__(self):
        self._lanes: OrderedDict[str, deque] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, account: str, item) -> None:
        lane = self._lanes.get(account)
        if lane is None:
            lane = self._lanes[account] = deque()
        lane.append(item)
        self._size += 1

    def take(self):
        """The head of the next account's lane (None when all are empty); that account
        goes to the back of the rotation."""
        if not self._lanes:
            return None
        account, lane = self._lanes.popitem(last=False)
        item = lane.popleft()
        if lane:
            self._lanes[account] = lane
        self._size -= 1
        return item

    def put_back(self, account: str, item) -> None:
        """Return a taken item to the head of its lane; the account keeps its place at
        the back of the rotation."""
        lane = self._lanes.get(account)
        if lane is None:
            lane = self._lanes[account] = deque()
        lane.appendleft(item)
        self._size += 1

    @property
    def accounts(self) -> int:
        return len(self._lanes)
