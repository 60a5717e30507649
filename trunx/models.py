"""The durable record (peewee). SQLite by default; the same models run on PostgreSQL.

Every resource belongs to one account. Ids are prefixed strings (`acc_`, `aud_`, ...) so a
reader of a log line knows what an id names; IVR ids are chosen by the client and unique per
account. IVR versions are immutable rows: a call pins one and finishes on it.
"""
from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid

import peewee

# The models' binding: peewee's own mechanism, bound to a real database by
# trunx.db.connect. Code that needs the database (transactions, raw SQL) takes it from the
# Store it was handed (trunx/store.py), never from here.
proxy = peewee.DatabaseProxy()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def iso(ts: dt.datetime | None) -> str | None:
    """The API's timestamp form: `2026-03-09T15:30:00.000Z`."""
    if ts is None:
        return None
    if ts.tzinfo is not None:     # stored times are naive UTC; an aware one prints as is
        ts = ts.replace(tzinfo=None)
    return ts.isoformat(timespec="milliseconds") + "Z"     # a quarter of strftime's cost


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def new_uuid() -> str:
    return str(uuid.uuid4())


class JSONField(peewee.TextField):
    # Key order is kept, not sorted: an IVR's first node is its entry when no `start` is
    # given, so a stored definition read back and saved again must keep its node order.
    def db_value(self, value):
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def python_value(self, value):
        return None if value is None else json.loads(value)


class Base(peewee.Model):
    class Meta:
        database = proxy


class Account(Base):
    id = peewee.CharField(primary_key=True, default=lambda: new_id("acc"))
    name = peewee.CharField()
    webhook_url = peewee.CharField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    webhook_secret = peewee.CharField(null=True)   # signs call webhooks; made on first use
    # after a rotation, the secret before it also signs until this time (trunx/calls.py)
    webhook_secret_previous = peewee.CharField(null=True)
    webhook_secret_previous_until = peewee.DateTimeField(null=True)
    # where a bare IVR transfer node goes: an agent id of this account, or an E.164 number
    default_transfer = peewee.CharField(null=True)
    # the account's own outbound limits (PATCH /api/account): calls ringing or answered at
    # once on all engines (null: the config's max_concurrent_calls), calls placed per
    # second (null or 0: only the shared originate_cps)
    max_concurrent_calls = peewee.IntegerField(null=True)
    calls_per_second = peewee.FloatField(null=True)


class ApiKey(Base):
    id = peewee.CharField(primary_key=True, default=lambda: new_id("key"))
    account = peewee.ForeignKeyField(Account, backref="keys", on_delete="CASCADE")
    prefix = peewee.CharField()          # first characters, shown in listings
    key_hash = peewee.CharField(unique=True)  # sha256 hex of the whole key
    name = peewee.CharField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    revoked_at = peewee.DateTimeField(null=True)


class AudioAsset(Base):
    id = peewee.CharField(primary_key=True, default=lambda: new_id("aud"))
    account = peewee.ForeignKeyField(Account, backref="audio", on_delete="CASCADE")
    name = peewee.CharField()
    source = peewee.CharField()          # tts | upload
    text = peewee.TextField(null=True)
    voice = peewee.CharField(null=True)
    provider = peewee.CharField(null=True)
    content_hash = peewee.CharField(index=True)
    duration_seconds = peewee.FloatField()
    file_path = peewee.CharField()       # the transcoded master on this host
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("account", "name"), False),)


class Ivr(Base):
    account = peewee.ForeignKeyField(Account, backref="ivrs", on_delete="CASCADE")
    ivr_id = peewee.CharField()          # the client's id, e.g. "qualify-business"
    current_version = peewee.IntegerField(default=1)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("account", "ivr_id"), True),)


class IvrVersion(Base):
    ivr = peewee.ForeignKeyField(Ivr, backref="versions", on_delete="CASCADE")
    version = peewee.IntegerField()
    definition = JSONField()             # as the client sent it (normalised)
    compiled = JSONField()               # what the engine runs: entry node, resolved audio
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("ivr", "version"), True),)


class Did(Base):
    number = peewee.CharField(primary_key=True)   # E.164; one account owns a number
    account = peewee.ForeignKeyField(Account, backref="dids", on_delete="CASCADE")
    label = peewee.CharField(null=True)
    ivr = peewee.ForeignKeyField(Ivr, null=True, backref="dids", on_delete="RESTRICT")
    created_at = peewee.DateTimeField(default=utcnow)


class Suppression(Base):
    """An account's do-not-call entry, with where it came from."""
    account = peewee.ForeignKeyField(Account, backref="suppressions", on_delete="CASCADE")
    number = peewee.CharField()
    source = peewee.CharField()          # ivr | api
    call_id = peewee.CharField(null=True)
    did = peewee.CharField(null=True)
    node = peewee.CharField(null=True)
    ivr_id = peewee.CharField(null=True)
    reason = peewee.CharField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("account", "number"), True),)


