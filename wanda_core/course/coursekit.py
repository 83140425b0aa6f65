"""The course's student notebooks, generated from the solutions: one hand-kept source per assignment.

course/solutions/assignment*.md are MyST markdown notebooks (jupytext) holding the model
solutions. What students must not see sits between marker lines, in code cells as comments and
in markdown as MyST comments (`%` in place of `#`):

    # BEGIN SOLUTION
    return W.abs()                   # the solution: dropped from the student version
    # STUDENT VERSION                (optional) what the student gets instead, each line commented
    # findings = "YOUR ANSWER HERE"
    # END SOLUTION

Without a STUDENT VERSION part, a code block becomes the starter `# YOUR CODE HERE` /
`raise NotImplementedError` at the marker's indentation and a markdown block disappears.
Everything outside the markers is copied byte for byte.

    python -m wanda_core.course.coursekit course/               # the three student notebooks (.ipynb)
    python -m wanda_core.course.coursekit course/ --solutions   # and the solutions as .ipynb, in course/solutions/
"""
from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from wanda_core.paths import repo_root

SOLUTIONS = "course/solutions"  # relative to the repository root
_MARK = re.compile(r"(?P<indent>[ \t]*)(?P<c>[#%]) (?P<word>BEGIN SOLUTION|STUDENT VERSION|END SOLUTION)[ \t]*")


@dataclass
class _Block:
    indent: str
    c: str                 # "#" in code, "%" in markdown
    line: int              # where BEGIN SOLUTION stands, for error messages
    student: list[str] | None = field(default=None)  # the STUDENT VERSION lines, uncommented


def _uncomment(line: str, b: _Block, n: int) -> str:
    body, eol = line.rstrip("\r\n"), line[len(line.rstrip("\r\n")):]
    prefix = b.indent + b.c
    if body == prefix:
        return b.indent + eol
    if not body.startswith(prefix + " "):
        raise ValueError(f"line {n}: a STUDENT VERSION line must start with {prefix + ' '!r} "
                         f"(the block's indentation and comment sign), got {body!r}")
    return b.indent + body[len(prefix) + 1:] + eol


def student_version(text: str) -> str:
    """The student's text of a solution: solution blocks replaced as the module docstring says."""
    out: list[str] = []
    b: _Block | None = None
    for n, line in enumerate(text.splitlines(keepends=True), 1):
        m = _MARK.fullmatch(line.rstrip("\r\n"))
        if m is None:
            if b is None:
                out.append(line)
            elif b.student is not None:
                b.student.append(_uncomment(line, b, n))
            continue
        word = m["word"]
        if word == "BEGIN SOLUTION":
            if b is not None:
                raise ValueError(f"line {n}: BEGIN SOLUTION inside the block opened at line {b.line}")
            b = _Block(m["indent"], m["c"], n)
            continue
        if b is None:
            raise ValueError(f"line {n}: {word} without a BEGIN SOLUTION before it")
        if (m["indent"], m["c"]) != (b.indent, b.c):
            raise ValueError(f"line {n}: {word} is not aligned with BEGIN SOLUTION at line {b.line} "
                             f"(same indentation and comment sign)")
        if word == "STUDENT VERSION":
            if b.student is not None:
                raise ValueError(f"line {n}: a second STUDENT VERSION in the block opened at line {b.line}")
            b.student = []
            continue
        if b.student is not None:                     # END SOLUTION
            out += b.student
        elif b.c == "#":
            out += [f"{b.indent}# YOUR CODE HERE\n", f"{b.indent}raise NotImplementedError\n"]
        b = None
    if b is not None:
        raise ValueError(f"BEGIN SOLUTION at line {b.line} is never closed by END SOLUTION")
    return "".join(out)


def solution_files(root: Path | None = None) -> list[Path]:
    """The assignments' solution notebooks, in order."""
    files = sorted(((root or repo_root()) / SOLUTIONS).glob("assignment*.md"))
    if not files:
        raise FileNotFoundError(f"no assignment*.md in {(root or repo_root()) / SOLUTIONS}")
    return files


def _write_ipynb(text: str, dest: Path) -> Path:
    """MyST notebook text -> an .ipynb without outputs, written atomically."""
    import jupytext
    import nbformat

    nb = jupytext.reads(text, fmt="md:myst")
    nb.metadata.pop("jupytext", None)  # a plain notebook: nothing pairs it with a text file
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    nbformat.write(nb, str(tmp))
    os.replace(tmp, dest)
    return dest


def write_student_versions(dest_dir: Path | str, solutions: bool = False) -> list[Path]:
    """Write dest_dir/<assignment>.ipynb for every solution (and, with `solutions`, the solutions
    themselves as dest_dir/solutions/<assignment>.ipynb); return the paths written."""
    dest_dir = Path(dest_dir)
    out = []
    for src in solution_files():
        text = src.read_text()
        out.append(_write_ipynb(student_version(text), dest_dir / f"{src.stem}.ipynb"))
        if solutions:
            out.append(_write_ipynb(text, dest_dir / "solutions" / f"{src.stem}.ipynb"))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m wanda_core.course.coursekit", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dest", help="folder for the student notebooks (inside the repository, so they find wanda_core)")
    ap.add_argument("--solutions", action="store_true", help="also write the solutions as .ipynb into DEST/solutions/")
    a = ap.parse_args(argv)
    for p in write_student_versions(a.dest, solutions=a.solutions):
        print(p)


if __name__ == "__main__":
    main()
