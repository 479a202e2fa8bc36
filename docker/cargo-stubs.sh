#!/bin/sh
# cargo-stubs.sh SRC DEST: copies the workspace's manifests and lock file from SRC to DEST, with an empty
# stub for every target's source file, so that a Dockerfile can build the dependencies in a layer that only
# changes when a manifest or Cargo.lock does (what cargo-chef does, without installing it).
#
# Targets are found the way cargo finds them here: src/lib.rs and src/main.rs when they exist, and every
# `path = "....rs"` of the manifest's [lib], [[bin]], [[example]], [[test]] and [[bench]] sections.
set -eu

src="$1"
dest="$2"
mkdir -p "$dest"
cp "$src/Cargo.toml" "$src/Cargo.lock" "$dest/"

find "$src" -mindepth 2 -name Cargo.toml -not -path "$src/target/*" -not -path '*/.git/*' | while read -r manifest; do
  member="$(dirname "$manifest")"
  rel="${member#"$src"/}"
  mkdir -p "$dest/$rel"
  cp "$manifest" "$dest/$rel/Cargo.toml"
  {
    for inferred in src/lib.rs src/main.rs; do
      [ -f "$member/$inferred" ] && echo "$inferred"
    done
    sed -n 's/^[[:space:]]*path[[:space:]]*=[[:space:]]*"\([^"]*\.rs\)".*/\1/p' "$manifest"
  } | while read -r target; do
    mkdir -p "$(dirname "$dest/$rel/$target")"
    # Valid as a library, a binary, a test and a harness-less bench alike.
    echo 'fn main() {}' >"$dest/$rel/$target"
  done
done
