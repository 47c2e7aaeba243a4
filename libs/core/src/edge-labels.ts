/**
 * Bin edges as labels, each with the fewest significant digits (at least 4, and every digit of its
 * integer part) that tell it from its neighbours: 4 digits made every edge of epoch-millisecond
 * values `1734000000000` (the same label 10 times, and not the edges' value) and 1000.01..1000.09
 * all `1000` (found by a review). The labels of the drift CLI's and the report's charts.
 */
export function edgeLabels(edges: readonly number[]): string[] {
  const at = (x: number, digits: number) => Number(x.toPrecision(digits));
  const integerDigits = (x: number) =>
    Math.abs(x) < 1 || !Number.isFinite(x) ? 0 : Math.trunc(Math.abs(x)).toString().length;
  // The fewest digits that keep edges a and b apart (17 tells any two doubles apart).
  const apart = (a: number, b: number) => {
    let digits = 4;
    while (digits < 17 && at(a, digits) === at(b, digits)) digits++;
    return digits;
  };
  return edges.map((e, j) => {
    const digits = Math.min(
      17,
      Math.max(
        4,
        integerDigits(e),
        j > 0 && edges[j - 1] !== e ? apart(edges[j - 1]!, e) : 4,
        j + 1 < edges.length && edges[j + 1] !== e ? apart(e, edges[j + 1]!) : 4,
      ),
    );
    return String(at(e, digits));
  });
}
