import { ConfigError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { parsePolicyText, policyFor } from '../src/index.js';

/** Found by fuzzing the runner's configuration (services/cli/test/config.fuzz.test.ts). */
describe('policy text: hostile YAML is one clear line, at once', () => {
  function refusal(text: string): string {
    try {
      parsePolicyText(text, 'policy.yaml');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error('accepted');
  }

  it('refuses YAML aliases: a self-referencing anchor made yaml loop (400 aliases, 1.6 KB: 22 s)', () => {
    expect(refusal(`models: &a [${Array(50).fill('*a').join(', ')}]`)).toBe(
      'policy.yaml: not valid YAML/JSON: aliases (*name) are not supported',
    );
  });

  it('refuses brackets nested deeper than 64 levels before yaml recurses into them', () => {
    expect(refusal(`${'['.repeat(1_000)}${']'.repeat(1_000)}`)).toBe(
      'policy.yaml: not valid YAML/JSON: brackets nest deeper than 64 levels',
    );
  });

  it('a YAML syntax error is one line with its position, without the code frame', () => {
    expect(refusal(': :')).toMatch(/^policy\.yaml: not valid YAML\/JSON: [^\n]* at line 1, column \d+:?$/);
  });

  it('refuses a __proto__ key, naming its path: a schema check would drop it and what it configures', () => {
    expect(refusal('version: 1\nmodels:\n  __proto__: { signals: { share_drifted: 0.4 } }\n')).toBe(
      'policy.yaml.models.__proto__: the key __proto__ is reserved (a schema check would drop it, and with it what it names)',
    );
    expect(refusal('{"version": 1, "models": {"m": {"x": [{"__proto__": 1}]}}}')).toMatch(
      /^policy\.yaml\.models\.m\.x\.0\.__proto__: the key __proto__ is reserved/,
    );
  });

  it('refuses a key feature longer than the names alerts carry (1,000 characters): it could never match', () => {
    const long = 'k'.repeat(1_001);
    expect(refusal(`version: 1\nmodels:\n  "*": { signals: { key_features: [${long}] } }\n`)).toMatch(
      /key_features.*at most 1,000 characters/,
    );
    expect(() =>
      parsePolicyText(`version: 1\nmodels:\n  "*": { signals: { key_features: [${'k'.repeat(1_000)}] } }\n`, 'p.yaml'),
    ).not.toThrow();
  });

  it('a model named like a property of every object gets the * policy, not Object.prototype', () => {
    const policy = parsePolicyText('version: 1\nmodels:\n  "*": { signals: { share_drifted: 0.4 } }\n', 'p.yaml');
    for (const model of ['constructor', 'toString', '__proto__']) {
      expect(policyFor(policy, model)?.signals.shareDrifted, model).toBe(0.4);
    }
  });
});
