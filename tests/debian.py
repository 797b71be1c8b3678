"""Debian packages the tests need, installed with apt-get when missing (on CI, or as root)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def install_debian_package(package: str, what: str) -> None:
    """apt-get install `package`, or skip the test saying why it cannot be done here.

    `what` names the missing thing in the skip message (a binary or a library)."""
    can_install = shutil.which("apt-get") and (os.environ.get("CI") == "true"
                                               or os.geteuid() == 0)
    if not can_install:
        pytest.skip(f"{what} is not installed and cannot be installed here (needs apt-get "
                    f"as root or CI=true): apt-get install -y {package}")
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", package]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                              env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if done.returncode != 0:
            pytest.skip(f"installing {package} failed ({' '.join(command)}): "
                        f"{done.stderr[-300:]}")
