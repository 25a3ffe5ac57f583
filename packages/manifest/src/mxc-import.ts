import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { BulkheadError } from '@bulkhead/core';
import { parseEndpoint } from './endpoint.js';
import type { ManifestV1 } from './schema.js';
import {
  formatKeyPath,
  issuesError,
  type KeySegment,
  type LocatedSource,
  type ManifestIssue,
  readSource,
} from './source-document.js';

/**
 * Import of Microsoft MXC configurations: the raw wxc-exec config of schema 0.6.0-alpha to 0.9.0-alpha
 * and 1.0.0 (`version`, `process.commandLine`, `filesystem.*Paths`, legacy `network` fields or the
 * directional `network.egress`/`ingress`, `ui`), and the SDK 1.0 `ContainerRequest` (`command`,
 * `timeoutMs`, `workingDirectory`, `environment`, `containment: { type }`). What cannot be expressed
 * exactly is refused with `MXC_UNSUPPORTED_FIELD` naming the field: an import must not quietly grant
 * more, and a grant it drops would surprise the person who wrote it.
 */

export interface MxcImport {
  manifest: ManifestV1;
  /** The payload: MXC's command line, run by `/bin/sh -c` as MXC runs it. */
  command?: string[];
  /** MXC's working directory for the payload. */
  cwd?: string;
  /** Which MXC shape it was. */
  shape: 'config' | 'container-request';
  /** The MXC schema version of a raw config. */
  version?: string;
  /** Fields that were accepted but mean nothing under Bulkhead, and why. */
  warnings: string[];
}

export interface ImportMxcOptions {
  /** The file it came from, for error messages. */
  path?: string;
  /** Locates fields in the source, when it was read with positions (`loadMxcConfig` does this). */
  locate?: LocatedSource['locate'];
}

const SUPPORTED_VERSIONS = ['0.6.0-alpha', '0.7.0-alpha', '0.8.0-alpha', '0.9.0-alpha', '1.0.0'];

const CONTAINMENT_TIERS: Record<string, ManifestV1['tier']> = {
  process: 'process',
  bubblewrap: 'process',
  processcontainer: 'process',
  appcontainer: 'process',
  lxc: 'process',
  seatbelt: 'process',
  macos_sandbox: 'process',
  isolation_session: 'session',
  vm: 'microvm',
  microvm: 'microvm',
  windows_sandbox: 'microvm',
  hyperlight: 'microvm',
  wslc: 'wsl',
};

/** A port range is expanded into single ports only while that stays readable. */
const MAX_EXPANDED_PORT_RANGE = 16;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Does this parsed JSON look like an MXC config or ContainerRequest rather than a Bulkhead manifest? */
export function isMxcConfig(value: unknown): boolean {
  if (!isObject(value)) return false;
  if (typeof value.version === 'string') return true;
  return typeof value.command === 'string' && value.version === undefined;
}

class Importer {
  readonly issues: ManifestIssue[] = [];
  readonly warnings: string[] = [];
  readonly manifest: ManifestV1 = { version: 1 };
  command?: string[];
  cwd?: string;

  constructor(private readonly options: ImportMxcOptions) {}

