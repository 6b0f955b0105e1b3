// Runs the transpiled step (`jco transpile … -o <dir>/out --name step`) once
// under Node: `node run.mjs <dir>/out/step.js REQUEST.json`, where the request
// is {"command": "run" | "validate", "config": <step-config as jco's JS
// bindings spell it>, "context": "<JSON text>"}. JSON null stands for an
// absent option (jco: undefined). Prints one JSON line: {"ok": true,
// "outcome": …}, {"ok": false, "failure": …} or {"problems": […]}.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const [modulePath, requestPath] = process.argv.slice(2);
const { step } = await import(pathToFileURL(modulePath).href);
const request = JSON.parse(readFileSync(requestPath, 'utf8'), (_, v) => (v === null ? undefined : v));
const print = (value) => console.log(JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? Number(v) : v)));

if (request.command === 'validate') {
  print({ problems: step.validate(request.config) });
} else {
  try {
    print({ ok: true, outcome: step.run(request.config, request.context ?? '{}') });
  } catch (e) {
    // jco throws a ComponentError carrying the result's err payload.
    if (e && e.payload !== undefined) print({ ok: false, failure: e.payload });
    else throw e;
  }
}
