# capi-image: every target installs what it needs first, so on a fresh machine
#   make image PROJECT=local   builds a node image against localcloud
#   make test                  runs the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROJECT ?= local
PYTEST_ARGS ?=
# Two workers: the real-VM tests in one (see tests/conftest.py), the rest beside them. -n 0 in
# PYTEST_ARGS runs everything in one process.
PYTEST_XDIST ?= -n 2
STAMP := $(VENV)/.installed
SYSTEM_PACKAGES := qemu-system-x86 qemu-utils mmdebstrap genisoimage e2fsprogs hcloud-cli openssh-client python3-venv ca-certificates gnupg gcc libc6-dev
SYSTEM_TOOLS := qemu-system-x86_64 qemu-img mmdebstrap genisoimage debugfs mkfs.ext4 hcloud ssh gpg cc

BUILD_ARGS ?=

.PHONY: help setup system-deps python-deps base-image artifacts golden test lint format serve image bench bench-boot gc images clean parity docs

help:
	@echo "make image PROJECT=NAME  build a node image (PROJECT=local: against localcloud, no account)"
	@echo "make test                the test suite (installs everything first)"
	@echo "make lint                ruff + mypy"
	@echo "make base-image          build localcloud's debian-12 base image (cached)"
	@echo "make artifacts           populate localcloud's artifact mirror (cached)"
	@echo "make serve               localcloud with real VMs on a free port"
	@echo "make gc PROJECT=NAME     delete leftovers of crashed builds (BUILD_ARGS='--older-than 0s')"
	@echo "make images PROJECT=NAME list the snapshots capi-image built"
	@echo "make bench               API requests and wall time beside the real Packer"
	@echo "make bench-boot          SSH time of the newest node image vs its base image (PROJECT=local)"
	@echo "make golden              regenerate the golden plans after a deliberate recipe change"
	@echo "make docs                regenerate docs/cli.md and docs/configuration-reference.md"
	@echo "make parity              image-builder's own playbook vs this recipe on twin VMs (~30 min)"
	@echo "make setup               system packages + virtualenv only"

system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages (missing:$$missing)"; \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root, or: sudo apt-get install $(SYSTEM_PACKAGES)" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
	fi

# pyproject.toml says what works (ranges); constraints.txt pins what CI tested, so every machine
# installs the same versions. After a deliberate upgrade: pip freeze --exclude-editable > constraints.txt
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

python-deps: $(STAMP)

setup: system-deps python-deps

base-image: setup
	$(PY) -m localcloud base-image

# localcloud's artifact mirror (Debian's containerd/runc/CNI + labelled stand-ins), cached.
artifacts: setup
	$(PY) -m localcloud artifacts

# pytest exits 5 when it collected nothing: a suite that tests nothing is a failure, said plainly.
test: setup base-image artifacts
	@$(PY) -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5): failing" >&2; fi; exit $$rc

lint: python-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Golden plans (tests/data/golden): regenerate after a deliberate recipe change, review the diff.
golden: python-deps
	$(PY) -m tests.golden --write

# image-builder v0.1.48's Ansible (its pin, ansible-core 2.15) in its own virtualenv: its
# dependencies (jinja2, resolvelib, ...) stay out of the tool's.
PARITY_VENV ?= .venv-parity
ANSIBLE_VERSION := 8.7.0
$(PARITY_VENV)/.ansible-$(ANSIBLE_VERSION):
	$(PYTHON) -m venv $(PARITY_VENV)
	$(PARITY_VENV)/bin/pip install -q 'ansible==$(ANSIBLE_VERSION)'
	touch $@

# Upstream's node playbook and this recipe on twin localcloud VMs, compared; report in
# docs/parity-report.md, non-zero exit on an unexplained difference. Not part of `make test`.
parity: setup base-image artifacts $(PARITY_VENV)/.ansible-$(ANSIBLE_VERSION)
	$(PY) -m tests.parity --ansible-playbook $(PARITY_VENV)/bin/ansible-playbook

# The generated references (docs/cli.md, docs/configuration-reference.md); tests/test_docs.py
# fails when they are stale.
docs: python-deps
	$(PY) -m builder.docs --write

format: python-deps
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The local project builds against localcloud's real VMs: it needs the base image.
ifneq (,$(filter local local-%,$(PROJECT)))
IMAGE_DEPS := setup base-image artifacts
else
IMAGE_DEPS := python-deps
endif

image: $(IMAGE_DEPS)
	$(VENV)/bin/capi-image build --project $(PROJECT) $(BUILD_ARGS)

gc: python-deps
	$(VENV)/bin/capi-image gc --project $(PROJECT) $(BUILD_ARGS)

images: python-deps
	$(VENV)/bin/capi-image images --project $(PROJECT)

# --vm builds the local project on real VMs: it needs the base image and the artifact mirror.
ifneq (,$(findstring --vm,$(BENCH_ARGS)))
BENCH_DEPS := setup base-image artifacts
else
BENCH_DEPS := python-deps
endif

bench: $(BENCH_DEPS)
	$(PY) -m builder.ops.bench $(BENCH_ARGS)

# After `make image PROJECT=local`: boots its base image and the newest snapshot in turn.
bench-boot: setup base-image
	$(PY) -m builder.ops.bootbench -p $(PROJECT) $(BENCH_ARGS)

serve: base-image artifacts
	$(PY) -m localcloud serve --backend qemu --state-dir .state/localcloud

clean:
	rm -rf $(VENV) .state dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
