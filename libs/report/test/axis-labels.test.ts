import { describe, expect, it } from 'vitest';
import { numericBinLabels } from '../src/index.js';
import { barChart } from '../src/svg.js';

const textOf = (text: string) =>
  text
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&amp;', '&')
    .replace(/[\u2068\u2069]/g, '');

/** The axis labels of a bar chart of `labels`, in order: what is drawn and its tooltip (<title>), if any. */
function axis(labels: readonly string[]): { text: string; title: string | undefined; raw: string }[] {
  const svg = barChart({
    id: 't',
    title: 't',
    seriesNames: ['reference', 'current'],
    groups: labels.map((label, i) => ({ label, values: [i / 10, 0.1] })),
  });
  return [...svg.matchAll(/<text class="tick" [^>]*transform="rotate[^>]*>(.*?)<\/text>/g)].map((m) => {
    const raw = m[1]!;
    const title = /^<title>(.*?)<\/title>/.exec(raw);
    return {
      text: textOf(raw.replace(/^<title>.*?<\/title>/, '')),
      title: title === null ? undefined : textOf(title[1]!),
      raw,
    };
  });
}

/** A lone half of a surrogate pair. */
const HALF_PAIR = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

describe('bar chart axis labels: cut labels stay apart and keep the whole name as a tooltip (found by a review)', () => {
  it('labels sharing their first 11 characters are told apart by their end (both read "customer_se…")', () => {
    const labels = ['customer_segment_a', 'customer_segment_b', 'other'];
    const drawn = axis(labels);
    expect(drawn.map((l) => l.text)).toEqual(['custom…ent_a', 'custom…ent_b', 'other']);
    expect(drawn.map((l) => l.title)).toEqual(['customer_segment_a', 'customer_segment_b', undefined]);
  });

  it('labels differing in the middle are widened until they differ, at most 24 characters', () => {
    const labels = ['region_north_total_2024', 'region_south_total_2024', 'region_total'];
    const drawn = axis(labels).map((l) => l.text);
    expect(new Set(drawn).size).toBe(3);
    expect(drawn).toEqual(['region_n…al_2024', 'region_s…al_2024', 'region_total']);
    // Only in the middle, past 24 characters: the start and a hash of the whole name, as legends.
    const long = ['x'.repeat(30), 'y', 'z'.repeat(30)].join('');
    const twins = [`${'a'.repeat(20)}1${'b'.repeat(20)}`, `${'a'.repeat(20)}2${'b'.repeat(20)}`, long];
    const cut = axis(twins);
    expect(new Set(cut.map((l) => l.text)).size).toBe(3);
    for (const [i, l] of cut.entries()) {
      expect([...l.text].length).toBeLessThanOrEqual(24);
      expect(l.title).toBe(twins[i]);
    }
    expect(cut[0]!.text).toMatch(/^a+…#[0-9a-z]{7}$/);
  });

  it('the bins of close epoch-millisecond edges stay apart on the axis (edgeLabels tells the edges apart)', () => {
    const labels = numericBinLabels([1_734_000_000_123, 1_734_000_000_456, 1_734_000_000_789]);
    const drawn = axis(labels);
    expect(new Set(drawn.map((l) => l.text)).size).toBe(labels.length);
    expect(drawn.map((l) => l.title)).toEqual(labels);
  });

  it('escaped like the rest of the SVG, never half a surrogate pair', () => {
    const labels = [
      `<script>alert("x")</script>&'a`,
      `<script>alert("x")</script>&'b`,
      `${'🙂'.repeat(14)}a`,
      `${'🙂'.repeat(14)}b`,
    ];
    const drawn = axis(labels);
    expect(drawn.map((l) => l.title)).toEqual(labels);
    expect(new Set(drawn.map((l) => l.text)).size).toBe(4);
    for (const l of drawn) {
      expect(l.raw.replace(/<\/?title>/g, '')).not.toMatch(/[<>"']|&(?!(lt|gt|quot|#39|amp);)/);
      expect(l.text).not.toMatch(HALF_PAIR);
    }
    expect(drawn[2]!.text).toBe(`${'🙂'.repeat(6)}…${'🙂'.repeat(4)}a`);
  });
});
