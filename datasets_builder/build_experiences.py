"""Build the ``e2wm/experiences`` corpus from collected episodes, and optionally push it to the Hub.

    python datasets_builder/build_experiences.py --episodes runs/robothow runs/generated --out corpus/
    python datasets_builder/build_experiences.py --episodes runs/robothow --out corpus/ --push-to-hub e2wm/experiences

The same as ``e2wm build``. The corpus folder has one parquet folder per config and a README card
whose YAML ``configs:`` make ``datasets.load_dataset(CORPUS, "counting")`` work, locally or on the Hub.
"""

from __future__ import annotations

import sys

from e2wm.cli import main

if __name__ == "__main__":
    sys.exit(main(["build", *sys.argv[1:]]))