class Call(Base):
    id = peewee.CharField(primary_key=True, default=new_uuid)
    account = peewee.ForeignKeyField(Account, null=True, backref="calls", on_delete="CASCADE")
    direction = peewee.CharField()       # inbound | outbound
    from_number = peewee.CharField(null=True)
    to_number = peewee.CharField(null=True)
    status = peewee.CharField()          # initiated ringing answered completed failed
    provider = peewee.CharField(default="asterisk")
    channel = peewee.CharField(null=True)
    uniqueid = peewee.CharField(null=True, index=True)
    ivr_id = peewee.CharField(null=True)
    ivr_version = peewee.IntegerField(null=True)
    path = JSONField(null=True)          # IVR walk: [{node, at, digits, outcome, ...}]
    outcome = peewee.CharField(null=True)
    end_reason = peewee.CharField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    answered_at = peewee.DateTimeField(null=True)
    ended_at = peewee.DateTimeField(null=True)
    duration = peewee.FloatField(null=True)
    metadata = JSONField(null=True)
    # outbound calls (admin_api.voice.service places them, the engine's dialer and tracker
    # run them)
    call_sid = peewee.CharField(null=True, unique=True)   # "CA" + 32 hex, the seed's callId
    agent_id = peewee.CharField(null=True)
    ai = JSONField(null=True)            # AI config (systemPrompt, voice, ...); None: plain
    ai_result = JSONField(null=True)     # {status, transcript, duration, endReason}
    webhook_url = peewee.CharField(null=True)
    max_duration = peewee.FloatField(null=True)     # seconds from answer
    queued_at = peewee.DateTimeField(null=True)
    ringing_at = peewee.DateTimeField(null=True)
    cause = peewee.IntegerField(null=True)          # Q.850 hangup cause Asterisk reported
    # answering-machine detection: {mode, async, tuning..., drop: {file, duration, ...},
    # result: {answeredBy, detectionMs, beepEndMs, ...}}; None: not asked for
    amd = JSONField(null=True)
    answered_by = peewee.CharField(null=True)       # Twilio's AnsweredBy, once detected

    class Meta:
        # an IVR's calls in a time range: per-node stats (trunx.ivr.stats), the console's log
        indexes = ((("account", "ivr_id", "created_at"), False),
                   # the quota count of queued and live calls (admin_api/quotas.py)
                   (("account", "status"), False))


class CallNodeVisit(Base):
    """One visit of an inbound call to an IVR node, as per-node stats count it
    (trunx.ivr.visits writes these in the call row's transaction; trunx.ivr.stats sums
    them). `seq` 0 is the call's head row: it carries the outcome, so calls are counted
    once. A row may hold no enter (`entered` 0) when a step had no visit of its own to
    join (a second key in one visit, a prompt of another node): the walk stays exact."""
    # (call, seq) is the primary key: its index serves the call's rows being replaced
    call = peewee.ForeignKeyField(Call, on_delete="CASCADE", column_name="call_id",
                                  index=False)
    seq = peewee.IntegerField()
    account = peewee.CharField()          # the call's, copied: the stats filter on it
    ivr_id = peewee.CharField()
    ivr_version = peewee.IntegerField(null=True)
    started = peewee.DateTimeField()      # the call's created_at: since/until select on it
    node = peewee.CharField(null=True)
    entered = peewee.IntegerField(default=0)     # 1: this visit began with an enter step
    first = peewee.IntegerField(default=0)       # 1: the call's first visit to this node
    route = peewee.CharField(null=True)   # how the visit was left: digits timeout invalid
    key = peewee.CharField(null=True)     # the keys pressed (digits, invalid); "" otherwise
    came_from = peewee.CharField(null=True)   # the edge that led here: its node...
    came_by = peewee.CharField(null=True)     # ...and route (a key, timeout or invalid)
    file = peewee.CharField(null=True)    # the prompt played in the visit, and...
    endpos = peewee.IntegerField(null=True)   # ...how much of it was heard (8 kHz samples)
    hangup = peewee.IntegerField(default=0)   # 1: the caller hung up in this visit
    outcome = peewee.CharField(null=True)     # the call's, on its head row only
    # node..outcome and whether this is the head row, as one JSON array: the stats group
    # by it (one short key to compare, not eleven: half the time on SQLite)
    counted = peewee.CharField()

    class Meta:
        primary_key = peewee.CompositeKey("call", "seq")
        # Each covers what its query reads, so the stats read no table rows
        # (trunx/ivr/stats.py says which query takes which). All of an IVR's calls: in
        # GROUP BY order, so SQLite sums the groups as it walks it, with no sort (sorting
        # 34,000 rows took 2-4x longer); a window: its range, then sorted.
        indexes = (
            (("account", "ivr_id", "counted", "ivr_version", "endpos"), False),
            (("account", "ivr_id", "started", "counted", "ivr_version", "endpos"), False),
        )


