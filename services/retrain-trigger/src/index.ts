export { loadPolicy, type RetrainTriggerConfig, retrainTriggerEnvShape, toRetrainTriggerConfig } from './config.js';
export { retrainTriggerMigrations } from './migrations.js';
export { type DecisionRow, decisionRow, retrainRequestOf, triggerProcessor } from './processor.js';
export { retrainTriggerService } from './service.js';
export { ClickHouseDecisionStore, type DecisionStore } from './store.js';
