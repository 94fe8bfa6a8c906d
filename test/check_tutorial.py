#!/usr/bin/env python3
"""docs/tutorial.md cannot drift from what CI runs.

The tutorial's ```sql blocks, in order, must be the regression test
sql/qiwi_tutorial.sql between its lines "-- the tutorial" and "-- end of the
tutorial"; each ```text block is the output of the sql block before it, and
the blocks in order must be expected/qiwi_tutorial.out between the same
lines (pg_regress echoes each statement before its output).  Trailing
spaces and blank lines are not compared.  Exits 1 with a diff on any
difference.

  python3 test/check_tutorial.py [TREE]          # compare (default: this checkout)
  python3 test/check_tutorial.py --sql [TREE]    # print the tutorial's SQL
  python3 test/check_tutorial.py --output FILE [TREE]
        # compare FILE (psql -X -a -q run on --sql's output) with the document
"""
import difflib
import os
import re
import sys

BEGIN = "-- the tutorial"
END = "-- end of the tutorial"


def blocks(markdown):
    """The fenced blocks of a Markdown text: a list of (info, lines)."""
    found, info, lines = [], None, []
    for line in markdown.splitlines():
        fence = re.match(r"^```\s*(\S*)\s*$", line)
        if info is None and fence:
            info, lines = fence.group(1), []
        elif info is not None and line.rstrip() == "```":
            found.append((info, lines))
            info = None
        elif info is not None:
            lines.append(line)
    if info is not None:
        sys.exit("docs/tutorial.md: a ``` block is not closed")
    return found


def between(text, name):
    """The lines of a test file strictly between BEGIN and END."""
    lines = text.splitlines()
    try:
        start = lines.index(BEGIN)
        end = lines.index(END)
    except ValueError:
        sys.exit(f"{name}: no line '{BEGIN}' or '{END}'")
    return lines[start + 1:end]


def normal(lines):
    return [line.rstrip() for line in lines if line.strip()]


def same(what, expected, expected_name, actual, actual_name):
    expected, actual = normal(expected), normal(actual)
    if expected == actual:
        print(f"ok   {what}")
        return True
    print(f"FAIL {what}")
    sys.stdout.writelines(line + "\n" for line in difflib.unified_diff(
        expected, actual, expected_name, actual_name, lineterm=""))
    return False


def main(argv):
    mode, outfile = "compare", None
    if argv and argv[0] == "--sql":
        mode, argv = "sql", argv[1:]
    elif argv and argv[0] == "--output":
        mode, outfile, argv = "output", argv[1], argv[2:]
    tree = argv[0] if argv else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    with open(os.path.join(tree, "docs/tutorial.md"), encoding="utf-8") as f:
        doc = blocks(f.read())
    doc_sql = [line for info, lines in doc if info == "sql" for line in lines]
    doc_run = [line for info, lines in doc if info in ("sql", "text") for line in lines]
    if mode == "sql":
        sys.stdout.writelines(line + "\n" for line in doc_sql)
        return 0
    if mode == "output":
        with open(outfile, encoding="utf-8") as f:
            ran = f.read().splitlines()
        ok = same("docs/tutorial.md: its SQL gives the output it shows", doc_run,
                  "docs/tutorial.md", ran, outfile)
        return 0 if ok else 1
    with open(os.path.join(tree, "sql/qiwi_tutorial.sql"), encoding="utf-8") as f:
        test_sql = between(f.read(), "sql/qiwi_tutorial.sql")
    with open(os.path.join(tree, "expected/qiwi_tutorial.out"), encoding="utf-8") as f:
        test_out = between(f.read(), "expected/qiwi_tutorial.out")
    ok = same("docs/tutorial.md: its SQL is sql/qiwi_tutorial.sql", test_sql,
              "sql/qiwi_tutorial.sql", doc_sql, "docs/tutorial.md")
    ok = same("docs/tutorial.md: its output is expected/qiwi_tutorial.out", test_out,
              "expected/qiwi_tutorial.out", doc_run, "docs/tutorial.md") and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
