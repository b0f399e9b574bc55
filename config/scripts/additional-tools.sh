#!/bin/bash
# Extra tools on every node (the seed's additional-tools.sh): yq, checksum-pinned.
# Environment (set by capi-image): ARCH, OS, KUBERNETES_VERSION, CONTAINERD_VERSION, BUILD_ID,
# CONTAINER_REGISTRY_URL, GITHUB_RELEASES_URL.
set -o errexit -o nounset -o pipefail

YQ_VERSION=v4.49.2
case "$ARCH" in
  amd64) YQ_SHA256=be2c0ddcf426b6a231648610ec5d1666ae50e9f6473e82f6486f9f4cb6e3e2f7 ;;
  *) echo "no pinned yq checksum for $ARCH: add one before building for it" >&2; exit 1 ;;
esac

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
curl -fsSL --retry 5 -o "$tmp" "${GITHUB_RELEASES_URL}/mikefarah/yq/releases/download/${YQ_VERSION}/yq_linux_${ARCH}"
echo "${YQ_SHA256}  ${tmp}" | sha256sum --check --quiet
install -m 0755 "$tmp" /usr/bin/yq
yq --version
