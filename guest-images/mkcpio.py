#!/usr/bin/env python3
"""Write a reproducible "newc" (SVR4, no CRC) cpio archive for a Linux initramfs.

Usage: mkcpio.py ROOTDIR OUTPUT [--node PATH:TYPE:MAJOR:MINOR:MODE ...]

* Every file, directory and symlink below ROOTDIR is archived, sorted by path,
  parents before children.
* Owner and group are always 0 (root), mtimes are all SOURCE_DATE_EPOCH
  (default 0), inode numbers are assigned sequentially, and permissions are
  normalised (directories 0755, executables 0755, other files 0644, symlinks
  0777), so the archive depends only on the tree's contents, not on who built
  it, when, or under which umask.
* --node adds a device node that need not exist on the host, so no root is
  needed to build the archive. TYPE is "c" (character) or "b" (block); MODE is
  octal. Example: --node dev/console:c:5:1:600
"""

import argparse
import os
import stat
import sys

S_IFDIR = 0o040000
S_IFREG = 0o100000
S_IFLNK = 0o120000
S_IFCHR = 0o020000
S_IFBLK = 0o060000


def pad4(n):
    return (4 - n % 4) % 4


class Writer:
    def __init__(self, out, mtime):
        self.out = out
        self.mtime = mtime
        self.ino = 300000  # arbitrary but fixed base, like the kernel's gen_init_cpio

    def entry(self, name, mode, data=b"", rdevmajor=0, rdevminor=0):
        name_b = name.encode() + b"\0"
        nlink = 2 if (mode & 0o170000) == S_IFDIR else 1
        fields = [
            self.ino, mode, 0, 0, nlink, self.mtime, len(data),
            0, 0, rdevmajor, rdevminor, len(name_b), 0,
        ]
        self.ino += 1
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.out.write(hdr)
        self.out.write(name_b)
        self.out.write(b"\0" * pad4(len(hdr) + len(name_b)))
        self.out.write(data)
        self.out.write(b"\0" * pad4(len(data)))

    def trailer(self):
        self.ino = 0
        self.entry("TRAILER!!!", 0)


def collect(root):
    """Yield archive paths (relative, '/'-separated) in a deterministic order."""
    items = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for n in dirnames + filenames:
            items.append(os.path.normpath(os.path.join(rel, n)).replace(os.sep, "/"))
    # Sorting by path components puts every directory before its contents.
    items.sort(key=lambda p: p.split("/"))
    return items


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("output")
    ap.add_argument("--node", action="append", default=[],
                    help="PATH:c|b:MAJOR:MINOR:MODE device node to add")
    args = ap.parse_args()

    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    nodes = {}
    for spec in args.node:
        path, typ, major, minor, mode = spec.split(":")
        if typ not in ("c", "b"):
            sys.exit(f"mkcpio: bad node type in {spec!r}")
        nodes[path.strip("/")] = (S_IFCHR if typ == "c" else S_IFBLK) | int(mode, 8), int(major), int(minor)

    paths = collect(args.root)
    # Merge device nodes into the sorted order.
    allpaths = sorted(set(paths) | set(nodes), key=lambda p: p.split("/"))

    tmp = args.output + ".tmp"
    with open(tmp, "wb") as f:
        w = Writer(f, mtime)
        for p in allpaths:
            if p in nodes:
                mode, ma, mi = nodes[p]
                w.entry(p, mode, rdevmajor=ma, rdevminor=mi)
                continue
            full = os.path.join(args.root, p)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                w.entry(p, S_IFLNK | 0o777, os.readlink(full).encode())
            elif stat.S_ISDIR(st.st_mode):
                w.entry(p, S_IFDIR | 0o755)
            elif stat.S_ISREG(st.st_mode):
                perm = 0o755 if st.st_mode & 0o111 else 0o644
                with open(full, "rb") as src:
                    w.entry(p, S_IFREG | perm, src.read())
            else:
                sys.exit(f"mkcpio: unsupported file type: {full} (use --node for device nodes)")
        w.trailer()
    os.replace(tmp, args.output)


if __name__ == "__main__":
    main()
