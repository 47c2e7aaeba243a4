import { describe, expect, it } from 'vitest';
import { type ModelCardData, renderModelCardText } from '../src/index.js';

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
