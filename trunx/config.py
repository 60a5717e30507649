"""Configuration in layers: defaults in code, then an optional INI file, then environment.

Every setting has a default that runs on embedded parts (SQLite, local Redis, local
Asterisk, espeak-ng), so a fresh checkout needs no configuration at all.
`python -m trunx config` prints the effective values (secrets masked).
deploy/trunx.ini is a sample file with every key commented.

load() checks what it is given, so a process refuses to start on a config it would
misread: an unknown key in the file, a value of the wrong kind or out of range, or (with
`environment = production`) the development AMI secret. ConfigError names the key.

Environment names are the field names upper-cased with a `TRUNX_` prefix
(`TRUNX_REDIS_URL`), except provider keys, which use the providers' own well-known names
(`ELEVENLABS_API_KEY`, `ULTRAVOX_API_KEY`).
"""
from __future__ import annotations

import configparser
import dataclasses
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from trunx import redis_client

_PLAIN_ENV = {"elevenlabs_api_key": "ELEVENLABS_API_KEY", "ultravox_api_key": "ULTRAVOX_API_KEY"}
_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")   # scheme://user:PASSWORD@host
DEV_AMI_SECRET = "trunx-dev-secret"
ENVIRONMENTS = ("development", "production")
_SECRETS = {"elevenlabs_api_key", "ultravox_api_key", "ami_secret", "sftp_password",
            "webhook_secret", "ultravox_outgoing_password"}


def _default_data_dir() -> str:
    return str(Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "trunx")


