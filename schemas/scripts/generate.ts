import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateModule } from './codegen.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export function readAvroFiles(): Array<{ file: string; schema: never }> {
  const dir = join(root, 'avro');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.avsc'))
    .sort()
    .map((file) => ({ file, schema: JSON.parse(readFileSync(join(dir, file), 'utf8')) as never }));
}

export const generatedPath = join(root, 'src', 'generated.ts');

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(generatedPath, generateModule(readAvroFiles()));
  console.log(`wrote ${generatedPath}`);
}
