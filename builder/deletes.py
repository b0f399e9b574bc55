"""Deleting what the tool made, confirmed. A delete whose action succeeded is final; a
``not_found`` is only a claim (a lost answer, a proxy, a confused API): the resource must also be
absent by id and from the label search, and while it is not, the DELETE is sent again (with
backoff) until it is gone or ``timeouts.api_action`` runs out — then the error names it (exit 3,
``capi-image gc``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hcloud.images import Image
from hcloud.servers import Server
from hcloud.ssh_keys import SSHKey

from .errors import CloudError, DeadlineError
from .listing import Kind, ResourceBase


class Deletes(ResourceBase):
    # ------------------------------------------------------------------ delete
    def _request(self, name: str, fn: Callable[[], Any]) -> Any:
        try:
            return self.cloud.call(name, fn)
        except CloudError as e:
            if e.code == "not_found":
                return None  # already gone (perhaps by an earlier attempt whose answer was lost)
            raise

    def delete_server(self, sid: int) -> None:
        """Delete a server and confirm it is gone, waiting out a lock (a snapshot being taken
        of it, an action still running) rather than failing on it."""
        servers = self.cloud.client.servers
        deadline = self.timeouts.api_action
        unlock_deadline = deadline + self.timeouts.snapshot

        def request() -> list[Any] | None:
            try:
                return [self._request("delete server", lambda: servers.delete(Server(id=sid)))]
            except CloudError as e:
                if e.code == "locked":
                    return None
                raise

        def gone() -> bool | None:
            try:
                s = self.cloud.call("get server", lambda: servers.get_by_id(sid))
            except CloudError as e:
                if e.code == "not_found":
                    return True
                raise
            if s.status != "deleting" and not s.locked:
                request()  # a failed delete action leaves the server: ask again
            return None

        [action] = self.cloud.poll(f"server {sid} unlocked", request, unlock_deadline)
        if action is None:  # the DELETE said not_found: a claim, confirmed (or repeated)
            self._until_gone("servers", sid, f"server {sid}", lambda: servers.delete(Server(id=sid)),
                             lambda: servers.get_by_id(sid))  # fmt: skip
            self.log.info("server.deleted", server_id=sid)
            return
        answered = time.monotonic()
        self.log.info("server.delete_requested", server_id=sid, action=getattr(action, "id", None))
        if action is not None and action.id is not None:
            final = self.cloud.wait_action(
                "delete server", action.id, deadline, started=answered, first_look=self.cloud.poll_initial
            )
            if final["status"] == "success":
                self.log.info("server.deleted", server_id=sid)
                return  # the delete_server action succeeded: the server is gone
        self.cloud.poll(f"server {sid} deleted", gone, deadline, cap=5)
        self.log.info("server.deleted", server_id=sid)

    def delete_image(self, iid: int) -> None:
        """Delete a snapshot (waiting while it is still being created) and confirm it is gone."""
        images = self.cloud.client.images

        def attempt() -> str | None:
            try:
                self.cloud.call(f"delete snapshot {iid}", lambda: images.delete(Image(id=iid)))
                return "deleted"
            except CloudError as e:
                if e.code == "not_found":
                    return "not_found"
                if e.code == "locked":
                    return None
                raise

        answer = self.cloud.poll(f"snapshot {iid} deleted", attempt, self.timeouts.snapshot, cap=30)
        # A 204 is the API's word; a not_found may also be a lost answer or a proxy: confirm.
        if answer == "not_found":
            self._until_gone("snapshots", iid, f"snapshot {iid}", lambda: images.delete(Image(id=iid)),
                             lambda: images.get_by_id(iid))  # fmt: skip
        self.log.info("snapshot.deleted", image_id=iid)

    def delete_key(self, kid: int) -> None:
        """Delete an SSH key; a not_found answer is confirmed (it alone proves nothing: a lost
        answer, or a proxy)."""
        keys = self.cloud.client.ssh_keys
        answered = self._request(f"delete SSH key {kid}", lambda: keys.delete(SSHKey(id=kid)))
        if answered is None:
            self._until_gone("SSH keys", kid, f"SSH key {kid}", lambda: keys.delete(SSHKey(id=kid)),
                             lambda: keys.get_by_id(kid))  # fmt: skip

    def _until_gone(self, kind: Kind, rid: int, what: str, delete: Callable[[], Any], get: Callable[[], Any]) -> None:
        """After a ``not_found``: gone only when neither the id nor the label search finds it;
        while either does, DELETE again."""

        def gone() -> bool | None:
            if self._gone(what, get) and rid not in self.find(kind):
                return True
            self.log.warning("delete.not_found_but_present", resource=what, note="deleting again")
            try:
                self.cloud.call(f"delete {what}", delete)
            except CloudError as e:
                if e.code not in ("not_found", "locked"):
                    raise
            return None

        try:
            self.cloud.poll(f"{what} gone", gone, self.timeouts.api_action, cap=5)
        except DeadlineError as e:
            raise CloudError(f"delete {what}", "the API answered not_found, but it is still there") from e

    def _gone(self, what: str, getter: Callable[[], Any]) -> bool:
        try:
            self.cloud.call(f"get {what}", getter)
        except CloudError as e:
            if e.code == "not_found":
                return True
            raise
        return False


__all__ = ["Deletes"]
