"""Meta-training: the encoders, episodic EM, the meta-learner and its machinery.

Private: the public names are exported by the top-level package."""
