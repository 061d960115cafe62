#!/usr/bin/env python3
"""Lets the test command on a fresh clone reuse what an earlier run built from the same files.

Cargo decides that a workspace crate must be rebuilt when one of its files (or a directory its
build script watches) is newer than the build; a fresh clone makes every file new, so each run
rebuilt every workspace crate in every profile (about eleven of a warm run's twenty minutes). After a run this writes a record of each
tracked file's content (its git blob) and each directory's tracked entries, with their
modification times; before the next run it gives every file and directory whose content is the
recorded one its recorded time again, and the time of now to the others.

That is sound only under four conditions, which the caller (deploy/local/xintu) keeps:
  * the target directories are used by these runs alone, one run at a time: an artefact built
    from other content by another build would look current;
  * the record is removed before the first build of a run and written only after a run that
    succeeded, so a record always describes the files that the artefacts were built from; every
    other file is given the time of the restore, newer than every earlier build, and keeps it;
  * the checkout has no changes: the record compares committed content;
  * the checkout is where the recorded one was: crates read files through the absolute path
    that env!("CARGO_MANIFEST_DIR") compiled into them, and cargo does not rebuild for a new one.

    reuse-builds.py restore RECORD    before a run (removes RECORD)
    reuse-builds.py record RECORD     after a run that succeeded
"""

import hashlib
import os
import subprocess
import sys
import time

# Regular files only: links and submodules are not a crate's sources.
REGULAR_MODES = {"100644", "100755"}


def tracked_files() -> dict[str, str]:
    """Tracked regular files of the checkout in the current directory, path -> blob id, and the
    directories that hold them, path -> a digest of the names of the tracked entries in each (a
    build script may watch a directory, and cargo then reads the directory's own time too)."""
    listing = subprocess.run(
        ["git", "ls-files", "--stage", "-z"], capture_output=True, check=True
    ).stdout
    files = {}
    children: dict[str, set[str]] = {}
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, path = entry.split(b"\t", 1)
        mode, blob, _stage = meta.decode().split()
        if mode not in REGULAR_MODES:
            continue
        name = os.fsdecode(path)
        files[name] = blob
        child = name
        while "/" in child:
            parent, _, base = child.rpartition("/")
            children.setdefault(parent, set()).add(base)
            child = parent
    for directory, names in children.items():
        digest = hashlib.sha256("\0".join(sorted(names)).encode()).hexdigest()
        files[directory] = f"dir-{digest}"
    return files


def has_changes() -> bool:
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        check=True,
    ).stdout
    return bool(status.strip())


def read_record(path: str) -> tuple[str, dict[str, tuple[str, int]]]:
    """The checkout's path, and each file's blob id and time."""
    files = {}
    with open(path, encoding="utf-8") as lines:
        root = lines.readline().rstrip("\n").removeprefix("root ")
        for line in lines:
            blob, mtime_ns, name = line.rstrip("\n").split(" ", 2)
            files[name] = (blob, int(mtime_ns))
    return root, files


def restore(record_path: str) -> str:
    """Gives each file its recorded time where its content is the recorded one, and the time of
    now to every other file: newer than any build, also one that ended after this clone was made.
    """
    record = {}
    if not os.path.exists(record_path):
        why = "no record of an earlier run"
    elif has_changes():
        why = "the checkout has changes"
    else:
        root, record = read_record(record_path)
        why = "" if root == os.getcwd() else f"the last run's checkout was {root}"
        if why:
            record = {}
    if os.path.exists(record_path):
        # Whatever this run builds next, the record no longer describes it.
        os.remove(record_path)
    now = time.time_ns()
    files = tracked_files()
    restored = 0
    for name, blob in files.items():
        recorded = record.get(name)
        if recorded is not None and recorded[0] == blob:
            os.utime(name, ns=(recorded[1], recorded[1]))
            restored += 1
        else:
            os.utime(name, ns=(now, now))
    if why:
        return f"{why}: every workspace crate is built"
    return f"{restored} of {len(files)} files and directories as an earlier run built them"


def record(record_path: str) -> str:
    if has_changes():
        return "the checkout has changes: no record"
    temporary = f"{record_path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as out:
        out.write(f"root {os.getcwd()}\n")
        for name, blob in sorted(tracked_files().items()):
            out.write(f"{blob} {os.stat(name).st_mtime_ns} {name}\n")
    os.replace(temporary, record_path)
    return f"recorded {record_path}"


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("restore", "record"):
        sys.exit(__doc__)
    action = restore if sys.argv[1] == "restore" else record
    print(f"[reuse-builds] {action(sys.argv[2])}", file=sys.stderr)


if __name__ == "__main__":
    main()
