"""`pip install .` (not editable) gives a working `wg-eval` with the shipped data.

Builds the wheel from this checkout, checks that it holds every data folder (the tiny
weights, data manifests, schemas, report assets) and that setuptools did not warn about a
data folder that is not a package, installs it into a fresh venv that borrows this test
environment's third-party packages (a .pth file; nothing is downloaded), and runs
`wg-eval run` from that venv in a directory outside the repository.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds the wheel and installs it into a fresh venv

ROOT = Path(__file__).resolve().parent.parent

# What the wheel must hold besides code: one or more members under each prefix.
DATA = {
    "winoground_eval/weights/tiny-diffusion/unet/": ".safetensors",
    "winoground_eval/weights/tiny-diffusion/tokenizer/": ".txt",
    "winoground_eval/weights/tiny-clip/": ".safetensors",
    "winoground_eval/data_manifests/": ".json",
    "winoground_eval/schemas/": ".json",
    "winoground_eval/report_assets/": ".js",
}


def _setuptools_version() -> tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(p) for p in version("setuptools").split(".")[:2] if p.isdigit())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    if _setuptools_version() < (77,):
        pytest.fail(
            "building the wheel needs setuptools>=77 in the test environment (make setup installs it): "
            f"{sys.executable} -m pip install 'setuptools>=77'"
        )
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (whl,) = out.glob("winoground_eval-*.whl")
    return whl, build.stdout + build.stderr


def _repo_files(folder: str, suffixes: tuple[str, ...]) -> set[str]:
    base = ROOT / folder
    return {p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file() and p.suffix in suffixes}


def test_wheel_holds_every_data_folder_and_builds_without_warnings(wheel):
    whl, log = wheel
    assert "is absent from the `packages` configuration" not in log, log
    names = set(zipfile.ZipFile(whl).namelist())
    for prefix, suffix in DATA.items():
        assert any(n.startswith(prefix) and n.endswith(suffix) for n in names), f"no {prefix}*{suffix} in {whl.name}"
    # every shipped weight and manifest file of the checkout, not just one of each
    for folder, target, suffixes in (
        ("winoground_eval/weights", "winoground_eval/weights", (".json", ".jsonl", ".safetensors", ".txt")),
        ("data_manifests", "winoground_eval/data_manifests", (".json", ".LICENSE", ".md")),
        ("winoground_eval/schemas", "winoground_eval/schemas", (".json",)),
        ("winoground_eval/report_assets", "winoground_eval/report_assets", (".html", ".css", ".js")),
    ):
        missing = {f for f in _repo_files(folder, suffixes) if f"{target}/{f}" not in names}
        assert not missing, f"{folder}: not in the wheel: {sorted(missing)}"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(
        n.startswith(("tasks/", "baselines/", "data_manifests/")) for n in names
    )  # no generic top-level names


def _borrowed_site_dirs() -> list[str]:
    """This environment's site-packages folders (the venv's own and any it borrows through .pth files)."""
    dirs = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    dirs += [p for p in sys.path if p.endswith("site-packages")]
    seen: list[str] = []
    for d in dirs:
        if Path(d).is_dir() and d not in seen:
            seen.append(d)
    return seen


def test_installed_wheel_runs_wg_eval_outside_the_repository(wheel, tmp_path):
    whl, _ = wheel
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # appended after the new venv's own site-packages, so the installed wheel wins over the checkout
    (Path(purelib) / "_borrowed_test_env.pth").write_text("\n".join(_borrowed_site_dirs()) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1")
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "--no-deps", "--force-reinstall", str(whl)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run(
        [str(py), "-c", "import winoground_eval; print(winoground_eval.__file__)"],
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), f"imported the checkout, not the wheel: {where}"

    wg_eval = venv / "bin" / "wg-eval"
    out = work / "runs"
    run = subprocess.run(
        [str(wg_eval), "run", "--task", "shapes", "--scorer", "tiny-clip", "--limit", "5", "--out", str(out), "-q"],
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (result_path,) = out.glob("shapes/tiny-clip/*/result.json")
    result = json.loads(result_path.read_text())
    assert result["n_examples"] == 5
    run_json = json.loads((result_path.parent / "run.json").read_text())
    assert str(ROOT) not in json.dumps(run_json["scorer"]), "the installed scorer must not point into the checkout"
