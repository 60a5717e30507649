"""Seeing and trying an IVR without a phone: simulate a walk, draw the diagram, per-node stats.

    POST /ivr/:id/simulate    {"inputs": ["1", "timeout", "2"], "version"?}
    GET  /ivr/:id/diagram.svg ?version=&overlay=stats&since=&until=
    GET  /ivr/:id/diagram     ?format=svg|dot|mermaid (and the same parameters)
    GET  /ivr/:id/stats       ?since=&until=&version=

Each works on a stored version's compiled Program (trunx.ivr.program), the very thing the
engine runs: the simulation drives the engine's state machine (trunx.ivr.simulate), the
diagram is drawn from it (trunx.ivr.diagram), the stats sum the visit rows the calls'
paths were reduced to when they were recorded (trunx.ivr.stats, trunx.ivr.visits). The
console (admin_api.console) uses the same functions.
"""
from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, request

from admin_api import context as ctx
from admin_api.ivr import get_owned
from trunx import dnc
from trunx.errors import NotFound, invalid
from trunx.ivr import diagram, simulate, stats, transfer_target
from trunx.ivr import events as ivr_events
from trunx.ivr.program import Program, decode
from trunx.models import Account, AudioAsset, Ivr, IvrVersion

bp = Blueprint("ivr_tools", __name__, url_prefix="/ivr")
FORMATS = {"svg": "image/svg+xml", "dot": "text/vnd.graphviz; charset=utf-8",
           "mermaid": "text/plain; charset=utf-8"}


# -- shared by the routes and the console ---------------------------------------------------
def program_of(ivr: Ivr, version=None) -> Program:
    """The compiled Program of `ivr`'s version (its current one by default)."""
    number = ivr.current_version if version is None else version
    row = IvrVersion.get_or_none(IvrVersion.ivr == ivr, IvrVersion.version == number)
    if row is None:
        raise NotFound("version-not-found", f"IVR {ivr.ivr_id!r} has no version {number}",
                       {"id": ivr.ivr_id, "version": number,
                        "current": ivr.current_version})
    return decode(row.compiled)


class Assets:
    """The account's audio assets a Program names, read once: prompt lengths and words."""

    def __init__(self, account_id: str, program: Program):
        names = set()
        for node in program.nodes.values():
            for file in (node.audio, getattr(node, "invalid_audio", None)):
                if file:
                    names.add(diagram.audio_name(file))
        rows = (AudioAsset.select(AudioAsset.id, AudioAsset.duration_seconds, AudioAsset.text)
                .where(AudioAsset.account == account_id, AudioAsset.id.in_(sorted(names)))
                if names else [])
        self._rows = {row.id: row for row in rows}

    def seconds(self, file: str) -> float | None:
        row = self._rows.get(diagram.audio_name(file))
        return round(row.duration_seconds, 3) if row is not None else None

    def words(self, file: str) -> str | None:
        row = self._rows.get(diagram.audio_name(file))
        return row.text if row is not None else None


def simulate_walk(account_id: str, program: Program, inputs: list[str]) -> dict:
    config = ctx.config()
    settings = ivr_events.Settings.from_config(config,
                                               agents=bool(config.ultravox_api_key))
    account = Account.get_by_id(account_id)
    redis = ctx.redis()
    world = simulate.World(
        seconds=Assets(account_id, program).seconds,
        suppressed=lambda number: dnc.is_suppressed(account_id, number, redis),
        default_target=transfer_target.as_target(account.default_transfer))
    return simulate.run(program, settings, inputs, world)


def parse_time(name: str, value: str | None) -> datetime | None:
    """An ISO 8601 time from the query string, as the naive UTC the database stores."""
    if value is None or value == "":
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(name, "invalid-time", f"{name} is an ISO 8601 time, e.g. "
                      "2026-03-09T15:30:00Z") from None
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts


MAX_VERSION = 999_999_999      # versions count up from 1; SQLite's integers end far above


def parse_version(value) -> int | None:
    if value is None or value == "":
        return None
    text = str(value)
    # ASCII digits only ("²" is a digit to str.isdigit, not to int), and a bounded number
    if (isinstance(value, bool) or not (text.isascii() and text.isdigit())
            or not 1 <= int(text) <= MAX_VERSION):
        raise invalid("version", "invalid-version", "version is a version number (1, 2, ...)")
    return int(text)


def stats_of(account_id: str, ivr: Ivr, args) -> dict:
    since, until = parse_time("since", args.get("since")), parse_time("until", args.get("until"))
    version = parse_version(args.get("version"))
    program = program_of(ivr, version)
    out = stats.compute(ctx.store().db, account_id, ivr.ivr_id, program,
                        Assets(account_id, program).seconds, since=since, until=until,
                        version=version)
    return {"ivr": ivr.ivr_id, "version": version, "since": args.get("since") or None,
            "until": args.get("until") or None, **out}


def draw(account_id: str, ivr: Ivr, fmt: str, args) -> bytes | str:
    program = program_of(ivr, parse_version(args.get("version")))
    if fmt == "mermaid":
        return diagram.to_mermaid(program)
    counts = None
    if args.get("overlay") == "stats":
        counts = stats.edge_counts(stats_of(account_id, ivr, args))
    elif args.get("overlay") not in (None, ""):
        raise invalid("overlay", "invalid-overlay", "overlay is stats or absent")
    dot = diagram.to_dot(program, prompts=Assets(account_id, program).words, counts=counts)
    return dot if fmt == "dot" else diagram.to_svg(dot)


# -- routes ----------------------------------------------------------------------------------
@bp.post("/<ivr_id>/simulate")
def simulate_route(ivr_id: str):
    ivr = get_owned(ivr_id)
    data = ctx.json_body({"inputs", "version"})
    inputs = simulate.check_inputs(data.get("inputs"))
    program = program_of(ivr, parse_version(data.get("version")))
    return simulate_walk(ctx.account_id(), program, inputs)


@bp.get("/<ivr_id>/diagram.svg")
def diagram_svg(ivr_id: str):
    return _diagram(ivr_id, "svg")


@bp.get("/<ivr_id>/diagram")
def diagram_route(ivr_id: str):
    fmt = request.args.get("format", "svg")
    if fmt not in FORMATS:
        raise invalid("format", "invalid-format", "format is svg, dot or mermaid")
    return _diagram(ivr_id, fmt)


def _diagram(ivr_id: str, fmt: str) -> Response:
    ivr = get_owned(ivr_id)
    return Response(draw(ctx.account_id(), ivr, fmt, request.args), content_type=FORMATS[fmt])


@bp.get("/<ivr_id>/stats")
def stats_route(ivr_id: str):
    ivr = get_owned(ivr_id)
    return stats_of(ctx.account_id(), ivr, request.args)
