"""The engine's Prometheus metrics, in a registry of its own (one per Engine).

Counted where it costs the call nothing: an inbound call's node visits, gather outcomes
and missing prompts are read from its path once the call has ended (the path is already
in memory, agi_server/calls/record.py); the figures other parts already keep (the FastAGI
server's, the webhook sender's, the AMI connection's) are read at scrape time; the
originate queue and the AMI state are sampled at scrape time too.

    trunx_calls_total{direction, outcome}          calls ended
    trunx_ivr_node_visits_total{ivr, node}         nodes entered
    trunx_ivr_gathers_total{outcome}               digits | timeout | invalid
    trunx_ivr_prompts_missing_total                prompts Asterisk could not find
    trunx_action_latency_seconds{action}           API accepted -> the engine started it
    trunx_originate_queue_depth                    outbound calls waiting to be placed
    trunx_ami_connected                            1 while logged in to AMI
    trunx_live_calls                               calls the engine holds now
    trunx_redis_errors_total{where}                Redis failures the engine survived
    trunx_ivr_trees_stale_total                    calls run on a last-known tree (Redis away)
    trunx_database_errors_total{where}             database writes that failed
    trunx_webhook_deliveries_total{result}         delivered | failed_attempt | given_up
    trunx_agi_sessions_total{result}               the FastAGI server's own counts
    trunx_ami_events_total{event}                  logins, disconnects, ping failures
"""
from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily

from trunx import redis_schema

log = logging.getLogger(__name__)

GATHER_EVENTS = {"digits": "digits", "timeout": "timeout", "invalid": "invalid"}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class EngineMetrics:
    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.calls = Counter("trunx_calls", "Calls ended, by direction and outcome",
                             ["direction", "outcome"], registry=r)
        self.node_visits = Counter("trunx_ivr_node_visits", "IVR nodes entered",
                                   ["ivr", "node"], registry=r)
        self.gathers = Counter("trunx_ivr_gathers", "IVR gathers, by how each attempt ended",
                               ["outcome"], registry=r)
        self.action_latency = Histogram(
            "trunx_action_latency_seconds", "From the API accepting a live-call action to "
            "the engine starting it", ["action"], buckets=LATENCY_BUCKETS, registry=r)
        self.originate_queue = Gauge("trunx_originate_queue_depth",
                                     "Outbound calls queued, not placed yet", registry=r)
        self.ami_connected = Gauge("trunx_ami_connected", "1 while logged in to AMI",
                                   registry=r)
        self.live_calls = Gauge("trunx_live_calls", "Calls the engine holds", registry=r)
        self.redis_errors = Counter("trunx_redis_errors", "Redis failures the engine went "
                                    "on after", ["where"], registry=r)
        self.trees_stale = Counter("trunx_ivr_trees_stale", "Inbound calls run on the "
                                   "last-known tree of their DID while Redis was away",
                                   registry=r)
        self.db_errors = Counter("trunx_database_errors", "Database writes that failed",
                                 ["where"], registry=r)
        self._engine = None
        # ("node", ivr, node) / ("call", outcome) / ("gather", event) -> its child; keys
        # come from published trees and fixed outcomes, so this stays small
        self._children: dict[tuple, object] = {}
        self._live_index_failed = 0     # LiveIndex.failed already counted

    def watch(self, engine) -> None:
        """Read the figures the engine's parts keep themselves, at scrape time."""
        self._engine = engine
        self.registry.register(_PartsCollector(engine))

    # -- counted as things happen --------------------------------------------------------
    def inbound_ended(self, record) -> None:
        """An inbound call's record, once the call is over: its outcome, nodes, gathers.
        Label children are looked up once each and kept (`_children`): `labels()` checks
        and joins its values under a lock on every call, and a call's path asks for it
        once a step (about 70 us of engine CPU per call at c=100, docs/benchmarks.md)."""
        children = self._children
        key = ("call", record.outcome or "completed")
        if (child := children.get(key)) is None:
            child = children[key] = self.calls.labels("inbound", key[1])
        child.inc()
        ivr = record.ivr_id or ""
        for step in record.path:
            event = step["event"]
            if event == "enter":
                key = ("node", ivr, step["node"])
                if (child := children.get(key)) is None:
                    child = children[key] = self.node_visits.labels(ivr, key[2])
            elif event in GATHER_EVENTS:
                key = ("gather", event)
                if (child := children.get(key)) is None:
                    child = children[key] = self.gathers.labels(GATHER_EVENTS[event])
            else:
                continue
            child.inc()

    def outbound_ended(self, status: str, end_reason: str | None) -> None:
        self.calls.labels("outbound", "completed" if status == "completed"
                          else end_reason or status).inc()

    # -- sampled at scrape time ----------------------------------------------------------
    async def exposition(self) -> bytes:
        engine = self._engine
        if engine is not None:
            self.ami_connected.set(1 if engine.ami.connected.is_set() else 0)
            self.live_calls.set(len(engine.registry.calls))
            failed = engine.registry.index.failed     # batches of live-call index writes
            if failed > self._live_index_failed:
                self.redis_errors.labels("live-index").inc(failed - self._live_index_failed)
                self._live_index_failed = failed
            try:
                self.originate_queue.set(await engine.redis.zcard(
                    redis_schema.ORIGINATE_QUEUE))
            except Exception as exc:     # the scrape still answers; the gauge keeps its value
                self.redis_errors.labels("metrics").inc()
                log.warning("originate queue depth not read: %s", exc)
        return generate_latest(self.registry)


class _PartsCollector:
    """Counters the parts keep in their own `stats` (collections.Counter), as Prometheus
    counters."""

    def __init__(self, engine):
        self.engine = engine

    def collect(self):
        e = self.engine
        missing = CounterMetricFamily("trunx_ivr_prompts_missing",
                                      "Prompts Asterisk could not find (the call went on)")
        missing.add_metric([], e.services.stats["prompt_missing"])
        yield missing
        hooks = CounterMetricFamily("trunx_webhook_deliveries", "Webhook delivery attempts",
                                    labels=["result"])
        for result, key in (("delivered", "delivered"), ("failed_attempt", "failed_attempts"),
                            ("given_up", "given_up")):
            hooks.add_metric([result], e.webhooks.stats[key])
        yield hooks
        agi = CounterMetricFamily("trunx_agi_sessions", "FastAGI sessions", labels=["result"])
        for key in ("calls", "hangups", "errors", "refused", "bad_header", "unknown_script"):
            agi.add_metric([key], e.server.stats[key])
        yield agi
        ami = CounterMetricFamily("trunx_ami_events", "AMI connection events",
                                  labels=["event"])
        for key in ("logins", "disconnects", "ping_failures", "aborts"):
            ami.add_metric([key], e.ami.stats[key])
        yield ami
        sink = getattr(e, "sink", None)
        if sink is not None:      # the record writer process (record_writer = process)
            restarts = CounterMetricFamily(
                "trunx_record_writer_restarts",
                "Attempts to start a record writer process again after one died")
            restarts.add_metric([], sink.restarts)
            yield restarts
