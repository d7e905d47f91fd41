"""Where the data fixtures (config templates, CRDs, image recipes) are: the one owner.

The repository keeps them in the top-level ``fixtures/`` directory, data only, next to
``harness/``. A module that found them as ``Path(__file__).parents[n] / "fixtures"`` worked in
a checkout and in the editable install, and failed in every wheel install: ``site-packages``
has no ``fixtures/`` beside ``harness/``. So the package carries them as package data under
``harness/_fixtures``:

- in the repository, ``harness/_fixtures`` is a symlink to ``../fixtures`` — the checkout and
  the editable (compat ``.pth``) install read the very files a user edits, with no copy to
  keep in sync;
- the wheel build follows the symlink (``[tool.setuptools.package-data]`` in
  ``pyproject.toml``), so an installed wheel has real files at the same place.

One lookup path for every kind of install, resolved through ``importlib.resources`` (the
package's own location, wherever it was installed), instead of one guess per module.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from harness.errors import ReconvergeError

#: The package-data directory inside ``harness`` (a symlink to ``fixtures/`` in a checkout).
PACKAGE_DIR = "_fixtures"


def root() -> Path:
    """The fixtures directory of this installation, as a real file-system path.

    A real ``Path``, not a ``Traversable``: callers hand these files to servers (containerd's
    config, kwok's stages) and copy them into images. pip installs wheels unzipped, so the
    package directory is always on disk; anything else is a broken install, said in one line.
    """
    found = Path(str(resources.files("harness") / PACKAGE_DIR))
    if not found.is_dir():
        raise ReconvergeError(
            f"reconverge's data fixtures are missing ({found} is not a directory)",
            fix="reinstall reconverge from a wheel, or restore the harness/_fixtures symlink",
        )
    return found


def path(*parts: str) -> Path:
    """``root() / part / ...``: e.g. ``path("containerd")`` or ``path("kube", "x.yaml")``."""
    return root().joinpath(*parts)
