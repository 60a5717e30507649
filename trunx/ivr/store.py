"""Writing IVR definitions: validate, store a new version in SQLite, then publish to Redis.

Used by the admin API, by `make run`'s demo seeding and by tests, so there is exactly one
way a tree reaches the engine. SQLite is the record and is written first inside a
transaction; Redis is a cache of it, rebuilt by `resync` (at engine start, or after Redis
lost its data).

Every function that writes takes the Store (trunx/store.py) it was handed: its database,
its writer lock and its Redis. Errors (trunx.errors kinds):

    InvalidTree   InvalidInput  invalid-ivr (details: the validation problems)
    Assigned      Conflict      ivr-assigned (details: the DIDs still pointing at the IVR)
    Gone          NotFound      ivr-not-found / did-not-found (deleted meanwhile)
"""
from __future__ import annotations

import logging
import re
import threading

from trunx import db, group_commit, outbox, patterns, redis_schema
from trunx.errors import Conflict, InvalidInput, NotFound
from trunx.ivr import checks, transfer_target
from trunx.ivr import program as ivr_program
from trunx.ivr import tree as ivr_tree
from trunx.ivr.publishing import publish, publish_many
from trunx.models import AudioAsset, Did, Ivr, IvrVersion, OutboxEntry, new_id, utcnow

log = logging.getLogger(__name__)
_ASSET_ID = patterns.ASSET_ID_RE
_SOUND_EXT = re.compile(r"\.(wav|mp3|gsm|ulaw|alaw|sln|g722|ogg)\Z", re.IGNORECASE)


class InvalidTree(InvalidInput):
    """The tree's validation problems: `problems` as Problems, `details` as data."""

    def __init__(self, problems):
        super().__init__("invalid-ivr", "the IVR definition is not valid",
                         [p.as_dict() for p in problems])
        self.problems = problems


def audio_resolver(account_id: str, config, names=(), sounds: set | None = None):
    """ref -> what Asterisk plays: a staged asset (by id or name), else a sound name.
    The asset names in `names` are looked up together in one query (a tree names several);
    any other name costs a query of its own. Refs that resolved to a sound name are added
    to `sounds` (publishing checks those against the staging target)."""
    base = config.asterisk_sounds_path.rstrip("/")
    known: dict[str, str | None] = {}
    wanted = sorted({n for n in names if not _ASSET_ID.fullmatch(n)})
    if wanted:
        known = dict.fromkeys(wanted)
        for name, asset_id in _assets_named(account_id, wanted):
            known[name] = asset_id

    def resolve(ref: str) -> str:
        if _ASSET_ID.fullmatch(ref):
            return f"{base}/{ref}"
        if ref in known:
            asset_id = known[ref]
        else:
            asset = (AudioAsset.select(AudioAsset.id)
                     .where(AudioAsset.account == account_id, AudioAsset.name == ref)
                     .order_by(AudioAsset.created_at.desc()).first())
            asset_id = asset.id if asset is not None else None
        if asset_id is not None:
            return f"{base}/{asset_id}"
        if sounds is not None:
            sounds.add(ref)
        return _SOUND_EXT.sub("", ref)   # Asterisk picks the best format it has

    return resolve


# The assets of an account with any of n names, oldest first (so the newest asset of a
# name is the one kept), with SQL built once per n: every POST /ivr asks it with the
# lock held ("": the account id, then the names).
_NAMED: dict[int, db.Prepared] = {}


def _assets_named(account_id: str, names: list[str]) -> list[tuple]:
    query = _NAMED.get(len(names))
    if query is None:
        count = len(names)
        query = db.Prepared(lambda: AudioAsset.select(AudioAsset.name, AudioAsset.id)
                            .where(AudioAsset.account == "",
                                   AudioAsset.name.in_([""] * count))
                            .order_by(AudioAsset.created_at))
        if len(_NAMED) < 64:
            _NAMED[count] = query
    return query.rows(AudioAsset._meta.database, account_id, *names)


def _audio_refs(tree) -> set[str]:
    return {node[key] for node in tree["nodes"].values()
            for key in ("audio", "invalid_audio") if node.get(key)}


def _unknown_assets(account_id, tree) -> list:
    """Asset ids a tree names that this account does not have, by the field naming them."""
    wanted = {(f"nodes.{name}.{key}", node[key]) for name, node in tree["nodes"].items()
              for key in ("audio", "invalid_audio") if _ASSET_ID.fullmatch(node.get(key) or "")}
    return _not_in_account(AudioAsset, account_id, wanted, "unknown-audio", "audio asset")


