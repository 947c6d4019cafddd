"""Weekly Verdicts: a self-hosted weekly newsletter pipeline."""

from importlib import resources
from pathlib import Path

__version__ = "0.1.0"

# The repository root holds config.toml and templates/ next to the packages.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def shipped(name: str) -> Path:
    """Where `templates` or `config.toml` lives for the running code.

    A wheel carries copies inside the package, in newsletter/_data (setup.py's build step puts
    them there): an installed package has no repository around it. A checkout or an editable
    install has no _data folder and reads the originals at the repository's top level, so an
    edit shows at once without a rebuild.
    """
    packaged = resources.files(__name__).joinpath("_data", name)
    if isinstance(packaged, Path) and packaged.exists():  # wheels install as files, never zipped
        return packaged
    return PROJECT_ROOT / name
