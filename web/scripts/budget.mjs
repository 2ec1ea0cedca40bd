// Prints the gzipped size of the built JavaScript and CSS; fails past the budget.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const BUDGET_JS = 120 * 1024;
const dir = new URL('../dist/assets/', import.meta.url).pathname;
let js = 0;
let css = 0;
for (const f of readdirSync(dir)) {
  const z = gzipSync(readFileSync(join(dir, f)), { level: 9 }).length;
  if (f.endsWith('.js')) js += z;
  else if (f.endsWith('.css')) css += z;
}
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
console.log(`budget: JavaScript ${kb(js)} gzipped (budget ${kb(BUDGET_JS)}), CSS ${kb(css)} gzipped`);
if (js > BUDGET_JS) {
  console.error('budget: the JavaScript is over its budget');
  process.exit(1);
}