  #at(segments: KeySegment[]) {
    return {
      ...(this.options.path === undefined ? {} : { path: this.options.path }),
      ...(this.options.locate?.(segments, 'key') ?? {}),
    };
  }

  unsupported(segments: KeySegment[], reason: string, fix?: string): void {
    const keyPath = formatKeyPath(segments);
    this.issues.push({
      message: `MXC field '${keyPath}' cannot be mapped to Bulkhead: ${reason}${fix ? `. Fix: ${fix}` : ''}`,
      ...this.#at(segments),
      keyPath,
    });
  }

  wrongType(segments: KeySegment[], expected: string, value: unknown): void {
    const keyPath = formatKeyPath(segments);
    this.issues.push({
      message: `MXC field '${keyPath}' should be ${expected}, found ${JSON.stringify(value)}`,
      ...this.#at(segments),
      keyPath,
      expected,
    });
  }

  /** Reports every key of `value` not in `known`. */
  onlyKnown(
    value: Json,
    segments: KeySegment[],
    known: readonly string[],
    hint?: Record<string, string>,
  ): void {
    for (const key of Object.keys(value)) {
      if (known.includes(key)) continue;
      this.unsupported([...segments, key], hint?.[key] ?? `Bulkhead has no equivalent of it`);
    }
  }

  object(value: unknown, segments: KeySegment[]): Json | undefined {
    if (value === undefined) return undefined;
    if (isObject(value)) return value;
    this.wrongType(segments, 'an object', value);
    return undefined;
  }

  strings(value: unknown, segments: KeySegment[]): string[] {
    if (value === undefined) return [];
    if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value as string[];
    this.wrongType(segments, 'a list of strings', value);
    return [];
  }

  boolean(value: unknown, segments: KeySegment[]): boolean | undefined {
    if (value === undefined || typeof value === 'boolean') return value;
    this.wrongType(segments, 'true or false', value);
    return undefined;
  }

  paths(filesystem: Json | undefined, segments: KeySegment[]): void {
    if (!filesystem) return;
    this.onlyKnown(
      filesystem,
      segments,
      ['readonlyPaths', 'readwritePaths', 'deniedPaths', 'clearPolicyOnExit', 'enumeratePaths'],
      {
        enumeratePaths:
          'Bulkhead cannot grant listing a folder without reading it; list the folder in readonlyPaths',
      },
    );
    const map = { readonlyPaths: 'read', readwritePaths: 'write', deniedPaths: 'deny' } as const;
    for (const [field, rule] of Object.entries(map)) {
      const paths = this.strings(filesystem[field], [...segments, field]);
      paths.forEach((path, index) => {
        if (/^[A-Za-z]:[\\/]|^\\\\/.test(path)) {
          this.unsupported(
            [...segments, field, index],
            `'${path}' is a Windows path`,
            'use the Linux path (under WSL, C:\\x is /mnt/c/x)',
          );
        }
      });
      if (paths.length > 0) this.manifest.filesystem = { ...this.manifest.filesystem, [rule]: paths };
    }
    if (this.boolean(filesystem.clearPolicyOnExit, [...segments, 'clearPolicyOnExit']) === false) {
      this.unsupported(
        [...segments, 'clearPolicyOnExit'],
        'Bulkhead never keeps a sandbox policy after it ends',
        'remove it',
      );
    }
  }

  timeout(milliseconds: unknown, segments: KeySegment[]): void {
    if (milliseconds === undefined) return;
    if (typeof milliseconds !== 'number' || !Number.isFinite(milliseconds) || milliseconds < 0) {
      this.wrongType(segments, 'a number of milliseconds', milliseconds);
      return;
    }
    if (milliseconds === 0) {
      this.warnings.push(
        `${formatKeyPath(segments)}: 0 means no timeout in MXC; Bulkhead keeps its default timeout (10m). Set resources.timeout to change it.`,
      );
      return;
    }
    this.manifest.resources = { ...this.manifest.resources, timeout: `${Math.round(milliseconds)}ms` };
  }

  setEnvironment(values: Record<string, string>): void {
    if (Object.keys(values).length > 0) this.manifest.env = { ...this.manifest.env, set: values };
  }

  containment(value: unknown, segments: KeySegment[]): void {
    if (value === undefined) return;
    if (typeof value !== 'string') {
      this.wrongType(segments, 'a containment name', value);
      return;
    }
    const tier = CONTAINMENT_TIERS[value];
    if (!tier) {
      this.unsupported(
        segments,
        `unknown containment '${value}'`,
        `use one of ${Object.keys(CONTAINMENT_TIERS).join(', ')}`,
      );
      return;
    }
    this.manifest.tier = tier;
  }

  ui(ui: Json | undefined, segments: KeySegment[], injectionKey: 'injection' | 'allowInputInjection'): void {
    if (!ui) return;
    this.onlyKnown(ui, segments, ['disable', 'clipboard', injectionKey]);
    const devices: NonNullable<ManifestV1['devices']> = {};
    const disable = this.boolean(ui.disable, [...segments, 'disable']);
    if (disable === false) devices.display = true;
    const clipboard = ui.clipboard;
    if (clipboard === 'all') devices.clipboard = true;
    else if (clipboard === 'read' || clipboard === 'write') {
      this.unsupported(
        [...segments, 'clipboard'],
        `Bulkhead grants the clipboard in both directions or not at all, not '${clipboard}' only`,
        "use 'none' or 'all'",
      );
    } else if (clipboard !== undefined && clipboard !== 'none') {
      this.wrongType([...segments, 'clipboard'], "'none', 'read', 'write' or 'all'", clipboard);
    }
    if (this.boolean(ui[injectionKey], [...segments, injectionKey]) === true) devices.input = true;
    if (Object.keys(devices).length > 0) this.manifest.devices = { ...this.manifest.devices, ...devices };
  }

  /** The directional egress/ingress policy of 0.8.0-alpha and later. */
  directionalNetwork(network: Json, segments: KeySegment[]): void {
    const egress = this.object(network.egress, [...segments, 'egress']);
    const ingress = this.object(network.ingress, [...segments, 'ingress']);
    if (ingress) {
      this.onlyKnown(ingress, [...segments, 'ingress'], ['default', 'hostLoopback']);
      for (const key of ['default', 'hostLoopback'] as const) {
        if (ingress[key] === 'allow') {
          this.unsupported(
            [...segments, 'ingress', key],
            'Bulkhead sandboxes accept no inbound connections',
            "use 'deny' or remove it",
          );
        } else if (ingress[key] !== undefined && ingress[key] !== 'deny') {
          this.wrongType([...segments, 'ingress', key], "'allow' or 'deny'", ingress[key]);
        }
      }
    }
    if (!egress) return;
    const at = [...segments, 'egress'];
    this.onlyKnown(egress, at, ['default', 'allow', 'deny']);
    const action = egress.default ?? 'deny';
    if (action !== 'allow' && action !== 'deny') {
      this.wrongType([...at, 'default'], "'allow' or 'deny'", action);
      return;
    }
    const allowRules = Array.isArray(egress.allow) ? egress.allow : [];
    const denyRules = Array.isArray(egress.deny) ? egress.deny : [];
    if (egress.allow !== undefined && !Array.isArray(egress.allow))
      this.wrongType([...at, 'allow'], 'a list of rules', egress.allow);
    if (egress.deny !== undefined && !Array.isArray(egress.deny))
      this.wrongType([...at, 'deny'], 'a list of rules', egress.deny);
    if (action === 'allow') {
      if (denyRules.length > 0) {
        this.unsupported(
          [...at, 'deny'],
          'Bulkhead allows the whole internet or a list of endpoints, never everything but a block list',
          'list the endpoints to allow under egress.allow with default: deny',
        );
      }
      this.manifest.network = { internet: true };
      return;
    }
    if (denyRules.length > 0 && allowRules.length > 0) {
      this.unsupported(
        [...at, 'deny'],
        'Bulkhead cannot subtract deny rules from allow rules',
        'narrow the allow rules instead',
      );
    }
    const endpoints = allowRules.flatMap((rule, index) => this.egressRule(rule, [...at, 'allow', index]));
    this.manifest.network = endpoints.length > 0 ? { allow: endpoints } : { internet: false };
  }

  egressRule(rule: unknown, segments: KeySegment[]): string[] {
    const object = this.object(rule, segments);
    if (!object) return [];
    this.onlyKnown(object, segments, ['to', 'ports']);
    const hosts: string[] = [];
    if (object.to === undefined) {
      hosts.push('0.0.0.0/0', '[::/0]');
    } else if (!Array.isArray(object.to) || object.to.length === 0) {
      this.wrongType([...segments, 'to'], 'a non-empty list of { cidr }', object.to);
    } else {
      object.to.forEach((peer, index) => {
        const at = [...segments, 'to', index];
        const value = this.object(peer, at);
        if (!value) return;
        this.onlyKnown(value, at, ['cidr'], {
          except:
            'Bulkhead cannot carve exceptions out of an allowed range; list the narrower ranges instead',
        });
        if (typeof value.cidr !== 'string') {
          this.wrongType([...at, 'cidr'], 'a CIDR string', value.cidr);
          return;
        }
        hosts.push(value.cidr.includes(':') ? `[${value.cidr}]` : value.cidr);
      });
    }
    if (object.ports === undefined) {
      this.unsupported(
        segments,
        'a rule without ports allows every port; Bulkhead allow-lists name TCP ports',
        'add ports: [{ protocol: tcp, port: 443 }]',
      );
      return [];
    }
    if (!Array.isArray(object.ports) || object.ports.length === 0) {
      this.wrongType([...segments, 'ports'], 'a non-empty list of { protocol, port }', object.ports);
      return [];
    }
    const ports: number[] = [];
    object.ports.forEach((entry, index) => {
      const at = [...segments, 'ports', index];
      const value = this.object(entry, at);
      if (!value) return;
      this.onlyKnown(value, at, ['protocol', 'port', 'endPort']);
      const protocol = value.protocol ?? 'any';
      if (protocol === 'udp' || protocol === 'icmp') {
        this.unsupported(
          [...at, 'protocol'],
          `Bulkhead allow-lists carry TCP only, not ${protocol}`,
          'allow tcp, or give the sandbox the whole network',
        );
        return;
      }
      if (protocol === 'any')
        this.warnings.push(`${formatKeyPath(at)}: protocol 'any' is imported as TCP only.`);
      else if (protocol !== 'tcp')
        this.wrongType([...at, 'protocol'], "'tcp', 'udp', 'icmp' or 'any'", protocol);
      if (typeof value.port !== 'number') {
        this.unsupported(
          [...at],
          'an entry without a port allows every port; Bulkhead allow-lists name ports',
          'add port: 443',
        );
        return;
      }
      const end = value.endPort === undefined ? value.port : value.endPort;
      if (typeof end !== 'number' || end < value.port) {
        this.wrongType([...at, 'endPort'], `a port at least ${value.port}`, value.endPort);
        return;
      }
      if (end - value.port + 1 > MAX_EXPANDED_PORT_RANGE) {
        this.unsupported(
          [...at, 'endPort'],
          `the range ${value.port}-${end} is wider than ${MAX_EXPANDED_PORT_RANGE} ports`,
          'list the ports that are needed',
        );
        return;
      }
      for (let port = value.port; port <= end; port++) ports.push(port);
    });
    const endpoints = hosts.flatMap((host) => ports.map((port) => `${host}:${port}`));
    for (const endpoint of endpoints) {
      const parsed = parseEndpoint(endpoint);
      if (!parsed.ok) this.wrongType(segments, 'rules with valid CIDRs and ports', endpoint);
    }
    return endpoints;
  }

  /** The network fields of 0.6.0-alpha to 0.8.0-alpha (before the directional policy). */
  legacyNetwork(network: Json, segments: KeySegment[]): void {
    const allowOutbound = this.boolean(network.allowOutbound, [...segments, 'allowOutbound']);
    const allowLocal = this.boolean(network.allowLocalNetwork, [...segments, 'allowLocalNetwork']);
    const allowedHosts = this.strings(network.allowedHosts, [...segments, 'allowedHosts']);
    const blockedHosts = this.strings(network.blockedHosts, [...segments, 'blockedHosts']);
    const defaultPolicy = network.defaultPolicy;
    if (defaultPolicy !== undefined && !['allow', 'deny', 'block'].includes(String(defaultPolicy))) {
      this.wrongType([...segments, 'defaultPolicy'], "'allow', 'deny' or 'block'", defaultPolicy);
    }
    if (allowLocal === true) {
      this.unsupported(
        [...segments, 'allowLocalNetwork'],
        'Bulkhead has no "local network" grant',
        'list the local endpoints in allowedHosts (e.g. 192.168.1.10:5432)',
      );
    }
    if (network.proxy !== undefined) {
      this.unsupported(
        [...segments, 'proxy'],
        'Bulkhead routes allow-listed traffic through its own egress proxy',
        'remove it; list the endpoints in allowedHosts',
      );
    }
    if (this.boolean(network.removeRulesOnExit, [...segments, 'removeRulesOnExit']) === false) {
      this.unsupported(
        [...segments, 'removeRulesOnExit'],
        'Bulkhead never keeps network rules after a sandbox ends',
        'remove it',
      );
    }
    if (network.enforcementMode !== undefined) {
      this.warnings.push(
        `${formatKeyPath([...segments, 'enforcementMode'])}: ignored; each Bulkhead tier enforces the network with its own mechanism.`,
      );
    }
    const open =
      allowedHosts.length === 0 &&
      (defaultPolicy === 'allow' || (defaultPolicy === undefined && allowOutbound === true));
    if (open) {
      if (blockedHosts.length > 0) {
        this.unsupported(
          [...segments, 'blockedHosts'],
          'Bulkhead allows the whole internet or a list of endpoints, never everything but a block list',
          'list the hosts to allow in allowedHosts instead',
        );
      }
      this.manifest.network = { internet: true };
      return;
    }
    if (allowOutbound === false && allowedHosts.length > 0) {
      this.warnings.push(
        `${formatKeyPath([...segments, 'allowOutbound'])}: false with allowedHosts is imported as the allow list.`,
      );
    }
    allowedHosts.forEach((host, index) => {
      const parsed = parseEndpoint(host);
      if (!parsed.ok)
        this.wrongType([...segments, 'allowedHosts', index], 'a host, IP address or CIDR', host);
      else if (blockedHosts.some((blocked) => blocked.toLowerCase() === host.toLowerCase())) {
        this.unsupported(
          [...segments, 'blockedHosts'],
          `'${host}' is both allowed and blocked`,
          'remove it from one of the lists',
        );
      }
    });
    if (allowedHosts.some((host) => !/:\d+$/.test(host))) {
      this.warnings.push(
        `${formatKeyPath([...segments, 'allowedHosts'])}: hosts without a port are allowed on ports 443 and 80 only; add :PORT for others.`,
      );
    }
    this.manifest.network = allowedHosts.length > 0 ? { allow: allowedHosts } : { internet: false };
  }

  network(network: Json | undefined, segments: KeySegment[], allowLegacy: boolean): void {
    if (!network) return;
    const legacy = [
      'allowOutbound',
      'defaultPolicy',
      'enforcementMode',
      'allowLocalNetwork',
      'allowedHosts',
      'blockedHosts',
      'proxy',
      'removeRulesOnExit',
    ];
    const directional = ['egress', 'ingress'];
    const usesLegacy = Object.keys(network).some((key) => legacy.includes(key));
    const usesDirectional = Object.keys(network).some((key) => directional.includes(key));
    if (usesLegacy && !allowLegacy) {
      for (const key of Object.keys(network).filter((name) => legacy.includes(name))) {
        this.unsupported(
          [...segments, key],
          'this legacy field is not part of this MXC shape',
          'use network.egress',
        );
      }
      return;
    }
    if (usesLegacy && usesDirectional) {
      this.unsupported(
        [...segments, 'egress'],
        'the legacy network fields and egress cannot be combined',
        'use one or the other',
      );
      return;
    }
    this.onlyKnown(network, segments, [...(allowLegacy ? legacy : []), ...directional, 'runtimeConfig'], {});
    if (network.runtimeConfig !== undefined) {
      this.unsupported(
        [...segments, 'runtimeConfig'],
        'Bulkhead routes allow-listed traffic through its own egress proxy',
        'remove it',
      );
    }
    if (usesLegacy) this.legacyNetwork(network, segments);
    else this.directionalNetwork(network, segments);
  }

  wslc(config: Json, segments: KeySegment[]): void {
    this.onlyKnown(config, segments, ['memoryMb', 'cpuCount', 'gpu']);
    if (typeof config.memoryMb === 'number')
      this.manifest.resources = { ...this.manifest.resources, memory: config.memoryMb };
    else if (config.memoryMb !== undefined)
      this.wrongType([...segments, 'memoryMb'], 'a number of megabytes', config.memoryMb);
    if (typeof config.cpuCount === 'number')
      this.manifest.resources = { ...this.manifest.resources, cpus: config.cpuCount };
    else if (config.cpuCount !== undefined)
      this.wrongType([...segments, 'cpuCount'], 'a number of CPUs', config.cpuCount);
    if (this.boolean(config.gpu, [...segments, 'gpu']) === true)
      this.manifest.resources = { ...this.manifest.resources, gpus: 'all' };
  }

  /** The raw wxc-exec configuration with a `version`. */
  config(config: Json): void {
    const version = config.version as string;
    if (!SUPPORTED_VERSIONS.includes(version)) {
      this.unsupported(
        ['version'],
        `MXC schema '${version}' is not one Bulkhead imports`,
        `use one of ${SUPPORTED_VERSIONS.join(', ')}`,
      );
      return;
    }
    const backendHint = 'backend-specific settings have no Bulkhead equivalent';
    this.onlyKnown(
      config,
      [],
      [
        '$schema',
        '_comment',
        'version',
        'containerId',
        'containment',
        'lifecycle',
        'process',
        'filesystem',
        'network',
        'runtimeConfig',
        'telemetry',
        'ui',
        'wslc',
        'fallback',
      ],
      {
        processContainer: backendHint,
        appContainer: backendHint,
        lxc: backendHint,
        hyperlight: backendHint,
        seatbelt: backendHint,
        macos_sandbox: backendHint,
      },
    );
    this.containment(config.containment, ['containment']);
    const lifecycle = this.object(config.lifecycle, ['lifecycle']);
    if (lifecycle) {
      this.onlyKnown(lifecycle, ['lifecycle'], ['destroyOnExit', 'preservePolicy']);
      if (this.boolean(lifecycle.destroyOnExit, ['lifecycle', 'destroyOnExit']) === false) {
        this.unsupported(
          ['lifecycle', 'destroyOnExit'],
          'a Bulkhead sandbox never outlives its run',
          'remove it',
        );
      }
      if (this.boolean(lifecycle.preservePolicy, ['lifecycle', 'preservePolicy']) === true) {
        this.unsupported(
          ['lifecycle', 'preservePolicy'],
          'a Bulkhead sandbox never outlives its run',
          'remove it',
        );
      }
    }
    const process = this.object(config.process, ['process']);
    if (process) {
      this.onlyKnown(process, ['process'], ['commandLine', 'cwd', 'env', 'inheritDefaultEnv', 'timeout']);
      if (typeof process.commandLine === 'string') this.command = ['/bin/sh', '-c', process.commandLine];
      else if (process.commandLine !== undefined)
        this.wrongType(['process', 'commandLine'], 'a command line string', process.commandLine);
      if (typeof process.cwd === 'string') this.cwd = process.cwd;
      else if (process.cwd !== undefined) this.wrongType(['process', 'cwd'], 'a path', process.cwd);
      const values: Record<string, string> = {};
      this.strings(process.env, ['process', 'env']).forEach((entry, index) => {
        const equals = entry.indexOf('=');
        if (equals <= 0) this.wrongType(['process', 'env', index], 'NAME=value', entry);
        else values[entry.slice(0, equals)] = entry.slice(equals + 1);
      });
      this.setEnvironment(values);
      this.boolean(process.inheritDefaultEnv, ['process', 'inheritDefaultEnv']);
      this.timeout(process.timeout, ['process', 'timeout']);
    }
    this.paths(this.object(config.filesystem, ['filesystem']), ['filesystem']);
    this.network(this.object(config.network, ['network']), ['network'], true);
    if (config.runtimeConfig !== undefined) {
      this.unsupported(
        ['runtimeConfig'],
        'Bulkhead routes allow-listed traffic through its own egress proxy',
        'remove it',
      );
    }
    this.ui(this.object(config.ui, ['ui']), ['ui'], 'injection');
    const wslc = this.object(config.wslc, ['wslc']);
    if (wslc) this.wslc(wslc, ['wslc']);
  }

  /** The SDK 1.0 `ContainerRequest`. */
  request(request: Json): void {
    this.onlyKnown(
      request,
      [],
      [
        'command',
        'filesystem',
        'network',
        'ui',
        'timeoutMs',
        'containment',
        'containerName',
        'workingDirectory',
        'environment',
        'inheritDefaultEnvironment',
      ],
    );
    this.command = ['/bin/sh', '-c', request.command as string];
    if (typeof request.workingDirectory === 'string') this.cwd = request.workingDirectory;
    else if (request.workingDirectory !== undefined)
      this.wrongType(['workingDirectory'], 'a path', request.workingDirectory);
    const environment = this.object(request.environment, ['environment']);
    if (environment) {
      const values: Record<string, string> = {};
      for (const [name, value] of Object.entries(environment)) {
        if (typeof value === 'string') values[name] = value;
        else if (value !== undefined && value !== null)
          this.wrongType(['environment', name], 'a string', value);
      }
      this.setEnvironment(values);
    }
    this.boolean(request.inheritDefaultEnvironment, ['inheritDefaultEnvironment']);
    this.timeout(request.timeoutMs, ['timeoutMs']);
    const containment = this.object(request.containment, ['containment']);
    if (containment) {
      this.onlyKnown(containment, ['containment'], ['type', 'config']);
      this.containment(containment.type, ['containment', 'type']);
      const config = this.object(containment.config, ['containment', 'config']);
      if (config && containment.type === 'wslc') this.wslc(config, ['containment', 'config']);
      else if (config && Object.keys(config).length > 0) {
        this.unsupported(
          ['containment', 'config'],
          'backend-specific settings have no Bulkhead equivalent',
          'remove them',
        );
      }
    }
    this.paths(this.object(request.filesystem, ['filesystem']), ['filesystem']);
    this.network(this.object(request.network, ['network']), ['network'], false);
    this.ui(this.object(request.ui, ['ui']), ['ui'], 'allowInputInjection');
  }
}

