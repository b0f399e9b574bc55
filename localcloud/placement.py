"""Per server type and location: availability, deprecation and capacity — Hetzner's
``server_types[].locations[]`` entries, and what ``POST /servers`` answers when a location has
no room (``resource_unavailable``, ``placement_error``). Set through the admin API
(``PUT /__localcloud/placement``) so tests can give a build the capacity reality it meets on
Hetzner; by default every type is available everywhere it is offered."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .errors import APIError


class Deprecation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    announced: dt.datetime
    unavailable_after: dt.datetime

    def to_json(self) -> dict[str, str]:
        return {
            "announced": self.announced.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "unavailable_after": self.unavailable_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


class Placement(BaseModel):
    """The admin API's body: one server type in one location."""

    model_config = ConfigDict(extra="forbid")

    server_type: str
    location: str
    available: bool = True  # false: temporarily unavailable (Hetzner's `available`)
    deprecation: Deprecation | None = None
    # What POST /servers answers for this pair while capacity is out.
    refuse: Literal["resource_unavailable", "placement_error"] | None = None

    def check_create(self, now: dt.datetime) -> None:
        """Raise what Hetzner answers when a server of this type is created here."""
        where = f"server type {self.server_type} in {self.location}"
        if self.deprecation is not None and self.deprecation.unavailable_after <= now:
            raise APIError(
                "invalid_input",
                f"{where} is deprecated and unavailable since {self.deprecation.to_json()['unavailable_after']}",
            )
        if self.refuse == "placement_error":
            raise APIError("placement_error", f"{where}: an error during the placement occurred", status=422)
        if self.refuse == "resource_unavailable" or not self.available:
            raise APIError("resource_unavailable", f"{where} is currently unavailable")
