"""The README's counts and lists are true: its test count is pytest's, its results/ table is the
folder's contents, and it speaks to users (no internal issue numbers, no "VM")."""
import re
import subprocess
import sys
from pathlib import Path

from wanda_core.paths import repo_root

README = repo_root() / "README.md"
TESTS = repo_root() / "tests"


def collected_tests(session) -> int:
    """How many tests `pytest` collects: this session's count if it collected every test file,
    else a `pytest --collect-only -q` of the whole suite."""
    files = {Path(str(item.fspath)).name for item in session.items}
    if {p.name for p in TESTS.glob("test_*.py")} <= files:
        return len(session.items)
    p = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", str(TESTS)], capture_output=True,
                       text=True, cwd=repo_root(), timeout=600)
    m = re.search(r"(\d+) tests? collected", p.stdout.strip().splitlines()[-1])
    assert m, p.stdout[-2000:] + p.stderr[-2000:]
    return int(m.group(1))


def stated_test_counts(text: str) -> list[int]:
    return [int(n.replace(",", "")) for n in re.findall(r"\b(\d[\d,]*) tests\b", text)]


def results_entries(text: str) -> set[str]:
    """The first column of the table under the README's 'What results/ holds' heading, without the '/'."""
    section = text.split("What results/ holds", 1)[1].split("\n#", 1)[0]
    return {m.rstrip("/") for m in re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)}


def test_stated_test_count_is_pytests(request):
    counts = stated_test_counts(README.read_text())
    assert counts, "the README states no test count ('N tests')"
    n = collected_tests(request.session)
    assert set(counts) == {n}, f"the README says {counts} tests; pytest collects {n}"


def test_results_table_lists_the_folder():
    listed = results_entries(README.read_text())
    present = {p.name for p in (repo_root() / "results").iterdir() if not p.name.startswith(".")}
    assert listed == present, f"README lists {sorted(listed)}; results/ holds {sorted(present)}"


def test_readme_speaks_to_users():
    text = README.read_text()
    assert not re.search(r"\bissues?\s*#?\s*\d", text, flags=re.I), re.search(r".{40}\bissues?\s*#?\s*\d.{20}", text, flags=re.I)
    assert not re.search(r"\bVMs?\b", text), "the README mentions a VM"


def test_the_checks_can_fail():
    """The parsers find what a wrong README would say."""
    assert stated_test_counts("`make test` runs 1,234 tests; 5 tests more") == [1234, 5]
    table = "### What results/ holds\n\n| entry | what |\n|---|---|\n| `speedup/` | x |\n| `README.md` | y |\n\n## Next\n| `no/` | z |"
    assert results_entries(table) == {"speedup", "README.md"}
