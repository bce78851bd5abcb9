"""Crowd labels: the label container, input checks and simulated annotators.

Private: the public names are exported by the top-level package."""
