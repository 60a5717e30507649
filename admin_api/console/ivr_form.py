"""The IVR definition as a form, field by field, and back.

Each node is a fieldset `n<i>.*`: its name, its kind (gather or action) and one input per
field of trunx.ivr.tree (a gather's keys as lines `1 = next_node`). A new node comes in as
`new.name` and `new.kind`. Numbers that parse are sent as numbers, anything else as typed,
so the validator names the field; each problem it reports (`nodes.<name>.<field>...`) is
put beside that field.
"""
from __future__ import annotations

from dataclasses import dataclass, field

GATHER = ("audio", "gather", "timeout", "max_tries", "max_digits", "timeout_node",
          "invalid_node", "invalid_audio")
ACTION = ("action", "audio", "to", "agent", "timeout")
NUMBERS = {"timeout": float, "max_tries": int, "max_digits": int}
LABELS = {"audio": "Prompt (asset id, asset name or sound)",
          "gather": "Keys, one a line: key = node", "timeout": "Seconds to wait",
          "max_tries": "Tries before giving up", "max_digits": "Keys to collect",
          "timeout_node": "On timeout, go to (empty: replay)",
          "invalid_node": "On an invalid key, go to (empty: replay)",
          "invalid_audio": "Invalid-key prompt", "action": "Action",
          "to": "Transfer to (E.164)", "agent": "Transfer to AI agent (id)"}


@dataclass
class NodeForm:
    index: int
    name: str
    kind: str                                   # gather | action
    values: dict[str, str]
    problems: dict[str, list[dict]] = field(default_factory=dict)   # field ("" = node)

    @property
    def fields(self) -> tuple[str, ...]:
        return GATHER if self.kind == "gather" else ACTION


def _text(value) -> str:
    return "" if value is None else str(value)


def from_definition(definition: dict) -> list[NodeForm]:
    out = []
    for i, (name, node) in enumerate(definition["nodes"].items()):
        kind = "gather" if "gather" in node else "action"
        values = {f: _text(node.get(f)) for f in (GATHER if kind == "gather" else ACTION)}
        if kind == "gather":
            values["gather"] = "\n".join(f"{k} = {v}" for k, v in node["gather"].items())
        out.append(NodeForm(i, name, kind, values))
    return out


def _keys(text: str):
    """`1 = sales` lines as {"1": "sales"}; a line without `=` is kept whole as a key, so
    the validator reports it."""
    out = {}
    for line in text.splitlines():
        if line.strip():
            key, _, target = line.partition("=")
            out[key.strip()] = target.strip()
    return out


def _number(name: str, text: str):
    try:
        return NUMBERS[name](text)
    except ValueError:
        return text


def _index(text: str) -> bool:
    """A row number in a field name: ASCII digits (a form can send "n².name")."""
    return text.isascii() and text.isdigit() and len(text) <= 4


def from_form(form) -> tuple[dict, list[NodeForm]]:
    """The tree the form describes, and the form's rows (to show again if it fails)."""
    rows, nodes = [], {}
    indexes = sorted({int(k[1:k.index(".")]) for k in form if k.startswith("n")
                      and "." in k and _index(k[1:k.index(".")])})
    for i in indexes:
        name = form.get(f"n{i}.name", "").strip()
        kind = "gather" if form.get(f"n{i}.kind") == "gather" else "action"
        row = NodeForm(i, name, kind, {f: form.get(f"n{i}.{f}", "") for f in
                                       (GATHER if kind == "gather" else ACTION)})
        if form.get(f"n{i}.remove"):
            continue
        rows.append(row)
        node = {}
        for f, text in row.values.items():
            text = text.strip()
            if not text:
                continue
            node[f] = (_keys(text) if f == "gather" else
                       _number(f, text) if f in NUMBERS else text)
        if kind == "gather":
            node.setdefault("gather", {})
        else:
            node.setdefault("action", "")
        nodes[name] = node
    new_name = form.get("new.name", "").strip()
    if new_name:
        kind = "gather" if form.get("new.kind") == "gather" else "action"
        index = max(indexes, default=-1) + 1
        rows.append(NodeForm(index, new_name, kind,
                             {f: "" for f in (GATHER if kind == "gather" else ACTION)}))
        nodes[new_name] = {"audio": "", "gather": {}} if kind == "gather" else {
            "action": "hangup"}
    tree = {"nodes": nodes}
    start = form.get("start", "").strip()
    if start:
        tree["start"] = start
    return tree, rows


def place(problems: list[dict], rows: list[NodeForm]) -> list[dict]:
    """Put each problem beside its field; returns those that name no node of the form."""
    by_name = {row.name: row for row in rows}
    left = []
    for p in problems:
        parts = p.get("field", "").split(".")
        row = by_name.get(parts[1]) if parts[0] == "nodes" and len(parts) > 1 else None
        if row is None:
            left.append(p)
            continue
        where = parts[2] if len(parts) > 2 and parts[2] in row.fields else ""
        row.problems.setdefault(where, []).append(p)
    return left
