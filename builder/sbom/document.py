"""An Inventory as a CycloneDX 1.6 JSON document (cyclonedx-python-lib, validated against the
spec's schema by the library), the way CVE scanners (grype, trivy) read an SBOM: packages as
``pkg:deb`` purls with the distro qualifier, downloaded binaries as files with their sha256 and
source URL, pre-pulled images as ``pkg:oci`` purls with their digest, the OS and its kernel.

Two digests: the file's (it leads from a snapshot label back to the document) and the
content's — packages, binaries, images, kernel, without the timestamp and serial number a
document carries — so two builds of the same content compare equal (``build --skip-unchanged``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from typing import Any

from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, Property, XsUri
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from packageurl import PackageURL

from .inventory import Inventory

SPEC_VERSION = SchemaVersion.V1_6
LABEL_FILE = "sbom-sha256"  # snapshot label: the document's sha256 (first 32 hex)
LABEL_CONTENT = "sbom-content"  # snapshot label: the content digest (first 32 hex)
PREFIX = 32  # a label value holds at most 63 characters: 128 bits of the sha256


class SbomError(ValueError):
    """The document does not validate (a bug) or cannot be read."""


def _validate(text: str, version: SchemaVersion) -> Any:
    """The schema's first complaint about ``text``, or None. Imported here: the validator pulls
    in jsonschema's format checkers, whose grammar takes 1.5 s to build, and every CLI command
    (``--help`` too) would pay it at start-up."""
    from cyclonedx.validation.json import JsonStrictValidator

    return JsonStrictValidator(version).validate_str(text)


def content_digest(inv: Inventory) -> str:
    """sha256 over what the node holds, in a canonical order: equal for two builds whose
    packages, binaries, images, kernel and OS are equal."""
    canonical = {
        "os": [inv.os_id, inv.os_version, inv.os_codename],
        "kernel": inv.kernel,
        "packages": [[p.name, p.version, p.arch, p.held] for p in inv.packages],
        "binaries": [[b.path, b.sha256] for b in inv.binaries],
        "images": [[i.ref, i.digest] for i in inv.images],
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _deb_purl(inv: Inventory, name: str, version: str, arch: str, source: str) -> str:
    qualifiers = {"arch": arch, "distro": f"{inv.os_id}-{inv.os_version}"}
    if source and source != name:
        qualifiers["upstream"] = source
    return str(PackageURL("deb", inv.os_id or "debian", name, version, qualifiers))


def _oci_purl(ref: str, digest: str) -> str:
    name_part, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
    repository, _, name = name_part.rpartition("/")
    qualifiers = {"repository_url": f"{repository}/{name}" if repository else name}
    if tag:
        qualifiers["tag"] = tag
    return str(PackageURL("oci", None, name, digest, qualifiers))


def document(inv: Inventory, *, image_name: str, build_id: str, created: dt.datetime, tool_version: str) -> str:
    """The CycloneDX JSON text, validated."""
    bom = Bom(serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"capi-image:{image_name}:{build_id}"))
    bom.metadata.timestamp = created
    bom.metadata.component = Component(
        name=image_name,
        type=ComponentType.PLATFORM,
        bom_ref="image",
        description="Cluster API node image (Hetzner Cloud snapshot)",
        properties=[
            Property(name="capi-image:build-id", value=build_id),
            Property(name="capi-image:version", value=tool_version),
            Property(name="capi-image:content-sha256", value=content_digest(inv)),
        ],
    )
    if inv.os_id:
        bom.components.add(
            Component(
                name=inv.os_id,
                version=inv.os_version,
                type=ComponentType.OPERATING_SYSTEM,
                bom_ref="os",
                properties=[Property(name="capi-image:kernel", value=inv.kernel)] if inv.kernel else [],
            )
        )
    for p in inv.packages:
        props = [Property(name="capi-image:apt-mark", value="hold")] if p.held else []
        props.append(Property(name="capi-image:source-version", value=p.source_version))
        bom.components.add(
            Component(
                name=p.name,
                version=p.version,
                type=ComponentType.LIBRARY,
                purl=PackageURL.from_string(_deb_purl(inv, p.name, p.version, p.arch, p.source)),
                bom_ref=f"deb:{p.name}:{p.arch}",
                properties=props,
            )
        )
    for b in inv.binaries:
        refs = [ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(b.url))] if b.url else []
        bom.components.add(
            Component(
                name=b.path,
                version=b.version,
                type=ComponentType.FILE,
                bom_ref=f"file:{b.path}",
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=b.sha256)],
                external_references=refs,
            )
        )
    for i in inv.images:
        bom.components.add(
            Component(
                name=i.ref,
                version=i.digest,
                type=ComponentType.CONTAINER,
                purl=PackageURL.from_string(_oci_purl(i.ref, i.digest)),
                bom_ref=f"oci:{i.ref}",
            )
        )
    text = JsonV1Dot6(bom).output_as_string(indent=1)
    problem = _validate(text, SPEC_VERSION)
    if problem is not None:
        raise SbomError(f"the SBOM does not validate against CycloneDX {SPEC_VERSION.to_version()}: {problem}")
    return text + "\n"


def file_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def labels(text: str, inv: Inventory) -> dict[str, str]:
    """The snapshot labels that lead back to the document and say what it holds."""
    return {LABEL_FILE: file_digest(text)[:PREFIX], LABEL_CONTENT: content_digest(inv)[:PREFIX]}


def load(text: str, where: str) -> dict[str, Any]:
    """A CycloneDX JSON document, validated, as plain data."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise SbomError(f"{where} is not JSON: {e}") from e
    if not isinstance(data, dict) or data.get("bomFormat") != "CycloneDX":
        raise SbomError(f"{where} is not a CycloneDX document")
    problem = _validate(text, SchemaVersion.from_version(str(data.get("specVersion"))))
    if problem is not None:
        raise SbomError(f"{where} does not validate: {problem}")
    return data
