#!/usr/bin/env bash
# bench/gpu.py as one command on a GPU machine whose image lacks trl, datasets and bitsandbytes:
#
#   bash bench/gpu.sh                 # every part; flags go to bench/gpu.py (e.g. --parts fisher,penalty)
#
# Wheels: put them in ./wheels (or point E2WM_WHEELS at a folder) before running; see docs/training.md,
# "Measuring on a GPU", for the `pip download` line that makes them. Without that folder nothing is installed
# and bench/gpu.py names what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python}"
wheels="${E2WM_WHEELS:-wheels}"
if [ -d "$wheels" ]; then
  echo "installing trl, datasets, bitsandbytes from $wheels (no index)"
  "$python" -m pip install --quiet --no-index --find-links "$wheels" trl datasets bitsandbytes
fi
exec "$python" bench/gpu.py "$@"
