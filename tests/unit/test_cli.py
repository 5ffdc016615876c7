import subprocess
import sys

from tests.helpers import ROOT, run_cli


def test_cli_help_does_not_import_frameworks_when_asked_for_help():
    code = (
        "import sys\n"
        "from servebench.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('tensorflow', 'torch', 'keras') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_cli_train_exits_2_when_framework_unknown():
    result = run_cli("train", "--framework", "jax", timeout=60)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_cli_lists_the_commands_and_exits_2_when_given_none():
    result = run_cli(timeout=60)
    assert result.returncode == 2
    for command in ("train", "export", "serve", "infer", "check-served", "loadtest", "run"):
        assert command in result.stderr


def test_cli_prints_its_version_when_asked():
    result = run_cli("--version", timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("servebench ")
