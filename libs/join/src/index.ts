export { type LogEvent, type OfflineJoin, offlineJoin } from './offline.js';
export {
  backstopTtl,
  type ExpireOutcome,
  expiryCutoff,
  type JoinConfig,
  type Joined,
  type JoinRef,
  type JoinState,
  joinKey,
  type LabelInput,
  type LabelOutcome,
  labelWaitUntil,
  onAck,
  onExpire,
  onLabel,
  onPrediction,
  type PredictionInput,
  type PredictionOutcome,
  parseJoinKey,
  type Transition,
} from './state.js';
export { type Applied, type ExpiredRow, type ExpireSummary, InMemoryJoinStore, type JoinStore } from './store.js';
export {
  addTally,
  FIRST_SEEN,
  type GroupTally,
  type SlotTally,
  type TakenTallies,
  type TallyBatch,
  type TallyCounts,
  type TallyInput,
} from './tally.js';
