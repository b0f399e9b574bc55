"""Step 5, kubernetes (image-builder's kubernetes role): kubelet/kubeadm/kubectl from the
pkgs.k8s.io deb repo (``pkg``) or release binaries (``http``), crictl, kubelet enabled but
stopped, completions, profile script, image pre-pull."""

from __future__ import annotations

import io

from ruamel.yaml import YAML

from ..options import RecipeContext
from ..plan import Put, Run, Step
from .common import APT_ENV, APT_GET, apt_install, fetch, pinned_or_published

KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"
SOURCES = "/etc/apt/sources.list.d/kubernetes.sources"
BINARIES = ("kubelet", "kubeadm", "kubectl")

KUBELET_UNIT = """\
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""
KUBEADM_DROPIN = """\
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/sysconfig/kubelet
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""
PROFILE_SCRIPT = """\
# Interactive shells on a node: kubectl talks to this cluster if this is a control plane node.
if [ -n "${BASH_VERSION:-}" ] && [[ $- == *i* ]]; then
  for f in /etc/kubernetes/super-admin.conf /etc/kubernetes/admin.conf; do
    if [ -r "$f" ]; then export KUBECONFIG="$f"; break; fi
  done
  alias k=kubectl
  # bash-completion loads kubectl's completion lazily; load it now so the alias completes too.
  __load_completion kubectl >/dev/null 2>&1 || true
  complete -o default -F __start_kubectl k 2>/dev/null || true
fi
"""


def _series(template: str, ctx: RecipeContext) -> str:
    """image-builder's var files spell the series as a packer template."""
    return template.replace("{{ user `kubernetes_series` }}", ctx.versions.kubernetes_series)


def deb_repo(ctx: RecipeContext) -> str:
    """The project's ``artifacts.kubernetes_deb_repo`` if set, else the var file's, else
    image-builder's default (pkgs.k8s.io for the series)."""
    a, v = ctx.options.artifacts, ctx.versions
    if "kubernetes_deb_repo" not in a.model_fields_set and v.kubernetes_deb_repo:
        return _series(v.kubernetes_deb_repo, ctx)
    return a.kubernetes_deb_repo.format(series=v.kubernetes_series)


def deb_gpg_key(ctx: RecipeContext) -> str:
    v = ctx.versions
    return _series(v.kubernetes_deb_gpg_key, ctx) if v.kubernetes_deb_gpg_key else f"{deb_repo(ctx)}Release.key"


def kubeadm_config(ctx: RecipeContext) -> str:
    v = ctx.versions
    docs = [
        {
            "apiVersion": "kubeadm.k8s.io/v1beta3",
            "kind": "ClusterConfiguration",
            "imageRepository": v.kubernetes_container_registry,
            "kubernetesVersion": v.kubernetes_semver,
            "dns": {"imageRepository": f"{v.kubernetes_container_registry}/coredns"},
        },
        {
            "apiVersion": "kubeadm.k8s.io/v1beta3",
            "kind": "InitConfiguration",
            "nodeRegistration": {"criSocket": f"unix://{v.containerd_cri_socket}"},
        },
    ]
    out = io.StringIO()
    YAML(typ="safe").dump_all(docs, out)
    return out.getvalue()


def crictl_url(ctx: RecipeContext) -> tuple[str, str]:
    v, a = ctx.versions, ctx.options.artifacts
    name = f"crictl-v{v.crictl_version.lstrip('v')}-linux-{ctx.deb_arch}.tar.gz"
    base = f"{(a.crictl_url or v.crictl_url).rstrip('/')}/v{v.crictl_version.lstrip('v')}"
    return f"{base}/{name}", pinned_or_published(a.sha256, name, f"{base}/{name}.sha256")


def binary_url(ctx: RecipeContext, binary: str) -> tuple[str, str]:
    v, a = ctx.versions, ctx.options.artifacts
    base = f"{(a.kubernetes_http_source or v.kubernetes_http_source).rstrip('/')}/{v.kubernetes_semver}/bin/linux/{ctx.deb_arch}"
    return f"{base}/{binary}", pinned_or_published(a.sha256, binary, f"{base}/{binary}.sha256")


