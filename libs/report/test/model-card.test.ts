import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ModelCardData, modelCardFileName, renderModelCardText } from '../src/index.js';

const card: ModelCardData = {
  model: 'fraud',
  version: 'v2',
  generatedAt: Date.UTC(2026, 11, 3),
  training: undefined,
  features: ['amount'],
  decision: undefined,
  reference: undefined,
  transitions: [
    {
      at: Date.UTC(2026, 11, 2),
      from: 'shadow',
      to: 'canary',
      decidedBy: 'operator:ana',
      reason: 'ok\nstage: v9 production → retired (forged)',
      detail: 'tab\there, escape \u001b[31m',
      evidence: '',
    },
  ],
  live: [],
  trainingDrift: [],
  stage: 'canary',
  notes: [],
};

describe('renderModelCardText', () => {
  it('keeps every field on its own line: control characters in a reason are written as \\uXXXX', () => {
    const text = renderModelCardText(card);
    const stageLines = text.split('\n').filter((l) => l.includes('→'));
    expect(stageLines).toHaveLength(1);
    expect(stageLines[0]).toContain('ok\\u000astage: v9 production → retired (forged)');
    expect(stageLines[0]).toContain('tab\\u0009here, escape \\u001b[31m');
    const controls = [...text].filter((ch) => ch !== '\n' && ((ch.codePointAt(0) ?? 0) < 0x20 || ch === '\u007f'));
    expect(controls).toEqual([]);
  });
});

describe('modelCardFileName', () => {
  it('names the card after the model and version, or after their hash when that is too long for a file system', () => {
    expect(modelCardFileName('fraud', 'v2')).toBe('model-card-fraud-v2.html');
    const dir = mkdtempSync(join(tmpdir(), 'cards-'));
    // Names as events allow them (256 characters): one of é (6 bytes percent-encoded), one of ASCII.
    const names: Array<[string, string]> = [
      ['fraud', 'é'.repeat(60)],
      ['m'.repeat(256), 'v'.repeat(256)],
      ['fraud', 'é'.repeat(61)],
    ];
    const files = names.map(([m, v]) => modelCardFileName(m, v));
    for (const f of files) writeFileSync(join(dir, f), 'card'); // ENAMETOOLONG before
    expect(new Set(files).size).toBe(3); // distinct names, distinct files
    expect(readdirSync(dir)).toHaveLength(3);
    expect(Math.max(...files.map((f) => Buffer.byteLength(f)))).toBeLessThanOrEqual(200);
  });
});
