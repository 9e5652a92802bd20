"""The ready-made CI integrations, run here: the composite GitHub Action's script steps and the pre-commit hook.

Both install ipdscan from this checkout into an environment of their own. Installing torch there would take
minutes, so that environment gets ipdscan alone (PIP_NO_DEPS) and sees this test run's packages through a .pth
file: what is tested is the integration, not pip's dependency resolution.
"""
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from images import make_image

ROOT = Path(__file__).resolve().parents[2]
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def clean_env(**extra) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PYTHONWARNINGS": "ignore", "PIP_NO_DEPS": "1", **extra}


def share_packages(site_packages: Path) -> None:
    """Let another environment import this run's dependencies (torch, typer, ...), after its own packages."""
    (site_packages / "zz_ipdscan_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")


def site_packages_of(venv: Path) -> Path:
    return next(venv.glob("lib/python3*/site-packages"))


def checkout_copy(destination: Path) -> str:
    """This checkout's files as they are now (committed or not), committed into a fresh repository: its sha."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    git(destination, "init", "-q")
    git(destination, "add", "-A")
    git(destination, "commit", "-qm", "snapshot")
    return git(destination, "rev-parse", "HEAD").strip()


def git(cwd: Path, *args) -> str:
    env = clean_env(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
                    GIT_COMMITTER_EMAIL="t@example.com")
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


# --- the GitHub Action --------------------------------------------------------------------------------------

def action() -> dict:
    return yaml.safe_load((ROOT / "action.yml").read_text())


def test_the_action_is_a_composite_that_installs_scans_and_uploads():
    spec = action()
    assert spec["runs"]["using"] == "composite"
    steps = spec["runs"]["steps"]
    assert [step.get("uses", "").split("@")[0] for step in steps if "uses" in step] == \
        ["actions/setup-python", "github/codeql-action/upload-sarif"]
    for step in steps:
        if "run" in step:  # inputs reach scripts as variables, never as text pasted into them
            assert step["shell"] == "bash" and "${{" not in step["run"], step["name"]
    upload = next(step for step in steps if "upload-sarif" in step.get("uses", ""))
    assert "always()" in upload["if"]  # a flagged scan is uploaded too
    scan = next(step for step in steps if step.get("id") == "scan")
    assert "ipdscan scan" in scan["run"] and "--fail-on-error" in scan["run"]  # fails closed


def expand(text: str, inputs: dict, outputs: dict) -> str:
    def value(match):
        expression = match[1]
        if expression.startswith("inputs."):
            return inputs[expression[len("inputs."):]]
        if expression.startswith("steps."):
            _, step, _, name = expression.split(".")
            return outputs.get(step, {}).get(name, "")
        raise AssertionError(f"an expression the test does not know: {expression}")
    return EXPRESSION.sub(value, str(text))


@pytest.mark.slow
def test_the_actions_script_steps_run_here(tmp_path, checkpoint):
    """Every `run` step, in order, with the action's inputs and step outputs substituted as the runner does."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    share_packages(site_packages_of(venv))
    workspace = tmp_path / "workspace"
    (workspace / "assets").mkdir(parents=True)
    make_image(workspace / "assets" / "logo.png", "png")
    spec = action()
    inputs = {name: str(field.get("default", "")) for name, field in spec["inputs"].items()}
    inputs.update({"paths": "assets", "fail-on": "0", "args": f"--weights {checkpoint} --workers 0 --threshold 0"})
    outputs, codes = {}, []
    for step in spec["runs"]["steps"]:
        if "run" not in step:
            continue  # setup-python and the upload are GitHub's own actions
        output_file = tmp_path / f"output-{len(codes)}"
        output_file.touch()
        env = clean_env(PATH=f"{venv / 'bin'}:{os.environ['PATH']}", GITHUB_ACTION_PATH=str(ROOT),
                        GITHUB_OUTPUT=str(output_file), PIP_NO_BUILD_ISOLATION="1",
                        **{key: expand(value, inputs, outputs) for key, value in step.get("env", {}).items()})
        proc = subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], cwd=workspace, env=env,
                              capture_output=True, text=True, timeout=600)
        codes.append(proc.returncode)
        if step.get("id"):
            outputs[step["id"]] = dict(line.split("=", 1) for line in output_file.read_text().splitlines())
        if step["name"] != "Verdict":
            assert proc.returncode == 0, proc.stderr[-3000:]
    assert outputs["scan"] == {"exit-code": "1"}  # --fail-on 0 flags the logo; the verdict step says so
    assert codes[-1] == 1
    report = (workspace / inputs["sarif"]).read_text()
    assert '"ruleId": "ipdscan/ai-score"' in report and '"uri": "assets/logo.png"' in report  # the path from the repository's root
    assert (venv / "bin" / "ipdscan").exists()


# --- the pre-commit hook ------------------------------------------------------------------------------------

def test_the_hook_scans_staged_images_with_the_scan_command():
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "ipdscan" and hook["entry"] == "ipdscan scan --quiet --fail-on-error"  # fails closed
    assert hook["language"] == "python" and hook["types"] == ["image"]
    assert hook["args"] == ["--fail-on", "0.9"]


@pytest.mark.slow
def test_pre_commit_runs_the_hook_and_honours_the_ignore_file(tmp_path, checkpoint):
    """PyPI's pre-commit, in a temporary repository: a commit with an image that trips --fail-on fails the hook;
    once .ipdscanignore covers it, the hook passes."""
    hooks_repo = tmp_path / "ipdscan-repo"
    hooks_repo.mkdir()
    sha = checkout_copy(hooks_repo)
    project = tmp_path / "project"
    project.mkdir()
    git(project, "init", "-q")
    make_image(project / "logo.png", "png")
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump({"repos": [{
        "repo": str(hooks_repo), "rev": sha,
        "hooks": [{"id": "ipdscan", "args": ["--fail-on", "0", "--weights", str(checkpoint), "--workers", "0"]}]}]}))
    git(project, "add", "-A")
    home = tmp_path / "pre-commit-home"
    env = clean_env(PRE_COMMIT_HOME=str(home))
    pre_commit = [sys.executable, "-m", "pre_commit"]
    installed = subprocess.run([*pre_commit, "install-hooks"], cwd=project, env=env, capture_output=True, text=True,
                               timeout=900)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    for venv in home.glob("repo*/py_env-*"):
        share_packages(site_packages_of(venv))
    failed = subprocess.run([*pre_commit, "run", "--all-files"], cwd=project, env=env, capture_output=True,
                            text=True, timeout=600)
    assert failed.returncode == 1 and "ipdscan (AI-generated images)" in failed.stdout, failed.stdout[-3000:]
    assert "Failed" in failed.stdout and "exit code: 1" in failed.stdout
    (project / ".ipdscanignore").write_text("logo.png  # our logo, reviewed\n")
    git(project, "add", "-A")
    passed = subprocess.run([*pre_commit, "run", "--all-files"], cwd=project, env=env, capture_output=True,
                            text=True, timeout=600)
    assert passed.returncode == 0 and "Passed" in passed.stdout, passed.stdout[-3000:]
