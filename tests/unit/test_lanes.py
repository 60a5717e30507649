"""The dialer's lanes (agi_server/ami/lanes.py): accounts in turn, each in its own order."""
from agi_server.ami.lanes import Lanes


def test_a_backlog_does_not_hold_back_another_account():
    lanes = Lanes()
    for i in range(5000):
        lanes.add("A", f"a{i}")
    assert lanes.take() == "a0"
    lanes.add("B", "b0")                 # queued behind 4,999 of A's
    assert [lanes.take() for _ in range(3)] == ["a1", "b0", "a2"]
    assert len(lanes) == 4997


def test_accounts_take_turns_and_keep_their_order():
    lanes = Lanes()
    for item in ("a0", "a1", "a2"):
        lanes.add("A", item)
    for item in ("b0", "b1"):
        lanes.add("B", item)
    lanes.add("C", "c0")
    taken = [lanes.take() for _ in range(6)]
    assert taken == ["a0", "b0", "c0", "a1", "b1", "a2"]
    assert lanes.take() is None and len(lanes) == 0


def test_a_call_put_back_keeps_its_accounts_order():
    lanes = Lanes()
    for item in ("a0", "a1"):
        lanes.add("A", item)
    lanes.add("B", "b0")
    first = lanes.take()                  # a0, but A is at its cap: back it goes
    lanes.put_back("A", first)
    assert (lanes.take(), lanes.take(), lanes.take()) == ("b0", "a0", "a1")
    assert lanes.take() is None and lanes.accounts == 0
