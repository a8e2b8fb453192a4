"""Every Python snippet of README.md and docs/*.rst runs as printed.

Each snippet runs alone, in a fresh namespace and a temporary working directory, with every
warning turned into an error (a newcomer who pastes it should see no ConvergenceWarning).
Collected: README's ```python blocks; in the docs, ``.. code-block:: python`` blocks,
``.. doctest::`` blocks and ``>>>`` doctest blocks (checked against their output), and ``::``
literal blocks whose text is Python (Sphinx highlights those as Python too).

A snippet that must not run is marked just above it, with a reason, by
``<!-- skal-no-run: REASON -->`` in Markdown or ``.. skal-no-run: REASON`` in reST.
A snippet importing an optional package that is not installed (torch, skorch, distributed,
matplotlib) is skipped.
"""

import ast
import doctest
import importlib.util
import re
import shlex
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
NO_RUN = "skal-no-run"


@dataclass
class Snippet:
    path: str
    line: int  # 1-based line of the snippet's first code line
    code: str
    kind: str  # "python" or "doctest"
    no_run: str | None = None  # the reason, when marked not to run

    @property
    def id(self):
        return f"{self.path}:{self.line}"


# ---------------------------------------------------------------------------- extraction
def markdown_snippets(text, path):
    """The ```python blocks of a Markdown file."""
    lines = text.splitlines()
    snippets, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            no_run = _marker(lines[i - 1], r"<!--\s*skal-no-run:(.*?)-->") if i else None
            end = i + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            snippets.append(Snippet(path, i + 2, "\n".join(lines[i + 1 : end]) + "\n",
                                    "python", no_run))
            i = end
        i += 1
    return snippets


def rst_snippets(text, path):
    """Python, doctest and Python-looking literal blocks of a reST file."""
    lines = text.splitlines()
    snippets, i = [], 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        kind = None
        if re.fullmatch(r"\.\.\s+(code-block|code|sourcecode)::\s*(python3?|py)\s*", stripped):
            kind = "python"
        elif re.fullmatch(r"\.\.\s+doctest::.*", stripped):
            kind = "doctest"
        elif stripped.endswith("::") and not stripped.startswith(".."):
            kind = "literal"
        elif stripped.startswith(">>>") and (i == 0 or not lines[i - 1].strip()):
            # a doctest block: a paragraph starting with >>>, ending at a blank line
            end = i
            while end < len(lines) and lines[end].strip():
                end += 1
            indent = len(line) - len(line.lstrip())
            code = "\n".join(ln[indent:] for ln in lines[i:end]) + "\n"
            snippets.append(Snippet(path, i + 1, code, "doctest", _previous_marker(lines, i)))
            i = end
            continue
        if kind is None:
            i += 1
            continue
        start, end, code = _indented_body(lines, i, len(line) - len(line.lstrip()))
        if start is not None:
            if kind == "literal":
                kind = "python" if _looks_like_python(code) else None
            if kind is not None:
                snippets.append(Snippet(path, start + 1, code, kind, _previous_marker(lines, i)))
        i = max(end, i + 1)
    return snippets


def _indented_body(lines, i, directive_indent):
    """The block indented under line ``i``, skipping directive options; dedented."""
    j = i + 1
    while j < len(lines) and re.match(r"\s+:[\w-]+:", lines[j]):
        j += 1
    while j < len(lines) and not lines[j].strip():
        j += 1
    if j == len(lines):
        return None, j, ""
    indent = len(lines[j]) - len(lines[j].lstrip())
    if indent <= directive_indent:
        return None, j, ""
    end = j
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) >= indent
    ):
        end += 1
    while end > j and not lines[end - 1].strip():
        end -= 1
    return j, end, "\n".join(ln[indent:] for ln in lines[j:end]) + "\n"


