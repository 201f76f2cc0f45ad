#!/usr/bin/env python3
"""Checks that every streamkit service of docker/compose.yaml runs a binary the image ships
(scripts/build-binaries.sh) with flags that binary has: runs `<binary> [subcommand] --help`
from target/<profile>/ and looks for each `--flag` of the service's command in it.
Needs PyYAML (Debian's python3-yaml, which docker-compose depends on)."""
import re
import subprocess
import sys

import yaml

BIN_DIR = sys.argv[1] if len(sys.argv) > 1 else "target/debug"
SUBCOMMANDS = {"streamkit": 1}  # `streamkit registry …`: its help is `streamkit registry --help`

with open("docker/compose.yaml") as f:
    compose = yaml.safe_load(f)

problems = []
checked = 0
for name, service in compose["services"].items():
    if service.get("image") != "streamkit:latest":
        continue
    command = service.get("command")
    if not command:
        problems.append(f"{name}: no command")
        continue
    binary = command[0]
    depth = SUBCOMMANDS.get(binary, 0)
    args = command[1 + depth:]
    help_cmd = [f"{BIN_DIR}/{binary}", *command[1:1 + depth], "--help"]
    try:
        out = subprocess.run(help_cmd, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        problems.append(f"{name}: {' '.join(help_cmd)} failed: {e}")
        continue
    known = set(re.findall(r"--[a-z0-9][a-z0-9-]*", out))
    for arg in args:
        if arg.startswith("--"):
            flag = arg.split("=", 1)[0]
            checked += 1
            if flag not in known:
                problems.append(f"{name}: {binary} has no flag {flag}")

for p in problems:
    print(p)
print(f"checked {checked} flags of the streamkit services: {len(problems)} problems")
sys.exit(1 if problems or checked == 0 else 0)
