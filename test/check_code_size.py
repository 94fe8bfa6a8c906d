#!/usr/bin/env python3
"""The code's size rules (CONTRIBUTING.md): no C function in src/ over 100
lines, no file in src/ over 800.  A function is a body whose opening and
closing braces stand at the start of a line, as pgindent lays them out.
Prints each breach and exits 1 if there is any.  Usage: check_code_size.py SRC_DIR"""

import pathlib
import sys

MAX_FUNCTION_LINES = 100
MAX_FILE_LINES = 800


def function_breaches(path):
    """(line, name, length) of each function of path longer than the limit"""
    lines = path.read_text(encoding="utf-8").split("\n")
    found = []
    start = None
    name = None
    for i, line in enumerate(lines):
        if line == "{" and i > 0:
            start = i
            j = i - 1
            while j > 0 and "(" not in lines[j]:
                j -= 1
            head = lines[j].split("(")[0].split()
            name = head[-1] if head else lines[j]
        elif line.startswith("}") and start is not None:
            if i - start + 1 > MAX_FUNCTION_LINES:
                found.append((start + 1, name, i - start + 1))
            start = None
    return found


def main():
    src = pathlib.Path(sys.argv[1])
    breaches = 0
    for path in sorted(src.rglob("*.[ch]")):
        nlines = len(path.read_text(encoding="utf-8").splitlines())
        if nlines > MAX_FILE_LINES:
            print(f"{path}: {nlines} lines (at most {MAX_FILE_LINES})")
            breaches += 1
        if path.suffix == ".c":
            for line, name, length in function_breaches(path):
                print(f"{path}:{line}: {name} is {length} lines (at most {MAX_FUNCTION_LINES})")
                breaches += 1
    print(f"{breaches} breaches of the size rules in {src}")
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())
