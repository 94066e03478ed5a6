"The library is what nbdev-export makes of the notebooks"
import filecmp, shutil, subprocess
from pathlib import Path

root = Path(__file__).parents[1]


def test_nbdev_export_leaves_the_library_unchanged(tmp_path):
    for p in ['nbs', 'tabcollab', 'pyproject.toml', 'README.md']:
        src = root/p
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path/p)
    subprocess.run(['nbdev-export'], cwd=tmp_path, check=True, capture_output=True)
    changed = [str(p.relative_to(tmp_path)) for p in sorted((tmp_path/'tabcollab').rglob('*.py'))
               if not (root/p.relative_to(tmp_path)).exists()
               or not filecmp.cmp(p, root/p.relative_to(tmp_path), shallow=False)]
    if not filecmp.cmp(tmp_path/'pyproject.toml', root/'pyproject.toml', shallow=False):
        changed.append('pyproject.toml')
    assert not changed, f"nbdev-export changes {changed}: export the notebooks and commit the result"
