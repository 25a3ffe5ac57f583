import { spawn } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { BulkheadError } from '@bulkhead/core';
import { findExecutable, runtimeDirectory } from '@bulkhead/linux';
import type { IdRange } from './identity-pool.js';

/*
 * An unprivileged caller cannot setuid, but it owns the subordinate ids /etc/subuid gives it:
 * newuidmap/newgidmap (package uidmap, setuid root) map one of them into a user namespace of its
 * own, where the process switches to it before bubblewrap starts. From the host, the payload then
 * runs as that subordinate uid, which no process of the caller shares.
 */

/**
 * Starts bubblewrap as the sandbox's subordinate uid/gid. The process tier runs it in place of bwrap
 * with its usual arguments, which it parses by bubblewrap's own grammar (an unknown option fails
 * closed, so no variable or path can pose as an option). The ids are those of `--uid`/`--gid`;
 * without them (the probes' `--version`) it is plain bwrap.
 *
 * cgroup v1 lets an unprivileged caller move only processes of its own uid into a cgroup, and the
 * process tier places bubblewrap once it reported its child. So the stand-in answers for bubblewrap
 * while it still runs as the caller: it reports its own pid on the info fd, waits on the block fd
 * until the tier has placed it, and only then switches ids and starts bubblewrap (without those two
 * fds), whose every process is born inside the sandbox's cgroups.
 */
export function wrapperScript(bash: string, unshare: string, bubblewrap: string): string {
  return `#!${bash}
# Written by @bulkhead/tier-session: starts bubblewrap under a subordinate uid/gid of the caller.
set -u
arguments=("$@")
kept=()
uid='' gid='' info='' block=''
count=\${#arguments[@]}
index=0
while (( index < count )); do
  option=\${arguments[index]}
  case "$option" in
    --)
      kept+=("\${arguments[@]:index}")
      break ;;
    --uid) uid=\${arguments[index+1]}; kept+=("\${arguments[@]:index:2}"); (( index += 2 )) ;;
    --gid) gid=\${arguments[index+1]}; kept+=("\${arguments[@]:index:2}"); (( index += 2 )) ;;
    --info-fd) info=\${arguments[index+1]}; (( index += 2 )) ;;
    --block-fd) block=\${arguments[index+1]}; (( index += 2 )) ;;
    --setenv|--bind|--ro-bind|--dev-bind|--bind-try|--ro-bind-try|--dev-bind-try|--symlink|--chmod|--file|--bind-data|--ro-bind-data)
      kept+=("\${arguments[@]:index:3}"); (( index += 3 )) ;;
    --perms|--size|--hostname|--chdir|--tmpfs|--dir|--proc|--dev|--mqueue|--remount-ro|--cap-drop|--cap-add|--unsetenv|--seccomp|--add-seccomp-fd|--lock-file|--sync-fd|--exec-label|--file-label|--argv0)
      kept+=("\${arguments[@]:index:2}"); (( index += 2 )) ;;
    --unshare-*|--share-net|--new-session|--die-with-parent|--as-pid-1|--clearenv|--disable-userns|--assert-userns-disabled|--level-prefix)
      kept+=("$option"); (( index += 1 )) ;;
    --version|--help) exec ${bubblewrap} "$@" ;;
    *) echo "bulkhead: the session tier's bubblewrap stand-in does not know the option '$option'" >&2; exit 125 ;;
  esac
done
if [[ -z "$uid" || -z "$gid" ]]; then
  exec ${bubblewrap} "$@"
fi
if [[ -n "$info" && -n "$block" ]]; then
  printf '{"child-pid": %d}\\n' "$$" >&"$info"
  eval "exec $info>&-"
  IFS= read -r -N 1 -u "$block" _ || exit 125
  eval "exec $block<&-"
fi
exec ${unshare} --user --map-users="$uid,$uid,1" --map-groups="$gid,$gid,1" --setuid "$uid" --setgid "$gid" -- ${bubblewrap} "\${kept[@]}"
`;
}

export interface SubordinateSwitch {
  usable: boolean;
  /** The bubblewrap stand-in the process tier runs (when usable). */
  wrapperPath?: string;
  reason?: string;
  fix?: string;
}

function runQuietly(file: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'], env: {} });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('error', (error) => resolve({ code: -1, stderr: error.message }));
    child.once('close', (code) => resolve({ code, stderr }));
  });
}

/**
 * Where `probeSubordinateSwitch` writes the bubblewrap stand-in: the caller's runtime folder, which
 * only the caller may write. The process tier runs it for the payload, the private display for its X
 * server, so that both run as the sandbox's subordinate uid.
 */
export function subordinateWrapperPath(): string {
  return posix.join(runtimeDirectory(), 'session-bubblewrap');
}

/**
 * Can this caller run a process as one of its subordinate ids here? Tries it for real (newuidmap
 * and newgidmap through util-linux's unshare), then writes the bubblewrap stand-in.
 */
