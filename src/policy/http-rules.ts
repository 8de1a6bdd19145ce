/**
 * toPorts[].rules of a CiliumNetworkPolicy: the HTTP requests allowed on a
 * port, as Cilium users write them. method, path and host are regular
 * expressions matched against the whole value; headers are required headers,
 * "Name" (present) or "Name: value" (present with that value). Everything is
 * checked here, so the proxy only ever compiles rules that are valid.
 */
import type { HttpRule } from '../common/l7-policy.js';
import type { Field } from './field.js';

const OTHER_L7 = 'only HTTP rules are implemented';

const L7_UNSUPPORTED: Record<string, string> = {
  kafka: OTHER_L7,
  dns: `${OTHER_L7} (DNS-based policy is not implemented)`,
  l7proto: OTHER_L7,
  l7: OTHER_L7,
};

/** RFC 9110 token characters: what a header name may contain. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** The HTTP rules of one port rule's `rules`. */
export function readHttpRules(field: Field): HttpRule[] {
  const f = field.object({ known: ['http'], unsupported: L7_UNSUPPORTED });
  if (!f.http.present) field.fail('needs http (a list of HTTP rules)');
  const items = f.http.list();
  if (items.length === 0) f.http.fail('give at least one rule (an empty rule {} allows every request)');
  return items.map(readHttpRule);
}

function readHttpRule(field: Field): HttpRule {
  const f = field.object({
    known: ['method', 'path', 'host', 'headers'],
    unsupported: { headerMatches: 'header matches (mismatch actions, secrets) are not implemented; list required headers in headers' },
  });
  const rule: { -readonly [K in keyof HttpRule]: HttpRule[K] } = {};
  if (f.method.present) rule.method = regex(f.method);
  if (f.path.present) rule.path = regex(f.path);
  if (f.host.present) rule.host = regex(f.host);
  if (f.headers.present) rule.headers = f.headers.list().map(header);
  return rule;
}

/** A regular expression as written; it must compile when anchored as the proxy anchors it. */
function regex(field: Field): string {
  const source = field.string();
  try {
    new RegExp(`^(?:${source})$`);
  } catch (err) {
    // V8 says "Invalid regular expression: /<anchored source>/: <why>": keep the why.
    const message = err instanceof Error ? err.message : String(err);
    const why = message.slice(message.lastIndexOf('/: ') + 3) || message;
    field.fail(`invalid regular expression ${JSON.stringify(source)}: ${why}`);
  }
  return source;
}

/** "Name" or "Name: value"; the name is an HTTP token. */
function header(field: Field): string {
  const text = field.string();
  const colon = text.indexOf(':');
  const name = (colon < 0 ? text : text.slice(0, colon)).trim();
  if (name === '') field.fail(`header ${JSON.stringify(text)} has no name (write "Name" or "Name: value")`);
  if (!TOKEN.test(name)) field.fail(`header name ${JSON.stringify(name)} is not a valid HTTP header name`);
  return colon < 0 ? name : `${name}: ${text.slice(colon + 1).trim()}`;
}
