export { type AlertMessage, digestOf, groupAlerts, maxSeverity, type RoutedAlert } from './group.js';
export { fullBucket, planSends, refill, type SendPlan, type TokenBucket } from './rate-limit.js';
export {
  type FailingDelivery,
  MAX_DETAILED_ALERTS,
  MAX_EVIDENCE_CHARS,
  MAX_JSON_BODY_BYTES,
  renderBody,
  renderDeliveryCheck,
  renderJson,
  renderSlack,
  summaryLine,
} from './render.js';
export {
  ANSWERS_TO_GIVE_UP,
  type AttemptVerdict,
  asksWaitBeyondBudget,
  checkShows,
  checkSpacingMs,
  failingMessageVerdict,
  looksMisconfigured,
  MAX_RETRY_AFTER_MS,
  nextRetryDelay,
  type RetryPolicy,
  receiverWaitUntil,
  retryAfterMs,
  verdictOf,
} from './retry.js';
export {
  type Glob,
  type Matcher,
  parseRoutes,
  parseRoutesText,
  type RateLimit,
  type Receiver,
  ROUTE_LIMITS,
  ROUTING_DEFAULTS,
  type Route,
  type RoutingTable,
  receiversFor,
  SEVERITIES,
  type Severity,
  severityOf,
} from './routes.js';
