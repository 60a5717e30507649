"""Which engine takes the next outbound call (agi_server/cluster/membership.py): the most
free capacity, counting the calls handed out since the last heartbeat."""
from __future__ import annotations

from agi_server.cluster.membership import UNLIMITED, Membership, Peer, engine_id
from trunx import config as trunx_config


def member(capacity: int, calls: int, peers: dict[str, int]) -> Membership:
    cfg = trunx_config.load(env={}, engine_id="east", engine_capacity=capacity)
    held = [calls]
    m = Membership(cfg, redis=None, engine="east", load=lambda: (held[0], {}))
    m.held = held              # the test places east's calls by adding to it
    m.peers = {name: Peer(name, free, {}) for name, free in peers.items()}
    return m


def test_the_most_free_capacity_wins_and_equal_engines_take_turns():
    m = member(10, 4, {"west": 9, "north": 6})       # east has 6 free
    picked = []
    for _ in range(7):
        picked.append(m.pick())
        if picked[-1] == "east":
            m.held[0] += 1                           # east placed it: one less free
    # west until it is down to the others' free capacity; on a tie this engine first
    assert picked == ["west", "west", "west", "east", "west", "north", "east"]


def test_no_room_anywhere_is_none_and_a_not_ready_engine_hands_its_calls_on():
    assert member(2, 2, {"west": 0}).pick() is None
    m = member(0, 100, {"west": 1})                 # east unlimited, but its AMI is down
    assert m.pick(self_ready=False) == "west"
    assert m.pick(self_ready=False) is None           # west's one free slot is taken


def test_an_unlimited_engine_counts_its_calls():
    m = member(0, 5, {"west": UNLIMITED - 3})
    assert m.pick() == "west"
    assert member(0, 5, {"west": UNLIMITED - 8}).pick() == "east"


def test_account_calls_sum_the_other_engines():
    m = member(0, 0, {})
    m.peers = {"west": Peer("west", 1, {"acc_a": 2}), "north": Peer("north", 1, {"acc_a": 1})}
    assert (m.account_calls("acc_a"), m.account_calls("acc_b")) == (3, 0)


def test_the_default_id_names_host_and_port():
    cfg = trunx_config.load(env={}, agi_port=4600)
    assert engine_id(cfg).endswith("-4600")
    assert engine_id(cfg.replace(engine_id="east")) == "east"