class ConfigError(ValueError):
    """A setting that cannot be used; `key` names it (as in the file, or the env variable)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class Config:
    # development (the default: a checkout runs with no config) or production, where
    # the development AMI secret is refused
    environment: str = "development"

    # storage
    data_dir: str = field(default_factory=_default_data_dir)
    database_url: str = ""  # empty: sqlite file <data_dir>/trunx.db
    # schema behind this trunx at start: migrate it (under a lock), or refuse to start and
    # leave it to `trunx db migrate` (trunx/migrations)
    db_auto_migrate: bool = True
    # PostgreSQL's pool, per process: connections at most (each thread keeps its own, so
    # at least the API's threads per worker, 16), seconds a thread waits for one, seconds
    # before an idle one is replaced
    db_pool_size: int = 32
    db_pool_timeout: float = 10.0
    db_pool_recycle: float = 3600.0
    redis_url: str = "redis://127.0.0.1:6379/0"

    # FastAGI listener
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    agi_allow: tuple[str, ...] = ("127.0.0.1", "::1")
    agi_header_timeout: float = 5.0   # a peer slower than this to send its agi_* block is dropped
    agi_idle_timeout: float = 1.0     # a peer that goes quiet mid-header for this long is dropped
    agi_reply_timeout: float = 30.0   # a reply that has begun must be whole within this
    agi_max_sessions: int = 2000      # FastAGI connections at once; one more is closed at once
    agi_event_loop: str = "uvloop"    # uvloop | asyncio: the engine's event loop
    # answering-machine detection: Asterisk streams an answered call's audio here
    # (AudioSocket); `audiosocket_address` is host:port as Asterisk reaches it (empty:
    # audiosocket_host:the port listened on)
    audiosocket_host: str = "127.0.0.1"
    audiosocket_port: int = 4575
    audiosocket_address: str = ""
    # Batching, off the call's path: a finished call's record waits this long for others
    # to share its SQLite transaction; a live call's Redis announcement (what the API's
    # call actions check), for others to share its one script call, so the API sees a
    # call that long after its answer. Under load: a round trip per batch, not per call.
    record_batch_delay: float = 0.02
    live_batch_delay: float = 0.05
    # seconds between writes of the paths of inbound calls in progress (one transaction
    # for all of them), so a killed engine leaves each call's row with its path so far;
    # 0: a row at the start and at the end only
    record_checkpoint_interval: float = 5.0
    # where call records are written: `process`, a child process the engine starts and
    # owns (agi_server/calls/record_writer.py; the SQL costs the engine's process nothing),
    # or `thread`, the engine's own database thread (docs/benchmarks.md has both)
    record_writer: str = "process"
    # seconds an API write's outbox entry may wait for its Redis step before the engine
    # completes it (its API worker died in between: trunx/outbox.py)
    outbox_grace: float = 5.0

    # AMI (the engine holds the one connection)
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_user: str = "trunx"
    ami_secret: str = DEV_AMI_SECRET
    originate_cps: float = 5.0        # outbound calls placed per second at most (0: no limit)
    originate_timeout: int = 45       # seconds an outbound call may ring before no-answer
    # several engines (docs/operators.md "Several Asterisk servers and engines"): each
    # engine holds AMI to its own Asterisk and names itself in Redis; empty engine_id:
    # <hostname>-<agi_port>. originate_cps above is then the pace all engines share.
    engine_id: str = ""
    engine_capacity: int = 0          # calls it holds at once, for the spread (0: no limit)
    engine_heartbeat: float = 1.0     # seconds between capacity/heartbeat writes
    engine_dead_after: float = 5.0    # an engine silent this long is dead: its work is reclaimed

    # IVR behaviour
    fallback_audio: str = "ss-noservice"      # played when a DID has no usable tree
    polite_hangup_audio: str = "vm-goodbye"   # played after max tries
    gather_timeout: float = 5.0
    gather_max_tries: int = 3
    transfer_dial: str = ""                   # dial string for transfer nodes with no `to`
    trunk_endpoint: str = "carrier"           # PJSIP endpoint of the carrier trunk
    transfer_timeout: int = 30

    # audio
    sounds_dir: str = ""            # where staged files are written; empty: <data_dir>/sounds
    asterisk_sounds_dir: str = ""   # the same folder as Asterisk names it; empty: sounds_dir
    staging: str = "local"          # local | sftp
    sftp_host: str = ""
    sftp_port: int = 22
    sftp_user: str = ""
    sftp_password: str = ""
    sftp_key_file: str = ""
    sftp_known_hosts: str = ""      # empty: accept only keys already in ~/.ssh/known_hosts
    sftp_dir: str = ""              # remote folder; empty: asterisk_sounds_dir
    upload_max_bytes: int = 20 * 1024 * 1024
    fetch_max_bytes: int = 20 * 1024 * 1024   # audio fetched from a URL (the play action)
    fetch_timeout: float = 15.0
    fetch_allow_private: bool = False         # let play URLs reach loopback/private hosts
    media_cache_days: int = 7       # rendered TTS / transcoded uploads unused this long go
    default_voice: str = "en-us"
    # live-call recordings: MixMonitor writes <id>.wav into the spool (as Asterisk names it,
    # and as this host sees the same folder); the engine transcodes it into
    # <data_dir>/recordings/, and purges recordings older than the retention
    recording_spool_dir: str = ""           # empty: <data_dir>/recordings/spool
    asterisk_recording_spool_dir: str = ""  # empty: recording_spool_dir
    recording_retention_days: int = 30
    recording_purge_interval: float = 3600.0  # seconds between the engine's purges
    elevenlabs_api_key: str = ""
    elevenlabs_base_url: str = "https://api.elevenlabs.io"
    elevenlabs_default_voice: str = "EXAVITQu4vr4xnSDxMaL"
    # `engine: neural` with no ElevenLabs key: Piper in its own process (the `neural` extra)
    neural_voice: str = "en_US-joe-medium"
    piper_timeout: float = 30.0      # seconds for the worker to start, or to render a sentence

    # AI agents
    ultravox_api_key: str = ""
    ultravox_base_url: str = "https://api.ultravox.ai"
    ultravox_timeout: float = 10.0      # seconds per Ultravox request
    ultravox_sip_endpoint: str = ""     # PJSIP endpoint that dials Ultravox; empty: trunk_endpoint
    ultravox_sip_mode: str = "allowlist"  # allowlist | register | outgoing (trunx/ultravox_sip.py)
    # the outgoing flow (docs/ai.md): where Ultravox INVITEs this Asterisk (host[:port];
    # empty: off), and the PJSIP user it authenticates as
    ultravox_outgoing_host: str = ""
    ultravox_outgoing_username: str = ""
    ultravox_outgoing_password: str = ""
    ultravox_sip_domain: str = ""       # empty: the domain GET /api/sip names
    ultravox_end_wait: float = 15.0     # after the bridge, how long to wait for Ultravox's end

    # admin API
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    public_base_url: str = ""       # empty: taken from the request
    webhook_secret: str = ""
    # quotas per account (0: no limit); see docs/api.md "Limits and quotas"
    api_rate_limit: int = 100           # API requests per second (counted in Redis)
    max_queued_calls: int = 1000        # outbound calls waiting for the engine
    max_concurrent_calls: int = 100     # outbound calls ringing or answered
    audio_quota_bytes: int = 1024 ** 3  # stored audio (8 kHz 16-bit masters: 16,000 B/s)
    self_service_dids: bool = True      # False: only `trunx dids allocate` gives out DIDs
    # let webhook URLs, answer_url and AI tool URLs reach loopback, private and link-local
    # addresses (trunx/url_policy.py); off: trunx is not a way into the operator's network
    webhook_allow_private: bool = False
    webhook_timeout: float = 10.0         # seconds for a whole webhook POST, answer and all
    webhook_secret_overlap: float = 86400.0   # after a rotation, the old secret signs too

    # watching it run (docs/observability.md)
    engine_http_host: str = "127.0.0.1"   # the engine's /healthz, /readyz, /metrics
    engine_http_port: int = 4574          # 0: any free port; -1: no listener
    log_json: bool = False                # one JSON object a line, with call_id etc.

    @property
    def sqlite_path(self) -> str:
        return str(Path(self.data_dir) / "trunx.db")

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"

    @property
    def staged_sounds_dir(self) -> str:
        return self.sounds_dir or str(Path(self.data_dir) / "sounds")

    @property
    def asterisk_sounds_path(self) -> str:
        return self.asterisk_sounds_dir or self.staged_sounds_dir

    @property
    def recordings_path(self) -> str:
        """Finished recordings (mp3/wav), served by the API."""
        return str(Path(self.data_dir) / "recordings")

    @property
    def recording_spool_path(self) -> str:
        return self.recording_spool_dir or str(Path(self.data_dir) / "recordings" / "spool")

    @property
    def asterisk_recording_spool_path(self) -> str:
        return self.asterisk_recording_spool_dir or self.recording_spool_path

    def replace(self, **changes) -> Config:
        return dataclasses.replace(self, **changes)

    def masked(self) -> dict:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRETS and value:
                value = "***"
            elif f.name.endswith("_url") and isinstance(value, str):
                value = _URL_PASSWORD.sub(r"\1***@", value)
            out[f.name] = value
        return out


def _coerce(raw: str, kind):
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    if kind == "bool":
        if raw.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if raw.strip().lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"not a boolean: {raw!r}")
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"not a whole number: {raw!r}") from None
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"not a number: {raw!r}") from None
    if kind.startswith("tuple"):
        return tuple(p.strip() for p in raw.split(",") if p.strip())
    return raw


_PORTS = ("agi_port", "ami_port", "api_port", "sftp_port", "audiosocket_port")
_CHOICES = {"environment": ENVIRONMENTS, "agi_event_loop": ("uvloop", "asyncio"),
            "record_writer": ("process", "thread"),
            "staging": ("local", "sftp"),
            "ultravox_sip_mode": ("allowlist", "register", "outgoing")}


def check(config: Config) -> Config:
    """Refuse values no part of trunx can run on; returns the config when it is sound."""
    for name in _PORTS:
        # 0 asks the kernel for a free port (tests listen that way)
        if not 0 <= getattr(config, name) < 65536:
            raise ConfigError(name, f"not a port (0-65535): {getattr(config, name)}")
    for name, choices in _CHOICES.items():
        if getattr(config, name) not in choices:
            raise ConfigError(name, f"{getattr(config, name)!r} is not one of "
                                    f"{', '.join(choices)}")
    for f in fields(Config):
        value = getattr(config, f.name)
        if f.type in ("int", "float") and value < 0:
            raise ConfigError(f.name, f"must not be negative: {value}")
    if config.engine_id and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", config.engine_id,
                                             re.ASCII):
        # it names Redis keys and streams: one plain token
        raise ConfigError("engine_id", "must be 1-64 letters, digits, '.', '_' or '-'")
    try:     # plain or Sentinel (trunx/redis_client.py): refused here, not at first use
        redis_client.check(config.redis_url)
    except ValueError as exc:
        raise ConfigError("redis_url", str(exc)) from None
    if config.environment != "development":
        if not config.ami_secret:
            raise ConfigError("ami_secret", "is not set: use the secret `trunx asterisk "
                                            "install` wrote into Asterisk's trunx/manager.conf")
        if config.ami_secret == DEV_AMI_SECRET:
            raise ConfigError("ami_secret", "is the development secret, refused outside "
                                            "development: set a secret of your own (the "
                                            "one in Asterisk's manager.conf)")
        if len(config.ami_secret) < 12:
            raise ConfigError("ami_secret", "is shorter than 12 characters")
    return config


def load(path: str | None = None, env: dict | None = None, **overrides) -> Config:
    """Defaults, then the INI file ([trunx] section), then environment, then overrides;
    checked (ConfigError names the first key that is wrong)."""
    env = os.environ if env is None else env
    values: dict = {}
    known = {f.name: f for f in fields(Config)}
    path = path or env.get("TRUNX_CONFIG")
    if path:
        parser = configparser.ConfigParser(interpolation=None, default_section="\0none")
        try:
            found = parser.read(path)
        except configparser.Error as exc:
            raise ConfigError(path, f"not an INI file: {exc}") from None
        if not found:
            raise FileNotFoundError(f"config file not found: {path}")
        for section in parser.sections():
            if section != "trunx":
                raise ConfigError(f"[{section}]", f"unknown section in {path} "
                                                  "(settings go under [trunx])")
        section = parser["trunx"] if parser.has_section("trunx") else {}
        for key in section:
            if key not in known:
                raise ConfigError(key, f"unknown setting in {path}")
            values[key] = _coerced(key, section[key], known[key].type)
    for f in fields(Config):
        name = _PLAIN_ENV.get(f.name, "TRUNX_" + f.name.upper())
        if name in env:
            values[f.name] = _coerced(name, env[name], f.type)
    values.update(overrides)
    return check(Config(**values))


def _coerced(key: str, raw: str, kind):
    try:
        return _coerce(raw, kind)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None
