"""Run every gallery example (``examples/plot_*.py``) end to end, in its fast variant."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("plot_*.py"))
NEEDS_TORCH = {"plot_mc_dropout_bald.py", "plot_batchbald.py"}


def _has_torch():
    try:
        import skorch  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path, tmp_path):
    if path.name in NEEDS_TORCH and not _has_torch():
        pytest.skip("needs torch and skorch (skal[torch])")
    env = {
        **os.environ,
        "SKAL_EXAMPLES_FAST": "1",
        "MPLBACKEND": "Agg",
        # tiny fits gain nothing from BLAS threads and suffer on a busy two-core machine
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_every_example_is_a_gallery_script():
    assert len(EXAMPLES) >= 7
    for path in EXAMPLES:
        text = path.read_text()
        assert text.startswith('"""\n'), path.name
        assert "# %%" in text, path.name
