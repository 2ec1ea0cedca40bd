// A screen's actions, one at a time: what runs is known (its buttons wait for it), a failure is
// said in a notice, and the caller learns whether it went through.
import { report } from './notices.svelte';

export class Actions<K extends string = string> {
  /** What runs now (the name it was given), or null. */
  busy = $state<K | null>(null);

  get running(): boolean {
    return this.busy !== null;
  }

  async run(action: () => Promise<void>, what?: K): Promise<boolean> {
    this.busy = what ?? ('action' as K);
    try {
      await action();
      return true;
    } catch (e) {
      report(e);
      return false;
    } finally {
      this.busy = null;
    }
  }
}
