"""A plain, non-editable `pip install .` gives a working cmprep with templates and protocols."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_a_plain_install_ships_templates_and_bundled_protocols(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    subprocess.run(
        [str(pip), "install", "-q", "--disable-pip-version-check", str(REPO)],
        check=True,
        capture_output=True,
        text=True,
    )
    cmprep = venv / "bin" / "cmprep"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "CMPREP_DB": str(elsewhere / "x.db")}

    def run(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [str(cmprep), *args],
            cwd=elsewhere,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("init", "--admin", "root", "--full-name", "A", "--password-stdin", stdin="pw-pw-pw-pw\n")
    assert "cm-standard-serum-free" in run("protocol", "list")
    assert "OK:" in run("audit", "verify")  # the payloads' dictionary ships in the wheel
    assert "Low-speed spin" in run("checklist", "cm-hypoxia-uc", "--format", "md")
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "from cmprep.resources import templates_dir, protocols_dir; print(templates_dir(), protocols_dir())",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "site-packages" in where and str(REPO) not in where
