"""The emulated cloud's state and behaviour ("backend", kept apart from HTTP as moto does):
shared state in core.py, one module per resource."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .core import ACTION_FAULT, DEFAULT_ACTION_TIMES, ActionFault, BackendCore
from .images import Images
from .server_actions import ServerActions
from .servers import Servers
from .ssh_keys import SSHKeys, ssh_fingerprint

log = logging.getLogger("localcloud")


class Backend(Servers, ServerActions, Images, SSHKeys):
    """Every resource's behaviour on the shared state, plus the admin API's view and reset."""

    # ------------------------------------------------------------------ admin
    def dump(self) -> dict[str, Any]:
        from ..views import action_json, image_json, server_json, ssh_key_json

        return {
            "servers": [server_json(s, self.server_image(s)) for s in self.servers.values()],
            "images": [image_json(i) for i in self.images.values()],
            "ssh_keys": [ssh_key_json(k) for k in self.ssh_keys.values()],
            "actions": [action_json(a) for a in self.actions.values()],
            "machines": getattr(self.driver, "describe", lambda: {})(),
        }

    async def reset(self) -> None:
        """Forget every server, key, snapshot and action; system images stay."""
        await self.drain()
        for s in list(self.servers.values()):
            await self.driver.delete(s)
        self.servers.clear()
        for i in list(self.images.values()):
            if i.id not in self._system_image_ids:
                await self.driver.delete_image(i)
                del self.images[i.id]
        self.ssh_keys.clear()
        self.actions.clear()
        self.placement.clear()
        self._save()

    async def close(self) -> None:
        """Stop: running actions are abandoned, every machine and server disk goes away."""
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for s in list(self.servers.values()):
            try:
                await self.driver.delete(s)
            except Exception:
                log.exception("could not delete server %s on close", s.id)
        self.servers.clear()
        for i in list(self.images.values()):
            if i.status != "available" and i.id not in self._system_image_ids:
                await self.driver.delete_image(i)
                del self.images[i.id]
        self._save()
        await self.driver.close()


__all__ = ["ACTION_FAULT", "DEFAULT_ACTION_TIMES", "ActionFault", "Backend", "BackendCore", "ssh_fingerprint"]
