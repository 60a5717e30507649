"""Draw an IVR tree from the same data the engine runs: a Mermaid flowchart.

Gather nodes are boxes, actions are rounded; an edge per key, plus the timeout and invalid
routes. Node names are quoted through `_label`, so a name can't break the diagram syntax.
"""
from __future__ import annotations

import zlib


def _label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def _id(name: str) -> str:
    safe = "".join(c if c.isalnum() else "_" for c in name)
    return f"n_{safe}_{zlib.crc32(name.encode()):08x}"   # distinct even when `safe` collides


def to_mermaid(tree: dict) -> str:
    """`tree` is a validated definition ({"nodes": ..., "start"?}); returns Mermaid text."""
    nodes = tree["nodes"]
    entry = tree.get("start") or next(iter(nodes))
    ids = {name: _id(name) for name in nodes}
    lines = ["flowchart TD", f"  start((call)) --> {ids[entry]}"]
    for name, node in nodes.items():
        if "gather" in node:
            lines.append(f"  {ids[name]}[{_label(name + ': ' + node['audio'])}]")
            for key, target in node["gather"].items():
                lines.append(f"  {ids[name]} -->|{_label(key)}| {ids[target]}")
            lines.append(f"  {ids[name]} -.->|timeout| {ids[node.get('timeout_node', name)]}")
            if "invalid_node" in node:
                lines.append(f"  {ids[name]} -.->|invalid| {ids[node['invalid_node']]}")
        else:
            what = node["action"] + (f" {node['to']}" if node.get("to") else "")
            lines.append(f"  {ids[name]}({_label(name + ': ' + what)})")
    return "\n".join(lines) + "\n"
