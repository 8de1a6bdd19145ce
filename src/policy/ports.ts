/**
 * Destination ports as both formats write them: {port, endPort, protocol}.
 * Port 0 or no port means every port of the protocol. Cilium's protocol ANY
 * (its default) is TCP, UDP and SCTP; Kubernetes defaults to TCP.
 */
import { PROTO_SCTP, PROTO_TCP, PROTO_UDP } from '../common/policy-entry.js';
import { describeValue, type Field } from './field.js';
import type { PortRange } from './model.js';

const PROTOCOL_NUMBERS: Readonly<Record<string, readonly number[]>> = {
  TCP: [PROTO_TCP],
  UDP: [PROTO_UDP],
  SCTP: [PROTO_SCTP],
  ANY: [PROTO_TCP, PROTO_UDP, PROTO_SCTP],
};

export interface PortFormat {
  defaultProtocol: 'ANY' | 'TCP';
  protocols: readonly string[];
}

export const CILIUM_PORTS: PortFormat = { defaultProtocol: 'ANY', protocols: ['TCP', 'UDP', 'SCTP', 'ANY'] };
export const KUBERNETES_PORTS: PortFormat = { defaultProtocol: 'TCP', protocols: ['TCP', 'UDP', 'SCTP'] };

/** Reads one {port, endPort, protocol} object into one range per protocol. */
export function readPort(field: Field, format: PortFormat): PortRange[] {
  const f = field.object({ known: ['port', 'endPort', 'protocol'] });
  const port = readPortNumber(f.port);
  let last = port === 0 ? 65535 : port;
  if (f.endPort.present) {
    const endField: Field = f.endPort;
    const end = endField.value;
    if (typeof end !== 'number' || !Number.isInteger(end)) endField.fail(`expected a port number, got ${describeValue(end)}`);
    if (end < 1 || end > 65535) f.endPort.fail(`${end} is out of range 1-65535`);
    if (port === 0) f.endPort.fail('endPort needs a port (the first port of the range)');
    if (end < port) f.endPort.fail(`${end} is below port ${port}`);
    last = end;
  }
  const protocol = f.protocol.present ? f.protocol.string() : format.defaultProtocol;
  if (!format.protocols.includes(protocol))
    f.protocol.fail(`"${protocol}" is not a protocol (${format.protocols.join(', ')})`);
  return PROTOCOL_NUMBERS[protocol]!.map((p) => ({ protocol: p, first: port, last }));
}

/** A port as a number or a decimal string; 0 and absent mean every port. */
function readPortNumber(field: Field): number {
  if (!field.present) return 0;
  const value = field.value;
  let port: number;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) field.fail(`${value} is not a port number`);
    port = value;
  } else if (typeof value === 'string') {
    if (!/^-?\d+$/.test(value.trim())) field.fail(`"${value}" is a named port: named ports are not supported, write the number`);
    port = Number(value.trim());
  } else {
    field.fail(`expected a port number, got ${describeValue(value)}`);
  }
  if (port !== 0 && (port < 1 || port > 65535)) field.fail(`${port} is out of range 1-65535`);
  return port;
}
