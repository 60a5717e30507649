"""The `trunx` command (also `python -m trunx`): accounts, keys, config, resync.

    trunx [--config PATH] accounts create NAME     a new account and its first API key
    trunx [--config PATH] keys create ACCOUNT_ID   another key for an account
    trunx [--config PATH] config                   the effective config, secrets masked
    trunx [--config PATH] resync                   rebuild Redis from the database
    trunx [--config PATH] dids allocate NUMBER ACCOUNT_ID [--label L]
                                                   give a number to an account (with
                                                   self_service_dids off, the only way)

A key is printed once; only its hash is stored, so there is no way to show it again.
"""
from __future__ import annotations

import argparse
import json
import sys

from trunx import config as trunx_config

_KEY_NOTE = "the key is shown once; trunx keeps only its hash"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trunx", description="trunx administration")
    p.add_argument("--config", metavar="PATH", help="INI file with a [trunx] section "
                   "(default: $TRUNX_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)
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
    sub.add_parser("resync", help="rebuild Redis (IVRs, DID map, DNC) from the database")
    dids = sub.add_parser("dids", help="allocate phone numbers to accounts")
    did_sub = dids.add_subparsers(dest="action", required=True)
    allocate = did_sub.add_parser("allocate", help="give a number to an account")
    allocate.add_argument("number", help="E.164, e.g. +19495551234")
    allocate.add_argument("account_id")
    allocate.add_argument("--label")
    ivr = sub.add_parser("ivr", help="look at IVR trees")
    ivr_sub = ivr.add_subparsers(dest="ivr_command", required=True)
    diagram = ivr_sub.add_parser("diagram", help="print an IVR's current tree as Mermaid")
    diagram.add_argument("account_id")
    diagram.add_argument("ivr_id")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = trunx_config.load(args.config)
    if args.command == "config":
        print(json.dumps(config.masked(), indent=2, default=list))
        return 0

    from trunx import accounts, db
    from trunx.errors import InvalidInput, NotFound

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

        from trunx.ivr import store as ivr_store
        from trunx.store import Store

        client = redis.Redis.from_url(config.redis_url, decode_responses=True)
        try:
            counts = ivr_store.resync(Store(database, client))
        except redis.exceptions.ConnectionError as exc:
            print(f"trunx: redis at {config.redis_url} is unreachable: {exc}", file=sys.stderr)
            return 1
        finally:
            client.close()
        print(json.dumps(counts))
        return 0
    if args.command == "dids":
        return _allocate(args)
    if args.command == "ivr":
        from trunx.ivr import store as ivr_store
        from trunx.ivr.diagram import to_mermaid
        from trunx.ivr.program import decode
        from trunx.models import Ivr

        found = Ivr.get_or_none(Ivr.account == args.account_id, Ivr.ivr_id == args.ivr_id)
        if found is None:
            print(f"trunx: no IVR {args.ivr_id!r} in account {args.account_id}",
                  file=sys.stderr)
            return 1
        print(to_mermaid(decode(ivr_store.current_version(found).compiled)), end="")
        return 0
    return 2   # argparse's required subcommands make this unreachable


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
