"""Draw an IVR from the same data the engine runs (its Program): Mermaid text, Graphviz DOT,
and SVG drawn by Graphviz's `dot`.

Gather nodes are boxes with their prompt, actions are rounded; an edge per key, plus the
timeout and invalid routes (dashed; one edge for both when they lead to the same node).
Names reach the diagram text only through `_label` / `_dot_quote`, so a name can't break
either syntax. `counts` (from trunx.ivr.stats) lays how many calls took each edge over its
label.
"""
from __future__ import annotations

import shutil
import subprocess
import zlib
from collections.abc import Callable, Mapping

from trunx.errors import NotConfigured, UpstreamError
from trunx.ivr.program import Gather, Program

# an edge's key in `counts`: (from node, label), the label a key, "timeout" or "invalid"
EdgeCounts = Mapping[tuple[str, str], int]
DOT_TIMEOUT = 10.0            # seconds; dot draws a tree of a few hundred nodes in well under 1


def _label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def _id(name: str) -> str:
    safe = "".join(c if c.isalnum() else "_" for c in name)
    return f"n_{safe}_{zlib.crc32(name.encode()):08x}"   # distinct even when `safe` collides


def audio_name(file: str | None) -> str:
    """Audio is named by its last path part (an asset's id, or the sound's name)."""
    return file.rsplit("/", 1)[-1] if file else ""


def to_mermaid(program: Program) -> str:
    """Mermaid text for `program`."""
    nodes = program.nodes
    ids = {name: _id(name) for name in nodes}
    lines = ["flowchart TD", f"  start((call)) --> {ids[program.entry]}"]
    for name, node in nodes.items():
        if isinstance(node, Gather):
            lines.append(f"  {ids[name]}[{_label(name + ': ' + audio_name(node.audio))}]")
            for key, target in node.gather.items():
                lines.append(f"  {ids[name]} -->|{_label(key)}| {ids[target]}")
            lines.append(f"  {ids[name]} -.->|timeout| {ids[node.timeout_node or name]}")
            if node.invalid_node:
                lines.append(f"  {ids[name]} -.->|invalid| {ids[node.invalid_node]}")
        else:
            lines.append(f"  {ids[name]}({_label(name + ': ' + _action_text(node))})")
    return "\n".join(lines) + "\n"


def _action_text(node) -> str:
    return node.action + "".join(f" {v}" for v in (node.to, node.agent) if v)


def _dot_quote(*lines: str) -> str:
    """A DOT quoted string of `lines` (joined by DOT's \\n): `"` and `\\` escaped, so
    nothing a name holds is read as DOT or as a label escape; raw line ends are dropped."""
    escaped = (line.replace("\\", "\\\\").replace('"', '\\"')
               .replace("\r", " ").replace("\n", " ") for line in lines)
    return '"' + "\\n".join(escaped) + '"'


def _with_count(label: str, counts: EdgeCounts | None, key: tuple[str, str]) -> str:
    if counts is None:
        return label
    return f"{label} ({counts.get(key, 0)})"


def to_dot(program: Program, *, prompts: Callable[[str], str | None] | None = None,
           counts: EdgeCounts | None = None, visited: set[str] | frozenset = frozenset()
           ) -> str:
    """Graphviz DOT for `program`. `prompts(file)` may give a prompt's words (a TTS asset's
    text) to show in place of the file's name; `counts` adds calls per edge; `visited`
    nodes (a simulated walk's) are drawn bold, with class "visited"."""
    nodes = program.nodes
    ids = {name: _id(name) for name in nodes}
    out = ["digraph ivr {",
           '  graph [rankdir=TB, fontname="DejaVu Sans"];',
           '  node [fontname="DejaVu Sans", fontsize=11];',
           '  edge [fontname="DejaVu Sans", fontsize=10];',
           '  start [shape=circle, label="call", id="node-start"];',
           f"  start -> {ids[program.entry]};"]
    for name, node in nodes.items():
        node_id = _dot_quote("node-" + name)
        if name in visited:
            node_id += ', class="visited", penwidth=2.5, color="#0b5cad"'
        if isinstance(node, Gather):
            words = (prompts(node.audio) if prompts else None) or audio_name(node.audio)
            if len(words) > 60:
                words = words[:57] + "..."
            out.append(f"  {ids[name]} [shape=box, id={node_id}, "
                       f"label={_dot_quote(name, words)}];")
            for key, target in node.gather.items():
                label = _with_count(key, counts, (name, key))
                out.append(f"  {ids[name]} -> {ids[target]} [label={_dot_quote(label)}];")
            timeout_to, invalid_to = node.timeout_node or name, node.invalid_node or name
            misses = ([("timeout", timeout_to), ("invalid", invalid_to)]
                      if timeout_to != invalid_to else [("timeout\ninvalid", timeout_to)])
            for what, target in misses:   # one dashed edge when both go to the same node
                label = "\n".join(_with_count(w, counts, (name, w)) for w in what.split("\n"))
                out.append(f"  {ids[name]} -> {ids[target]} "
                           f"[label={_dot_quote(*label.split(chr(10)))}, style=dashed];")
        else:
            out.append(f"  {ids[name]} [shape=box, style=rounded, id={node_id}, "
                       f"label={_dot_quote(name, _action_text(node))}];")
    out.append("}")
    return "\n".join(out) + "\n"


def to_svg(dot_text: str) -> bytes:
    """SVG drawn by Graphviz's `dot` (Debian's graphviz package) from `to_dot`'s text."""
    binary = shutil.which("dot")
    if binary is None:
        raise NotConfigured("graphviz-missing", "drawing SVG needs Graphviz's dot program "
                            "(Debian: apt install graphviz)")
    try:
        done = subprocess.run([binary, "-Tsvg"], input=dot_text.encode(), capture_output=True,
                              timeout=DOT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise UpstreamError("graphviz-failed", "dot took too long to draw the diagram") from None
    if done.returncode != 0:
        raise UpstreamError("graphviz-failed", "dot could not draw the diagram",
                            {"stderr": done.stderr.decode(errors="replace")[-500:]})
    return done.stdout
