/** A listener list shaped like chrome's events (addListener / removeListener / hasListener). */
export class Listeners<Args extends unknown[]> {
  private readonly listeners = new Set<(...args: Args) => void>();

  addListener(listener: (...args: Args) => void): void {
    this.listeners.add(listener);
  }

  removeListener(listener: (...args: Args) => void): void {
    this.listeners.delete(listener);
  }

  hasListener(listener: (...args: Args) => void): boolean {
    return this.listeners.has(listener);
  }

  emit(...args: Args): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(...args);
      } catch (error) {
        // One broken listener must not stop the others or the sync that emitted the event.
        console.error(error);
      }
    }
  }
}
