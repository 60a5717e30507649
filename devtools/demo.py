"""The demo account, prompts and tree that `make run` publishes (and the tests reuse).

The tree is the IVR seed page's `qualify-business` example, unchanged; its prompts are
spoken by espeak-ng and staged as audio assets named as the tree names them, so the tree
plays them without edits.
"""
from __future__ import annotations

from trunx.ivr import store as ivr_store
from trunx.media import LocalStager, render_tts
from trunx.models import Account, AudioAsset, Did, Ivr

DEMO_DID = "+19495551234"
DEMO_IVR = "qualify-business"

SEED_TREE = {
    "nodes": {
        "welcome": {
            "audio": "welcome.wav",
            "gather": {"1": "has_business", "9": "dnc"},
            "timeout_node": "welcome",
        },
        "has_business": {
            "audio": "business_check.wav",
            "gather": {"1": "transfer_ai", "2": "unqualified"},
        },
        "transfer_ai": {"action": "transfer"},
        "unqualified": {"action": "hangup", "audio": "not_qualified.wav"},
        "dnc": {"action": "suppress"},
    }
}

PROMPTS = {
    "welcome.wav": "Press one if you own a business. Press nine to opt out.",
    "business_check.wav": "Press one to talk to us. Press two if not.",
    "not_qualified.wav": "Sorry, you do not qualify. Goodbye.",
}


def stage_prompts(account, config, prompts=PROMPTS) -> dict[str, AudioAsset]:
    """Speak each prompt, stage it where Asterisk plays from, and record it as an asset.
    A prompt already staged for this account is reused, so repeated runs add nothing."""
    stager = LocalStager(config.staged_sounds_dir)
    assets = {}
    for name, text in prompts.items():
        known = AudioAsset.get_or_none(AudioAsset.account == account, AudioAsset.name == name,
                                       AudioAsset.text == text)
        if known is not None and stager.exists(known.id):
            assets[name] = known
            continue
        rendered = render_tts(text, None, "standard", None, config)
        asset = AudioAsset.create(account=account, name=name, source="tts", text=text,
                                  provider=rendered.provider, voice=rendered.voice,
                                  content_hash=rendered.content_hash,
                                  duration_seconds=rendered.duration_seconds,
                                  file_path=rendered.path)
        stager.put(rendered.path, asset.id)
        assets[name] = asset
    return assets


def publish_demo(store, account, config, tree=SEED_TREE, did=DEMO_DID, ivr_id=DEMO_IVR):
    """Publish `tree` as `ivr_id` (a new version if it exists) and assign it to `did`,
    through `store` (trunx/store.py)."""
    exists = Ivr.select().where(Ivr.account == account, Ivr.ivr_id == ivr_id).exists()
    ivr, version, _ = ivr_store.save(store, account.id, ivr_id, tree, config,
                                     create=not exists)
    number = Did.get_or_none(Did.number == did) or Did.create(number=did, account=account)
    ivr_store.assign(store, ivr, number)
    return ivr, version


def demo_account(name: str = "demo") -> Account:
    return Account.get_or_none(Account.name == name) or Account.create(name=name)