def _unknown_agents(account_id, tree) -> list:
    """Agents a tree's transfer nodes name that this account does not have."""
    from trunx.models import Agent

    wanted = {(f"nodes.{name}.agent", node["agent"]) for name, node in tree["nodes"].items()
              if node.get("agent")}
    return _not_in_account(Agent, account_id, wanted, "unknown-agent", "agent")


def _not_in_account(model, account_id, wanted: set, code: str, noun: str) -> list:
    """A Problem for each (field, id) in `wanted` whose id is not one of the account's
    `model` rows: one query for all of them, none when the tree names none."""
    if not wanted:
        return []
    have = {row.id for row in model.select(model.id).where(
        model.account == account_id, model.id.in_([ref for _, ref in wanted]))}
    return [ivr_tree.Problem(where, code, f"no {noun} {ref!r} in this account")
            for where, ref in sorted(wanted) if ref not in have]


def _compile(account_id, ivr_id, version, checked, config, sounds: set):
    tree = checked.tree
    problems = _unknown_assets(account_id, tree) + _unknown_agents(account_id, tree)
    if problems:
        raise InvalidTree(problems)
    resolve = audio_resolver(account_id, config, _audio_refs(tree), sounds)
    return ivr_program.compile_program(
        checked, resolve, gather_timeout=config.gather_timeout,
        gather_max_tries=config.gather_max_tries, account=account_id, ivr_id=ivr_id,
        version=version)


# IVR writes (and DID-map changes, below) queue on the store's writer lock rather than on
# SQLite's lock (see trunx.store.WriterLock for why). Each write holds it across its
# transaction AND its Redis step (publish, or a delete's cleanup), so Redis receives the
# writes in the order SQLite committed them: a save that committed before a delete cannot
# publish after it (or after a re-create of the id), which would leave Redis pointing at a
# version SQLite no longer has. Lock before transaction, always: a transaction (BEGIN
# IMMEDIATE) holding SQLite's lock while waiting here would deadlock with a holder waiting
# for SQLite's lock.


class Assigned(Conflict):
    """The IVR is still assigned to DIDs (their numbers in `dids`), so it was not deleted."""

    def __init__(self, dids: list[str]):
        super().__init__("ivr-assigned", "the IVR is assigned to DIDs; assign them another "
                         "IVR or delete them first", {"dids": dids})
        self.dids = dids


def save(store, account_id: str, ivr_id: str, tree: dict, config, *, create: bool):
    """Store a new version (creating the IVR if `create`) and publish it.
    Returns (Ivr, IvrVersion, warnings). Raises InvalidTree; nothing is stored then."""
    # everything that needs no database happens before the write lock is taken
    definition = tree if not isinstance(tree, dict) else {
        "nodes": tree.get("nodes"), **({"start": tree["start"]} if "start" in tree else {})}
    checked = ivr_tree.validate(definition)
    if not checked.ok:
        raise InvalidTree(checked.problems)
    sounds: set[str] = set()

    entry_id = new_id("obx")    # drawn before the lock: a system call that lets go of the GIL

    def write():   # in a turn of the writer lock, in a transaction (trunx/group_commit.py)
        row, program = _store(account_id, ivr_id, checked, config, create, sounds)
        return row, program, _owe(entry_id=entry_id, ivr=[account_id, ivr_id])

    # committed, then published before the lock is released (see the writer lock above)
    row, program, _ = _saves(store).save(write)
    # what may go wrong at call time: checked after the lock (the stager may be remote)
    warnings = checked.warnings + checks.publish_warnings(program, definition, sounds, config)
    return row.ivr, row, warnings


def _saves(store) -> group_commit.GroupCommit:
    """The store's group of IVR saves (one per Store: its lock, database and Redis)."""
    saves = store.__dict__.get("ivr_saves")
    if saves is None:
        with _SAVES_MADE:
            saves = store.__dict__.setdefault("ivr_saves", group_commit.GroupCommit(
                store, lambda saved: _published(store.redis, saved)))
    return saves


def _published(redis, saved: list) -> None:
    """A turn's saves (row, program, owed), committed: published in one round trip, then
    their outbox entries marked done (a failed mark is left to the sweep)."""
    publish_many(redis, [(row, program) for row, program, _ in saved])
    try:
        _mark_done_many([owed.id for _, _, owed in saved])
    except Exception:      # published: the sweep marks them (it republishes)
        log.exception("IVR saves published but their outbox entries not marked done")


_SAVES_MADE = threading.Lock()


def _mark_done_many(entry_ids: list[str]) -> None:
    query = _MARK_MANY.get(len(entry_ids))
    if query is None:      # SQL built once per batch size (a turn holds the lock)
        count = len(entry_ids)
        query = _MARK_MANY[count] = db.Prepared(
            lambda: OutboxEntry.update(done_at=utcnow())
            .where(OutboxEntry.id.in_([""] * count)))
    query.run(OutboxEntry._meta.database, OutboxEntry.done_at.db_value(utcnow()), *entry_ids)


