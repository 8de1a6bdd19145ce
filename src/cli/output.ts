/** Human tables and JSON: every command prints through here. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** A plain aligned table: headers in capitals, one row per item. */
export function printTable(headers: string[], rows: Array<Array<string | number | undefined | null>>): void {
  const cells = rows.map((r) => r.map((c) => (c === undefined || c === null ? '-' : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  process.stdout.write([line(headers), ...cells.map(line)].join('\n') + '\n');
}

/** Key/value lines for one object. */
export function printFields(fields: Array<[string, string | number | undefined]>): void {
  const width = Math.max(...fields.map(([k]) => k.length));
  process.stdout.write(fields.map(([k, v]) => `${(k + ':').padEnd(width + 1)} ${v ?? '-'}`).join('\n') + '\n');
}
