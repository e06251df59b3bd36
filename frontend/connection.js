// @ts-check
// The connection indicator in the header (Connecting…, Online, Offline, Sign in required).
// While the service is unreachable it polls /readyz with a backoff, so the indicator turns
// green again by itself. Nothing is re-sent automatically: the reader decides, with the Retry
// buttons. "Sign in required" is the service answering 401: reachable, but not for this reader
// until they sign in.

/** @typedef {"connecting" | "online" | "offline" | "signin"} Status */

const LABELS = {
  connecting: "Connecting…",
  online: "Online",
  offline: "Offline",
  signin: "Sign in required",
};
const RECONNECT_DELAYS_MS = [2_000, 4_000, 8_000, 15_000, 30_000];
const READY_TIMEOUT_MS = 5_000;

export class Connection {
  /**
   * @param {HTMLElement} indicator its data-state is the status (the stylesheet colours it)
   * @param {HTMLElement} label
   */
  constructor(indicator, label) {
    this.indicator = indicator;
    this.label = label;
    this.reconnectTimer = 0;
    this.reconnectAttempt = 0;
  }

  /** @param {Status} status */
  set(status) {
    this.indicator.dataset.state = status;
    if (this.label.textContent !== LABELS[status]) this.label.textContent = LABELS[status];
    if (status === "offline") {
      this.scheduleCheck();
    } else {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = 0;
      this.reconnectAttempt = 0;
    }
  }

  /**
   * A request failed: offline when the service itself did not answer, "signin" when it
   * refused the reader's credential.
   * @param {{ unreachable?: boolean, status?: number }} error
   */
  report(error) {
    if (error.status === 401) this.set("signin");
    else this.set(error.unreachable ? "offline" : "online");
  }

  scheduleCheck() {
    if (this.reconnectTimer) return;
    const delays = RECONNECT_DELAYS_MS;
    const delay = delays[Math.min(this.reconnectAttempt, delays.length - 1)];
    this.reconnectAttempt += 1;
    this.reconnectTimer = setTimeout(async () => {
      this.reconnectTimer = 0;
      if (this.indicator.dataset.state !== "offline") return;
      try {
        const response = await fetch("readyz", { signal: AbortSignal.timeout(READY_TIMEOUT_MS) });
        this.set(response.ok ? "online" : "offline");
      } catch {
        this.set("offline");
      }
    }, delay);
  }
}
