import type { CompiledManifest } from './compile.js';
import { formatEndpoint } from './endpoint.js';
import { formatBytes, formatDuration } from './units.js';

/**
 * A human-readable listing of compiled capabilities, one capability per line, with `(default)`
 * after values the manifest did not set and the origin of each path rule.
 */
export function explainCapabilities(compiled: CompiledManifest): string {
  const { capabilities, defaulted } = compiled;
  const mark = (...keys: string[]) => (keys.every((key) => defaulted.includes(key)) ? '  (default)' : '');
  const lines: string[] = [];
  const origin = (path: string) => {
    const from = compiled.pathOrigins?.[path];
    return from && from !== 'manifest' ? `  (${from})` : '';
  };
  lines.push(`minimum tier   ${compiled.minimumTier}${mark('tier')}`);
  lines.push(`digest         ${compiled.digest}`);
  lines.push(`workdir        ${capabilities.workdir}`);
  lines.push('filesystem');
  for (const [label, list] of [
    ['read', capabilities.filesystem.read],
    ['write', capabilities.filesystem.write],
    ['deny', capabilities.filesystem.deny],
  ] as const) {
    if (list.length === 0) lines.push(`  ${label.padEnd(6)} (none)`);
    for (const path of list) lines.push(`  ${label.padEnd(6)} ${path}${origin(path)}`);
  }
  const { network } = capabilities;
  const networkMark = mark('network.internet', 'network.allow');
  if (network.mode === 'none') lines.push(`network        none${networkMark}`);
  else if (network.mode === 'open') lines.push('network        open (the whole internet)');
  else {
    lines.push('network        allow-list');
    for (const endpoint of network.allow) lines.push(`  allow  ${formatEndpoint(endpoint)}`);
  }
  lines.push(
    `processes      spawn ${capabilities.process.spawn ? 'allowed' : 'refused'}${mark('processes.spawn')}, at most ${capabilities.process.maxProcesses}${mark('processes.max')}`,
  );
  const { resources } = capabilities;
  lines.push(`memory         ${formatBytes(resources.memoryBytes)}${mark('resources.memory')}`);
  lines.push(`timeout        ${formatDuration(resources.timeoutMs)}${mark('resources.timeout')}`);
  lines.push(`cpus           ${resources.cpus ?? 'unlimited'}${mark('resources.cpus')}`);
  lines.push(
    `gpus           ${Array.isArray(resources.gpus) ? resources.gpus.join(', ') : resources.gpus}${mark('resources.gpus')}`,
  );
  const devices = Object.entries(capabilities.devices)
    .filter(([, granted]) => granted)
    .map(([name]) => name);
  lines.push(`devices        ${devices.length > 0 ? devices.join(', ') : 'none'}`);
  const names = Object.keys(capabilities.env).sort();
  lines.push(
    `env            ${names.length > 0 ? names.join(', ') : '(empty)'}${mark('env.inherit', 'env.set')}`,
  );
  if (capabilities.identity) lines.push(`identity       ${capabilities.identity.name}`);
  for (const warning of compiled.warnings) lines.push(`warning: ${warning}`);
  return `${lines.join('\n')}\n`;
}
