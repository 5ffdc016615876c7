"""Installed versions of named distributions (for provenance and manifests)."""

from __future__ import annotations

from importlib import metadata


def package_versions(names) -> dict[str, str]:
    """name -> version for each installed distribution in ``names`` (missing ones left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
