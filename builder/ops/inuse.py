"""Which images the files given to ``prune --in-use`` name, and where.

A false "in use" costs a few GB of snapshot storage; a false "unused" costs an outage (CAPH's
next scale-up or remediation fails with ImageNotFound). So this does not look for
``imageName`` keys only: every string anywhere counts — topology variables
(``hcloudWorkerMachineImageName``), per-machine-deployment overrides, Helm-like values, env
values such as ``HCLOUD_IMAGE``, MachineSets and Machines, comments, shell and ``.env`` files —
and so does every word inside a string (``HCLOUD_IMAGE=k8s-…``, ``--image 1234``).

Each file is parsed as YAML (JSON too) to say *where* a name stands (``spec.topology.variables[1].value``);
every file, parsable or not (a Helm template is not YAML), is also read line by line as a net.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from provision.textfile import TextFileError, read_text

from ..errors import InputError

# Words as image names and ids are spelled: label values (alphanumerics and . _ -).
WORD = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
MAX_FILE_BYTES = 16 * 1024 * 1024
YAML_SUFFIXES = (".yaml", ".yml", ".json")
STDIN, STDIN_LABEL = "-", "stdin"


class InUseInputError(InputError):
    """A --in-use path that cannot be read or parsed."""


@dataclass
class References:
    """word -> where it was first found ("file: yaml.path" or "file:line")."""

    where: dict[str, str] = field(default_factory=dict)
    unparsed: list[str] = field(default_factory=list)  # files read only line by line

    def find(self, *values: str) -> str | None:
        for v in values:
            if v in self.where:
                return self.where[v]
        return None

    def add(self, text: str, where: str) -> None:
        self.where.setdefault(text, where)
        for word in WORD.findall(text):
            self.where.setdefault(word, where)


def _walk(node: Any, path: str, refs: References, file: str, seen: set[int]) -> None:
    if isinstance(node, dict | list):
        # YAML aliases share one object: each is walked once, so a "billion laughs" document
        # (aliases of aliases) costs its size, not its expansion.
        if id(node) in seen:
            return
        seen.add(id(node))
    if isinstance(node, dict):
        for key, value in node.items():
            _walk(key, path, refs, file, seen)  # a name can be a key (a map of images to notes)
            _walk(value, f"{path}.{key}" if path else str(key), refs, file, seen)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, f"{path}[{i}]", refs, file, seen)
    elif isinstance(node, str | int) and not isinstance(node, bool):
        refs.add(str(node), f"{file}: {path or '(document)'}")


def _files(p: Path) -> list[Path]:
    if p.is_file():
        return [p]
    return sorted(
        f for f in p.rglob("*") if f.is_file() and not any(part.startswith(".git") for part in f.relative_to(p).parts)
    )


def scan(paths: list[Path], stdin: IO[str] | None = None) -> References:
    """What the files name; ``-`` is standard input (``kubectl get … -o yaml | prune --in-use -``),
    read as YAML or JSON."""
    refs = References()
    for p in paths:
        if str(p) == STDIN:
            _scan_text(_read_stdin(stdin or sys.stdin), STDIN_LABEL, True, refs)
            continue
        if not p.exists():
            raise InUseInputError(f"--in-use {p} does not exist")
        for f in _files(p):
            if f.stat().st_size > MAX_FILE_BYTES:
                raise InUseInputError(f"--in-use {f} is larger than {MAX_FILE_BYTES // 2**20} MiB: name the manifests")
            # A file prune cannot read is a refusal, never a skip: the image it names would be
            # deleted (a UTF-16 file was once skipped as "binary").
            try:
                text = read_text(f, f"--in-use {f}")
            except TextFileError as e:
                raise InUseInputError(f"{e}; prune reads every file it is given (name the manifests)") from e
            except OSError as e:
                raise InUseInputError(f"--in-use {f} cannot be read: {e.strerror or e}") from e
            _scan_text(text, str(f), f.suffix in YAML_SUFFIXES, refs)
    return refs


def _read_stdin(stream: IO[str]) -> str:
    text = stream.read(MAX_FILE_BYTES + 1)
    if len(text) > MAX_FILE_BYTES:
        raise InUseInputError(f"--in-use - (standard input) is larger than {MAX_FILE_BYTES // 2**20} MiB")
    if not text.strip():
        # an empty pipe (kubectl failed, wrong context) protects nothing: refuse, never prune
        raise InUseInputError("--in-use - read nothing from standard input (did the command before the pipe fail?)")
    return text


def _scan_text(text: str, name: str, as_yaml: bool, refs: References) -> None:
    if as_yaml:
        try:
            for n, doc in enumerate(YAML(typ="safe").load_all(text)):
                label = name + (f" (document {n + 1})" if n else "")
                items = (
                    doc.get("items") if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") else None
                )
                if isinstance(items, list):
                    # kubectl's List: each object said by kind and name, not items[17]
                    for item in items:
                        _walk(item, "", refs, f"{name}: {_object(item)}", set())
                _walk(doc, "", refs, label, set())
        except YAMLError:
            refs.unparsed.append(name)
    for lineno, line in enumerate(text.splitlines(), 1):
        for word in WORD.findall(line):
            refs.where.setdefault(word, f"{name}:{lineno}")


def _object(item: Any) -> str:
    meta = item.get("metadata") if isinstance(item, dict) else None
    if not isinstance(meta, dict):
        return "(item)"
    namespace = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{item.get('kind')} {namespace}{meta.get('name')}"
