"""Stand-ins for what only the internet has: kubelet, kubeadm, kubectl and crictl.

Shell scripts named ``STANDIN`` in their first lines. They answer the version and completion
commands the recipe and its checks use. The kubeadm stand-in's ``config images pull`` pulls the
images its version needs with ``ctr`` from containerd's ``k8s.io`` namespace, through the
registry mirrors of ``/etc/containerd/certs.d`` (the ``hosts.toml`` files the recipe writes) —
the same hosts configuration containerd's CRI reads, so the pulls travel through localcloud's
registry as a real node's pre-pull travels through Harbor. The crictl stand-in reads containerd
through ``ctr``. They prove the recipe's plumbing, not Kubernetes.
"""

from __future__ import annotations

CERTS_DIR = "/etc/containerd/certs.d"


def standin(name: str, body: str) -> bytes:
    return (
        f"#!/bin/bash\n# STANDIN {name}: a stand-in for the real binary, which only the internet has.\n{body}".encode()
    )


def images(kubernetes: str, registry: str = "registry.k8s.io") -> tuple[str, ...]:
    """What kubeadm of ``kubernetes`` (v1.31.x) pre-pulls from ``registry``."""
    return (
        f"{registry}/kube-apiserver:{kubernetes}",
        f"{registry}/kube-controller-manager:{kubernetes}",
        f"{registry}/kube-scheduler:{kubernetes}",
        f"{registry}/kube-proxy:{kubernetes}",
        f"{registry}/coredns/coredns:v1.11.3",
        f"{registry}/pause:3.10",
        f"{registry}/etcd:3.5.15-0",
    )


def kubelet(kubernetes: str) -> bytes:
    return standin(
        "kubelet",
        f'case "${{1:-}}" in --version) echo "Kubernetes {kubernetes}";; '
        '*) echo "kubelet stand-in: no cluster config" >&2; exit 1;; esac\n',
    )


def kubectl(kubernetes: str) -> bytes:
    return standin(
        "kubectl",
        f'case "$*" in "version --client"*) echo "Client Version: {kubernetes}";;\n'
        '  "completion bash") echo "# kubectl completion (stand-in)";; *) echo "kubectl stand-in" >&2; exit 1;; esac\n',
    )


def kubeadm(kubernetes: str) -> bytes:
    names = " ".join(i.removeprefix("registry.k8s.io/") for i in images(kubernetes))
    return standin(
        "kubeadm",
        f'case "$*" in "version -o short") echo "{kubernetes}";;\n'
        '  "completion bash") echo "# kubeadm completion (stand-in)";;\n'
        '  "config images pull"*)\n'
        # kubeadm's imageRepository (from --config), else registry.k8s.io, as the real one.
        '    repo=registry.k8s.io; cfg=""; prev=""\n'
        '    for a in "$@"; do if [ "$prev" = --config ]; then cfg=$a; fi; prev=$a; done\n'
        '    if [ -n "$cfg" ]; then r=$(sed -n "s/^imageRepository: *//p" "$cfg" | head -n1); '
        'if [ -n "$r" ]; then repo=$r; fi; fi\n'
        f"    for name in {names}; do\n"
        f'      ctr -n k8s.io images pull --hosts-dir {CERTS_DIR} "$repo/$name" >/dev/null || exit 1\n'
        '      echo "[config/images] Pulled $repo/$name"\n'
        "    done;;\n"
        '  *) echo "kubeadm stand-in" >&2; exit 1;; esac\n',
    )


def crictl() -> bytes:
    return standin(
        "crictl",
        'case "${1:-}" in\n'
        '  completion) echo "# crictl completion (stand-in)";;\n'
        "  ps) ctr -n k8s.io containers ls -q >/dev/null;;\n"
        "  images) names=$(ctr -n k8s.io images ls -q | grep -v '^sha256:');\n"
        '    printf \'{"images":[\'; sep=""; for n in $names; do printf \'%s{"repoTags":["%s"]}\' "$sep" "$n"; sep=","; done; printf "]}\\n";;\n'
        '  *) echo "crictl stand-in" >&2; exit 1;;\n'
        "esac\n",
    )
