/**
 * A 32-bit linear congruential generator (Numerical Recipes constants) written with explicit
 * modular arithmetic only: every intermediate is an integer below 2^53, so JavaScript doubles and
 * Python integers produce bit-identical sequences, and `next()` (state / 2^32) is exact in both.
 * It is for reproducible test data, not for anything statistical or secret.
 */
export class Lcg32 {
  private state: number;

  constructor(seed: number) {
    this.state = ((Math.trunc(seed) % 4_294_967_296) + 4_294_967_296) % 4_294_967_296;
  }

  /** The next raw 32-bit state. */
  nextUint32(): number {
    // 1664525 * (2^32 - 1) + 1013904223 < 2^53: exact in a double.
    this.state = (1_664_525 * this.state + 1_013_904_223) % 4_294_967_296;
    return this.state;
  }

  /** A double in [0, 1). */
  next(): number {
    return this.nextUint32() / 4_294_967_296;
  }
}
