import { DriftlineError } from '@driftline/core';

/**
 * A model that cannot be scored: malformed JSON, a field of the wrong shape, a broken tree or a
 * feature this lib does not implement. `field` is the JSON path of the offending value
 * (e.g. `learner.gradient_booster.model.trees[3].left_children[5]`). Never retriable.
 */
export class ModelFormatError extends DriftlineError {
  readonly field: string;
  constructor(field: string, message: string, options: { readonly cause?: unknown } = {}) {
    super('VALIDATION_FAILED', `model ${field}: ${message}`, { ...options, retriable: false, details: { field } });
    this.name = 'ModelFormatError';
    this.field = field;
  }
}

/** Input that does not fit the model (wrong row width, a string for a numeric feature, …). */
export class ScoringInputError extends DriftlineError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('BAD_REQUEST', `${field}: ${message}`, { retriable: false, details: { field } });
    this.name = 'ScoringInputError';
    this.field = field;
  }
}
