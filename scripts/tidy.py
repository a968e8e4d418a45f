#!/usr/bin/env python3
"""Runs clang-tidy (the repo's .clang-tidy) over every source file of a build
tree's compile_commands.json that lives in src/ or tests/; exits 1 on a finding.

clang-tidy costs seconds per file, so a file whose preprocessed text, compile
flags, .clang-tidy and clang-tidy version are unchanged since a clean pass is
skipped: the key of a clean pass is kept under ~/.cache/cruncher/tidy.
Usage: scripts/tidy.py BUILD_DIR
"""
import concurrent.futures
import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("CRUNCHER_CACHE_DIR",
                            Path.home() / ".cache" / "cruncher")) / "tidy"


def preprocess_command(entry):
    args = shlex.split(entry["command"])
    if Path(args[0]).name == "ccache":
        args = args[1:]
    out = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MF", "-MT"):
            skip = True
            continue
        if a in ("-c", "-MD"):
            continue
        out.append(a)
    return out + ["-E", "-P"]


def key_of(entry, salt):
    pre = subprocess.run(preprocess_command(entry), cwd=entry["directory"],
                         capture_output=True, check=True).stdout
    h = hashlib.sha256(salt)
    h.update(entry["command"].replace(str(ROOT), "").encode())
    h.update(pre)
    return h.hexdigest()


def check(entry, build_dir, salt):
    key = key_of(entry, salt)
    stamp = CACHE / key
    if stamp.exists():
        return entry["file"], True, ""
    p = subprocess.run(["clang-tidy", "--quiet", "-p", str(build_dir), entry["file"]],
                       cwd=ROOT, capture_output=True, text=True)
    if p.returncode == 0:
        stamp.touch()
        return entry["file"], False, ""
    return entry["file"], False, p.stdout + p.stderr


def main():
    build_dir = Path(sys.argv[1]).resolve()
    entries = json.loads((build_dir / "compile_commands.json").read_text())
    entries = [e for e in entries
               if Path(e["file"]).resolve().is_relative_to(ROOT / "src")
               or Path(e["file"]).resolve().is_relative_to(ROOT / "tests")]
    if not entries:
        print(f"tidy: no source files in {build_dir}/compile_commands.json")
        return 1
    CACHE.mkdir(parents=True, exist_ok=True)
    version = subprocess.run(["clang-tidy", "--version"], capture_output=True).stdout
    salt = version + (ROOT / ".clang-tidy").read_bytes()
    failed = 0
    cached = 0
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        for file, hit, output in pool.map(lambda e: check(e, build_dir, salt), entries):
            cached += hit
            if output:
                failed += 1
                print(output)
    print(f"tidy: {len(entries)} files, {cached} unchanged since a clean pass, "
          f"{failed} with findings")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
