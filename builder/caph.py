"""How CAPH turns ``imageName`` into an image, as one function the builder and the manifests share.

CAPH (``getServerImage``) lists images with label ``caph-image-name==V`` and images named ``V``,
both filtered by the server type's architecture, appends the two lists and needs exactly one
result. It looks at neither status nor age, so anything else stalls machine creation.
"""

from __future__ import annotations

from hcloud import Client
from hcloud.images import BoundImage

CAPH_LABEL = "caph-image-name"


def caph_images(client: Client, name: str, arch: str, *, by_name: bool = True) -> list[BoundImage]:
    """The images CAPH would find for ``imageName: name`` on a server type of ``arch``."""
    found = client.images.get_all(label_selector=f"{CAPH_LABEL}=={name}", architecture=[arch])
    if by_name:
        found += client.images.get_all(name=name, architecture=[arch])
    unique: dict[int | None, BoundImage] = {i.id: i for i in found}
    return [unique[k] for k in sorted(unique, key=lambda k: k or 0)]
