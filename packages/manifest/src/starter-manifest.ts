/**
 * The commented `bulkhead.yaml` that `bulkhead init` writes. Every field is shown with its default, so
 * the file documents the defaults it keeps; a test parses and compiles it.
 */
export function starterManifest(): string {
  return `# yaml-language-server: $schema=./node_modules/@bulkhead/manifest/dist/manifest.schema.json
# Bulkhead manifest: what the sandbox may do. Everything not granted here is denied.
# Reference: https://www.npmjs.com/package/@bulkhead/manifest
version: 1

# The weakest isolation tier that may run this: process | session | microvm | wsl.
tier: process

filesystem:
  # Added to the defaults: the system folders (/usr, /bin, /lib*, /etc, /opt) are readable,
  # secrets in /etc (shadow, ssh host keys, sudoers, ...) are not, and the current folder
  # (the workspace) is readable and writable. Your home folder is never granted by default.
  # Relative paths resolve against this file's folder; ~, \${workspace} and \${env:NAME} expand.
  # The most specific path wins; at equal paths deny > read > write.
  read: []            # e.g. [~/.gitconfig, ~/.npmrc]
  write: []           # e.g. [./build, ~/.cache/pip]
  deny: [.env]        # hidden even though the workspace is granted

network:
  internet: false     # true: the whole network (cannot be combined with allow)
  allow: []           # e.g. [registry.npmjs.org:443, "*.githubusercontent.com:443"]

processes:
  spawn: true         # false: the payload cannot start other processes
  max: 256

resources:
  memory: 1GiB        # 512MB, 2GiB, or a number of megabytes
  timeout: 10m        # 30s, 1h30m, or a number of seconds
  # cpus: 2           # CPU bandwidth in CPUs; unlimited when absent
  gpus: none          # none | all | [0, 1]

devices:              # all false by default
  clipboard: false
  audio: false
  webcam: false
  display: false
  input: false

env:
  # Only these variables pass through from your environment (when set). Default: LANG, TERM.
  inherit: [LANG, TERM]
  set: {}             # e.g. { NODE_ENV: production, TOKEN: "\${env:MY_TOKEN}" }
`;
}
