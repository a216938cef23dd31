"""The distribution as pip builds it: pure Python 3.9+, typed, httpx only."""

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "clients" / "python"


def test_the_wheel_is_pure_typed_and_depends_only_on_httpx(tmp_path):
    # Built from a copy (setuptools writes build/ and egg-info beside the
    # sources) with the test venv's own tools: nothing is downloaded.
    source = shutil.copytree(PACKAGE, tmp_path / "source", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--wheel-dir", wheels, source], check=True,
                   capture_output=True)
    [wheel] = wheels.glob("*.whl")
    assert wheel.name.startswith("bearer_auth-") and wheel.name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "bearer_auth/py.typed" in names
    assert "bearer_auth/__init__.py" in names
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires[0].startswith("Requires-Dist: httpx")
    assert all("extra == " in r for r in requires[1:]), requires
    assert "Requires-Python: >=3.9" in metadata
    assert "Provides-Extra: requests" in metadata


def test_the_sources_parse_as_python_3_9():
    for path in (PACKAGE / "src" / "bearer_auth").glob("*.py"):
        ast.parse(path.read_text(), str(path), feature_version=(3, 9))


def test_importing_the_package_needs_no_requests():
    code = ("import sys; sys.modules['requests'] = None; import bearer_auth; "
            "assert 'bearer_auth._requests' not in sys.modules; bearer_auth.TokenSource")
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(PACKAGE / "src")})
    assert Path(PACKAGE / "src" / "bearer_auth" / "py.typed").exists()
