"""Draw an IVR from the same data the engine runs (its Program): a Mermaid flowchart.

Gather nodes are boxes, actions are rounded; an edge per key, plus the timeout and invalid
routes. Node names are quoted through `_label`, so a name can't break the diagram syntax.
"""
from __future__ import annotations

import zlib

from trunx.ivr.program import Gather, Program


def _label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def _id(name: str) -> str:
    safe = "".join(c if c.isalnum() else "_" for c in name)
    return f"n_{safe}_{zlib.crc32(name.encode()):08x}"   # distinct even when `safe` collides


def to_mermaid(program: Program) -> str:
    """Mermaid text for `program`; audio is named by its last path part (an asset's id, or
    the sound's name)."""
    nodes = program.nodes
    ids = {name: _id(name) for name in nodes}
    lines = ["flowchart TD", f"  start((call)) --> {ids[program.entry]}"]
    for name, node in nodes.items():
        if isinstance(node, Gather):
            lines.append(f"  {ids[name]}[{_label(name + ': ' + node.audio.rsplit('/', 1)[-1])}]")
            for key, target in node.gather.items():
                lines.append(f"  {ids[name]} -->|{_label(key)}| {ids[target]}")
            lines.append(f"  {ids[name]} -.->|timeout| {ids[node.timeout_node or name]}")
            if node.invalid_node:
                lines.append(f"  {ids[name]} -.->|invalid| {ids[node.invalid_node]}")
        else:
            what = node.action + "".join(f" {v}" for v in (node.to, node.agent) if v)
            lines.append(f"  {ids[name]}({_label(name + ': ' + what)})")
    return "\n".join(lines) + "\n"
