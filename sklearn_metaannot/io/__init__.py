"""Files: model persistence and the all-or-none outputs of the command line.

Private: the public names are exported by the top-level package."""
