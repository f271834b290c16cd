#!/usr/bin/env bash
# CI job "lowest versions": the training and EWC tests against the lower bound of every direct dependency.
#
# pyproject.toml's `>=` bounds are claims ("e2wm works with transformers 5.18"); this job keeps them true. It
# reads the bounds from pyproject.toml (so the pins cannot drift from it), writes a constraints file pinning each
# direct dependency to exactly its lower bound, installs the project with it into a fresh venv, prints what was
# installed, and runs the training and EWC tests. Indirect dependencies resolve to their newest allowed releases.
#
# torch is the one exception: only the CPU build of torch 2.13.0 is cheap to install here (see
# ../shared/notes/stack.md), so it is installed first and left out of the constraints; its lower bound is not tested.
#
# Usage: bash .ci/lowest-versions.sh        (LOWEST_VENV=DIR keeps the venv in DIR instead of a temporary folder)
# Needs only PyPI; no GPU, no Hugging Face Hub. Cost measured on the 2-core machine (119 tests): about 6.5 min of CPU;
# wall time 19.5 min under a load average of 9 from other jobs (install 9 min, tests 8 min), install 3.2 min at load 4.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
venv="${LOWEST_VENV:-$work/venv}"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

# 1. The constraints: every direct dependency of [project].dependencies pinned to its `>=` bound.
python3 - pyproject.toml "$work/constraints.txt" <<'PY'
import re
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    dependencies = tomllib.load(f)["project"]["dependencies"]
UNTESTED = {"torch"}  # installed separately (CPU build of 2.13.0), see the header
pins, missing = [], []
for requirement in dependencies:
    spec = requirement.split(";", 1)[0]  # no environment markers in this project; ignore them if any appear
    match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*?)\s*", spec)
    if not match:
        sys.exit(f"lowest-versions: cannot parse the requirement {requirement!r} in pyproject.toml")
    name, specifiers = match.group(1), match.group(2)
    if re.sub(r"[-_.]+", "-", name).lower() in UNTESTED:
        continue
    lower = [s.strip()[2:].strip() for s in specifiers.split(",") if s.strip().startswith((">=", "=="))]
    if not lower:
        missing.append(requirement)
        continue
    pins.append(f"{name}=={lower[0]}")
if missing:
    sys.exit(
        "lowest-versions: these dependencies have no lower bound (`>=`), so their minimum is not known: "
        + ", ".join(missing)
    )
with open(sys.argv[2], "w") as f:
    f.write("\n".join(pins) + "\n")
PY
echo "== constraints (from pyproject.toml's lower bounds)"
cat "$work/constraints.txt"

# 2. A fresh venv: torch (CPU) first, then the project with every direct dependency at its lower bound.
SECONDS=0
python3 -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet "torch==2.13.0"
"$py" -m pip install --quiet -c "$work/constraints.txt" -e . pytest
"$py" -m pip check
echo "== install took ${SECONDS} s"

# 3. What is installed: each direct dependency next to its bound (pip enforced the pins; shown for the log).
echo "== installed"
"$py" - "$work/constraints.txt" <<'PY'
import sys
from importlib.metadata import version

import torch

print(f"{'torch':<18} {torch.__version__:<12} (lower bound not tested)")
for line in open(sys.argv[1]).read().split():
    name, bound = line.split("==")
    installed = version(name)
    print(f"{name:<18} {installed:<12} (bound {bound})")
PY

# 4. The training and EWC tests.
export HF_HUB_DISABLE_TELEMETRY=1
SECONDS=0
"$py" -m pytest -q -p no:cacheprovider tests/training tests/ewc
echo "== tests took ${SECONDS} s; CPU time of the whole job (user, system; then of its children):"
times
