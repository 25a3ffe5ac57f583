#!/bin/sh
# The main job: `bulkhead run` on the built-in default manifest, showing what the sandbox sees.
# Pass your own command after the script to run it instead: npm run demo -- ls -la /
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
if [ "$#" -eq 0 ]; then
  set -- sh -c 'echo "== id"; id; echo "== ls -la ~"; ls -la ~; echo "== cat /etc/shadow"; cat /etc/shadow; echo "== curl -m2 https://example.com"; curl -sS -m2 https://example.com >/dev/null && echo "network reachable"; true'
fi
exec node packages/cli/dist/cli.js run -- "$@"