def _looks_like_python(code):
    """Parses as Python and is more than a bare name (``pytest``) or number."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(
        not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Name | ast.Constant))
        for node in tree.body
    )


def _marker(line, pattern):
    match = re.fullmatch(pattern, line.strip())
    if match is None:
        return None
    reason = match.group(1).strip()
    if not reason:
        raise ValueError(f"'{NO_RUN}' needs a reason: {line.strip()!r}")
    return reason


def _previous_marker(lines, i):
    """The ``.. skal-no-run: REASON`` comment in the lines just above line ``i``."""
    j = i - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    return _marker(lines[j], r"\.\.\s+skal-no-run:(.*)") if j >= 0 else None


def collect():
    snippets = markdown_snippets((ROOT / "README.md").read_text(encoding="utf-8"), "README.md")
    for path in sorted((ROOT / "docs").glob("*.rst")):
        snippets += rst_snippets(path.read_text(encoding="utf-8"), f"docs/{path.name}")
    return snippets


SNIPPETS = collect()


# ---------------------------------------------------------------------------- running
def _missing_optional_modules(code):
    """Top-level packages imported by ``code`` that are not installed (skal itself excluded)."""
    try:
        tree = ast.parse(doctest.script_from_examples(code) if ">>>" in code else code)
    except SyntaxError:
        return []
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    if "skal" in names and re.search(r"\bskal\.nets\b", code):
        names.update({"torch", "skorch"})
    return sorted(n for n in names - {"skal"} if importlib.util.find_spec(n) is None)


@pytest.fixture
def quiet_sandbox(tmp_path, monkeypatch):
    """A temporary working directory, matplotlib without a display, one BLAS thread (tiny
    fits gain nothing from more and suffer on a busy two-core machine), warnings as errors."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if importlib.util.find_spec("matplotlib") is not None:
        import matplotlib

        matplotlib.use("Agg")
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("error")
        yield tmp_path
    if importlib.util.find_spec("matplotlib") is not None:
        import matplotlib.pyplot as plt

        plt.close("all")


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_snippet_runs(snippet, quiet_sandbox):
    if snippet.no_run:
        pytest.skip(f"marked {NO_RUN}: {snippet.no_run}")
    missing = _missing_optional_modules(snippet.code)
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    if snippet.kind == "doctest":
        parser = doctest.DocTestParser()
        test = parser.get_doctest(snippet.code, {}, snippet.id, snippet.path, snippet.line - 1)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        messages = []
        runner.run(test, out=messages.append)
        assert runner.failures == 0, "".join(messages)
    else:
        # the file name in tracebacks points at the snippet
        code = compile("\n" * (snippet.line - 1) + snippet.code, str(ROOT / snippet.path), "exec")
        exec(code, {"__name__": "__main__"})
    # nothing written outside the temporary directory: its files are the snippet's own
    assert Path.cwd() == quiet_sandbox


def test_snippets_are_found():
    by_file = {}
    for snippet in SNIPPETS:
        by_file.setdefault(snippet.path, []).append(snippet)
    assert len(by_file["README.md"]) >= 4
    for page in ("getting_started", "concepts", "grid_search", "dask"):
        assert f"docs/{page}.rst" in by_file, page
    # shell commands and tables in literal blocks are not taken for Python
    assert not any("skal run" in s.code or "pip install" in s.code for s in SNIPPETS)


def test_no_run_markers_are_rare():
    marked = [s.id for s in SNIPPETS if s.no_run]
    assert len(marked) <= 2, marked


