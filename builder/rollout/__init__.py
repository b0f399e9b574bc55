"""``capi-image manifests``, in pieces: see ``builder/manifests.py``."""
