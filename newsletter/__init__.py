"""Weekly Verdicts: a self-hosted weekly newsletter pipeline."""

from pathlib import Path

__version__ = "0.1.0"

# The repository root holds config.toml and templates/ next to the packages.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
