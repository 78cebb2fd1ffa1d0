"""What `pip install pollen` gives a user: every imported distribution declared, no Ape in the
core, the contract ABIs and the web UI inside the wheel and found from an install outside the
checkout."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("pollen", "node", "client")
DEV_ONLY = {"ape", "ape_ethereum", "pytest", "hypothesis"}  # never imported at run time


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imported_top_level_modules() -> set[str]:
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - set(PACKAGES) - {"__future__"}


def test_every_imported_distribution_is_declared():
    declared = {_name(r) for r in _project()["dependencies"]}
    for extra in _project()["optional-dependencies"].values():
        declared |= {_name(r) for r in extra}
    owners = importlib.metadata.packages_distributions()
    missing = {}
    for module in _imported_top_level_modules():
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [])}
        if not dists:
            raise RuntimeError(f"module {module!r} is imported but not installed in this venv")
        if not dists & declared:
            missing[module] = sorted(dists)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
    assert not DEV_ONLY & _imported_top_level_modules(), "run-time code imports a dev-only tool"


def test_core_install_leaves_ape_out():
    core = {_name(r) for r in _project()["dependencies"]}
    assert not core & {"eth-ape", "ape-solidity", "ape-foundry", "pytest", "hypothesis"}, core
    extras = _project()["optional-dependencies"]
    assert "eth-ape" in {_name(r) for r in extras["contracts"]}
    assert extras["client"] == [] and extras["node"] == []  # the plain install is both: no Ape in either
    assert extras["dev"] == ["pollen[contracts,test,smollm2]"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A wheel of the checkout, installed (no dependencies) into a folder of its own: its site dir."""
    tmp = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "w"),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next((tmp / "w").glob("pollen-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp / "site"), str(wheel)],
                   check=True, capture_output=True)
    return tmp / "site"


@pytest.mark.skipif(not (ROOT / "pollen" / "abi" / "contracts.json").exists(),
                    reason="run `make compile` first: it exports the packaged ABIs")
def test_wheel_carries_abis_found_outside_the_checkout(installed, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(installed)}
    env.pop("POLLEN_ARTIFACTS", None)
    probe = ("import pollen, pollen.artifacts as a; print(pollen.__file__); "
             "print(a.default_manifest()); print(len(a.abi('DisputeCourt')))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    assert out[0].startswith(str(installed)), out  # the installed copy, not the checkout
    assert out[1] == str(installed / "pollen" / "abi" / "contracts.json")
    assert int(out[2]) > 10
    version = subprocess.run([sys.executable, "-m", "pollen.cli", "--version"], cwd=tmp_path,
                             env=env, check=True, capture_output=True, text=True).stdout
    assert version.strip() == f"pollen {_project()['version']}"
    # the installed client, node and CLI work where Ape (and pytest, hypothesis) cannot be imported
    blocker = ("import sys, importlib.abc\n"
               "class NoDev(importlib.abc.MetaPathFinder):\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               f"        if name.split('.')[0] in {sorted(DEV_ONLY)!r}: raise ImportError('dev-only: ' + name)\n"
               "sys.meta_path.insert(0, NoDev())\n")
    probe = blocker + ("from client import AutoDistributedModelForCausalLM; import client.onchain, node.server, "
                       "node.daemon, pollen.chain, pollen.escrow; from pollen.cli import main\n"
                       "import client; print(client.__file__)")
    where = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, check=True, capture_output=True,
                           text=True).stdout.strip()
    assert where.startswith(str(installed)), where


@pytest.mark.skipif(not (ROOT / "pollen" / "webui" / "dist" / "index.html").exists(),
                    reason="run `make frontend-build` first: it exports the packaged web UI")
def test_wheel_carries_the_web_ui_and_serves_it_outside_the_checkout(installed, tmp_path):
    """`pollen ui` from the installed package: its own copy of the bundle and the UI server, the
    deployment file served beside it, and the live health endpoint wired to this Python."""
    deployment = tmp_path / "d.json"
    deployment.write_text(json.dumps({"network": "anvil", "chainId": 31337, "rpc": "http://127.0.0.1:1"}))
    probe = ("import sys, urllib.request, pollen.ui as u\n"
             "print(u.ui_dir())\n"
             f"proc, url = u.start_ui({str(deployment)!r}, 0)\n"
             "try:\n"
             "    print(b'<html' in urllib.request.urlopen(url, timeout=10).read().lower())\n"
             "    print(urllib.request.urlopen(url + 'deployment.json', timeout=10).read().decode())\n"
             "finally:\n"
             "    proc.terminate(); proc.wait(10)\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(installed)},
                         check=True, capture_output=True, text=True, timeout=60).stdout.splitlines()
    assert out[0] == str(installed / "pollen" / "webui"), out  # not the checkout's frontend/
    assert out[1] == "True"
    assert json.loads(out[2])["chainId"] == 31337


def test_missing_artifacts_say_what_to_do(tmp_path, monkeypatch):
    from pollen import artifacts

    monkeypatch.setenv("POLLEN_ARTIFACTS", str(tmp_path / "nowhere.json"))
    artifacts._manifest.cache_clear()
    try:
        with pytest.raises(artifacts.ArtifactsMissing, match="make compile"):
            artifacts.abi("DisputeCourt")
    finally:
        artifacts._manifest.cache_clear()


def _imports_of(package: str) -> dict[str, set[str]]:
    out = {}
    for path in (ROOT / package).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(ROOT))] = names
    return out


@pytest.mark.parametrize("package, forbidden", [("pollen", {"client", "node"}), ("client", {"node"}),
                                                ("node", {"client"})])
def test_each_room_imports_only_what_it_may(package, forbidden):
    """pollen/ is the shared core: it imports neither side; client/ and node/ never import each other."""
    bad = {path: sorted(names & forbidden) for path, names in _imports_of(package).items() if names & forbidden}
    assert not bad, f"{package}/ imports {bad}"


def test_subcommands_are_entry_points_of_their_own_packages():
    from importlib.metadata import entry_points

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pollen.commands"]
    installed = {ep.name: ep.value for ep in entry_points(group="pollen.commands")}
    assert installed == declared, "run `make setup` (pip install -e .) after changing the entry points"
    assert "client." not in (ROOT / "pollen" / "cli.py").read_text()
