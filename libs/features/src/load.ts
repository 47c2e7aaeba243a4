import { ConfigError, readConfigFile } from '@driftline/core';
import { type FeatureViews, parseFeatureViewsText } from './views.js';

/**
 * Reads and validates a feature view file at start-up. Errors are ConfigErrors naming the
 * variable (unreadable file) or the field inside the file (`views[1].features.age.type`).
 */
export function loadFeatureViews(path: string, variable = 'DRIFTLINE_FEATURE_VIEWS'): FeatureViews {
  const text = readConfigFile(variable, path, 'feature view file');
  try {
    return parseFeatureViewsText(text, path);
  } catch (error) {
    if (error instanceof ConfigError) {
      // Keep the field path (views[1].features.age.type) as the field; say which file it is in.
      const reason = error.message.slice(error.field.length + 2);
      throw new ConfigError(error.field, `${reason} (in ${path}, from ${variable})`, { cause: error });
    }
    throw error;
  }
}
