#!/usr/bin/env python3
"""Take kernel modules and everything they depend on out of a linux-image .deb.

Usage: kmods.py DEB OUTDIR MODULE[:PARAMS] ...

A Debian kernel package has no modules.dep (depmod writes it when the
package is installed), so the dependencies come from each module's own
.modinfo section ("depends=a,b"). The package is read twice as a stream
(dpkg-deb --fsys-tarfile): once to learn every module's name and
dependencies, once to copy out the ones needed.

Writes OUTDIR/<name>.ko for each module (decompressed if the package holds
.ko.xz) and OUTDIR/load-order: one line per module, dependencies first, the
file name followed by the parameters given on the command line, e.g.
    python3 kmods.py linux-image-6.1.0-57-amd64_6.1.192-3_amd64.deb out kvm-amd:nested=0
writes irqbypass.ko, kvm.ko, ccp.ko and kvm-amd.ko and the line
"kvm-amd.ko nested=0" last.
"""

import lzma
import os
import struct
import subprocess
import sys
import tarfile

SUFFIXES = (".ko", ".ko.xz")


def modinfo(elf):
    """The key=value strings of an ELF64 module's .modinfo section."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise ValueError("not an ELF64 file")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(i):
        name, _, _, _, off, size = struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize)
        return name, off, size

    _, stroff, _ = section(shstrndx)
    for i in range(shnum):
        name, off, size = section(i)
        end = elf.index(b"\0", stroff + name)
        if elf[stroff + name:end] == b".modinfo":
            info = {}
            for item in elf[off:off + size].split(b"\0"):
                key, sep, value = item.decode("utf-8", "replace").partition("=")
                if sep:
                    info.setdefault(key, value)
            return info
    raise ValueError("no .modinfo section")


def module_files(tar):
    """Yields (module name from the file name, contents) of every module."""
    for m in tar:
        base = os.path.basename(m.name)
        suffix = next((s for s in SUFFIXES if base.endswith(s)), None)
        if suffix and m.isfile():
            data = tar.extractfile(m).read()
            if suffix == ".ko.xz":
                data = lzma.decompress(data)
            yield base[: -len(suffix)], data


def packed(deb):
    """The package's file tree as a tar stream."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
    return proc, tarfile.open(fileobj=proc.stdout, mode="r|")


def norm(name):
    # modinfo and depends use underscores where file names may have dashes.
    return name.replace("-", "_")


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    deb, outdir, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
    params = {}
    for w in wanted:
        name, _, p = w.partition(":")
        params[norm(name)] = p.replace(",", " ")

    # Pass 1: every module's dependencies.
    deps = {}
    proc, tar = packed(deb)
    with tar:
        for name, data in module_files(tar):
            deps[norm(name)] = [norm(d) for d in modinfo(data).get("depends", "").split(",") if d]
    if proc.wait() != 0:
        sys.exit(f"kmods.py: dpkg-deb --fsys-tarfile {deb} failed")

    # Dependencies first (depth-first post-order), each module once.
    order, seen = [], set()

    def visit(name, chain):
        if name in seen:
            return
        if name not in deps:
            sys.exit(f"kmods.py: no module {name} in {deb}" + (f" (needed by {chain[-1]})" if chain else ""))
        if name in chain:
            sys.exit(f"kmods.py: dependency cycle {' -> '.join(chain + [name])}")
        for d in deps[name]:
            visit(d, chain + [name])
        seen.add(name)
        order.append(name)

    for name in params:
        visit(name, [])

    # Pass 2: copy them out.
    os.makedirs(outdir, exist_ok=True)
    files = {}
    proc, tar = packed(deb)
    with tar:
        for name, data in module_files(tar):
            if norm(name) in seen and norm(name) not in files:
                files[norm(name)] = name + ".ko"
                with open(os.path.join(outdir, name + ".ko"), "wb") as f:
                    f.write(data)
    proc.wait()
    with open(os.path.join(outdir, "load-order"), "w") as f:
        for name in order:
            f.write(f"{files[name]} {params.get(name, '')}".rstrip() + "\n")


if __name__ == "__main__":
    main()
