"""Checks an OCI image archive of sqsrt (or of a crate built on it) and
unpacks one platform's root filesystem.

Every platform's config must run the entrypoint binary (/sqsrt by default)
alone as UID 65532 with the metrics port exposed; its filesystem must hold
only that static binary, the CA bundle and the passwd/group files, so its
size is the binary's plus a few hundred KB.

Usage: python check_image.py ARCHIVE [--entrypoint /NAME] [--platforms amd64,arm64] [--unpack ARCH DIR]
"""

import argparse
import gzip
import io
import json
import sys
import tarfile
from pathlib import Path

INDEX = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
SUPPORT_FILES = {"etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt"}
MAX_OVERHEAD = 1_000_000  # bytes beyond the binary: certificates, passwd, tar headers


class Archive:
    def __init__(self, path: Path):
        self.tar = tarfile.open(path)

    def blob(self, digest: str) -> bytes:
        algo, hexd = digest.split(":")
        return self.tar.extractfile(f"blobs/{algo}/{hexd}").read()

    def json(self, digest: str) -> dict:
        return json.loads(self.blob(digest))

    def manifests(self):
        """(platform, manifest) for every image, following nested indexes."""
        pending = json.loads(self.tar.extractfile("index.json").read())["manifests"]
        while pending:
            desc = pending.pop(0)
            if desc["mediaType"] in INDEX:
                pending += self.json(desc["digest"])["manifests"]
            else:
                yield desc.get("platform", {}), self.json(desc["digest"])


def layer_files(data: bytes) -> tarfile.TarFile:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return tarfile.open(fileobj=io.BytesIO(data))


def check(archive: Archive, platforms: set[str], unpack: tuple[str, Path] | None,
          entrypoint: str = "/sqsrt") -> list[str]:
    problems, seen = [], set()
    binary_name = entrypoint.lstrip("/")
    expected_files = SUPPORT_FILES | {binary_name}
    print("| platform | compressed | unpacked | user | entrypoint |")
    print("|---|---:|---:|---|---|")
    for _, manifest in archive.manifests():
        config = archive.json(manifest["config"]["digest"])
        arch = config["architecture"]
        seen.add(arch)
        c = config["config"]
        where = f"linux/{arch}"
        if config["os"] != "linux":
            problems.append(f"{where}: os {config['os']}")
        if c.get("User") != "65532:65532":
            problems.append(f"{where}: user {c.get('User')!r}, want 65532:65532")
        if c.get("Entrypoint") != [entrypoint] or c.get("Cmd"):
            problems.append(f"{where}: entrypoint {c.get('Entrypoint')} cmd {c.get('Cmd')}, want [{entrypoint!r}] alone")
        if "9090/tcp" not in c.get("ExposedPorts", {}):
            problems.append(f"{where}: metrics port 9090 not exposed")
        compressed = sum(layer["size"] for layer in manifest["layers"])
        files, unpacked, binary = set(), 0, 0
        for layer in manifest["layers"]:
            with layer_files(archive.blob(layer["digest"])) as tar:
                for member in tar.getmembers():
                    name = member.name.lstrip("./")
                    if member.isfile():
                        files.add(name)
                        unpacked += member.size
                    if name == binary_name:
                        binary = member.size
                        if member.mode & 0o111 == 0 or member.mode & 0o222:
                            problems.append(f"{where}: {entrypoint} mode {oct(member.mode)}, want read-only executable")
                    if unpack and unpack[0] == arch:
                        tar.extract(member, unpack[1], filter="tar")
        if files != expected_files:
            problems.append(f"{where}: files {sorted(files)}, want {sorted(expected_files)}")
        if unpacked - binary > MAX_OVERHEAD:
            problems.append(f"{where}: {unpacked - binary} bytes beyond the binary (limit {MAX_OVERHEAD})")
        print(f"| {where} | {compressed / 1e6:.1f} MB | {unpacked / 1e6:.1f} MB | {c.get('User')} | {c.get('Entrypoint')} |")
    if seen != platforms:
        problems.append(f"platforms {sorted(seen)}, want {sorted(platforms)}")
    if unpack:
        bundle = (unpack[1] / "etc/ssl/certs/ca-certificates.crt").read_text()
        if bundle.count("BEGIN CERTIFICATE") < 50:
            problems.append("the CA bundle holds fewer than 50 certificates")
    return problems


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("archive", type=Path)
    parser.add_argument("--platforms", default="amd64,arm64", help="the architectures the archive must hold")
    parser.add_argument("--unpack", nargs=2, metavar=("ARCH", "DIR"))
    parser.add_argument("--entrypoint", default="/sqsrt", help="the binary the image runs")
    args = parser.parse_args()
    unpack = (args.unpack[0], Path(args.unpack[1])) if args.unpack else None
    problems = check(Archive(args.archive), set(args.platforms.split(",")), unpack, args.entrypoint)
    for p in problems:
        print("FAIL", p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
