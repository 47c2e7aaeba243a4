import { ConfigError } from '@driftline/core';
import type { CanarySpec } from '@driftline/policy';

const NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

function entries(variable: string, text: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const part of text.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw new ConfigError(variable, `expected model=version entries, got ${JSON.stringify(item)}`);
    out.push([item.slice(0, eq).trim(), item.slice(eq + 1).trim()]);
  }
  return out;
}

function checkName(variable: string, what: string, value: string): void {
  if (!NAME.test(value)) {
    throw new ConfigError(
      variable,
      `${what} ${JSON.stringify(value.slice(0, 140))} is not a model/version name (1-128 of A-Z a-z 0-9 . _ -, not starting with a dot)`,
    );
  }
}

/** `DRIFTLINE_MODEL_SERVER_CANARY`: `model=version@share,...`, one canary per model, share in (0, 1]. */
export function parseCanaries(text: string, variable = 'DRIFTLINE_MODEL_SERVER_CANARY'): Map<string, CanarySpec> {
  const out = new Map<string, CanarySpec>();
  for (const [model, rest] of entries(variable, text)) {
    const at = rest.lastIndexOf('@');
    if (at <= 0) throw new ConfigError(variable, `${model}: expected version@share, got ${JSON.stringify(rest)}`);
    const version = rest.slice(0, at);
    const shareText = rest.slice(at + 1);
    const share = Number(shareText);
    checkName(variable, 'model', model);
    checkName(variable, 'version', version);
    if (shareText === '' || !Number.isFinite(share) || share <= 0 || share > 1) {
      throw new ConfigError(variable, `${model}: share must be a number in (0, 1], got ${JSON.stringify(shareText)}`);
    }
    if (out.has(model)) throw new ConfigError(variable, `${model}: one canary per model`);
    out.set(model, { version, share });
  }
  return out;
}

/** `DRIFTLINE_MODEL_SERVER_SHADOW`: `model=version,...`; a model may have several shadows. */
export function parseShadows(text: string, variable = 'DRIFTLINE_MODEL_SERVER_SHADOW'): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [model, version] of entries(variable, text)) {
    checkName(variable, 'model', model);
    checkName(variable, 'version', version);
    const list = out.get(model) ?? [];
    if (list.includes(version)) throw new ConfigError(variable, `${model}=${version} is listed twice`);
    list.push(version);
    out.set(model, list);
  }
  return out;
}
