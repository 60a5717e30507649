"""The Mermaid and DOT diagrams are drawn from the Program, the same data the engine runs."""
import re

from devtools.demo import SEED_TREE
from trunx.ivr.diagram import to_mermaid
from trunx.ivr.program import Action, Program, compile_program, encode
from trunx.ivr.tree import validate


def program_of(tree, resolve=lambda ref: "/sounds/" + ref.removesuffix(".wav")):
    return compile_program(validate(tree), resolve, gather_timeout=5, gather_max_tries=3,
                           account="acc", ivr_id="menu", version=1)


def test_seed_tree_diagram_has_every_node_and_route():
    text = to_mermaid(program_of(SEED_TREE))
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    assert lines[1].startswith("  start((call)) --> n_welcome_")
    for name in SEED_TREE["nodes"]:
        assert f'"{name}: ' in text
    assert '"welcome: welcome"' in text            # audio named by its last path part
    edges = [ln for ln in lines if "-->|" in ln or "-.->|" in ln]
    # 4 digit routes + a timeout route for each of the 2 gather nodes
    assert len(edges) == 6
    assert sum('|"9"|' in e and "n_dnc_" in e for e in edges) == 1
    assert '"unqualified: hangup"' in text


def test_transfer_targets_and_invalid_routes_are_drawn():
    tree = {"start": "menu", "nodes": {
        "ai": {"action": "transfer", "agent": "ag-1"},
        "menu": {"audio": "m", "gather": {"1": "ai", "2": "out"}, "invalid_node": "out"},
        "out": {"action": "transfer", "to": "+14155550100"}}}
    text = to_mermaid(program_of(tree))
    assert text.splitlines()[1].startswith("  start((call)) --> n_menu_")
    assert '"ai: transfer ag-1"' in text and '"out: transfer +14155550100"' in text
    assert sum("-.->|invalid|" in ln and "n_out_" in ln for ln in text.splitlines()) == 1


def test_names_cannot_break_the_syntax():
    # validation refuses such a name; the diagram must not depend on that
    name = 'a"]; click'
    text = to_mermaid(Program(account="acc", ivr_id="menu", version=1, entry=name,
                              nodes={name: Action(action="hangup")}))
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
    old = {"nodes": {"old": {"action": "hangup"}}}
    IvrVersion.create(ivr=ivr, version=1, definition=old, compiled=encode(program_of(old)))
    IvrVersion.create(ivr=ivr, version=2, definition=SEED_TREE,
                      compiled=encode(program_of(SEED_TREE)))
    assert cli.main(["ivr", "diagram", acc.id, "menu"]) == 0
    assert capsys.readouterr().out == to_mermaid(program_of(SEED_TREE))
    assert cli.main(["ivr", "diagram", acc.id, "nope"]) == 1


def test_dot_draws_every_node_and_escapes_prompt_words():
    from trunx.ivr.diagram import to_dot
    words = 'Press 1"; a -> b [label="x"] \\ end\nline'
    dot = to_dot(program_of(SEED_TREE), prompts=lambda file: words if "welcome" in file else None)
    assert 'label="welcome\\nPress 1\\"; a -> b [label=\\"x\\"] \\\\ end line"' in dot
    for name in SEED_TREE["nodes"]:
        assert f'id="node-{name}"' in dot
    # edges: 4 keys solid; each gather's timeout and invalid both replay it: one dashed edge
    edges = [ln for ln in dot.splitlines() if re.match(r"\s+n_\w+ -> n_\w+ ", ln)]
    assert sum("style=dashed" in ln for ln in edges) == 2 and len(edges) == 6


def test_dot_counts_and_separate_miss_routes():
    from trunx.ivr.diagram import to_dot
    tree = {"nodes": {"menu": {"audio": "m", "gather": {"1": "end"}, "timeout_node": "end",
                               "invalid_node": "menu"},
                      "end": {"action": "hangup"}}}
    dot = to_dot(program_of(tree), counts={("menu", "1"): 7, ("menu", "timeout"): 2})
    assert 'label="1 (7)"' in dot and 'label="timeout (2)", style=dashed' in dot
    assert 'label="invalid (0)", style=dashed' in dot
