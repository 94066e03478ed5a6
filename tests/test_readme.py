"README.md is index.ipynb's text, and CI runs the test command it documents"
import subprocess, sys
from pathlib import Path

root = Path(__file__).parents[1]
TEST_COMMAND = 'ruff check && nbdev-test && pytest tests/'


def test_readme_is_generated_from_index():
    res = subprocess.run([sys.executable, 'tools/make_readme.py', '--check'], cwd=root)
    assert res.returncode == 0, "README.md or CONTRIBUTING.md differ from nbs/: run `python tools/make_readme.py`"


def test_ci_runs_the_readme_test_command():
    assert TEST_COMMAND in (root/'README.md').read_text()
    assert any(l.strip().startswith(TEST_COMMAND) for l in (root/'.ci'/'run').read_text().splitlines())
