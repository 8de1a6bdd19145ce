/**
 * The path the rules see: a request-target normalised per RFC 3986 so that
 * spellings an upstream treats as the same resource match the same rules
 * (/v1/./x, /v1/a/../x, /v1//x and /v1/%78 are all /v1/x). Only unreserved
 * characters are decoded: %2F stays an encoded byte (a server that splits on
 * it would split before decoding too), so decoding never creates new
 * segments. What cannot be normalised unambiguously is refused (400).
 */

const HEX = '0123456789ABCDEF';

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** ALPHA / DIGIT / "-" / "." / "_" / "~" */
function unreserved(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 || c === 126;
}

const ABSOLUTE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]+/;

/**
 * The normalised path of a request-target (query removed), or undefined when
 * the target must be refused: not origin-form, absolute-form or "*" (the last
 * for OPTIONS only), an invalid or NUL percent-encoding, or a fragment.
 */
export function normalizePath(target: string, method: string): string | undefined {
  let path = target;
  if (path.charCodeAt(0) !== 47 /* / */) {
    if (path === '*') return method === 'OPTIONS' ? '*' : undefined;
    const m = ABSOLUTE.exec(path);
    if (!m) return undefined;
    path = path.slice(m[0].length);
    if (path === '' || path.charCodeAt(0) === 63 /* ? */) return '/';
  }
  const q = path.indexOf('?');
  if (q >= 0) path = path.slice(0, q);
  if (path.includes('#')) return undefined;
  // The common case: nothing to decode, no dot segment, no empty segment.
  if (!path.includes('%') && !path.includes('/.') && !path.includes('//')) return path;
  const decoded = decodeUnreserved(path);
  if (decoded === undefined) return undefined;
  return removeDotSegments(decoded);
}

function decodeUnreserved(path: string): string | undefined {
  if (!path.includes('%')) return path;
  let out = '';
  let last = 0;
  for (let i = 0; i < path.length; i++) {
    if (path.charCodeAt(i) !== 37 /* % */) continue;
    const hi = hexVal(path.charCodeAt(i + 1));
    const lo = hexVal(path.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return undefined;
    const byte = hi * 16 + lo;
    if (byte === 0) return undefined;
    out += path.slice(last, i);
    out += unreserved(byte) ? String.fromCharCode(byte) : `%${HEX[hi]}${HEX[lo]}`;
    last = i + 3;
    i += 2;
  }
  return out + path.slice(last);
}

/** RFC 3986 5.2.4 on an absolute path, with empty segments (//) collapsed first. */
function removeDotSegments(path: string): string {
  const parts = path.split('/');
  const out: string[] = [];
  let trailing = false;
  for (let i = 1; i < parts.length; i++) {
    const seg = parts[i]!;
    trailing = false;
    if (seg === '' || seg === '.') trailing = true;
    else if (seg === '..') {
      out.pop();
      trailing = true;
    } else out.push(seg);
  }
  if (out.length === 0) return '/';
  return `/${out.join('/')}${trailing ? '/' : ''}`;
}
