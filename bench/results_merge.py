#!/usr/bin/env python3
"""Puts a Markdown section written by one of the bench scripts into the results file: the section
whose heading starts with HEADING (its "## " line up to the next "## " heading or the end) is
replaced where it stands, or, if there is none, the new one is appended after a blank line. With
--at-end every such section is removed and the new one appended instead (bench/stacks.sh's, which
always goes last). Prints the section.

Usage: results_merge.py [--at-end] RESULTS HEADING SECTION
  RESULTS  the Markdown file to update (created if missing)
  HEADING  the start of the section's "## " line that names it, taken literally: the script's
           title and what a rerun replaces, e.g. "## Mount (issue 17): 4096 MiB "
  SECTION  a file holding the new section, ending in a newline

bench/run.sh's and bench/restore.sh's sections carry <!-- --> markers and are kept in an order of
their own by report.py and restore_report.py; the sections merged here follow them."""
import os
import re
import sys


def merge(text: str, heading: str, section: str, at_end: bool = False) -> str:
    """text with section in place of the sections headed heading..., or appended."""
    pat = re.compile(r"^%s.*?(?=^## |\Z)" % re.escape(heading), re.S | re.M)
    if at_end:
        text = pat.sub("", text)
    elif pat.search(text):
        return pat.sub(lambda m: section, text)
    return text.rstrip("\n") + "\n\n" + section


def main() -> int:
    args = sys.argv[1:]
    at_end = args[:1] == ["--at-end"]
    if at_end:
        args = args[1:]
    if len(args) != 3 or not args[1].startswith("## "):
        print("usage: results_merge.py [--at-end] RESULTS '## HEADING' SECTION", file=sys.stderr)
        return 2
    results, heading, section_path = args
    section = open(section_path).read()
    text = open(results).read() if os.path.exists(results) else ""
    open(results, "w").write(merge(text, heading, section, at_end))
    sys.stdout.write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
