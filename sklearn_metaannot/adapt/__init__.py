"""The per-task choices of fit: the latent space, the class model and the weight
of unlabelled items, from held-out crowd labels.

Private: the public names are exported by the top-level package."""
