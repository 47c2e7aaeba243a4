import { rebuildBegun, rebuildUnderKey } from '../key-rebuild.js';
import type { Migration } from '../migrate.js';
import { DATA_QUALITY_WINDOWS_REBUILD } from './data-quality-windows.js';
import { DRIFT_QUARANTINE_REBUILD } from './drift-quarantine.js';
import { DRIFT_WINDOWS_REBUILD, DRIFT_WINDOWS_WINDOW_END_REBUILD } from './drift-windows.js';
import { SEQUENTIAL_DETECTIONS_REBUILD } from './sequential-detections.js';

/** The tables 0730 rebuilds, in order (drift_windows: see below). */
const WINDOW_END_REBUILDS = [DRIFT_QUARANTINE_REBUILD, DATA_QUALITY_WINDOWS_REBUILD, SEQUENTIAL_DETECTIONS_REBUILD];

/**
 * 0730: `window_end` in the key of `drift_windows`, `drift_quarantine`, `data_quality_windows` and
 * `sequential_detections`, as 0710 did for skew_windows. Their windows were keyed by their start:
 * after a change of the window length (DRIFTLINE_DRIFT_WINDOW, which needs new consumer groups;
 * DRIFTLINE_FRESHNESS_WINDOW for the freshness rows of data_quality_windows) a window of the new length
 * starting where an old one did replaced it under FINAL and merges — one of twelve 5-minute windows
 * lost for a change to 1 h (a review). Tables created since have the key from their DDL (0101,
 * 0103, 0600, 0640); one created before is rebuilt ({@link rebuildUnderKey}: rows and `written_at`
 * kept, bounded calls, resumable, beside other processes migrating). `performance_windows` is not
 * rebuilt: the label-joiner recomputes an old-length window as the current-length window
 * containing its start, on purpose (see libs/warehouse README).
 *
 * `drift_windows` is left to 0740, which rebuilds a table of any earlier key into its key sorted by
 * time (drift-windows.ts): rebuilt here too, a table from before 0730 was copied twice. Except a
 * rebuild under 0730's key that a build before 0740 began and did not finish (its copy, or the old
 * table left after its exchange, the migration unrecorded): finished here under that key first, as
 * that build would — its copy has that key, and the old table's rows written during that copy are
 * copied from when it began (0740 knows only when its own copy began) — then rebuilt by 0740. Not
 * once 0740's rebuild has begun (its copy or the table under its key: another process migrating
 * got there first), which would otherwise be taken back to 0730's key.
 */
export const windowEndKeysMigration: Migration = {
  id: '0730_window_end_keys',
  statements: [],
  apply: async (ch) => {
    if (await rebuildBegun(ch, DRIFT_WINDOWS_WINDOW_END_REBUILD, DRIFT_WINDOWS_REBUILD))
      await rebuildUnderKey(ch, DRIFT_WINDOWS_WINDOW_END_REBUILD);
    for (const table of WINDOW_END_REBUILDS) await rebuildUnderKey(ch, table);
  },
};
