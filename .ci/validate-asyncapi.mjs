// Validates docs/asyncapi.yaml with the official AsyncAPI parser, following
// its $refs into docs/schemas/. Exits 1 on any diagnostic of severity error
// and prints every diagnostic (warnings too).
//   node .ci/validate-asyncapi.mjs [FILE]     (default docs/asyncapi.yaml)
// Needs `npm ci --prefix .ci/node` first (.ci/run does it).
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, 'node', 'package.json'));
const { Parser, fromFile, DiagnosticSeverity } = require('@asyncapi/parser');

const file = path.resolve(process.argv[2] ?? path.join(here, '..', 'docs', 'asyncapi.yaml'));
const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, file).parse();

const names = { 0: 'error', 1: 'warning', 2: 'information', 3: 'hint' };
for (const d of diagnostics) {
  const where = d.path && d.path.length ? d.path.join('.') : '(document)';
  const line = d.range ? `:${d.range.start.line + 1}` : '';
  console.log(`${names[d.severity] ?? d.severity} ${d.code}: ${where}${line}: ${d.message}`);
}
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
if (errors.length > 0 || !document) {
  console.error(`${path.relative(process.cwd(), file)}: ${errors.length} error(s)`);
  process.exit(1);
}
const messages = document.allMessages().all().map((m) => m.name() ?? m.id());
console.log(
  `${path.relative(process.cwd(), file)}: valid AsyncAPI ${document.version()}, ` +
    `${document.allChannels().length} channels, ${document.allOperations().length} operations, ` +
    `messages ${messages.join(', ')}; ${diagnostics.length} diagnostic(s), none an error`,
);