def kubernetes(ctx: RecipeContext) -> Step:
    v = ctx.versions
    ops: list[Put | Run] = []
    if v.kubernetes_source_type == "pkg":
        repo = deb_repo(ctx)
        pinned_key = ctx.options.artifacts.sha256.get("Release.key")
        # The repo key has no published checksum: pin it (artifacts.sha256["Release.key"]) to
        # verify it; unpinned, it rests on TLS alone — the one download that can (documented).
        get_key = (
            [
                fetch(deb_gpg_key(ctx), "/tmp/capi-image/Release.key", pinned_key),
                Run(f"gpg --batch --yes --dearmor -o {KEYRING} /tmp/capi-image/Release.key"),
            ]
            if pinned_key
            else [
                Run(
                    f"curl -fsSL --retry 5 {deb_gpg_key(ctx)} | gpg --batch --yes --dearmor -o {KEYRING}",
                    kind="download",
                )
            ]
        )
        ops += [
            Run("install -d -m 0755 /etc/apt/keyrings"),
            *get_key,
            Put(
                SOURCES,
                f"Types: deb\nURIs: {repo}\nSuites: /\nSigned-By: {KEYRING}\n".encode(),
            ),
            # Only the new source: setup fetched the distribution's lists minutes ago (the index
            # of every source would be re-read for nothing; sysprep deletes the lists anyway).
            Run(
                f"{APT_GET} update -o Dir::Etc::SourceList={SOURCES} -o Dir::Etc::SourceParts=- "
                "-o APT::Get::List-Cleanup=false",
                env=APT_ENV,
                kind="apt",
            ),
            apt_install(
                [f"{b}={v.kubernetes_deb_version}" for b in BINARIES]
                + [
                    f"kubernetes-cni={v.kubernetes_cni_deb_version}"
                    if v.kubernetes_cni_deb_version
                    else "kubernetes-cni"
                ],
                "--allow-downgrades",
            ),
        ]
    else:
        for b in BINARIES:
            url, checksum = binary_url(ctx, b)
            ops += [
                fetch(url, f"/tmp/capi-image/{b}", checksum),
                Run(f"install -m 0755 /tmp/capi-image/{b} /usr/bin/{b}"),
            ]
        # What the pkgs.k8s.io debs bring, as upstream's url.yml creates it: the static pod
        # manifests folder, /etc/sysconfig (its drop-in reads /etc/sysconfig/kubelet too).
        ops += [
            Run("install -d -m 0755 /etc/kubernetes/manifests /etc/sysconfig"),
            Put("/etc/systemd/system/kubelet.service", KUBELET_UNIT.encode()),
            Put("/etc/systemd/system/kubelet.service.d/10-kubeadm.conf", KUBEADM_DROPIN.encode()),
        ]
    url, checksum = crictl_url(ctx)
    ops += [
        fetch(url, "/tmp/capi-image/crictl.tar.gz", checksum),
        Run("tar -C /usr/local/bin -xzf /tmp/capi-image/crictl.tar.gz && ln -sf /usr/local/bin/crictl /usr/bin/crictl"),
        # image-builder's etc/sysconfig/kubelet template (Debian: /etc/default/kubelet)
        # Byte for byte as upstream's templates render them: Ansible drops the final newline.
        Put("/etc/default/kubelet", f"KUBELET_EXTRA_ARGS={v.kubelet_extra_args}".encode()),
        Run("systemctl daemon-reload && systemctl enable kubelet && systemctl stop kubelet"),
        Put("/etc/kubernetes-version", v.kubernetes_semver.encode()),
        Run("install -d -m 0755 /usr/libexec/kubernetes /usr/share/bash-completion/completions"),
        Run(
            "kubectl completion bash > /usr/share/bash-completion/completions/kubectl && "
            "kubeadm completion bash > /usr/share/bash-completion/completions/kubeadm && "
            "crictl completion bash > /usr/share/bash-completion/completions/crictl"
        ),
        Put("/etc/profile.d/kubernetes.sh", PROFILE_SCRIPT.encode()),
    ]
    if ctx.options.image_pull:
        sock = v.containerd_cri_socket
        ops += [
            Put("/etc/kubeadm.yml", kubeadm_config(ctx).encode(), 0o600),
            # Goes through the registry mirrors when configured: containerd reads certs.d.
            Run(f"kubeadm config images pull --config /etc/kubeadm.yml --cri-socket unix://{sock}", kind="download"),
            Run("rm -f /etc/kubeadm.yml"),
        ]
    ops.append(Run("rm -rf /tmp/capi-image"))
    return Step(
        "kubernetes", "kubelet, kubeadm, kubectl, crictl, kubelet enabled but stopped, image pre-pull", tuple(ops)
    )