export async function probeSubordinateSwitch(
  range: IdRange | undefined,
  bubblewrapPath: string,
): Promise<SubordinateSwitch> {
  const install = 'apt-get install uidmap (newuidmap, newgidmap) and util-linux 2.38+ (unshare --map-users)';
  if (!range) {
    return {
      usable: false,
      reason:
        'the caller has no subordinate ids in /etc/subuid and /etc/subgid, so it cannot give a sandbox an account of its own',
      fix: `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${process.env.USER ?? '<user>'} (as root)`,
    };
  }
  const [bash, unshare, newuidmap, newgidmap, bubblewrap] = await Promise.all([
    findExecutable('bash'),
    findExecutable('unshare'),
    findExecutable('newuidmap'),
    findExecutable('newgidmap'),
    findExecutable(bubblewrapPath),
  ]);
  if (!bash || !unshare || !newuidmap || !newgidmap || !bubblewrap) {
    return {
      usable: false,
      reason: 'bash, newuidmap, newgidmap, unshare or bubblewrap is missing',
      fix: install,
    };
  }
  const trueProgram = (await findExecutable('true')) ?? '/bin/true';
  const { firstUid: uid, firstGid: gid } = range;
  const trial = await runQuietly(unshare, [
    '--user',
    `--map-users=${uid},${uid},1`,
    `--map-groups=${gid},${gid},1`,
    '--setuid',
    String(uid),
    '--setgid',
    String(gid),
    '--',
    trueProgram,
  ]);
  if (trial.code !== 0) {
    return {
      usable: false,
      reason: `switching to the subordinate id ${uid} failed: ${trial.stderr.trim() || `exit ${trial.code}`}`,
      fix: install,
    };
  }
  await mkdir(runtimeDirectory(), { recursive: true, mode: 0o711 });
  const wrapperPath = subordinateWrapperPath();
  const script = wrapperScript(bash, unshare, bubblewrap);
  const current = await readFile(wrapperPath, 'utf8').catch(() => undefined);
  if (current !== script) {
    await writeFile(`${wrapperPath}.${process.pid}`, script, { mode: 0o755 });
    await chmod(`${wrapperPath}.${process.pid}`, 0o755);
    const { rename } = await import('node:fs/promises');
    await rename(`${wrapperPath}.${process.pid}`, wrapperPath);
  }
  return { usable: true, wrapperPath };
}

/**
 * Runs `argv` as the caller with power over the sandbox's subordinate ids: in a user namespace that
 * maps the caller to 0 and the sandbox's uid/gid to 1, where root may chown and unlink files of
 * both (never of anyone else: other ids are unmapped there). Used to give the caller back what the
 * sandbox wrote, and to remove what it left in sticky folders.
 */
export async function runOverSandboxIds(uid: number, gid: number, argv: string[]): Promise<void> {
  // The shell says it runs (so its user namespace exists), then waits for its id maps.
  const child = spawn(
    'unshare',
    ['--user', '--', 'sh', '-c', 'echo inside && read ready && exec "$@"', 'sh', ...argv],
    { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const inside = new Promise<boolean>((resolve) => {
    child.stdout.once('data', () => resolve(true));
    child.once('close', () => resolve(false));
    child.once('error', () => resolve(false));
  });
  try {
    const pid = child.pid!;
    if (!(await inside)) throw new Error(`unshare --user made no user namespace: ${stderr.trim()}`);
    child.stdout.resume();
    const callerUid = process.getuid?.() ?? 0;
    const callerGid = process.getgid?.() ?? 0;
    // Independent of each other: both at once, one spawn's time instead of two.
    const maps = await Promise.all(
      (
        [
          ['newuidmap', callerUid, uid],
          ['newgidmap', callerGid, gid],
        ] as const
      ).map(async ([program, own, sandbox]) => ({
        program,
        ...(await runQuietly(program, [String(pid), '0', String(own), '1', '1', String(sandbox), '1'])),
      })),
    );
    for (const mapped of maps) {
      if (mapped.code !== 0) throw new Error(`${mapped.program}: ${mapped.stderr.trim()}`);
    }
    child.stdin.end('ready\n');
    const code = await exited;
    if (code !== 0) throw new Error(`${argv[0]} exited ${code}: ${stderr.trim()}`);
  } catch (error) {
    child.kill('SIGKILL');
    throw new BulkheadError(
      'OWNERSHIP_RETURN_FAILED',
      `Could not act on the files of the sandbox's subordinate uid ${uid}: ${(error as Error).message}. Files it wrote may still be owned by it. Fix: chown them back as root, and check newuidmap/newgidmap (package uidmap).`,
      { tier: 'session', cause: error },
    );
  }
}

/**
 * Gives the caller back every file the sandbox's uid/gid owns inside `paths` (its write grants), in
 * one walk of them: `find -P` never follows a symbolic link, `chown -h`/`chgrp -h` change the link
 * itself, and only what the sandbox's ids own is touched. (Two `chown -R --from` passes walked a
 * 51,000-file workspace twice: 119 ms against 62 ms.)
 */
export async function returnOwnership(paths: string[], uid: number, gid: number): Promise<void> {
  if (paths.length === 0) return;
  // find would read a path that starts with '-', '(' or '!' as part of its expression.
  const relative = paths.find((path) => !path.startsWith('/'));
  if (relative !== undefined)
    throw new BulkheadError('INTERNAL_ERROR', `A write grant must be an absolute path: ${relative}`);
  await runOverSandboxIds(uid, gid, [
    'find',
    '-P',
    ...paths,
    '(',
    '-uid',
    '1',
    '-exec',
    'chown',
    '-h',
    '0',
    '{}',
    '+',
    ')',
    ',',
    '(',
    '-gid',
    '1',
    '-exec',
    'chgrp',
    '-h',
    '0',
    '{}',
    '+',
    ')',
  ]);
}
