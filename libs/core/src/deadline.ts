/**
 * Runs `fn` with a signal that aborts after `ms`, and reports whether the deadline passed.
 * The controller is held by its own timer until `fn` settles: undici keeps only a weak reference
 * to a request's signal, and an `AbortSignal.timeout()` that nothing else holds can be collected
 * before it fires — a peer that accepts the connection and never answers then hangs the call.
 */
export async function withDeadline<T>(
  ms: number,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown; timedOut: boolean }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${ms} ms`, 'TimeoutError')), ms);
  try {
    return { ok: true, value: await fn(controller.signal) };
  } catch (error) {
    return { ok: false, error, timedOut: controller.signal.aborted };
  } finally {
    clearTimeout(timer);
  }
}
