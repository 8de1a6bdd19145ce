/**
 * One schema per route input: request bodies and query strings are checked
 * here, where they enter, and typed everywhere after.
 */
import { z } from 'zod';
import { normalizeLabels } from '../common/labels.js';
import { TendrilError } from '../common/errors.js';

const labelMap = z.record(z.string(), z.string()).superRefine((labels, ctx) => {
  try {
    normalizeLabels(labels);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

export const AddEndpointBody = z
  .object({
    netns: z.string().min(1, 'netns must be a path such as /run/netns/NAME').startsWith('/', 'netns must be an absolute path'),
    labels: labelMap.optional(),
    ifname: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, 'ifname must be 1-15 letters, digits, "_", "-", "."').optional(),
    /** "8080:80/TCP": checked by the endpoint model (parsePortMaps). */
    portMaps: z.array(z.string({ message: 'a port map is HOSTPORT:CONTAINERPORT/PROTOCOL, such as 8080:80/TCP' }).max(32)).max(1024).optional(),
  })
  .strict();
export type AddEndpointBody = z.infer<typeof AddEndpointBody>;

export const RelabelEndpointBody = z
  .object({
    set: labelMap.optional(),
    remove: z.array(z.string().min(1, 'a label key to remove is not empty')).optional(),
  })
  .strict()
  .refine((b) => Object.keys(b.set ?? {}).length + (b.remove?.length ?? 0) > 0, 'give labels to set (k=v) or to remove');
export type RelabelEndpointBody = z.infer<typeof RelabelEndpointBody>;

export const EndpointIdParam = z
  .string()
  .regex(/^\d{1,5}$/, 'an endpoint id is a number')
  .transform(Number)
  .refine((n) => n >= 1 && n <= 0xffff, 'an endpoint id is 1-65535');

export const MonitorQuery = z
  .object({
    type: z
      .string()
      .transform((s) => s.split(','))
      .pipe(z.array(z.enum(['drop', 'trace', 'policy', 'l7'], { message: 'type must be drop, trace, policy or l7' })))
      .optional(),
    endpoint: EndpointIdParam.optional(),
  })
  .strict();
export type MonitorQuery = z.infer<typeof MonitorQuery>;

export const MapNameParam = z.string().regex(/^[a-z0-9_]{1,15}$/, 'a map name is 1-15 lowercase letters, digits or "_"');

export const PolicyImportBody = z
  .object({
    files: z
      .array(
        z
          .object({
            file: z.string().min(1, 'file must name the file').max(4096),
            text: z.string().max(16 << 20, 'a policy file is at most 16 MiB'),
          })
          .strict(),
      )
      .min(1, 'files must list at least one file'),
  })
  .strict();
export type PolicyImportBody = z.infer<typeof PolicyImportBody>;

const DNS_LABEL = '[a-z0-9]([-a-z0-9.]*[a-z0-9])?';
export const PolicyNameParam = z
  .string()
  .max(507)
  .regex(new RegExp(`^${DNS_LABEL}(/${DNS_LABEL})?$`), 'a policy name is "name" or "namespace/name" (lowercase letters, digits, "-", ".")');

/** "80", "80/TCP", "53/udp": a destination port and its protocol (TCP when not given). */
export const DestinationPort = z
  .string()
  .regex(/^\d{1,5}(\/(tcp|udp|sctp))?$/i, 'dport must be PORT or PORT/PROTOCOL, such as 80/TCP or 53/UDP')
  .transform((text) => {
    const [port, proto] = text.split('/');
    return { port: Number(port), protocol: (proto ?? 'tcp').toLowerCase() as 'tcp' | 'udp' | 'sctp' };
  })
  .refine((d) => d.port >= 1 && d.port <= 65535, 'dport must be 1-65535');

export const PolicyTraceBody = z
  .object({
    src: z.string().min(1, 'src must be labels (k=v,...), an endpoint id or a CIDR'),
    dst: z.string().min(1, 'dst must be labels (k=v,...) or an endpoint id'),
    dport: DestinationPort,
  })
  .strict();
export type PolicyTraceBody = z.infer<typeof PolicyTraceBody>;

export const IdentityIdParam = z
  .string()
  .regex(/^\d{1,10}$/, 'an identity is a number')
  .transform(Number);

/** Services: the shapes are checked here; addresses, ports and combinations by the service model. */
const backendList = z.array(z.string().min(1, 'a backend is ADDRESS:PORT').max(64)).max(65536);
const duration = z.union([z.string().max(32), z.number()], { message: 'affinityTimeout is a duration such as "3h" or a number of seconds' });

export const AddServiceBody = z
  .object({
    frontend: z.string({ message: 'frontend must be ADDRESS:PORT/PROTOCOL, such as 10.96.0.10:80/TCP' }).min(1).max(64),
    backends: backendList.optional(),
    type: z.string().max(32).optional(),
    mode: z.string().max(32).optional(),
    affinity: z.string().max(32).optional(),
    affinityTimeout: duration.optional(),
    nodePort: z.number({ message: 'nodePort must be a number 1-65535' }).optional(),
  })
  .strict();
export type AddServiceBody = z.infer<typeof AddServiceBody>;

export const UpdateServiceBody = z
  .object({
    backends: backendList.optional(),
    addBackends: backendList.optional(),
    removeBackends: backendList.optional(),
    affinity: z.string().max(32).optional(),
    affinityTimeout: duration.optional(),
    mode: z.string().max(32).optional(),
  })
  .strict();
export type UpdateServiceBody = z.infer<typeof UpdateServiceBody>;

export const ServiceIdParam = z
  .string()
  .regex(/^\d{1,10}$/, 'a service id is a number')
  .transform(Number)
  .refine((n) => n >= 1 && n <= 0xffffffff, 'a service id is 1-4294967295');

/** Parses `value` or throws an invalid-argument error naming the field. */
export function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.length ? ` field "${issue.path.join('.')}"` : '';
  const message = issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}` : issue.message;
  throw new TendrilError('invalid-argument', `invalid ${what}${field}: ${message}`);
}