def test_extraction_of_each_block_kind():
    rst = "\n".join([
        "Title", "=====", "",
        ".. code-block:: python", "   :caption: x", "", "   a = 1", "", "   b = a + 1", "",
        "Text::", "", "    skal run --budget 10", "",
        "Python text::", "", "    c = [1, 2]", "",
        ">>> 1 + 1", "2", "",
        ".. skal-no-run: needs a GPU", "", ".. code-block:: python", "", "   import cuda_only", "",
        ".. doctest::", "", "   >>> 2 * 3", "   6", "",
    ])
    found = rst_snippets(rst, "x.rst")
    assert [(s.line, s.kind, s.code, s.no_run) for s in found] == [
        (7, "python", "a = 1\n\nb = a + 1\n", None),
        (17, "python", "c = [1, 2]\n", None),
        (19, "doctest", ">>> 1 + 1\n2\n", None),
        (26, "python", "import cuda_only\n", "needs a GPU"),
        (30, "doctest", ">>> 2 * 3\n6\n", None),
    ]
    markdown = "\n".join(["text", "```python", "x = 1", "```", "<!-- skal-no-run: GPU only -->",
                          "```python", "y = 2", "```", "```bash", "ls", "```"])
    found = markdown_snippets(markdown, "x.md")
    assert [(s.line, s.code, s.no_run) for s in found] == [(3, "x = 1\n", None),
                                                           (7, "y = 2\n", "GPU only")]
    with pytest.raises(ValueError, match="needs a reason"):
        markdown_snippets("<!-- skal-no-run: -->\n```python\nz = 3\n```\n", "x.md")


def test_the_pipeline_goes_inside_the_learner():
    """README and the docs show the supported way to preprocess (issue #10, item 5), with a
    snippet that queries through it."""
    supported = "ActiveLearner(make_pipeline(StandardScaler(), LogisticRegression()))"
    for path in ("README.md", "docs/getting_started.rst", "docs/concepts.rst"):
        text = " ".join((ROOT / path).read_text(encoding="utf-8").split())
        assert supported in text.replace("`", "").replace("( ", "("), path
        assert "no `query`" in text or "no ``query``" in text or ".query`` raises" in text, path
    assert any("make_pipeline(StandardScaler()" in s.code and ".query(" in s.code
               for s in SNIPPETS if s.path == "docs/concepts.rst")


def test_slow_tests_run_apart_from_readmes_test_command():
    """README's test command runs the fast set; .ci/run runs it verbatim, then the slow set."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = 'python -m pip install -c constraints/cpu.txt -e ".[torch,test]" && python -m pytest'
    assert command in readme.splitlines()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = pyproject[pyproject.index("[tool.pytest.ini_options]"):]
    addopts = shlex.split(re.search(r'^addopts\s*=\s*"(.*)"\s*$', section, re.M).group(1))
    assert addopts[addopts.index("-m") + 1] == "not slow"
    assert re.search(r'^\s*"slow: ', section, re.M)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f"test_command='{command}'" in ci
    assert ci.index('eval "$test_command"') < ci.index("python -m pytest -m slow")
    assert "-ne 5" in ci  # "no tests collected" is not a failure
    contributing = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert "python -m pytest -m slow" in contributing


@pytest.mark.parametrize(
    "module, test",
    [
        ("test_batchbald_redundancy", "test_script_compares_both_pools"),
        ("test_batchbald_mnist", "test_script_runs_acquisitions_and_writes_every_output"),
        ("test_batchbald_mnist", "test_skal_run_config_runs_a_tiny_variant"),
        ("test_labeling", "test_sigkill_at_random_moments_loses_no_acknowledged_label"),
        ("test_label_cli", "test_bad_pools_and_options_are_one_line_errors"),
        ("test_examples", "test_example_runs"),
        ("test_cli", "test_end_to_end_subprocess"),
        ("test_cli", "test_help_and_list_in_a_subprocess"),
    ],
)
def test_the_slowest_end_to_end_tests_are_marked_slow(module, test):
    source = (ROOT / "tests" / f"{module}.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    module_marks = [
        ast.unparse(node.value) for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark"
                                                for t in node.targets)
    ]
    function = next(node for node in tree.body
                    if isinstance(node, ast.FunctionDef) and node.name == test)
    marks = [ast.unparse(d) for d in function.decorator_list] + module_marks
    assert any("pytest.mark.slow" in mark for mark in marks), (module, test)
