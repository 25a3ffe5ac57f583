import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * What a program needs to read to run at all: binaries, libraries, and /etc for the dynamic loader,
 * DNS (resolv.conf, hosts, nsswitch.conf), locales, time zones and CA certificates. Folders this host
 * does not have are left out when compiling.
 */
export const SYSTEM_READ_PATHS = [
  '/usr',
  '/bin',
  '/sbin',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/etc',
  '/opt',
  // resolv.conf is often a link into one of these (systemd-resolved, resolvconf, NetworkManager).
  '/run/systemd/resolve',
  '/run/resolvconf',
  '/run/NetworkManager/resolv.conf',
  // Some distributions keep the CA bundle outside /etc.
  '/var/lib/ca-certificates',
] as const;

/**
 * Files and folders under the readable system folders that hold secrets: password hashes, host private
 * keys, sudo rules, private TLS keys, stored network and VPN credentials. Only secrets are listed, so
 * programs keep working. `/etc/ssh/ssh_host_*_key` is expanded against the host.
 */
export const SYSTEM_SECRET_PATHS = [
  '/etc/shadow',
  '/etc/shadow-',
  '/etc/gshadow',
  '/etc/gshadow-',
  '/etc/ssh/ssh_host_*_key',
  '/etc/sudoers',
  '/etc/sudoers.d',
  '/etc/ssl/private',
  '/etc/pki/tls/private',
  '/etc/security/opasswd',
  '/etc/krb5.keytab',
  '/etc/ipsec.secrets',
  '/etc/ipsec.d/private',
  '/etc/ppp/chap-secrets',
  '/etc/ppp/pap-secrets',
  '/etc/NetworkManager/system-connections',
  '/etc/wpa_supplicant/wpa_supplicant.conf',
  '/etc/letsencrypt/archive',
  '/etc/letsencrypt/keys',
  '/etc/libvirt/secrets',
  '/etc/mysql/debian.cnf',
  '/etc/ldap.secret',
  '/etc/pam_ldap.secret',
  '/etc/samba/private',
  '/etc/credstore',
  '/etc/credstore.encrypted',
] as const;

/** Variables passed through when `env.inherit` is not given (only when the caller has them). */
export const DEFAULT_ENV_INHERIT = ['LANG', 'TERM'] as const;

export const DEFAULT_MAX_PROCESSES = 256;
export const DEFAULT_MEMORY_BYTES = 2 ** 30;
export const DEFAULT_TIMEOUT_MS = 10 * 60 * 1000;

/** The system read paths present on this host. */
export function presentSystemReadPaths(): string[] {
  return SYSTEM_READ_PATHS.filter((path) => existsSync(path));
}

/** The secret paths present on this host, with the ssh host key pattern expanded. */
export function presentSystemSecretPaths(): string[] {
  const paths: string[] = [];
  for (const path of SYSTEM_SECRET_PATHS) {
    if (path.includes('*')) {
      const [folder, pattern] = [path.slice(0, path.lastIndexOf('/')), path.slice(path.lastIndexOf('/') + 1)];
      const matcher = new RegExp(
        `^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]+')}$`,
      );
      let names: string[] = [];
      try {
        names = readdirSync(folder);
      } catch {
        // No such folder: nothing to hide.
      }
      for (const name of names) if (matcher.test(name)) paths.push(join(folder, name));
    } else if (existsSync(path)) {
      paths.push(path);
    }
  }
  return paths;
}
