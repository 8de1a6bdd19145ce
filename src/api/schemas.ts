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
  })
  .strict();
export type AddEndpointBody = z.infer<typeof AddEndpointBody>;

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
      .pipe(z.array(z.enum(['drop', 'trace'], { message: 'type must be drop or trace' })))
      .optional(),
    endpoint: EndpointIdParam.optional(),
  })
  .strict();
export type MonitorQuery = z.infer<typeof MonitorQuery>;

export const MapNameParam = z.string().regex(/^[a-z0-9_]{1,15}$/, 'a map name is 1-15 lowercase letters, digits or "_"');

/** Parses `value` or throws an invalid-argument error naming the field. */
export function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.length ? ` field "${issue.path.join('.')}"` : '';
  const message = issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}` : issue.message;
  throw new TendrilError('invalid-argument', `invalid ${what}${field}: ${message}`);
}
