"""The scaffold behind scripts/new-handler.sh: renders templates/handler with
`cargo lambda new`, then derives the SAM template and the from-source
Containerfile from this checkout's infra/ (one source for both)."""

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "templates" / "handler"
# Files of the template with {{ }} variables (cargo lambda renders Cargo.toml,
# README.md and src/main.rs by itself).
RENDERED = ["deploy/Containerfile", "deploy/k8s/kustomization.yaml"]


def main():
    parser = argparse.ArgumentParser(description="Create a new sqsrt handler crate.")
    parser.add_argument("name")
    parser.add_argument("--dir", default=".", help="where the crate's folder is created (default: here)")
    parser.add_argument("--sqsrt", default=str(ROOT), help="an sqsrt checkout's path or a git URL (default: this checkout)")
    args = parser.parse_args()
    name = args.name
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,39}", name) or name.endswith("-"):
        sys.exit(f"{name!r}: the name must be 1-40 lowercase letters, digits and dashes, starting with a letter "
                 "(it names the crate, the binary, the image and the Kubernetes namespace)")
    parent = Path(args.dir).resolve()
    crate = parent / name
    if crate.exists():
        sys.exit(f"{crate} already exists")
    parent.mkdir(parents=True, exist_ok=True)

    git = re.match(r"^(https?|ssh|git)://|^git@", args.sqsrt) is not None
    if git:
        dep = f'{{ git = "{args.sqsrt}" }}'
        dev_dep = f'{{ git = "{args.sqsrt}", features = ["testing"] }}'
        k8s_base = f"{args.sqsrt.removesuffix('.git')}//infra/k8s/base"
        scripts, source = "<your sqsrt checkout>/scripts", args.sqsrt
    else:
        checkout = Path(args.sqsrt).resolve()
        if not (checkout / "crates" / "sqsrt" / "Cargo.toml").is_file():
            sys.exit(f"{checkout} is not an sqsrt checkout (no crates/sqsrt/Cargo.toml)")
        lib = checkout / "crates" / "sqsrt"
        dep = f'{{ path = "{lib}" }}'
        dev_dep = f'{{ path = "{lib}", features = ["testing"] }}'
        k8s_base = os.path.relpath(checkout / "infra" / "k8s" / "base", crate / "deploy" / "k8s")
        scripts, source = str(checkout / "scripts"), str(checkout)

    command = ["cargo", "lambda", "new", "--template", str(TEMPLATE), "--no-interactive"]
    for var, value in [("sqsrt_dep", dep), ("sqsrt_dev_dep", dev_dep), ("k8s_base", k8s_base),
                       ("sqsrt_scripts", scripts), ("sqsrt_source", source)]:
        command += ["--render-var", f"{var}={value}"]
    for path in RENDERED:
        command += ["--render-file", path]
    subprocess.run(command + [name], cwd=parent, check=True, stdin=subprocess.DEVNULL)

    # One source for the SAM template and the from-source Containerfile:
    # sqsrt's own, pointed at this crate.
    sam = (ROOT / "infra" / "aws" / "template.yaml").read_text()
    sam = sam.replace("  sqsrt: the SQS queue", f"  {name} on sqsrt: the SQS queue")
    sam = sam.replace("Default: sqsrt-orders", f"Default: {name}")
    sam = sam.replace("    Default: sqsrt\n", f"    Default: {name}\n")
    sam = sam.replace("        Binary: sqsrt\n", f"        Binary: {name}\n")
    sam = sam.replace("      CodeUri: ../..\n", "      CodeUri: ..\n")
    (crate / "deploy" / "template.yaml").write_text(sam)
    source_build = (ROOT / "infra" / "container" / "Containerfile").read_text()
    source_build = source_build.replace("--locked --bin sqsrt", f"--bin {name}")
    source_build = source_build.replace("/out/sqsrt/bootstrap /sqsrt", f"/out/{name}/bootstrap /app")
    source_build = source_build.replace("infra/container/rootfs/", "deploy/rootfs/")
    source_build = source_build.replace("--chmod=0555 /sqsrt /sqsrt", f"--chmod=0555 /app /{name}")
    source_build = source_build.replace('ENTRYPOINT ["/sqsrt"]', f'ENTRYPOINT ["/{name}"]')
    source_build = re.sub(r"(?s)^# syntax=docker/dockerfile:1\n.*?\n\n",
                          "# syntax=docker/dockerfile:1\n"
                          f"# For Docker or Podman: builds {name} from source into the same image as\n"
                          "# deploy/Containerfile. The context is this crate, so the sqsrt dependency\n"
                          "# must be a git URL (a path outside the crate is not in the context):\n"
                          "#   docker buildx build --platform linux/amd64,linux/arm64 \\\n"
                          f"#     -f deploy/Containerfile.source -t REGISTRY/{name}:TAG --push .\n\n", source_build)
    (crate / "deploy" / "Containerfile.source").write_text(source_build)
    # If sqsrt's files changed shape, a replacement above missed: say so.
    for derived, stale in [("template.yaml", ["Binary: sqsrt", "CodeUri: ../.."]),
                           ("Containerfile.source", ["/sqsrt", "--bin sqsrt", "infra/container"])]:
        text = (crate / "deploy" / derived).read_text()
        if any(s in text for s in stale):
            sys.exit(f"deploy/{derived} still holds one of {stale}: scripts/new_handler.py needs updating")
    if not git:
        # Start from the versions sqsrt is tested with (cargo prunes the rest).
        shutil.copy(ROOT / "Cargo.lock", crate / "Cargo.lock")
    (crate / "scripts" / "run-local.sh").chmod(0o755)
    print(f"created {crate} (sqsrt from {source})")
    print(f"  cd {crate} && ./scripts/run-local.sh && cargo test")


if __name__ == "__main__":
    main()
