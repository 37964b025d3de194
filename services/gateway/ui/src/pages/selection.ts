// Runs picked in a runs table for comparison, per experiment. Kept in memory while the app runs (a
// pick is a moment's work, not a view worth bookmarking); the compare page's URL holds the runs
// once they are compared, so that view is a link.

export const MAX_COMPARE = 100; // CompareRuns takes at most 100 runs

const picked = new Map<string, string[]>();

export function pickedIn(experimentId: string): string[] {
  return picked.get(experimentId) ?? [];
}

export function setPickedIn(experimentId: string, runIds: string[]): void {
  if (runIds.length) picked.set(experimentId, runIds);
  else picked.delete(experimentId);
}

/** The compare page of these runs (ids are lower-case hex: the list reads plainly in the URL). */
export function compareHref(runIds: string[], baseline?: string): string {
  const base = baseline && baseline !== runIds[0] ? `&base=${encodeURIComponent(baseline)}` : "";
  return `/compare?runs=${runIds.map(encodeURIComponent).join(",")}${base}`;
}
