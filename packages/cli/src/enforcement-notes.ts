/**
 * How `bulkhead run` treats the warnings a tier leaves on a result. The project's rule: a setting a
 * tier honours only partly is a warning, said on every run; a note on how a setting was enforced that
 * weakens nothing is noise on a default run (it stays in --verbose and --json).
 *
 * Only the kinds below are known to weaken nothing. Each narrows what the sandbox may do (it gets
 * less than the manifest grants, never more): the Landlock planner splits a grant around a denied
 * path, so entries made later beside it are not reachable. Any other warning, including one a tier
 * words differently tomorrow, is printed plainly: when in doubt, say it.
 */
const INFORMATIONAL_NOTES: readonly RegExp[] = [
  // "the read grant of /etc was split into 143 entries to keep /etc/gshadow denied: ..."
  /^the (read|write) grant of \S.* was split into \d+ entries to keep \S.* denied: /,
  // "/x/new does not exist yet, so the grant of /x was split only down to /x (12 entries): ..."
  /^\S.* does not exist yet, so the grant of \S.* was split only down to \S.*: \S.* stays denied, but nothing new can be created in /,
  // "/x could not be listed (EACCES) to split the grant of ... around the denied ...: nothing in it is granted"
  /^\S.* could not be listed \(\w+\) to split the grant of \S.* around the denied \S.*: nothing in it is granted$/,
];

/** True for a note that only says how a setting was enforced, narrowing and never weakening it. */
export function isInformationalNote(warning: string): boolean {
  return INFORMATIONAL_NOTES.some((pattern) => pattern.test(warning));
}
