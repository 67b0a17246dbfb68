"""puzzlegen: verifiable visual puzzles for RL post-training of VLMs."""

__version__ = "0.1.0"
