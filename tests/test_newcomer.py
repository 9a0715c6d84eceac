"""A new user's first ten minutes (issue 22): a fresh clone, the demo, then every command the
demo's last screen prints, typed as printed, in the clone.

The clone gets a venv of its own (no pip download: the third-party packages are borrowed
from this environment through a .pth file, as tests/test_packaging.py does) with this
package installed editable from the clone, so ``.venv/bin/wg-eval`` exists as after
``make setup``. To stay under a minute the demo runs with ``--limit 2`` (the same steps, two
examples each; ``make demo`` itself is not run: it takes about two minutes of CPU): its runs
are then partial, and the printed report command must show all five anyway (marked partial).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from winoground_eval.cli import demo

pytestmark = pytest.mark.slow  # git clone, a fresh venv, the demo and each command it prints as subprocesses

ROOT = Path(__file__).resolve().parent.parent


def _site_dirs() -> list[str]:
    import site
    import sysconfig

    dirs = [
        *site.getsitepackages(),
        sysconfig.get_paths()["purelib"],
        *(p for p in sys.path if p.endswith("site-packages")),
    ]
    seen: list[str] = []
    for d in dirs:
        if Path(d).is_dir() and d not in seen:
            seen.append(d)
    return seen


def printed_commands(stderr: str) -> list[str]:
    """The commands under the demo's closing "next: try these" rule (comment lines skipped)."""
    tail = stderr.split("next: try these", 1)[1].splitlines()[1:]
    return [line.strip() for line in tail if line.strip() and not line.lstrip().startswith(("#", "(", "─"))]


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    if not (ROOT / ".git").exists():
        pytest.fail("the newcomer test clones the checkout: run it in a git checkout")
    where = tmp_path_factory.mktemp("newcomer") / "winoground-eval"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(where)], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where / ".venv")], check=True, timeout=120)
    py = where / ".venv" / "bin" / "python"
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "_borrowed_test_env.pth").write_text("\n".join(_site_dirs()) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "COLUMNS")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1")
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", str(where)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    return where, env


def test_demo_then_every_command_it_prints(clone):
    where, env = clone
    py = where / ".venv" / "bin" / "python"
    ran = subprocess.run(
        [str(py), "-m", "winoground_eval.cli.demo", "--limit", "2"],
        cwd=where,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-4000:]
    assert "[caption, 4 hard negatives]" in ran.stderr  # issue 22.9: titles are text, not markup
    commands = printed_commands(ran.stderr)
    assert len(commands) == 3, ran.stderr[-2000:]
    assert all(c.startswith(".venv/bin/wg-eval ") for c in commands)  # issue 22.1: works without PATH
    assert all("--out demo_out/runs" in c or " demo_out/runs " in c for c in commands)  # issue 22.2: the demo's folder
    ids = sorted(p.name for p in (where / "demo_out" / "runs" / "shapes").glob("*/*"))
    assert len(ids) == 2 and all(i in commands[1] for i in ids)  # this clone's run ids, computed
    # the README's "After the demo" block is the same three commands, ids aside
    readme = (where / "README.md").read_text(encoding="utf-8")
    block = re.search(r"### After the demo\n.*?```bash\n(.*?)```", readme, flags=re.S).group(1)
    documented = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    clip_id = next(p.name for p in (where / "demo_out" / "runs" / "shapes" / "tiny-clip").iterdir())
    diffusion_id = next(p.name for p in (where / "demo_out" / "runs" / "shapes" / "tiny-diffusion").iterdir())
    assert [
        c.replace("ID_TINY_CLIP", clip_id).replace("ID_TINY_DIFFUSION", diffusion_id) for c in documented
    ] == commands
    outputs = []
    for command in commands:
        done = subprocess.run(shlex.split(command), cwd=where, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        outputs.append(done.stdout)
    assert len(re.findall(r"\b[0-9a-f]{12}\b", outputs[0])) == len(demo.STEPS)  # ls runs: every run
    assert "…" not in outputs[1] and "text" in outputs[1]  # compare: whole numbers through a pipe
    html = (where / "demo_out" / "report.html").read_text()
    data = json.loads(html.split('id="report-data">')[1].split("</script>")[0])
    assert len(data["runs"]) == len(demo.STEPS)  # the report shows all five runs
    assert all(r["partial"] for r in data["runs"])  # ... the limited ones marked partial
