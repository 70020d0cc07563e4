#!/usr/bin/env python3
"""Workspace crates depend in one direction only: cim-core <- everything else.

The ingest, the server, the viewer and the simulator share what they must agree on
(formats, catalogue, tiling) through cim-core and never call each other; the
end-to-end tests drive the binaries, not their libraries. Reads `cargo metadata`
(declared dependencies of every kind: normal, build, dev) and exits non-zero naming
each edge that breaks the rule. The fuzz workspace (fuzz/) is exempt: it feeds
every crate's parsers.
"""
import json
import subprocess
import sys

# Which workspace crates each may depend on.
ALLOWED = {
    "cim-core": set(),
    "cim-ingest": {"cim-core"},
    "cim-tileserver": {"cim-core"},
    "cim-viewer": {"cim-core"},
    "cim-simulate": {"cim-core"},
    "cim-e2e": {"cim-core"},
}

meta = json.loads(
    subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
)
members = {p["name"] for p in meta["packages"]}
bad = []
for package in meta["packages"]:
    name = package["name"]
    if name not in ALLOWED:
        bad.append(f"{name}: a workspace crate without a rule in scripts/check_dependencies.py")
        continue
    for dep in package["dependencies"]:
        if dep["name"] in members and dep["name"] not in ALLOWED[name]:
            kind = dep["kind"] or "normal"
            bad.append(f"{name} -> {dep['name']} ({kind}): only {sorted(ALLOWED[name]) or 'no workspace crate'} allowed")
for line in bad:
    print(f"dependency direction: {line}", file=sys.stderr)
if bad:
    sys.exit(1)
print(f"dependency direction: {len(members)} crates, core <- the rest only")
