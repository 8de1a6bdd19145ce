import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TendrilError } from '../common/errors.js';
import { IDENTITY_CLASS_WORLD } from '../common/identity.js';
import { parsePolicyFiles } from './parse.js';
import { POLICY_STATE_FILE, PolicyRepository } from './repository.js';
import { endpointIdentity, reservedIdentities } from './testdata/identities.js';

function withStateDir(run: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-policy-'));
  try {
    run(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const cnp = (name: string, namespace: string | undefined, ingress = '[{fromEntities: [world]}]') =>
  `apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: ${name}${namespace ? `, namespace: ${namespace}` : ''}}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n  ingress: ${ingress}\n`;
const knp = (name: string, namespace: string) =>
  `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ${name}, namespace: ${namespace}}\nspec:\n  podSelector: {}\n  egress: [{}]\n`;
const parse = (...docs: string[]) => parsePolicyFiles([{ file: 'p.yaml', text: docs.join('---\n') }]);
const failsWith = (code: string, message: string) => (e: unknown) => e instanceof TendrilError && e.code === code && e.message === message;

test('import, list and get: the document as imported and a summary', () =>
  withStateDir((dir) => {
    const repo = new PolicyRepository(dir);
    assert.equal(repo.revision, 0);
    assert.deepEqual(repo.list(), []);
    const result = repo.import(parse(cnp('web', 'x'), knp('egress-all', 'x'), cnp('global', undefined)));
    assert.deepEqual(result, { revision: 1, keys: ['x/web', 'x/egress-all', 'global'] });
    assert.deepEqual(
      repo.list().map((s) => s.key),
      ['global', 'x/egress-all', 'x/web'],
    );
    const web = repo.get('x/web');
    assert.deepEqual(web.summary, { key: 'x/web', kind: 'CiliumNetworkPolicy', namespace: 'x', name: 'web', specs: 1, rules: 1, directions: ['ingress'] });
    assert.deepEqual(web.document, {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNetworkPolicy',
      metadata: { name: 'web', namespace: 'x' },
      spec: { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{ fromEntities: ['world'] }] },
    });
    assert.deepEqual(repo.get('egress-all').summary.directions, ['ingress', 'egress']);
    assert.equal(repo.get('global').summary.namespace, undefined);
  }));

test('a restart sees the same policies, revision and rule ids', () =>
  withStateDir((dir) => {
    const repo = new PolicyRepository(dir);
    repo.import(parse(cnp('web', 'x'), cnp('db', 'x')));
    repo.delete('x/db');
    const identities = [...reservedIdentities(), endpointIdentity(300, { app: 'web' }, 'x')];
    const before = repo.resolver(identities).entriesFor({ labels: identities.at(-1)!.labels });
    const restarted = new PolicyRepository(dir);
    assert.equal(restarted.revision, 2);
    assert.deepEqual(restarted.list(), repo.list());
    assert.deepEqual(restarted.get('web'), repo.get('web'));
    assert.deepEqual(restarted.resolver(identities).entriesFor({ labels: identities.at(-1)!.labels }), before);
    assert.ok(JSON.parse(readFileSync(join(dir, POLICY_STATE_FILE), 'utf8')).policies.length === 1);
  }));

test('a policy with the same key replaces the old one; its rules keep their ids, removed rules lose them', () =>
  withStateDir((dir) => {
    const repo = new PolicyRepository(dir);
    repo.import(parse(cnp('web', 'x', '[{fromEntities: [host]}, {fromEntities: [world]}]')));
    const worldRule = () =>
      repo
        .resolver(reservedIdentities())
        .entriesFor({ labels: { app: 'web', 'io.kubernetes.pod.namespace': 'x' } })
        .find((e) => e.identity === IDENTITY_CLASS_WORLD)?.ruleId;
    const id = worldRule()!;
    assert.deepEqual(repo.rules.ref(id), { policy: 'x/web', path: 'spec.ingress[1]', direction: 'ingress', verdict: 'allow' });
    repo.import(parse(cnp('web', 'x', '[{fromEntities: [health]}, {fromEntities: [world]}]')));
    assert.equal(repo.list().length, 1);
    assert.equal(worldRule(), id, 'same policy, same path: same id');
    repo.import(parse(cnp('web', 'x', '[{fromEntities: [host]}]')));
    assert.equal(repo.rules.ref(id), undefined, 'ingress[1] is gone');
    repo.import(parse(cnp('web', 'x', '[{fromEntities: [host]}, {fromEntities: [world]}]')));
    assert.ok(worldRule()! > id, 'ids are never reused');
  }));

test('import is all-or-nothing', () =>
  withStateDir((dir) => {
    const repo = new PolicyRepository(dir);
    repo.import(parse(cnp('web', 'x')));
    const twice = [...parse(cnp('a', 'x')), ...parse(cnp('a', 'x'))];
    assert.throws(() => repo.import(twice), failsWith('conflict', 'policy "x/a" is given twice in one import'));
    assert.deepEqual(
      repo.list().map((s) => s.key),
      ['x/web'],
    );
    // A state file that cannot be written leaves memory as it was.
    const blocked = join(dir, 'blocked');
    const stuck = new PolicyRepository(blocked);
    mkdirSync(join(blocked, POLICY_STATE_FILE, 'in-the-way'), { recursive: true });
    assert.throws(() => stuck.import(parse(cnp('b', 'x'))), /EISDIR|ENOTEMPTY/);
    assert.equal(stuck.revision, 0);
    assert.deepEqual(stuck.list(), []);
  }));

test('delete by key, or by name when it is unambiguous', () =>
  withStateDir((dir) => {
    const repo = new PolicyRepository(dir);
    repo.import(parse(cnp('web', 'x'), cnp('web', 'y'), cnp('db', 'x')));
    assert.throws(() => repo.delete('web'), failsWith('conflict', 'policy name "web" is ambiguous: give one of "x/web", "y/web"'));
    assert.throws(() => repo.get('web'), failsWith('conflict', 'policy name "web" is ambiguous: give one of "x/web", "y/web"'));
    assert.equal(repo.delete('y/web').key, 'y/web');
    assert.equal(repo.delete('web').key, 'x/web');
    assert.equal(repo.delete('db').key, 'x/db');
    assert.throws(() => repo.delete('db'), failsWith('not-found', 'no policy "db" (see `tendril policy list`)'));
    assert.equal(repo.revision, 4);
  }));

test('deleteAll, revisions and change listeners', () =>
  withStateDir((dir) => {
    const repo = new PolicyRepository(dir);
    const heard: number[] = [];
    const stop = repo.onChange((revision) => heard.push(revision));
    assert.equal(repo.deleteAll(), 0, 'nothing to delete is no change');
    repo.import(parse(cnp('a', 'x'), cnp('b', undefined)));
    assert.equal(repo.deleteAll(), 2);
    assert.deepEqual(repo.list(), []);
    assert.deepEqual(heard, [1, 2]);
    stop();
    repo.import(parse(cnp('c', 'x')));
    assert.deepEqual(heard, [1, 2]);
    assert.equal(repo.revision, 3);
  }));
