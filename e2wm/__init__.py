"""e2wm: teach language models embodied knowledge from a world model, without making them forget.

The E2WM method (Xiang et al., NeurIPS 2023, arXiv 2305.10626) as a Hugging Face-native toolkit.
"""

__version__ = "0.1.0"
