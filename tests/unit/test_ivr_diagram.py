from devtools.demo import SEED_TREE
from trunx.ivr.diagram import to_mermaid


def test_seed_tree_diagram_has_every_node_and_route():
    text = to_mermaid(SEED_TREE)
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    assert lines[1].startswith("  start((call)) --> n_welcome_")
    for name in SEED_TREE["nodes"]:
        assert f'"{name}: ' in text
    edges = [ln for ln in lines if "-->|" in ln or "-.->|" in ln]
    # 4 digit routes + a timeout route for each of the 2 gather nodes
    assert len(edges) == 6
    assert sum('|"9"|' in e and "n_dnc_" in e for e in edges) == 1
    assert '"unqualified: hangup"' in text


def test_names_cannot_break_the_syntax():
    tree = {"nodes": {'a"]; click': {"action": "hangup"}}}
    text = to_mermaid(tree)
    assert '"a#quot;]; click: hangup"' in text
    assert text.count("\n") == 3


def test_cli_prints_the_current_version(tmp_path, capsys, monkeypatch):
    from trunx import cli, db
    from trunx import config as trunx_config
    from trunx.models import Account, Ivr, IvrVersion

    monkeypatch.setenv("TRUNX_DATA_DIR", str(tmp_path))
    db.connect(trunx_config.load(env={"TRUNX_DATA_DIR": str(tmp_path)}))
    acc = Account.create(name="d")
    ivr = Ivr.create(account=acc, ivr_id="menu", current_version=2)
    IvrVersion.create(ivr=ivr, version=1, definition={"nodes": {"old": {"action": "hangup"}}},
                      compiled={})
    IvrVersion.create(ivr=ivr, version=2, definition=SEED_TREE, compiled={})
    assert cli.main(["ivr", "diagram", acc.id, "menu"]) == 0
    assert capsys.readouterr().out == to_mermaid(SEED_TREE)
    assert cli.main(["ivr", "diagram", acc.id, "nope"]) == 1
