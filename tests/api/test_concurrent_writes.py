"""Many writers at once through two app instances (two workers on one SQLite file): every
create and every update of one IVR is stored, none fails with "database is locked" or a
version conflict, and the versions of the updated IVR are consecutive."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from trunx.models import Ivr, IvrVersion

TREE = {"nodes": {"a": {"audio": "welcome.wav", "gather": {"1": "b"}},
                  "b": {"action": "hangup"}}}
WRITERS = 24


def test_concurrent_creates_and_updates_all_land(make_app, config, tenant):
    clients = [make_app(config).test_client(), make_app(config).test_client()]
    assert clients[0].post("/ivr", json={"id": "shared", **TREE},
                           headers=tenant.headers).status_code == 201

    def write(n: int):
        client = clients[n % 2]
        created = client.post("/ivr", json={"id": f"c{n}", **TREE}, headers=tenant.headers)
        updated = client.patch("/ivr/shared", json=TREE, headers=tenant.headers)
        return created.status_code, created.get_data(as_text=True), \
            updated.status_code, updated.get_data(as_text=True)

    with ThreadPoolExecutor(WRITERS) as pool:
        results = list(pool.map(write, range(WRITERS * 2)))
    for created, created_body, updated, updated_body in results:
        assert created == 201, created_body
        assert updated == 200, updated_body
    assert Ivr.select().where(Ivr.account == tenant.id).count() == WRITERS * 2 + 1
    shared = Ivr.get(Ivr.account == tenant.id, Ivr.ivr_id == "shared")
    versions = sorted(v.version for v in IvrVersion.select().where(IvrVersion.ivr == shared))
    assert versions == list(range(1, WRITERS * 2 + 2))
    assert shared.current_version == WRITERS * 2 + 1
