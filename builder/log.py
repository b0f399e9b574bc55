"""Logging: structlog, readable on a TTY, JSON for CI; secrets redacted everywhere.

Every event carries the build id (bound with structlog's contextvars). Secrets registered with
``redact()`` are replaced in every string of every event, including exception text.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import sys
import urllib.parse
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

LogFormat = Literal["console", "json", "auto"]

_SECRETS: set[str] = set()
MASK = "***"


def renderings(secret: str) -> set[str]:
    """The ways a secret can appear in text: as is, trimmed, escaped as repr() and JSON write
    it (a token with a newline shows as ``secret\\n`` in a traceback or a header repr),
    URL-encoded (a query string, a proxy URL) and base64-encoded."""
    forms = {secret, secret.strip(), repr(secret)[1:-1], json.dumps(secret)[1:-1]}
    forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    forms.add(secret.encode("unicode_escape").decode("ascii"))
    forms.add(urllib.parse.quote(secret, safe=""))
    forms.add(urllib.parse.quote_plus(secret))
    forms.add(base64.b64encode(secret.encode()).decode())
    return {f for f in forms if f}


def _pattern(form: str) -> re.Pattern[str]:
    """Long renderings anywhere; a short one (under 4 characters) only where it stands alone,
    so a 3-character password is masked in ``password=abc`` without masking every word."""
    if len(form) >= 4:
        return re.compile(re.escape(form))
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(form)}(?![A-Za-z0-9])")


def redact(*secrets: str | None) -> None:
    """Never let these strings reach a log line (tokens, registry passwords), in any rendering."""
    for s in secrets:
        if s:
            _SECRETS.update(renderings(s))


def forget_secrets() -> None:
    _SECRETS.clear()


def scrub(value: Any) -> Any:
    if isinstance(value, str):
        for s in sorted(_SECRETS, key=len, reverse=True):  # the longest rendering first
            if s in value:
                value = _pattern(s).sub(MASK, value)
        return value
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub(v) for v in value)
    if isinstance(value, BaseException):
        return scrub(f"{type(value).__name__}: {value}")
    return value


def _redact_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return {k: scrub(v) for k, v in event.items()}


def _scrub_rendered(_logger: Any, _name: str, rendered: Any) -> Any:
    # Tracebacks are rendered after the event is processed: scrub the final text too.
    return scrub(rendered)


class _Sink:
    """Where rendered log lines go: the stream, or while a live display runs (``route``), that
    display's console, which prints them above itself: lines and display never interleave."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.console: Any = None  # a rich Console
        self._line = ""

    def write(self, text: str) -> int:
        if self.console is None:
            return self.stream.write(text)
        self._line += text
        while "\n" in self._line:
            line, self._line = self._line.split("\n", 1)
            from rich.text import Text

            self.console.print(Text.from_ansi(line), soft_wrap=True, highlight=False)
        return len(text)

    def flush(self) -> None:
        if self.console is None:
            self.stream.flush()


_sink: _Sink | None = None
_format: str = "console"


def route(console: Any) -> None:
    """Send log lines through ``console`` (a rich Console with a live display), or back to the
    stream with None."""
    if _sink is not None:
        _sink.console = console


def current_format() -> str:
    """``json`` or ``console``: what ``configure`` chose."""
    return _format


def configure(fmt: LogFormat = "auto", stream: TextIO | None = None, level: int = logging.INFO) -> None:
    global _sink, _format
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    _format = fmt
    _sink = _Sink(stream)
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        exc: list[Any] = [structlog.processors.dict_tracebacks]
    else:
        # NO_COLOR (no-color.org) and a pipe get plain text
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty() and not os.environ.get("NO_COLOR"))
        exc = []
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *exc,
            _redact_processor,
            renderer,
            _scrub_rendered,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=_sink),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def get(name: str = "capi-image") -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
