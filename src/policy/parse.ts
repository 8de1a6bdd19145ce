/**
 * Policy files to policies. A file is YAML (one or many documents separated
 * by ---) or JSON (YAML reads it too); a document is a policy, a List of
 * policies, or a JSON array of either. Everything is validated before
 * anything is returned, and the first problem is one line naming the file,
 * the document and the field:
 *   policy.yaml: document 2 (CiliumNetworkPolicy "web"): specs[0].ingress[1].toPorts[0].ports[0].port: 70000 is out of range 1-65535
 */
import { parseAllDocuments } from 'yaml';
import { invalid } from '../common/errors.js';
import { readCiliumPolicy } from './cilium.js';
import { Field, FieldError, describeValue } from './field.js';
import { readKubernetesPolicy } from './kubernetes.js';
import type { Policy } from './model.js';

export interface PolicySource {
  /** Names the file in messages. */
  file: string;
  text: string;
}

interface PolicyFormat {
  apiVersion: string;
  listKind: string;
  read: (doc: Field) => Policy;
}

const FORMATS: Readonly<Record<string, PolicyFormat>> = {
  CiliumNetworkPolicy: { apiVersion: 'cilium.io/v2', listKind: 'CiliumNetworkPolicyList', read: readCiliumPolicy },
  NetworkPolicy: { apiVersion: 'networking.k8s.io/v1', listKind: 'NetworkPolicyList', read: readKubernetesPolicy },
};
const KIND_LIST = 'CiliumNetworkPolicy, NetworkPolicy, or a List of them';

/** Parses and validates every source; throws TendrilError('invalid-argument') on the first problem. */
export function parsePolicyFiles(sources: readonly PolicySource[]): Policy[] {
  const out: Policy[] = [];
  const seen = new Map<string, string>();
  for (const source of sources) {
    for (const { where, policy } of readFile(source)) {
      const earlier = seen.get(policy.key);
      if (earlier !== undefined) throw invalid(`${where}: policy "${policy.key}" is defined twice in one import (first in ${earlier})`);
      seen.set(policy.key, where);
      out.push(policy);
    }
  }
  return out;
}

/** Reads one already-decoded policy document (no List), e.g. one the repository stored. */
export function parsePolicyDocument(document: unknown, where: string): Policy {
  return located(where, document, () => readPolicy(new Field(document, ''), undefined));
}

function readFile(source: PolicySource): Array<{ where: string; policy: Policy }> {
  const docs = parseAllDocuments(source.text);
  const out: Array<{ where: string; policy: Policy }> = [];
  let nonEmpty = 0;
  (Array.isArray(docs) ? docs : []).forEach((doc, i) => {
    const where = `${source.file}: document ${i + 1}`;
    const problem = doc.errors[0] ?? doc.warnings[0];
    if (problem) {
      const at = problem.linePos ? `line ${problem.linePos[0].line}, column ${problem.linePos[0].col}: ` : '';
      throw invalid(`${where}: ${at}YAML syntax error: ${problem.message.split(' at line ')[0]}`);
    }
    let value: unknown;
    try {
      value = doc.toJS();
    } catch (err) {
      throw invalid(`${where}: YAML error: ${(err as Error).message}`);
    }
    if (value === null || value === undefined) return; // an empty document, e.g. after a trailing ---
    nonEmpty++;
    if (Array.isArray(value)) value.forEach((item: unknown, j) => out.push(...readTopLevel(item, `${where} [${j}]`)));
    else out.push(...readTopLevel(value, where));
  });
  if (nonEmpty === 0) throw invalid(`${source.file}: no policy documents in the file`);
  return out;
}

function readTopLevel(value: unknown, where: string): Array<{ where: string; policy: Policy }> {
  const kind = kindOf(value);
  const isList = kind === 'List' || Object.values(FORMATS).some((f) => f.listKind === kind);
  if (!isList) return [{ where: label(where, value), policy: located(where, value, () => readPolicy(new Field(value, ''), undefined)) }];
  const items = located(where, value, () => readList(new Field(value, '')));
  return items.map((item) => {
    const itemWhere = `${where} ${item.path}`;
    return { where: label(itemWhere, item.value), policy: located(itemWhere, item.value, () => readPolicy(new Field(item.value, ''), { implies: item.inherited })) };
  });
}

interface ListItem {
  path: string;
  value: unknown;
  /** The policy kind a typed List implies for items that do not say. */
  inherited: string | undefined;
}

function readList(list: Field): ListItem[] {
  const f = list.object({ known: ['apiVersion', 'kind', 'metadata', 'items'] });
  const kind = f.kind.string();
  const entry = Object.entries(FORMATS).find(([, format]) => format.listKind === kind);
  const expectedVersion = entry ? entry[1].apiVersion : 'v1';
  const version = f.apiVersion.required().string();
  if (version !== expectedVersion) f.apiVersion.fail(`"${version}" is not the apiVersion of ${kind} (${expectedVersion})`);
  return f.items.list().map((item) => ({
    path: item.path,
    value: item.value,
    inherited: entry?.[0],
  }));
}

/** `list` is set for an item of a List: the policy kind the List implies, if it is a typed one. */
function readPolicy(doc: Field, list: { implies: string | undefined } | undefined): Policy {
  const inherited = list?.implies;
  if (typeof doc.value !== 'object' || doc.value === null || Array.isArray(doc.value))
    doc.fail(`expected a policy (an object), got ${describeValue(doc.value)}`);
  const kindField = doc.child('kind');
  if (!kindField.present && inherited === undefined) kindField.fail(`is required (${KIND_LIST})`);
  const kind = kindField.present ? kindField.string() : inherited!;
  const format = FORMATS[kind];
  if (!format) {
    const nested = kind === 'List' || kind.endsWith('List');
    kindField.fail(nested && list ? 'a List inside a List is not supported' : `"${kind}" is not a policy kind (${KIND_LIST})`);
  }
  if (inherited !== undefined && kind !== inherited) kindField.fail(`a ${FORMATS[inherited]!.listKind} holds ${inherited} items, not ${kind}`);
  const versionField = doc.child('apiVersion');
  if (!versionField.present && inherited === undefined) versionField.fail(`is required (${format.apiVersion} for ${kind})`);
  const version = versionField.present ? versionField.string() : format.apiVersion;
  if (version !== format.apiVersion) versionField.fail(`"${version}" is not supported for ${kind} (use ${format.apiVersion})`);
  const policy = format.read(doc);
  // Keep the document self-describing when a List implied its kind.
  return { ...policy, document: { apiVersion: format.apiVersion, kind, ...(doc.value as object) } };
}

/** "document 2 (CiliumNetworkPolicy "web")": what a document says it is, as far as it says. */
function label(where: string, value: unknown): string {
  const kind = kindOf(value);
  const metadata = isObject(value) ? value.metadata : undefined;
  const name = isObject(metadata) && typeof metadata.name === 'string' ? metadata.name : undefined;
  if (kind === undefined && name === undefined) return where;
  return `${where} (${[kind, name === undefined ? undefined : JSON.stringify(name)].filter((x) => x !== undefined).join(' ')})`;
}

function kindOf(value: unknown): string | undefined {
  return isObject(value) && typeof value.kind === 'string' ? value.kind : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Runs `read`, turning a FieldError into one line that says where. */
function located<T>(where: string, value: unknown, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof FieldError) throw invalid(`${label(where, value)}: ${err.message}`);
    throw err;
  }
}
