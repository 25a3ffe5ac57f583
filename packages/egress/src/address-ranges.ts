import { BlockList, isIPv4, isIPv6 } from 'node:net';

/**
 * Why an address is not a public destination. A name on the allow list that resolves to one of these
 * is refused (DNS rebinding: `allowed.example.com` pointing at 127.0.0.1 or the cloud metadata
 * service) unless an allow rule names the address or a network holding it.
 */
export type SpecialAddressRange =
  | 'cloud-metadata'
  | 'loopback'
  | 'link-local'
  | 'private'
  | 'shared-address-space'
  | 'unspecified'
  | 'multicast'
  | 'reserved';

const ranges: ReadonlyArray<{ range: SpecialAddressRange; network: string; prefix: number }> = [
  // First, so that 169.254.169.254 is reported as what it is rather than as link-local.
  { range: 'cloud-metadata', network: '169.254.169.254', prefix: 32 },
  { range: 'cloud-metadata', network: 'fd00:ec2::254', prefix: 128 },
  { range: 'unspecified', network: '0.0.0.0', prefix: 8 },
  { range: 'loopback', network: '127.0.0.0', prefix: 8 },
  { range: 'private', network: '10.0.0.0', prefix: 8 },
  { range: 'private', network: '172.16.0.0', prefix: 12 },
  { range: 'private', network: '192.168.0.0', prefix: 16 },
  { range: 'shared-address-space', network: '100.64.0.0', prefix: 10 },
  { range: 'link-local', network: '169.254.0.0', prefix: 16 },
  { range: 'reserved', network: '192.0.0.0', prefix: 24 },
  { range: 'multicast', network: '224.0.0.0', prefix: 4 },
  { range: 'reserved', network: '240.0.0.0', prefix: 4 },
  { range: 'unspecified', network: '::', prefix: 128 },
  { range: 'loopback', network: '::1', prefix: 128 },
  { range: 'link-local', network: 'fe80::', prefix: 10 },
  // Deprecated site-local addresses are still routed privately by some networks.
  { range: 'private', network: 'fec0::', prefix: 10 },
  { range: 'private', network: 'fc00::', prefix: 7 },
  { range: 'multicast', network: 'ff00::', prefix: 8 },
];

const lists = ranges.map(({ range, network, prefix }) => {
  const list = new BlockList();
  list.addSubnet(network, prefix, isIPv4(network) ? 'ipv4' : 'ipv6');
  return { range, list };
});

/**
 * The IPv4 address an IPv6 address stands for, when it embeds one a host would reach over IPv4:
 * IPv4-mapped (`::ffff:127.0.0.1`) and the NAT64 well-known prefix (`64:ff9b::7f00:1`).
 */
export function embeddedIPv4(address: string): string | undefined {
  if (!isIPv6(address)) return undefined;
  const groups = expandIPv6(address);
  const isMapped = groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff;
  const isNat64 =
    groups[0] === 0x64 && groups[1] === 0xff9b && groups.slice(2, 6).every((group) => group === 0);
  if (!isMapped && !isNat64) return undefined;
  const high = groups[6] ?? 0;
  const low = groups[7] ?? 0;
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}

function expandIPv6(address: string): number[] {
  let text = address;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const octets = dotted[1].split('.').map(Number);
    const tail = `${(((octets[0] ?? 0) << 8) | (octets[1] ?? 0)).toString(16)}:${(((octets[2] ?? 0) << 8) | (octets[3] ?? 0)).toString(16)}`;
    text = text.slice(0, -dotted[1].length) + tail;
  }
  const [head = '', rest] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = rest === undefined ? [] : Array(8 - headGroups.length - restGroups.length).fill('0');
  return [...headGroups, ...zeros, ...restGroups].map((group) => Number.parseInt(group, 16));
}

/** The special range an IP address falls in, or undefined for an ordinary public address. */
export function classifyAddress(address: string): SpecialAddressRange | undefined {
  const embedded = embeddedIPv4(address);
  const candidate = embedded ?? address;
  const family = isIPv4(candidate) ? 'ipv4' : isIPv6(candidate) ? 'ipv6' : undefined;
  if (!family) return undefined;
  return lists.find(({ list }) => list.check(candidate, family))?.range;
}
