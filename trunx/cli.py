"""The `trunx` command (also `python -m trunx`): the services, Asterisk set-up, and admin.

    trunx --version
    trunx [--config PATH] engine                   the FastAGI engine (python -m agi_server)
    trunx [--config PATH] api [--bind HOST:PORT]   the admin API under gunicorn, shipped settings
    trunx asterisk install --etc DIR [--agi agi://host:port] [--dry-run] [trunk options]
    trunx [--config PATH] asterisk check           ask Asterisk over AMI what trunx lacks
    trunx [--config PATH] accounts create NAME     a new account and its first API key
    trunx [--config PATH] keys create ACCOUNT_ID   another key for an account
    trunx [--config PATH] config                   the effective config, secrets masked
    trunx [--config PATH] resync                   rebuild Redis from the database
    trunx [--config PATH] dids allocate NUMBER ACCOUNT_ID [--label L]
                                                   give a number to an account (with
                                                   self_service_dids off, the only way)
    trunx [--config PATH] ultravox sip show|allowlist ADDRESS...|register --proxy ...
                                                   how Ultravox admits our INVITEs
                                                   (trunx/ultravox_sip.py)

`engine` and `api` check the config first (a bad key or value is refused with its name),
then replace this process with the service, so a service manager sees the service itself.

A key is printed once; only its hash is stored, so there is no way to show it again.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import trunx
from trunx import config as trunx_config
from trunx.asterisk import install as asterisk_install

_KEY_NOTE = "the key is shown once; trunx keeps only its hash"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trunx", description="trunx: services, Asterisk set-up "
                                "and administration")
    p.add_argument("--version", action="version", version=f"trunx {trunx.__version__}")
    p.add_argument("--config", metavar="PATH", help="INI file with a [trunx] section "
                   "(default: $TRUNX_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)
    engine = sub.add_parser("engine", help="run the FastAGI engine")
    engine.add_argument("--log-level", default="INFO")
    api = sub.add_parser("api", help="run the admin API (gunicorn, shipped settings)")
    api.add_argument("--bind", metavar="HOST:PORT",
                     help="default: api_host:api_port from the config")
    _asterisk_parser(sub)
    accounts = sub.add_parser("accounts", help="manage accounts")
    acc_sub = accounts.add_subparsers(dest="action", required=True)
    acc_sub.add_parser("create", help="create an account and its first key") \
        .add_argument("name")
    keys = sub.add_parser("keys", help="manage API keys")
    key_sub = keys.add_subparsers(dest="action", required=True)
    key_create = key_sub.add_parser("create", help="create another key for an account")
    key_create.add_argument("account_id")
    key_create.add_argument("--name", help="a label for the key")
    sub.add_parser("config", help="print the effective config (secrets masked)")
    database = sub.add_parser("db", help="the database's schema version")
    db_sub = database.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("migrate", help="bring the schema up to this trunx (once, under a lock)")
    db_sub.add_parser("version", help="print the schema version and the one trunx needs")
    sub.add_parser("resync", help="rebuild Redis (IVRs, DID map, DNC) from the database")
    dids = sub.add_parser("dids", help="allocate phone numbers to accounts")
    did_sub = dids.add_subparsers(dest="action", required=True)
    allocate = did_sub.add_parser("allocate", help="give a number to an account")
    allocate.add_argument("number", help="E.164, e.g. +19495551234")
    allocate.add_argument("account_id")
    allocate.add_argument("--label")
    ivr = sub.add_parser("ivr", help="look at IVR trees")
    ivr_sub = ivr.add_subparsers(dest="ivr_command", required=True)
    diagram = ivr_sub.add_parser("diagram", help="print an IVR's current tree as Mermaid "
                                 "(or Graphviz DOT, or SVG drawn by Graphviz's dot)")
    diagram.add_argument("account_id")
    diagram.add_argument("ivr_id")
    drawn = diagram.add_mutually_exclusive_group()
    drawn.add_argument("--svg", action="store_true", help="SVG drawn by Graphviz (needs dot)")
    drawn.add_argument("--dot", action="store_true", help="Graphviz DOT text")
    from trunx import ultravox_sip
    ultravox_sip.add_cli(sub)
    return p


def _asterisk_parser(sub) -> None:
    ast = sub.add_parser("asterisk", help="add trunx to an Asterisk, or check one")
    ast_sub = ast.add_subparsers(dest="asterisk_command", required=True)
    inst = ast_sub.add_parser("install", help="write trunx's files into an Asterisk config "
                              "folder and #include them (docs/operators.md)")
    inst.add_argument("--etc", required=True, help="the folder Asterisk reads its config from")
    inst.add_argument("--agi", default="agi://127.0.0.1:4573",
                      help="where the engine listens (agi://host:port)")
    inst.add_argument("--agi-backup", action="append", default=[], metavar="AGI",
                      help="another engine, tried when the one before cannot be reached "
                           "(repeat, in order)")
    inst.add_argument("--dry-run", action="store_true", help="print the change, write nothing")
    inst.add_argument("--ami-user", default="trunx")
    inst.add_argument("--ami-secret", default="",
                      help="default: keep the installed one, or make a random one")
    inst.add_argument("--ami-bind", default="", metavar="HOST:PORT",
                      help="turn AMI on at this address (default: manager.conf's own)")
    inst.add_argument("--ami-permit", default="127.0.0.1/255.255.255.255",
                      metavar="ADDRESS/MASK", help="where the engine connects to AMI from")
    inst.add_argument("--sip-bind", default="0.0.0.0:5060", metavar="HOST:PORT",
                      help="trunx's UDP transport, written only if pjsip.conf has none")
    inst.add_argument("--trunk-host", metavar="HOST[:PORT]", help="the carrier's SIP server")
    inst.add_argument("--trunk-user", default="", help="the carrier's digest username")
    inst.add_argument("--trunk-secret", default="",
                      help="its password (default: $TRUNX_TRUNK_SECRET)")
    inst.add_argument("--no-register", dest="register", action="store_false",
                      help="the carrier sends calls to a fixed address: no registration")
    inst.add_argument("--trunk-match", action="append", default=[], metavar="ADDRESS",
                      help="an address the carrier calls from (repeat; default: its host)")
    chk = ast_sub.add_parser("check", help="ask Asterisk over AMI what trunx still lacks")
    chk.add_argument("--host", help="default: ami_host from the config")
    chk.add_argument("--port", type=int, help="default: ami_port")
    chk.add_argument("--user", help="default: ami_user")
    chk.add_argument("--secret", help="default: ami_secret")


def _install(args) -> int:
    trunk = None
    if args.trunk_host:
        trunk = asterisk_install.Trunk(
            args.trunk_host, args.trunk_user,
            args.trunk_secret or os.environ.get("TRUNX_TRUNK_SECRET", ""),
            register=args.register, match=tuple(args.trunk_match))
    options = asterisk_install.Options(agi=args.agi, agi_backup=tuple(args.agi_backup),
                                       ami_user=args.ami_user,
                                       ami_secret=args.ami_secret, ami_bind=args.ami_bind,
                                       ami_permit=args.ami_permit,
                                       sip_bind=args.sip_bind, trunk=trunk)
    try:
        plan = asterisk_install.plan(args.etc, options)
    except asterisk_install.InstallError as exc:
        print(f"trunx: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print("dry run: nothing written\n" + plan.describe(), end="")
        return 0
    written = asterisk_install.apply(plan)
    print(plan.describe(), end="")
    print(f"{len(written)} file(s) changed; reload Asterisk (`core reload`) to use them")
    return 0


def _exec(argv: list[str], config_path: str | None) -> int:
    env = dict(os.environ)
    if config_path:
        env["TRUNX_CONFIG"] = config_path
    os.execve(sys.executable, [sys.executable, *argv], env)
    return 1   # not reached: execve replaces this process


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "asterisk" and args.asterisk_command == "install":
        return _install(args)
    try:
        config = trunx_config.load(args.config)
    except trunx_config.ConfigError as exc:
        print(f"trunx: config refused: {exc}", file=sys.stderr)
        return 2
    if args.command == "engine":
        return _exec(["-m", "agi_server", "--log-level", args.log_level], args.config)
    if args.command == "api":
        bind = args.bind or f"{config.api_host}:{config.api_port}"
        return _exec(["-m", "gunicorn", "-c", "python:admin_api.gunicorn_conf", "-b", bind,
                      "admin_api.wsgi:app"], args.config)
    if args.command == "asterisk":
        from trunx.asterisk.check import check

        report = check(args.host or config.ami_host, args.port or config.ami_port,
                       args.user or config.ami_user, args.secret or config.ami_secret)
        print(report.text(), end="")
        return 0 if not report.missing else 1
    if args.command == "config":
        print(json.dumps(config.masked(), indent=2, default=list))
        return 0
    if args.command == "ultravox":
        from trunx import ultravox_sip
        return ultravox_sip.cli(config, args, sys.stdout)

    if args.command == "db":
        return _db(config, args)
    from trunx import accounts, db
    from trunx.errors import InvalidInput, NotFound, TrunxError

    database = db.connect(config)
    if args.command == "accounts":
        try:
            account = accounts.create_account(args.name)
        except InvalidInput as exc:
            print(f"trunx: {exc.message}", file=sys.stderr)
            return 2
        print(f"account {account.id}")
        print(f"key {accounts.create_key(account)}")
        print(_KEY_NOTE, file=sys.stderr)
        return 0
    if args.command == "keys":
        try:
            key = accounts.create_key(args.account_id, name=args.name)
        except NotFound as exc:
            print(f"trunx: {exc.message}", file=sys.stderr)
            return 1
        print(f"key {key}")
        print(_KEY_NOTE, file=sys.stderr)
        return 0
    if args.command == "resync":
        import redis

        from trunx import redis_client
        from trunx.ivr import store as ivr_store
        from trunx.store import Store

        client = redis_client.sync_client(config.redis_url)
        try:
            counts = ivr_store.resync(Store(database, client))
        except redis.exceptions.ConnectionError as exc:
            print(f"trunx: redis at {config.masked()['redis_url']} is unreachable: {exc}",
                  file=sys.stderr)
            return 1
        finally:
            client.close()
        print(json.dumps(counts))
        return 0
    if args.command == "dids":
        return _allocate(args)
    if args.command == "ivr":
        from trunx.ivr import diagram
        from trunx.ivr import store as ivr_store
        from trunx.ivr.program import decode
        from trunx.models import Ivr

        found = Ivr.get_or_none(Ivr.account == args.account_id, Ivr.ivr_id == args.ivr_id)
        if found is None:
            print(f"trunx: no IVR {args.ivr_id!r} in account {args.account_id}",
                  file=sys.stderr)
            return 1
        program = decode(ivr_store.current_version(found).compiled)
        if args.svg:
            try:
                sys.stdout.buffer.write(diagram.to_svg(diagram.to_dot(program)))
            except TrunxError as exc:
                print(f"trunx: {exc.message}", file=sys.stderr)
                return 1
        else:
            print(diagram.to_dot(program) if args.dot else diagram.to_mermaid(program), end="")
        return 0
    return 2   # argparse's required subcommands make this unreachable


def _db(config, args) -> int:
    """Not through db.connect: that refuses an old schema when db_auto_migrate is off."""
    from trunx import db, migrations, models

    database = db.make_database(config.db_url, config)
    models.proxy.initialize(database)
    try:
        if args.db_command == "migrate":
            try:
                ran = migrations.migrate(database)
            except migrations.SchemaOutOfDate as exc:
                print(f"trunx: {exc}", file=sys.stderr)
                return 1
            for name in ran:
                print(f"migrated {name}")
            print(f"schema version {migrations.current_version(database)}")
            return 0
        have = migrations.current_version(database)
        print(f"schema version {have} (this trunx needs {migrations.HEAD})")
        return 0 if have == migrations.HEAD else 1
    finally:
        database.close()


def _allocate(args) -> int:
    """A number belongs to one account: a number another account holds is refused."""
    import peewee

    from trunx import phone
    from trunx.models import Account, Did

    if not phone.is_e164(args.number):
        print(f"trunx: not an E.164 number: {args.number!r}", file=sys.stderr)
        return 2
    if Account.get_or_none(Account.id == args.account_id) is None:
        print(f"trunx: no account {args.account_id}", file=sys.stderr)
        return 1
    held = Did.get_or_none(Did.number == args.number)
    if held is not None:
        if held.account_id == args.account_id:
            print(f"did {args.number} {args.account_id} (already held)")
            return 0
        print(f"trunx: {args.number} is held by another account", file=sys.stderr)
        return 1
    try:
        Did.create(number=args.number, account=args.account_id, label=args.label)
    except peewee.IntegrityError:
        print(f"trunx: {args.number} is held by another account", file=sys.stderr)
        return 1
    print(f"did {args.number} {args.account_id}")
    return 0
