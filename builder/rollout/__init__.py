"""``capi-image manifests``, in pieces: see ``builder/ops/manifests.py``."""
