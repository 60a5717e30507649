"""EngineMetrics.inbound_ended counts a call's outcome, nodes and gathers from its path,
the same whether a label's counter is new or kept from an earlier call."""
from agi_server.calls.record import CallRecord
from agi_server.metrics import EngineMetrics


def _record(ivr, outcome, steps):
    r = CallRecord(did="+19495551234", caller="+15551230000", uniqueid="1.1", channel="x")
    r.ivr_id = ivr
    for node, event in steps:
        r.step(node, event)
    r.finish(outcome)
    return r


def _value(m, name, **labels):
    return m.registry.get_sample_value(name, labels) or 0


def test_counts_add_up_over_calls_and_labels_never_mix():
    m = EngineMetrics()
    walk = [("welcome", "enter"), ("welcome", "digits"), ("check", "enter"),
            ("check", "timeout")]
    for _ in range(3):
        m.inbound_ended(_record("calls", "completed", walk))
    # an IVR and node named like the kinds of counter must not share their counters
    m.inbound_ended(_record("call", "unqualified", [("completed", "enter"),
                                                    ("gather", "invalid")]))
    assert _value(m, "trunx_calls_total", direction="inbound", outcome="completed") == 3
    assert _value(m, "trunx_calls_total", direction="inbound", outcome="unqualified") == 1
    assert _value(m, "trunx_ivr_node_visits_total", ivr="calls", node="welcome") == 3
    assert _value(m, "trunx_ivr_node_visits_total", ivr="calls", node="check") == 3
    assert _value(m, "trunx_ivr_node_visits_total", ivr="call", node="completed") == 1
    assert _value(m, "trunx_ivr_gathers_total", outcome="digits") == 3
    assert _value(m, "trunx_ivr_gathers_total", outcome="timeout") == 3
    assert _value(m, "trunx_ivr_gathers_total", outcome="invalid") == 1
