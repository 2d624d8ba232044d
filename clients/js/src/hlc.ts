/**
 * Hybrid logical clock: "<unix ms>-<counter>", never going backwards, even across restarts (the
 * state is persisted with every op that uses it) and ahead of every HLC this device has seen, so
 * an edit made after seeing another device's value wins over it.
 */
export type HlcState = [ms: number, counter: number];

export const formatHlc = ([ms, counter]: HlcState): string => `${ms}-${counter}`;

export function parseHlc(text: string): HlcState {
  const [ms, counter] = text.split("-").map(Number);
  return [ms, counter];
}

export const compareHlc = (a: HlcState, b: HlcState): number => a[0] - b[0] || a[1] - b[1];

export class Hlc {
  constructor(
    public state: HlcState,
    private readonly clock: () => number,
  ) {}

  tick(): string {
    const now = Math.floor(this.clock());
    const [ms, counter] = this.state;
    this.state = now > ms ? [now, 0] : [ms, counter + 1];
    return formatHlc(this.state);
  }

  receive(remote: HlcState): void {
    const now = Math.floor(this.clock());
    const [ms, counter] = this.state;
    const top = Math.max(now, ms, remote[0]);
    const next = top === ms && top === remote[0] ? Math.max(counter, remote[1]) + 1 : top === ms ? counter + 1 : top === remote[0] ? remote[1] + 1 : 0;
    this.state = [top, next];
  }
}
