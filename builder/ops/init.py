"""``capi-image init NAME``: a project file and the var file it names, from the examples the
package ships, so an installed wheel has something to build from."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..config import ConfigError
from ..errors import InputError
from ..projects import find_project, project_root

EXAMPLES = resources.files("builder") / "examples"
VAR_FILE = "vars/k8s-1.31.json"


def init_project(name: str, folder: Path) -> list[Path]:
    """Write ``folder/NAME.yaml`` and the var file it names, ``vars/k8s-1.31.json`` beside it (in
    a ``projects/`` folder: beside that folder, where a named project's paths start), kept when
    present; never overwrite a project file. Returns the files written."""
    if not name or "/" in name or name.endswith((".yaml", ".yml")):
        raise InputError(f"'{name}' is not a project name: give a name such as 'prod' (written to {folder}/prod.yaml)")
    try:
        find_project(name)  # a valid name?
    except ConfigError as e:
        if "is not a name" in str(e):
            raise InputError(str(e)) from e
    project = folder / f"{name}.yaml"
    if project.exists():
        raise InputError(f"{project} exists; choose another name or edit it")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    text = (EXAMPLES / "project.yaml").read_text(encoding="utf-8").format(name=name)
    project.write_text(text, encoding="utf-8")
    written.append(project)
    var_file = project_root(project) / VAR_FILE  # where the project's versions: resolves
    if not var_file.exists():
        var_file.parent.mkdir(parents=True, exist_ok=True)
        var_file.write_text((EXAMPLES / VAR_FILE).read_text(encoding="utf-8"), encoding="utf-8")
        written.append(var_file)
    return written
