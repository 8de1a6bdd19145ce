/**
 * Reading an untyped policy document with the path of every value at hand,
 * so each problem is reported as "<field path>: <what is wrong>". The parser
 * adds the file and the document in front.
 */
import { SelectorError, parseSelector, type LabelSelector, type SelectorSpec } from '../common/selector.js';
import { TendrilError } from '../common/errors.js';

export class FieldError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(path ? `${path}: ${problem}` : problem);
    this.name = 'FieldError';
  }
}

export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number') return `the number ${value}`;
  return `${typeof value} ${String(value)}`;
}

/** Known fields of an object kind, and the ones users may write that Tendril does not implement (with why). */
export interface Shape<K extends string> {
  known: readonly K[];
  unsupported?: Readonly<Record<string, string>>;
}

export class Field {
  constructor(
    readonly value: unknown,
    readonly path: string,
  ) {}

  /** Absent and null are the same, as in the Kubernetes API. */
  get present(): boolean {
    return this.value !== undefined && this.value !== null;
  }

  fail(problem: string): never {
    throw new FieldError(this.path, problem);
  }

  child(name: string): Field {
    const value = isObject(this.value) && Object.hasOwn(this.value, name) ? this.value[name] : undefined;
    return new Field(value, this.path ? `${this.path}.${name}` : name);
  }

  /** Checks this is an object with no field outside `shape`; returns every known field (absent ones too). */
  object<K extends string>(shape: Shape<K>): Record<K, Field> {
    if (!isObject(this.value)) this.fail(`expected an object, got ${describeValue(this.value)}`);
    for (const name of Object.keys(this.value)) {
      if ((shape.known as readonly string[]).includes(name)) continue;
      const why = shape.unsupported?.[name];
      if (why !== undefined) this.child(name).fail(`not supported: ${why}`);
      this.child(name).fail(`unknown field (expected ${shape.known.join(', ')})`);
    }
    const out = {} as Record<K, Field>;
    for (const name of shape.known) out[name] = this.child(name);
    return out;
  }

  /** The items of a list; absent is an empty list. */
  list(): Field[] {
    if (!this.present) return [];
    if (!Array.isArray(this.value)) this.fail(`expected a list, got ${describeValue(this.value)}`);
    return this.value.map((v: unknown, i) => new Field(v, `${this.path}[${i}]`));
  }

  string(): string {
    if (typeof this.value !== 'string') this.fail(`expected a string, got ${describeValue(this.value)}`);
    return this.value;
  }

  required(): this {
    if (!this.present) this.fail('is required');
    return this;
  }

  /** A map of string values (labels). */
  stringMap(): Record<string, string> {
    if (!this.present) return {};
    if (!isObject(this.value)) this.fail(`expected a map of strings, got ${describeValue(this.value)}`);
    const out: Record<string, string> = {};
    for (const key of Object.keys(this.value)) out[key] = this.child(key).string();
    return out;
  }

  /** A label selector; absent or null selects everything. */
  selector(): LabelSelector {
    let spec: SelectorSpec = {};
    if (this.present) {
      const f = this.object({ known: ['matchLabels', 'matchExpressions'] });
      spec = {
        matchLabels: f.matchLabels.stringMap(),
        matchExpressions: f.matchExpressions.list().map((item) => {
          const e = item.object({ known: ['key', 'operator', 'values'] });
          return { key: e.key.required().string(), operator: e.operator.required().string(), values: e.values.list().map((v) => v.string()) };
        }),
      };
    }
    try {
      return parseSelector(spec);
    } catch (err) {
      if (err instanceof SelectorError) new Field(undefined, this.path ? `${this.path}.${err.field}` : err.field).fail(err.problem);
      throw err;
    }
  }

  /** Runs a check that throws a TendrilError and reports its message at this field. */
  check<T>(parse: () => T): T {
    try {
      return parse();
    } catch (err) {
      if (err instanceof TendrilError) this.fail(err.message);
      throw err;
    }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