_MARK_MANY: dict[int, db.Prepared] = {}   # at most group_commit.MAX_BATCH sizes


def _store(account_id, ivr_id, checked, config, create: bool, sounds: set):
    """The new version's rows and its Program; the caller holds the writer lock and a
    transaction."""
    if create:
        ivr = _INSERT_IVR.create(Ivr._meta.database, account=account_id, ivr_id=ivr_id,
                                 current_version=1)
    else:
        ivr = Ivr.get(Ivr.account == account_id, Ivr.ivr_id == ivr_id)
        ivr.current_version += 1
        ivr.updated_at = utcnow()
        ivr.save()
    # inside the transaction: an asset deleted meanwhile cannot slip into the tree
    program = _compile(account_id, ivr_id, ivr.current_version, checked, config, sounds)
    row = _INSERT_VERSION.create(IvrVersion._meta.database, ivr=ivr,
                                 version=ivr.current_version, definition=checked.tree,
                                 compiled=ivr_program.encode(program))
    return row, program


# the new rows' INSERTs built once (peewee's create built each: ~0.3 ms a row, lock held)
_INSERT_IVR = db.PreparedInsert(Ivr)
_INSERT_VERSION = db.PreparedInsert(IvrVersion)


class Gone(NotFound):
    """A DID change named a row deleted before the change got the writer lock: `what` is
    "ivr" or "did", `ident` its id or number (the same 404 as for any missing one)."""

    def __init__(self, what: str, ident: str):
        if what == "ivr":
            super().__init__("ivr-not-found", f"no IVR {ident!r} in this account",
                             {"id": ident})
        else:
            super().__init__("did-not-found", f"no DID {ident} in this account",
                             {"did": ident})
        self.what, self.ident = what, ident


# DID-map changes (assign, unassign, deleting a DID) take the same writer lock as IVR writes
# and hold it across their transaction AND their Redis step, so the map reaches Redis in
# the order SQLite committed it: an assign that committed first cannot overwrite a later
# assign's (or a delete's) entry. They read their rows afresh under the lock: the caller's
# copies were read before it, and the IVR or the DID may be gone since.

def _did_now(did: Did) -> Did:
    """`did` as stored now; same account, so a number deleted and registered again by
    another account is not touched. Caller holds the writer lock and a transaction."""
    row = Did.get_or_none(Did.number == did.number, Did.account == did.account_id)
    if row is None:
        raise Gone("did", did.number)
    return row


def _publish_did(redis, number: str, ivr: Ivr | None) -> None:
    """Make Redis's DID map say what SQLite committed (`ivr`, or no IVR) and tell the
    engine. Caller holds the writer lock, past the commit."""
    if ivr is None:
        redis.delete(redis_schema.did_key(number))
    else:
        redis.set(redis_schema.did_key(number),
                  redis_schema.dumps({"account": ivr.account_id, "ivr_id": ivr.ivr_id}))
    redis_schema.announce(redis, kind="did", did=number)


def assign(store, ivr: Ivr, did: Did) -> str | None:
    """Point a DID at an IVR (replacing any earlier assignment) and publish the map.
    Returns the id of the IVR it replaced, or None. Raises Gone if the IVR or the DID was
    deleted meanwhile (nothing changed then)."""
    with store.writer:
        with store.db.atomic():
            target = Ivr.get_or_none(Ivr.account == ivr.account_id, Ivr.ivr_id == ivr.ivr_id)
            if target is None:
                raise Gone("ivr", ivr.ivr_id)
            row = _did_now(did)
            previous = row.ivr.ivr_id if row.ivr_id else None
            Did.update(ivr=target).where(Did.number == row.number).execute()
            owed = _owe(did=row.number)
        _publish_did(store.redis, row.number, target)   # committed; published under the lock
        outbox.mark_done(owed.id)
    return previous


def unassign(store, did: Did) -> None:
    """Point a DID at no IVR. Raises Gone if the DID was deleted meanwhile."""
    with store.writer:
        with store.db.atomic():
            row = _did_now(did)
            Did.update(ivr=None).where(Did.number == row.number).execute()
            owed = _owe(did=row.number)
        _publish_did(store.redis, row.number, None)
        outbox.mark_done(owed.id)


def delete_did(store, did: Did) -> bool:
    """Delete a DID with its assignment, in one transaction, and drop it from the map
    before the lock is released: done in two steps, an assign could land between the
    unassign and the delete and leave the map routing a deleted number. False if the DID
    was already gone."""
    with store.writer:
        with store.db.atomic():
            try:
                _did_now(did).delete_instance()
            except Gone:
                return False
            owed = _owe(did=did.number)
        _publish_did(store.redis, did.number, None)
        outbox.mark_done(owed.id)
    return True


