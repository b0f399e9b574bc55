"""What the tool creates and deletes in a project, in one place: build, gc and prune share it.

Every operation goes through ``Cloud.call`` (retries that never duplicate) and ends only when
the API confirms the outcome: a server runs, a snapshot is available, a deleted resource answers
``not_found``. A create that may still be on its way when an exception leaves it (an interrupt)
is remembered in ``in_flight``, so cleanup waits for it before searching by label.

A resource is created with the labels ``created-by=capi-image``, ``build-id=<id>`` and
``role=<build|boot-test>``, which is how a retry, the cleanup and ``capi-image gc`` find it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from hcloud.images import BoundImage, Image
from hcloud.locations import Location
from hcloud.server_types import ServerType
from hcloud.servers import BoundServer, Server
from hcloud.ssh_keys import BoundSSHKey, SSHKey

from . import placement
from .deletes import Deletes
from .errors import CloudError, DeadlineError
from .keys import KeyPair
from .listing import Kind, label_selector

CREATED_BY = "capi-image"


class Resources(Deletes):
    """Create, wait for and delete servers, SSH keys and snapshots. ``labels`` are put on
    everything created (a build's ``created-by``/``build-id``); gc and prune only delete."""

    @contextlib.contextmanager
    def creating(self) -> Iterator[None]:
        """Around a create call. An exception that leaves it (an interrupt, mostly) may leave the
        request in flight: the API can still carry it out after we stopped listening."""
        self.attempted_create = True
        self.in_flight = True
        try:
            yield
        except CloudError:
            # A definitive answer (or retries exhausted after answers): nothing is still on its way.
            self.in_flight = False
            raise
        self.in_flight = False

    # ------------------------------------------------------------------ create
    def upload_key(self, role: str, name: str, key: KeyPair) -> int:
        keys = self.cloud.client.ssh_keys

        def recover() -> BoundSSHKey | None:
            found = keys.get_all(label_selector=self.role_selector(role))
            return found[0] if found else None

        with self.creating():
            created = self.cloud.call(
                f"create SSH key{'' if role == 'build' else ' (' + role + ')'}",
                lambda: keys.create(name=name, public_key=key.public_openssh, labels={**self.labels, "role": role}),
                recover=recover,
            )
        assert created.id is not None
        self.log.info("ssh_key.created", ssh_key_id=created.id, role=role)
        return created.id

    def launch(
        self,
        role: str,
        name: str,
        *,
        image_id: int,
        key_id: int,
        user_data: str,
        placements: placement.Placements,
        track: Callable[[int], None],
    ) -> tuple[placement.Candidate, str]:
        """Create a server on the first placement with capacity, wait until it runs; return
        where it runs and its IPv4. ``track`` learns the id as soon as the API gives it."""
        servers = self.cloud.client.servers
        actions: list[int] = []
        what = "create server" if role == "build" else f"create server ({role})"
        candidate = placements.current

        def create() -> BoundServer:
            r = servers.create(
                name=name,
                server_type=ServerType(name=candidate.server_type),
                image=Image(id=image_id),
                location=Location(name=candidate.location),
                ssh_keys=[SSHKey(id=key_id)],
                user_data=user_data,
                labels={**self.labels, "role": role},
            )
            actions.extend(a.id for a in [r.action, *(r.next_actions or [])] if a is not None and a.id is not None)
            assert r.server is not None
            return r.server

        def recover() -> BoundServer | None:
            found = servers.get_all(label_selector=self.role_selector(role))
            return found[0] if found else None

        with self.creating():
            while True:  # the next placement when one has no capacity (a refused create made nothing)
                try:
                    server = self.cloud.call(what, create, recover=recover)
                    answered = time.monotonic()
                    break
                except CloudError as e:
                    if e.code not in placement.CAPACITY_CODES:
                        raise
                    following = placements.refused(candidate, str(e.code), str(e.api_message))
                    if following is None:
                        tried = "; ".join(
                            f"{t['server_type']} in {t['location']}: {t['error']}" for t in placements.tried
                        )
                        raise CloudError(what, f"no capacity in any of the project's placements ({tried})") from e
                    self.log.warning("server.no_capacity", refused=str(candidate), next=str(following), error=e.code)
                    candidate = following
        assert server.id is not None
        server_id: int = server.id
        track(server_id)
        self.log.info("server.created", server_id=server_id, role=role, actions=actions)
        deadline = self.timeouts.api_action
        for action_id in actions:
            self.wait_ok(what, action_id, deadline, started=answered)
        ip = server.public_net.ipv4.ip if server.public_net and server.public_net.ipv4 else None
        if actions and ip:
            # create_server and start_server succeeded: the server runs, at the address the
            # create call answered with (one look fewer per server).
            self.log.info("server.running", server_id=server_id, role=role, ip=ip)
            return candidate, str(ip)

        def running() -> BoundServer | None:
            s = self.cloud.call("get server", lambda: servers.get_by_id(server_id))
            if s.status == "running":
                return s
            if s.status == "off" and not s.locked:
                raise CloudError(what, "the server is off after creation (create or start failed)")
            return None

        s = self.cloud.poll("server running", running, deadline)
        assert s.public_net is not None and s.public_net.ipv4 is not None
        self.log.info("server.running", server_id=s.id, role=role, ip=s.public_net.ipv4.ip)
        return candidate, str(s.public_net.ipv4.ip)

    def wait_ok(
        self, what: str, action_id: int, deadline: float, *, cap: float = 30.0, started: float | None = None
    ) -> None:
        final = self.cloud.wait_action(what, action_id, deadline, cap=cap, started=started)
        if final["status"] != "success":
            raise CloudError(f"{what} ({final['command']})", f"action ended in error: {final['error']}")

    def shut_down(self, server_id: int) -> None:
        """ACPI shutdown (the guest syncs its disks), then power off if it does not stop in time."""
        servers = self.cloud.client.servers
        server = Server(id=server_id)
        action = self.cloud.call("shutdown server", lambda: servers.shutdown(server))
        answered = time.monotonic()
        if action.id is not None:
            final = self.cloud.wait_action("shutdown server", action.id, self.timeouts.api_action, started=answered)
            if final["status"] != "success":
                self.log.warning("shutdown.action_failed", error=final["error"], note="falling back to poweroff")

        def off() -> bool | None:
            return True if self.cloud.call("get server", lambda: servers.get_by_id(server_id)).status == "off" else None

        try:
            self.cloud.poll("server off", off, self.timeouts.shutdown, cap=5)
            return
        except DeadlineError:
            self.log.warning("shutdown.timeout", seconds=self.timeouts.shutdown, note="powering off")
        action = self.cloud.call("poweroff server", lambda: servers.power_off(server))
        if action.id is not None:
            self.wait_ok("poweroff server", action.id, self.timeouts.api_action)
        self.cloud.poll("server off", off, self.timeouts.api_action, cap=5)

    def snapshot(
        self, server_id: int, *, description: str, labels: dict[str, str], track: Callable[[int], None]
    ) -> BoundImage:
        """Snapshot a server (off) and wait until the image is available. ``track`` learns the
        image id before the wait: a failure must be able to delete it."""
        servers, images = self.cloud.client.servers, self.cloud.client.images
        action_ids: list[int] = []

        def create() -> BoundImage:
            r = servers.create_image(Server(id=server_id), description=description, type="snapshot", labels=labels)
            if r.action is not None and r.action.id is not None:
                action_ids.append(r.action.id)
            return r.image

        def recover() -> BoundImage | None:
            found = images.get_all(label_selector=self.selector, type=["snapshot"])
            return found[0] if found else None

        with self.creating():
            image = self.cloud.call("create image", create, recover=recover)
        answered = time.monotonic()
        assert image.id is not None
        image_id: int = image.id
        track(image_id)
        self.log.info("snapshot.creating", image_id=image_id)
        if action_ids:
            final = self.cloud.wait_action(
                "create image", action_ids[0], self.timeouts.snapshot, cap=120, started=answered
            )
            if final["status"] == "success":
                # The image is available once its create_image action succeeded; its size comes
                # with the publish answer.
                self.log.info("snapshot.available", image_id=image_id)
                return image
            # The action can fail while the snapshot still turns out fine: judge the image.
            self.log.warning("snapshot.action_failed", error=final["error"], note="checking the image itself")

        def available() -> BoundImage | None:
            try:
                img = self.cloud.call("get image", lambda: images.get_by_id(image_id))
            except CloudError as e:
                if e.code == "not_found":
                    raise CloudError("create image", "the snapshot disappeared (the create_image action failed)") from e
                raise
            return img if img.status == "available" else None

        img = self.cloud.poll("snapshot available", available, self.timeouts.snapshot, cap=30)
        self.log.info("snapshot.available", image_id=img.id, image_size_gb=img.image_size)
        return img

    def relabel(self, image_id: int, *, labels: dict[str, str], description: str) -> BoundImage:
        images = self.cloud.client.images
        return self.cloud.call(
            "publish image", lambda: images.update(Image(id=image_id), labels=labels, description=description)
        )


__all__ = ["CREATED_BY", "Kind", "Resources", "label_selector"]
