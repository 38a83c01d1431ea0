#!/bin/sh
# tests/check_config_example.sh POLEGATED POLEGATE CONFIG: `polegated --check-config`
# on a shipped config, its /etc/polegate/ CURVE key files made by `polegate keygen` and
# audit keys by `polegate audit keygen` in a temporary folder (no key is shipped).
set -eu
polegated=$1 polegate=$2 config=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
force=$(basename "$config" .yaml)
mkdir -m 700 "$dir/$force"
"$polegate" keygen "$dir/$force/curve" >/dev/null
rms=$("$polegate" keygen "$dir/$force/rms-import")
echo "$rms rms" >"$dir/$force/intake-clients"
"$polegate" audit keygen "$dir/$force" >/dev/null
sed "s|/etc/polegate/|$dir/|g" "$config" >"$dir/$force.yaml"
"$polegated" --config "$dir/$force.yaml" --check-config
