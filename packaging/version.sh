#!/bin/sh
# Prints the release version: `version` in the workspace's Cargo.toml, the one place it is set.
sed -n 's/^version = "\(.*\)"/\1/p' "$(dirname "$0")/../Cargo.toml" | head -n 1
