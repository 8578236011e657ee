"""Checks and describes the static binaries in DIST: ELF machine, statically
linked (no program interpreter), size; and the Lambda zip's single entry.
Usage: describe_binaries.py DIST [BINARY (default sqsrt)]"""

import struct
import sys
import zipfile
from pathlib import Path

MACHINES = {"x86_64": 62, "aarch64": 183}
PT_INTERP = 3


def elf_facts(path: Path) -> tuple[int, bool]:
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        sys.exit(f"{path}: not a 64-bit ELF")
    machine = struct.unpack_from("<H", data, 18)[0]
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    kinds = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
    return machine, PT_INTERP not in kinds


def main():
    dist = Path(sys.argv[1])
    name = sys.argv[2] if len(sys.argv) > 2 else "sqsrt"
    print("| file | size | |")
    print("|---|---:|---|")
    for arch, machine in MACHINES.items():
        binary = dist / arch / name
        got, static = elf_facts(binary)
        if got != machine or not static:
            sys.exit(f"{binary}: machine {got} (want {machine}), static {static}")
        print(f"| {arch}/{name} | {binary.stat().st_size / 1e6:.1f} MB | static {arch} ELF |")
    zipped = dist / "aarch64" / "bootstrap.zip"
    entries = zipfile.ZipFile(zipped).infolist()
    if [e.filename for e in entries] != ["bootstrap"]:
        sys.exit(f"{zipped}: holds {[e.filename for e in entries]}, want only bootstrap")
    if not (entries[0].external_attr >> 16) & 0o111:
        sys.exit(f"{zipped}: bootstrap is not executable")
    print(f"| aarch64/bootstrap.zip | {zipped.stat().st_size / 1e6:.1f} MB | Lambda zip (bootstrap) |")


if __name__ == "__main__":
    main()
