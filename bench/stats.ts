/** Medians, ratios and the one results table `npm run bench` prints. */
export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface Row {
  figure: string;
  tendril: number;
  baseline: number;
  baselineName: string;
  unit: string;
  /** Ratio of tendril to baseline that meets the target, and in which direction. */
  target?: { ratio: number; better: 'lower' | 'higher' } | { absolute: number; better: 'lower' };
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

export function verdict(row: Row): string {
  const t = row.target;
  if (!t) return '';
  if ('absolute' in t) return row.tendril <= t.absolute ? `met (<= ${t.absolute} ${row.unit})` : `MISSED (target <= ${t.absolute} ${row.unit})`;
  const ratio = row.tendril / row.baseline;
  const ok = t.better === 'lower' ? ratio <= t.ratio : ratio >= t.ratio;
  return `${ok ? 'met' : 'MISSED'} (target ${t.better === 'lower' ? '<=' : '>='} ${t.ratio}x)`;
}

export function printTable(rows: Row[]): void {
  const header = ['figure', 'tendril', 'baseline', 'ratio', 'target'];
  const body = rows.map((r) => [
    r.figure,
    `${fmt(r.tendril)} ${r.unit}`,
    `${fmt(r.baseline)} ${r.unit} (${r.baselineName})`,
    `${fmt(r.tendril / r.baseline)}x`,
    verdict(r),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ');
  process.stdout.write(`${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('-|-')}\n${body.map(line).join('\n')}\n`);
}
