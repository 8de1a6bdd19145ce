/**
 * Run by hand: `node dist/src/policy/testdata/time-resolution.js`. Times a
 * fresh resolver over the scale scenario (1,000 rules, 10,000 identities,
 * 100 endpoints): median of 7 runs, parsing excluded. Not a test: tests check
 * behaviour, not speed.
 */
import { PolicyResolver } from '../resolver.js';
import { scaleScenario } from './scale.js';

const scenario = scaleScenario();
const times: number[] = [];
let entries = 0;
for (let run = 0; run < 7; run++) {
  const start = process.hrtime.bigint();
  const resolver = new PolicyResolver(scenario.policies, scenario.identities);
  entries = 0;
  for (const endpoint of scenario.endpoints) entries += resolver.entriesFor(endpoint).length;
  times.push(Number(process.hrtime.bigint() - start) / 1e6);
}
times.sort((a, b) => a - b);
const rules = scenario.policies.reduce((n, p) => n + p.specs.length, 0);
process.stdout.write(
  `${rules} rules, ${scenario.identities.length} identities, ${scenario.endpoints.length} endpoints: ` +
    `${entries} entries, median ${times[3]!.toFixed(1)} ms (min ${times[0]!.toFixed(1)}, max ${times[6]!.toFixed(1)})\n`,
);