/**
 * Compiles an MXC config (raw 0.6.0-alpha to 1.0.0, or an SDK 1.0 `ContainerRequest`) to a Bulkhead
 * manifest, so it gets the same capabilities and the same enforcement. Throws
 * `MXC_UNSUPPORTED_FIELD` listing every field that cannot be mapped exactly.
 */
export function importMxcConfig(config: unknown, options: ImportMxcOptions = {}): MxcImport {
  const importer = new Importer(options);
  if (!isObject(config) || !isMxcConfig(config)) {
    throw new BulkheadError(
      'MXC_UNSUPPORTED_FIELD',
      `${options.path ?? 'The input'} is not an MXC config: expected a JSON object with a "version" (a raw MXC config) or a "command" string (an SDK ContainerRequest). Fix: pass the MXC JSON file, or load a Bulkhead manifest with loadManifest().`,
      { ...(options.path === undefined ? {} : { path: options.path }) },
    );
  }
  const shape = typeof config.version === 'string' ? 'config' : 'container-request';
  if (shape === 'config') importer.config(config);
  else importer.request(config);
  if (importer.issues.length > 0) {
    const unsupported = importer.issues.some((issue) => issue.message.includes('cannot be mapped'));
    throw issuesError(importer.issues, {
      code: unsupported ? 'MXC_UNSUPPORTED_FIELD' : 'MANIFEST_INVALID',
      what: 'MXC config',
      fix: 'remove or change the MXC fields named above, or write a Bulkhead manifest (bulkhead init)',
      ...(options.path === undefined ? {} : { path: options.path }),
    });
  }
  return {
    manifest: importer.manifest,
    ...(importer.command ? { command: importer.command } : {}),
    ...(importer.cwd === undefined ? {} : { cwd: importer.cwd }),
    shape,
    ...(shape === 'config' ? { version: config.version as string } : {}),
    warnings: importer.warnings,
  };
}

/** Reads an MXC JSON file and imports it; errors point at the field's line and column. */
export async function loadMxcConfig(path: string): Promise<MxcImport> {
  let source: string;
  try {
    source = await readFile(resolve(path), 'utf8');
  } catch (error) {
    throw new BulkheadError(
      'MANIFEST_NOT_FOUND',
      `Cannot read MXC config ${path}: ${(error as Error).message}. Fix: check the path.`,
      {
        path,
        cause: error,
      },
    );
  }
  const located = readSource(source, {
    path,
    format: 'json',
    what: 'MXC config',
    code: 'MANIFEST_PARSE_ERROR',
    fix: 'correct the JSON syntax at the position shown',
  });
  return importMxcConfig(located.value, { path, locate: located.locate });
}
