/**
 * Runs `fn` with a signal that aborts after `ms`, or as soon as `stop` aborts, and reports which.
 * The controller is held by its own timer until `fn` settles: undici keeps only a weak reference
 * to a request's signal, and an `AbortSignal.timeout()` that nothing else holds can be collected
 * before it fires — a peer that accepts the connection and never answers then hangs the call.
 */
export async function withDeadline<T>(
  ms: number,
  fn: (signal: AbortSignal) => Promise<T>,
  stop?: AbortSignal,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown; timedOut: boolean; stopped: boolean }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${ms} ms`, 'TimeoutError')), ms);
  const onStop = () => controller.abort(stop?.reason);
  if (stop?.aborted === true) onStop();
  else stop?.addEventListener('abort', onStop, { once: true });
  try {
    return { ok: true, value: await fn(controller.signal) };
  } catch (error) {
    const stopped = stop?.aborted === true;
    return { ok: false, error, timedOut: controller.signal.aborted && !stopped, stopped };
  } finally {
    clearTimeout(timer);
    stop?.removeEventListener('abort', onStop);
  }
}
