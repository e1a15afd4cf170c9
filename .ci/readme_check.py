#!/usr/bin/env python3
"""Follow README.md word for word: run every command of its ``console``
blocks (lines starting with ``$ ``, continued with a trailing ``\\``) from the
repository root, in order, and compare what it prints with the lines the
README shows under it.

- A line ``...`` in the README stands for any number of printed lines.
- Timings differ from run to run: ``1s 5ms/step`` and ``- 1s - 5ms/step``
  compare as ``[time]``; the build lines of ``cargo run`` are dropped.
- ``kerasrs`` resolves to ``target/release/kerasrs`` (what
  ``cargo install --path .`` installs; CI builds it before this check).
- ``cargo test`` and ``cargo install`` are not re-run here: CI runs the
  tests in their own step, and the installed binary is the release build.
- Outputs the README writes go under ``target/``; each run starts by
  removing the ones named after ``--output``/``--out-dir``/``--plot``.

Standard output and standard error are compared together, as a terminal
shows them. Exit status: 0 when every block matches, 1 otherwise (with a
diff of each mismatch).

Usage: python3 .ci/readme_check.py [README.md]
"""

import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = ("cargo test", "cargo install")
TIMING = [
    (re.compile(r"(━+) \d+s \d+(?:us|ms|s)/step"), r"\1 [time]"),
    (re.compile(r" - \d+s - \d+(?:us|ms|s)/step"), " - [time]"),
]
CARGO_STATUS = re.compile(r"^\s*(Compiling|Finished|Running|Blocking|Updating|Downloaded?|Locking)\b")


def blocks(text):
    """Yield (line number, [(command, [expected lines])]) per console block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```console":
            # Blocks inside list items are indented like their fence.
            indent = len(lines[i]) - len(lines[i].lstrip())
            start = i + 1
            body = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                line = lines[i]
                body.append(line[indent:] if line[:indent].strip() == "" else line)
                i += 1
            yield start, parse(body)
        i += 1


def parse(body):
    """Commands with their expected output lines."""
    out = []
    j = 0
    while j < len(body):
        line = body[j]
        if line.startswith("$ "):
            cmd = line[2:]
            while cmd.endswith("\\") and j + 1 < len(body):
                j += 1
                cmd = cmd[:-1] + " " + body[j].strip()
            out.append((cmd.strip(), []))
        elif out:
            out[-1][1].append(line)
        j += 1
    return out


def normalize(line):
    for pattern, repl in TIMING:
        line = pattern.sub(repl, line)
    return line.rstrip()


def matches(expected, actual):
    """Whether `actual` fits `expected`, where a `...` line spans any lines."""
    e = [normalize(x) for x in expected]
    a = [normalize(x) for x in actual]

    def go(i, j):
        if i == len(e):
            return j == len(a)
        if e[i].strip() == "...":
            return any(go(i + 1, k) for k in range(j, len(a) + 1))
        return j < len(a) and e[i] == a[j] and go(i + 1, j + 1)

    return go(0, 0)


def outputs_of(cmd):
    words = shlex.split(cmd)
    for flag, value in zip(words, words[1:]):
        if flag in ("--output", "-o", "--out-dir", "--plot", "--history"):
            yield value


def main(argv):
    readme = argv[1] if len(argv) > 1 else os.path.join(ROOT, "README.md")
    text = open(readme, encoding="utf-8").read()
    env = dict(os.environ)
    env["PATH"] = os.path.join(ROOT, "target", "release") + os.pathsep + env["PATH"]
    env["NO_COLOR"] = "1"
    all_blocks = list(blocks(text))
    for _, cmds in all_blocks:
        for cmd, _ in cmds:
            for path in outputs_of(cmd):
                full = os.path.normpath(os.path.join(ROOT, path))
                if not full.startswith(os.path.join(ROOT, "target") + os.sep):
                    print(f"README writes `{path}` outside target/: {cmd}")
                    return 1
                if os.path.isdir(full):
                    shutil.rmtree(full)
                elif os.path.exists(full):
                    os.remove(full)
    failed = ran = 0
    for line_no, cmds in all_blocks:
        for cmd, expected in cmds:
            if cmd.startswith(SKIP):
                print(f"skip  README.md:{line_no}: {cmd}")
                continue
            ran += 1
            proc = subprocess.run(
                ["bash", "-c", cmd], cwd=ROOT, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            actual = [l for l in proc.stdout.splitlines() if not CARGO_STATUS.match(l)]
            ok = matches(expected, actual)
            print(f"{'ok  ' if ok else 'FAIL'}  README.md:{line_no}: {cmd}")
            if not ok:
                failed += 1
                diff = difflib.unified_diff(
                    [normalize(x) for x in expected], [normalize(x) for x in actual],
                    "README", "printed", lineterm="",
                )
                print("\n".join("      " + d for d in diff))
    print(f"{ran - failed} of {ran} README commands print what the README shows")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
