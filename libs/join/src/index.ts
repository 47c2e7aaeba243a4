export {
  type AppliedMarker,
  coveredBy,
  markerHolds,
  markerOffset,
  nextMarker,
  type OffsetSpan,
  type Positioned,
} from './applied.js';
export { type LogEvent, type OfflineJoin, offlineJoin } from './offline.js';
export { isWrittenReplay, type ReplayCandidate, replayLookups } from './replay.js';
export {
  backstopTtl,
  type ExpireOutcome,
  type ExpiryClock,
  expiryClock,
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
  SOURCE_FORGET_MS,
  type SourceProgress,
  type SourceReport,
  type Transition,
} from './state.js';
export {
  type Applied,
  batchWatermark,
  type ExpiredRow,
  type ExpireSummary,
  InMemoryJoinStore,
  type JoinStore,
} from './store.js';
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
