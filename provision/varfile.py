"""Every variable an image-builder v0.1.48 var file can set for the hcloud build, and what this
tool does with it: honoured (changes the recipe as it does upstream), ignored as upstream's
Ubuntu/hcloud path ignores it, taken from the project config instead, or refused unless left at
upstream's default (a feature this tool does not implement). A key image-builder does not know
is refused too: a typo must not silently build something else.

Upstream's variables are those of ``packer/config/*.json`` and ``packer/hcloud/*.json``;
``kubelet_extra_args`` (a kubernetes-role default, set upstream through ``ansible_user_vars``)
is accepted as a key as well. Refusals are bad input: exit 2 in preflight, before any API call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HONOURED = frozenset(
    {
        "kubernetes_semver", "kubernetes_series", "kubernetes_deb_version", "kubernetes_source_type",
        "kubernetes_cni_semver", "kubernetes_cni_source_type", "kubernetes_cni_deb_version",
        "kubernetes_container_registry", "kubernetes_http_source", "kubernetes_cni_http_source",
        "kubernetes_deb_repo", "kubernetes_deb_gpg_key", "crictl_version", "crictl_source_type",
        "containerd_version", "runc_version", "containerd_cri_socket", "pause_image", "ubuntu_repo",
        "ubuntu_security_repo", "extra_debs", "kubelet_extra_args",
    }
)  # fmt: skip

# Read by upstream only on other distributions or providers, or only by packer/goss/ansible
# plumbing that has no counterpart here: any value is accepted, as upstream's hcloud Ubuntu
# path would ignore it.
# fmt: off
IGNORED = {
    **dict.fromkeys(
        (
            "kubernetes_rpm_version",
            "kubernetes_rpm_repo",
            "kubernetes_rpm_gpg_key",
            "kubernetes_rpm_gpg_check",
            "kubernetes_rpm_repo_arch",
            "kubernetes_cni_rpm_version",
            "extra_rpms",
            "redhat_epel_rpm",
            "epel_rpm_gpg_key",
            "flatcar_channel",
            "flatcar_version",
        ),
        "RPM/Flatcar only: the Debian-family path never reads it",
    ),
    **dict.fromkeys(
        (
            "goss_arch",
            "goss_download_path",
            "goss_entry_file",
            "goss_format",
            "goss_format_options",
            "goss_inspect_mode",
            "goss_remote_folder",
            "goss_remote_path",
            "goss_retry_timeout",
            "goss_skip_install",
            "goss_sleep",
            "goss_tests_dir",
            "goss_url",
            "goss_vars_file",
            "goss_version",
        ),
        "goss settings: the recipe's verify step runs the checks itself",
    ),
    **dict.fromkeys(
        (
            "build_name",
            "build_timestamp",
            "manifest_output",
            "ib_version",
            "exclude_from_latest",
            "direct_shared_gallery_image_id",
            "existing_ansible_ssh_args",
            "ansible_scp_extra_args",
            "ansible_common_ssh_args",
            "ansible_common_vars",
            "distribution",
            "distribution_release",
            "distribution_version",
            "arch",
            "crictl_arch",
            "kubernetes_goarch",
            "root_device_name",
            "python_path",
        ),
        "packer/ansible plumbing: the builder derives it (labels, names, architecture)",
    ),
    "containerd_gvisor_version": "read only with containerd_gvisor_runtime, which must stay off",
    "containerd_wasm_shims_version": "read only with containerd_wasm_shims_runtimes, which must stay empty",
    "containerd_wasm_shims_url": "read only with containerd_wasm_shims_runtimes, which must stay empty",
    "containerd_wasm_shims_sha256": "read only with containerd_wasm_shims_runtimes, which must stay empty",
    "containerd_wasm_shims_runtime_versions": "read only with containerd_wasm_shims_runtimes, which must stay empty",
}
# fmt: on

# Packer settings the project config holds: set in a var file they would silently not apply.
PROJECT_FIELDS = {
    "image": "image",
    "image_name": "image_name",
    "server_type": "server_type",
    "hcloud_location": "location",
    "token": "token_env (the token stays in the environment)",
    "ssh_username": "— (the build logs in as root, as on Hetzner's images)",
}

# Features this tool does not implement: accepted at upstream's default (what upstream's
# packer/config sets), refused otherwise.
DEFAULT_ONLY: dict[str, str] = {
    "http_proxy": "", "https_proxy": "", "no_proxy": "",
    "containerd_additional_settings": "", "containerd_gvisor_runtime": "false",
    "containerd_wasm_shims_runtimes": "", "load_additional_components": "false",
    "additional_executables": "false", "additional_executables_destination_path": "",
    "additional_executables_list": "", "additional_registry_images": "false",
    "additional_registry_images_list": "", "additional_s3": "false", "additional_s3_access": "",
    "additional_s3_bucket": "", "additional_s3_ceph": "false", "additional_s3_destination_path": "",
    "additional_s3_endpoint": "", "additional_s3_object": "", "additional_s3_secret": "",
    "additional_url_images": "false", "additional_url_images_list": "", "ecr_credential_provider": "false",
    "ecr_credential_provider_arch": "", "ecr_credential_provider_aws_profile": "",
    "ecr_credential_provider_base_url": "", "ecr_credential_provider_binary_filename": "",
    "ecr_credential_provider_install_dir": "", "ecr_credential_provider_match_images": "",
    "ecr_credential_provider_os": "", "ecr_credential_provider_version": "", "debug_tools": "false",
    "disable_public_repos": "false", "extra_repos": "", "remove_extra_repos": "false",
    "reenable_public_repos": "true", "pip_conf_file": "", "firstboot_custom_roles_pre": "",
    "firstboot_custom_roles_post": "", "node_custom_roles_pre": "", "node_custom_roles_post": "",
    "node_custom_roles_post_sysprep": "", "kubeadm_template": "etc/kubeadm.yml",
    "kubernetes_apiserver_port": "6443", "kubernetes_load_additional_imgs": "false",
    "netplan_removal_excludes": "", "build_target": "virt", "systemd_prefix": "/usr/lib/systemd",
    "sysusr_prefix": "/usr", "sysusrlocal_prefix": "/usr/local", "ansible_user_vars": "",
    "ansible_extra_vars": "",
    # packer/hcloud/packer.json's default, lower-cased as _normal compares
    "containerd_service_url": "https://raw.githubusercontent.com/containerd/containerd/refs/tags/v{{user `containerd_version`}}/containerd.service",
}  # fmt: skip
_ANSIBLE = "it passes variables to upstream's Ansible roles; set the keys themselves"
_ROLES = "Ansible roles do not run here: use provision.scripts"
DEFAULT_ONLY_WHY = {
    "containerd_service_url": (
        "the recipe renders containerd's own unit for the installed containerd major instead of downloading "
        "one unverified; a different unit belongs in provision.scripts"
    ),
    "ansible_user_vars": _ANSIBLE,
    "ansible_extra_vars": _ANSIBLE,
    **dict.fromkeys(
        (
            "firstboot_custom_roles_pre",
            "firstboot_custom_roles_post",
            "node_custom_roles_pre",
            "node_custom_roles_post",
            "node_custom_roles_post_sysprep",
        ),
        _ROLES,
    ),
}


def _normal(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip().lower()


def problems(raw: Mapping[str, Any]) -> list[str]:
    """What is wrong with a var file's keys, one sentence each (empty: every key is fine)."""
    out = []
    for key in sorted(raw):
        value = raw[key]
        if key in HONOURED or key in IGNORED:
            continue
        if key in PROJECT_FIELDS:
            if _normal(value):
                out.append(f"{key}: a packer setting; set it in the project config ({PROJECT_FIELDS[key]})")
        elif key in DEFAULT_ONLY:
            default = DEFAULT_ONLY[key]
            if _normal(value) != default:
                why = DEFAULT_ONLY_WHY.get(key, "this tool does not implement it")
                out.append(f"{key}={value!r} is not supported ({why}); leave it at {default!r} or remove it")
        else:
            out.append(f"{key}: not an image-builder v0.1.48 variable (a typo?)")
    return out
