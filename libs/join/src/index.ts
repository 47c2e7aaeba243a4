export { type LogEvent, type OfflineJoin, offlineJoin } from './offline.js';
export {
  backstopTtl,
  type ExpireOutcome,
  expiryCutoff,
  type JoinConfig,
  type Joined,
  type JoinState,
  type LabelInput,
  type LabelOutcome,
  labelWaitUntil,
  onAck,
  onExpire,
  onLabel,
  onPrediction,
  type PredictionInput,
  type PredictionOutcome,
  type Transition,
} from './state.js';
export { type Applied, type ExpiredRow, type ExpireSummary, InMemoryJoinStore, type JoinStore } from './store.js';
