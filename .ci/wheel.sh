#!/usr/bin/env bash
# CI: the package as users get it from PyPI. Build the wheel, install it into a fresh venv (no -e, no
# checkout on sys.path), and run, from outside the repository, the smoke pipeline, which writes each card:
# the dataset card (corpus), the Fisher card and the adapter cards. A template or data file missing from
# the wheel fails here.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python -m pip wheel --no-deps --wheel-dir "$work/dist" "$repo" >/dev/null
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet "torch==2.13.0"
"$work/venv/bin/python" -m pip install --quiet "$work"/dist/e2wm-*.whl
cd "$work"  # nothing of the checkout is importable from here
"$work/venv/bin/python" -c "import e2wm, pathlib; assert 'site-packages' in e2wm.__file__, e2wm.__file__"
E2WM_CACHE="$work/cache" "$work/venv/bin/e2wm" pipeline --recipe "$repo/recipes/smoke.yaml" --out "$work/run" --quiet
for card in corpus/README.md fisher/README.md adapters/lora/README.md adapters/ewc_lora/README.md; do
  test -s "$work/run/$card" || { echo "wheel: $card was not written" >&2; exit 1; }
done
grep -q "configs:" "$work/run/corpus/README.md"
grep -q "normalization" "$work/run/fisher/README.md"
grep -q "EWC-LoRA" "$work/run/adapters/ewc_lora/README.md"
echo "wheel: installed from $(ls "$work"/dist), the smoke pipeline wrote the dataset, Fisher and adapter cards"
