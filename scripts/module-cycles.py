#!/usr/bin/env python3
"""Fails when the agent's modules import each other in a circle.

Every file of agent/src is a module (`analyze/model.rs` is `analyze::model`, a folder's
`mod.rs` is the folder). Each `crate::...` or `super::...` path in code (comments and doc
links are not imports) is an edge to the deepest module it names. A strongly connected group
of more than one module is an import circle. Prints the stage-level graph (which top-level
module names which), then the circles; exits 1 if there is any.

`config` (the whole file, built from every stage's own section) and `runtime` (the wiring)
sit on top: they name the stages, and no stage names them.

Usage: scripts/module-cycles.py [agent/src]   (run by scripts/test.sh)
"""
import re
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "agent/src")
modules = {}
for f in root.rglob("*.rs"):
    rel = f.relative_to(root)
    if rel.name in ("lib.rs", "main.rs"):
        continue
    parts = list(rel.parts)
    parts = parts[:-1] if parts[-1] == "mod.rs" else parts[:-1] + [parts[-1][:-3]]
    modules["::".join(parts)] = f


def resolve(path):
    parts = path.split("::")
    while parts:
        if "::".join(parts) in modules:
            return "::".join(parts)
        parts = parts[:-1]
    return None


edges = {}
for mod, f in modules.items():
    code = "\n".join(line.split("//")[0] for line in f.read_text().splitlines())
    here = mod.split("::")
    parent = here[:-1]
    for m in re.finditer(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)", code):
        tail = m.group(2)[2:].split("::")
        target = resolve("::".join(tail if m.group(1) == "crate" else parent + tail))
        if target and target != mod and not mod.startswith(target + "::"):
            edges.setdefault(mod, set()).add(target)

# Tarjan's strongly connected components.
index, low, stack, on_stack, circles, counter = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10_000)


def connect(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on_stack.add(v)
    for w in sorted(edges.get(v, ())):
        if w not in index:
            connect(w)
            low[v] = min(low[v], low[w])
        elif w in on_stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        group = []
        while True:
            w = stack.pop()
            on_stack.discard(w)
            group.append(w)
            if w == v:
                break
        if len(group) > 1:
            circles.append(sorted(group))


for v in sorted(modules):
    if v not in index:
        connect(v)

stages = {}
for mod, targets in edges.items():
    for t in targets:
        a, b = mod.split("::")[0], t.split("::")[0]
        if a != b:
            stages.setdefault(a, set()).add(b)
for stage in sorted(stages):
    print(f"{stage:10} -> {', '.join(sorted(stages[stage]))}")
if circles:
    print("\nimport circles:")
    for group in circles:
        print("  " + " <-> ".join(group))
    sys.exit(1)
print(f"\nno import circle among the agent's {len(modules)} modules")
