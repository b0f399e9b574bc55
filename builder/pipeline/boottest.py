"""The boot-test phase: a server from the new snapshot must come up as a new, healthy node
before anything publishes the snapshot (checks: provision/bootcheck.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from provision.bootcheck import boot_checks
from provision.plan import Step

from ..errors import ProvisionError
from ..keys import KeyPair

if TYPE_CHECKING:
    from .build import Build


def boot_test(b: Build) -> None:
    """Boot a server from the snapshot with a fresh key and host key, check it is a new
    machine in the state a node needs, delete it. A failure fails the build: the snapshot
    is never published."""
    assert b.tracked.image_id is not None
    login, host = KeyPair.generate(), KeyPair.generate()
    name = f"{b.resource_name}-boot"
    b.tracked.boot_key_id = b.res.upload_key("boot-test", name, login)
    ip = b.launch("boot-test", name, b.tracked.image_id, b.tracked.boot_key_id, host)
    session = b.connect_to(ip, login, host, "boot-test", b.tracked.boot_server_id)
    try:
        checks = boot_checks(
            b.image.recipe,
            b.config.recipe,
            build_machine_id=b.build_identity[0],
            build_instance_id=b.build_identity[1],
            host_key_blob=host.public_openssh.split()[1],
        )
        try:
            session.run_step(
                Step("boot-test", "a server booted from the snapshot is a new, healthy node", tuple(checks)),
                timeout=600,  # every boot check, as one SSH command
            )
        except ProvisionError as e:
            raise ProvisionError("boot-test", f"{e.detail}{b.console_hint_for(b.tracked.boot_server_id)}") from e
    finally:
        session.close()
    assert b.tracked.boot_server_id is not None and b.tracked.boot_key_id is not None
    b.res.delete_server(b.tracked.boot_server_id)
    b.tracked.boot_server_id = None
    b.res.delete_key(b.tracked.boot_key_id)
    b.tracked.boot_key_id = None
