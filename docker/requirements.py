"""Print the requirements an image installs, from pyproject.toml (the one list of dependencies).

    python docker/requirements.py base   # the web, default worker and beat (no ML library)
    python docker/requirements.py ml     # base + the `ml` extra: CPU inference and training
    python docker/requirements.py gpu    # base + the `ml` extra with TensorFlow's CUDA build

The images install these from wheels built once in the Dockerfile's builder stage; the project
itself is copied as source (its templates and static files live beside the packages).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
TENSORFLOW = {"tensorflow", "tensorflow-cpu"}
_NAME = re.compile(r"^\s*[A-Za-z0-9._-]+(\[[^\]]*\])?")


def _name(requirement: str) -> str:
    return _NAME.match(requirement).group(0).split("[")[0].strip().lower()


def requirements(kind: str, pyproject: Path = PYPROJECT) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    base = list(project["dependencies"])
    ml = list(project["optional-dependencies"]["ml"])
    if kind == "base":
        return base
    if kind == "ml":
        return base + ml
    if kind == "gpu":
        # TensorFlow's CUDA build of the same version (the CUDA and cuDNN libraries come as
        # NVIDIA's pip wheels; the host needs only the driver and the container toolkit).
        tensorflow = [req for req in ml if _name(req) in TENSORFLOW]
        version = _NAME.sub("", tensorflow[0].split(";")[0]).strip()
        rest = [req for req in ml if _name(req) not in TENSORFLOW]
        return [*base, f"tensorflow[and-cuda]{version}", *rest]
    raise SystemExit(f"unknown kind {kind!r}: base, ml or gpu")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print("\n".join(requirements(sys.argv[1])))
