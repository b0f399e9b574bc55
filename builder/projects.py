"""Where a project comes from: ``-p`` as a name (under the config directory, else ``./NAME.yaml``)
or a path; the file read as UTF-8 YAML and validated into a ``ProjectConfig`` whose relative
paths start at the project's config root."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from provision.textfile import TextFileError, read_text

from .config import CONFIG_ENV, ConfigError, ProjectConfig, config_dir


def project_path(name: str) -> Path:
    return config_dir() / "projects" / f"{name}.yaml"


def _is_path(spec: str) -> bool:
    return spec.endswith((".yaml", ".yml")) or "/" in spec or os.sep in spec


def find_project(spec: str) -> tuple[str, Path]:
    """``-p`` takes a name (``config/projects/NAME.yaml`` under the config directory, else
    ``./NAME.yaml``) or a path to a project file. Returns the project's name and file."""
    if _is_path(spec):
        path = Path(spec)
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise ConfigError(f"project file {path} {what}")
        return path.stem, path
    if not spec or spec.startswith("-") or not spec.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ConfigError(f"project name '{spec}' is not a name (letters, digits, - _ .) nor a path to a .yaml file")
    for path in (project_path(spec), Path(f"{spec}.yaml")):
        if path.is_file():
            return spec, path
    directory = config_dir()
    known = sorted(p.stem for p in (directory / "projects").glob("*.yaml"))
    raise ConfigError(
        f"no project '{spec}': neither {project_path(spec)} nor ./{spec}.yaml exists (known in {directory}: "
        f"{', '.join(known) or 'none'}); create one with `capi-image init {spec}`, or point --config-dir / "
        f"${CONFIG_ENV} at your config directory"
    )


def project_root(path: Path) -> Path:
    """A file in a ``projects/`` folder belongs to the config directory above it (``vars/…``
    is relative to that); any other project file's paths are relative to its own folder."""
    return path.parent.parent if path.parent.name == "projects" else path.parent


def load_project(name: str, path: Path | None = None) -> ProjectConfig:
    if path is None:
        name, path = find_project(name)
    try:
        data = YAML(typ="safe").load(read_text(path, f"project file {path}"))
    except TextFileError as e:
        raise ConfigError(str(e)) from e
    except IsADirectoryError as e:
        raise ConfigError(f"project file {path} is a directory") from e
    except YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings")
    data.setdefault("name", name)
    try:
        config = ProjectConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{path} is invalid:\n" + "\n".join(f"  {line}" for line in validation_lines(e))) from e
    config._root = project_root(path)
    config._ref = name if path.resolve() == project_path(name).resolve() else str(path)
    return config


def validation_lines(e: ValidationError) -> list[str]:
    """pydantic's errors as ``field: message``, without its "Value error, " prefix."""
    return [
        f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg'].removeprefix('Value error, ')}"
        for err in e.errors()
    ]