# the median share heard: one node's prompts in the order of what was heard (only rows
# with a prompt: a third of the cost of writing every row into it)
CallNodeVisit.add_index(CallNodeVisit.index(
    CallNodeVisit.account, CallNodeVisit.ivr_id, CallNodeVisit.node, CallNodeVisit.endpos,
    CallNodeVisit.started, CallNodeVisit.ivr_version, CallNodeVisit.file,
    where=CallNodeVisit.endpos.is_null(False)))


class CallEvent(Base):
    """One status change of an outbound call, and its webhook delivery."""
    id = peewee.CharField(primary_key=True, default=lambda: new_id("evt"))
    call = peewee.ForeignKeyField(Call, backref="events", on_delete="CASCADE")
    type = peewee.CharField()            # call.status
    status = peewee.CharField()
    at = peewee.DateTimeField(default=utcnow)
    webhook_url = peewee.CharField(null=True)
    attempts = peewee.IntegerField(default=0)
    delivered_at = peewee.DateTimeField(null=True)
    last_error = peewee.CharField(null=True)
    payload = peewee.TextField(null=True)   # the JSON body as first sent (a snapshot)


class Agent(Base):
    """A reusable AI voice agent (seed 003), mirrored to an Ultravox agent (`ultravox_id`)."""
    id = peewee.CharField(primary_key=True, default=new_uuid)
    account = peewee.ForeignKeyField(Account, backref="agents", on_delete="CASCADE")
    name = peewee.CharField()
    prompt = peewee.TextField()
    voice = peewee.CharField(null=True)
    first_message = peewee.TextField(null=True)
    language = peewee.CharField(default="en")
    max_duration = peewee.FloatField(default=300)     # seconds
    tool_ids = JSONField(default=list)
    knowledge_ids = JSONField(default=list)
    voicemail_drop = JSONField(null=True)   # an asset id or {text, voice}: left on machines
    # where its coldTransfer may send the caller: E.164 numbers, ivr:<ivr_id>#<node>
    # (trunx/ultravox_transfer.py)
    transfers = JSONField(default=list)
    ultravox_id = peewee.CharField(null=True, index=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)


class Recording(Base):
    """A live-call recording (POST .../record). `call_id` is not a foreign key: an inbound
    call's row is written when the call ends, and the recording starts before that."""
    id = peewee.CharField(primary_key=True, default=new_uuid)   # the recording_uuid
    account = peewee.ForeignKeyField(Account, backref="recordings", on_delete="CASCADE")
    call_id = peewee.CharField(index=True)
    status = peewee.CharField(default="starting")   # starting recording stopped failed
    format = peewee.CharField(default="mp3")        # mp3 | wav
    max_length = peewee.IntegerField(default=14400)  # seconds
    trim_silence = peewee.BooleanField(default=False)
    file_path = peewee.CharField(null=True)         # the finished file on this host
    duration = peewee.FloatField(null=True)         # seconds, measured from the samples
    size_bytes = peewee.IntegerField(null=True)
    end_reason = peewee.CharField(null=True)        # api | max-length | call-ended
    error = peewee.CharField(null=True)
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    started_at = peewee.DateTimeField(null=True)
    ended_at = peewee.DateTimeField(null=True)


class OutboxEntry(Base):
    """A Redis step the API owes after a database write (trunx/outbox.py): written in the
    same transaction as the row it follows, marked done once Redis took it; the engine
    completes one whose API worker died in between. A live-call action's entry also keeps
    the action's last final state, so a Redis that restarted empty gets it back."""
    id = peewee.CharField(primary_key=True, default=lambda: new_id("obx"))
    kind = peewee.CharField()               # originate | command
    ref = peewee.CharField(index=True)      # the call id (originate) or the action id
    call_id = peewee.CharField(null=True)
    payload = JSONField()                   # what the Redis step writes (trunx/outbox.py)
    state = JSONField(null=True)            # an action's final state hash, once it ended
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    done_at = peewee.DateTimeField(null=True, index=True)


ALL_MODELS = [Account, ApiKey, AudioAsset, Ivr, IvrVersion, Did, Suppression, Call, CallEvent,
              Agent, Recording, CallNodeVisit, OutboxEntry]


def _unbounded_strings(model_classes) -> None:
    """CharFields as VARCHAR with no length: PostgreSQL enforces peewee's default 255 (a
    2,048-character webhook URL the API accepts failed there), SQLite never did; the API
    bounds what it accepts itself."""
    for model in model_classes:
        for field in model._meta.sorted_fields:
            if type(field) is peewee.CharField and field.max_length == 255:
                field.max_length = None


_unbounded_strings(ALL_MODELS)
