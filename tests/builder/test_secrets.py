"""Secrets never reach an output channel, in any rendering: the suite's list of secret shapes
through ``capi-image plan`` (stdout, stderr) with baked registry credentials, and through the
log scrubber (what every log line, the manifest and error messages pass)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from builder import log as logmod

REPO = Path(__file__).resolve().parents[2]
# Shapes a password or token takes: short, with URL and shell characters, non-ASCII with a
# newline (pasted), long like an API token, base64-looking.
SHAPES = ["ab", "p@ss w/rd&x=1", "tok€n\n", "Z" * 64, "AB+/x==", "a:b"]


def forms(user: str, secret: str) -> list[str]:
    """Every rendering that would give the secret away."""
    basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
    out = [secret.strip(), basic, urllib.parse.quote(secret, safe=""), json.dumps(secret)[1:-1]]
    return [f for f in out if f]


@pytest.mark.parametrize("secret", SHAPES, ids=range(len(SHAPES)))
def test_plan_with_baked_credentials_shows_no_rendering_of_the_password(tmp_path: Path, secret: str) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    prod = (config / "projects" / "prod.yaml").read_text()
    baked = prod.replace(
        '    project_pattern: "proxy-{registry}"\n',
        '    project_pattern: "proxy-{registry}"\n    username_env: REG_USER\n    password_env: REG_PASS\n'
        "    bake_credentials: true\n",
    )
    assert baked != prod
    (config / "projects" / "baked.yaml").write_text(baked)
    env = {**os.environ, "CAPI_IMAGE_CONFIG_DIR": str(config), "CONTAINER_REGISTRY_URL": "https://harbor.example.com",
           "REG_USER": "robot$ci", "REG_PASS": secret}  # fmt: skip
    for output in ("text", "json"):
        r = subprocess.run([sys.executable, "-m", "builder.cli", "plan", "-p", "baked", "-o", output],
                           env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        assert "hosts.toml" in r.stdout
        for form in forms("robot$ci", secret):
            if len(form) < 4:  # a short one is masked where it stands alone (see below)
                continue
            assert form not in r.stdout and form not in r.stderr, (output, form)


@pytest.mark.parametrize("secret", SHAPES, ids=range(len(SHAPES)))
def test_the_scrubber_masks_every_rendering_of_any_length(secret: str) -> None:
    logmod.redact(secret, base64.b64encode(f"robot:{secret}".encode()).decode())
    try:
        for form in forms("robot", secret):
            for text in (f"password={form}", f'{{"authorization": "Basic {form}"}}', f"{form} failed"):
                scrubbed = logmod.scrub(text)
                assert form not in scrubbed.replace(logmod.MASK, ""), (text, scrubbed)
        # Short secrets do not garble ordinary words.
        assert logmod.scrub("about abc cab") == "about abc cab" or len(secret.strip()) >= 4
    finally:
        logmod.forget_secrets()
