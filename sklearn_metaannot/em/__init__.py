"""The EM of a target task: closed-form E and M steps and the class-probability heads.

Private: the public names are exported by the top-level package."""