def delete(store, ivr: Ivr) -> bool:
    """Remove the IVR with `ivr`'s account and id, its versions and their Redis keys.
    Raises Assigned (nothing removed) if a DID points at it; False if it is already gone.
    Read afresh under the writer lock: `ivr` may be stale by the time the lock is ours."""
    account, ivr_id = ivr.account_id, ivr.ivr_id
    with store.writer:
        with store.db.atomic():   # the DID check and the delete see the same rows
            current = Ivr.get_or_none(Ivr.account == account, Ivr.ivr_id == ivr_id)
            if current is None:
                return False
            assigned = [d.number for d in Did.select(Did.number).where(Did.ivr == current)
                        .order_by(Did.number)]
            if assigned:
                raise Assigned(assigned)
            versions = [v.version for v in current.versions]
            current.delete_instance(recursive=True)
            owed = _owe(ivr=[account, ivr_id])
        # committed; cleaned up before the lock is released, so no save of this id can
        # publish between (see the writer lock above)
        keys = [redis_schema.ivr_version_key(account, ivr_id, n) for n in versions]
        store.redis.delete(redis_schema.ivr_current_key(account, ivr_id), *keys)
        redis_schema.announce(store.redis, kind="ivr", account=account, ivr_id=ivr_id,
                              version=None)
        outbox.mark_done(owed.id)
    return True


def _owe(entry_id: str | None = None, **what) -> OutboxEntry:
    """The Redis step this transaction owes (trunx/outbox.py): if the process dies before
    it, the engine publishes what the database then says (`republish`)."""
    key = what.get("did") or ":".join(what["ivr"])
    return outbox.write(outbox.SYNC, key, None, what, entry_id=entry_id)


def republish(store, what: dict) -> None:
    """Make Redis say what the database says about one IVR ({"ivr": [account, id]}) or
    one DID ({"did": number}), under the writer lock, like the write that owed it."""
    redis = store.redis
    with store.writer:
        if "did" in what:
            did = Did.get_or_none(Did.number == what["did"])
            _publish_did(redis, what["did"], did.ivr if did is not None and did.ivr_id
                         else None)
            return
        account, ivr_id = what["ivr"]
        ivr = Ivr.get_or_none(Ivr.account == account, Ivr.ivr_id == ivr_id)
        if ivr is not None:
            publish(redis, current_version(ivr))
            return
        # deleted: its versions' keys are immutable and unreachable once the pointer goes
        redis.delete(redis_schema.ivr_current_key(account, ivr_id))
        redis_schema.announce(redis, kind="ivr", account=account, ivr_id=ivr_id, version=None)


def current_version(ivr: Ivr) -> IvrVersion:
    return IvrVersion.get(IvrVersion.ivr == ivr, IvrVersion.version == ivr.current_version)


def resync(store) -> dict:
    """Rebuild Redis from SQLite: current IVR versions, the DID map, the DNC sets and the
    accounts' default transfer targets."""
    from trunx.models import Suppression

    redis = store.redis
    counts = {"ivrs": 0, "dids": 0, "suppressions": 0, "default_transfers": 0}
    # Forced, so Redis follows SQLite even backwards (a restored database). Each IVR is
    # read and published under the writer lock: a save cannot commit between the read and
    # the forced publish, so a resync never undoes a newer save (on SQLite, where the
    # lock spans processes). The ids are listed first so each read is a fresh snapshot.
    for pk in [row.id for row in Ivr.select(Ivr.id)]:
        with store.writer:
            ivr = Ivr.get_or_none(Ivr.id == pk)
            if ivr is not None:
                publish(redis, current_version(ivr), force=True)
                counts["ivrs"] += 1
    # The DID map likewise, each entry read and published under the lock, so an assign or
    # a delete committed after the read cannot be overwritten by this stale copy.
    for number in [d.number for d in Did.select(Did.number).where(Did.ivr.is_null(False))]:
        with store.writer:
            did = Did.get_or_none(Did.number == number)
            if did is not None and did.ivr_id:
                _publish_did(redis, number, did.ivr)
                counts["dids"] += 1
    for row in Suppression.select():
        redis.sadd(redis_schema.dnc_key(row.account_id), row.number)
        counts["suppressions"] += 1
    counts["default_transfers"] = transfer_target.resync(redis)
    redis.set(redis_schema.SYNCED_KEY, redis_schema.dumps(counts))
    redis_schema.announce(redis, kind="resync")
    return counts
