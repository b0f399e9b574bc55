"""``make parity``: image-builder v0.1.48's own node playbook and this project's recipe on twin
localcloud VMs (same base image, var file and artifact mirror), then the two machines compared.

Not part of ``make test`` (two full builds under TCG take ~30 min); its latest report is kept
in ``docs/parity-report.md``. Upstream's files are read in place from
``../shared/reference/image-builder-v0.1.48`` and never copied into this repository.
"""
