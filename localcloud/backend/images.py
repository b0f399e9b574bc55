"""Images: update (publish, relabel) and delete (``/images``). Snapshots are made by the
``create_image`` server action (server_actions.py)."""

from __future__ import annotations

from typing import Any

from ..errors import APIError, invalid_input
from ..labels import validate_labels
from ..models import Image
from .core import BackendCore


class Images(BackendCore):
    def update_image(self, image_id: int, body: dict[str, Any]) -> Image:
        img = self.get_image(image_id)
        if img.type == "system":
            raise APIError("forbidden", "system images cannot be modified", status=403)
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise invalid_input("description", "must be a string")
        new_type = body.get("type")
        if new_type is not None and new_type != "snapshot":
            raise invalid_input("type", "can only be changed to 'snapshot'")
        labels = validate_labels(body["labels"]) if body.get("labels") is not None else None
        if description is not None:
            img.description = description
        if new_type is not None:
            img.type, img.bound_to = "snapshot", None
        if labels is not None:
            img.labels = labels
        self._save()
        return img

    async def delete_image(self, image_id: int) -> None:
        img = self.get_image(image_id)
        if img.type not in ("snapshot", "backup"):
            raise APIError("forbidden", "only snapshots and backups can be deleted", status=403)
        if img.protection_delete:
            raise APIError("protected", f"image {img.id} is protected against deletion")
        if img.status == "creating":
            raise APIError("locked", f"image {img.id} is still being created")
        del self.images[image_id]
        await self.driver.delete_image(img)
        self._save()
