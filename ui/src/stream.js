// Follows a run's SSE stream with EventSource (resuming by Last-Event-ID).
//
// EventSource reconnects by itself after a dropped connection and sends Last-Event-ID, so
// the server resumes after the last sequence number we saw; we also drop any output whose
// seq we already have, so nothing is repeated even if a server replays too much. When the
// browser gives up (an HTTP error answer closes an EventSource for good) we reconnect
// ourselves with ?lastEventId=. On `end` we close: otherwise EventSource would reconnect
// and the server would replay and end again.

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10_000;

export class RunStream {
  /**
   * handlers: onOutput(stream, data, seq, at), onStatus(data), onEnd(runDoc),
   * onConnection("connecting" | "live" | "reconnecting" | "closed")
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.lastSeq = -1;
    this.closed = false;
    this.retryMs = RETRY_MIN_MS;
    this.timer = 0;
    this.es = null;
    this.connect(false);
  }

  connect(resume) {
    if (this.closed) return;
    let url = this.url;
    if (resume && this.lastSeq >= 0) {
      url += (url.includes("?") ? "&" : "?") + `lastEventId=${encodeURIComponent(this.lastSeq)}`;
    }
    const es = new EventSource(url);
    this.es = es;
    this.emitConnection(resume ? "reconnecting" : "connecting");
    es.onopen = () => {
      this.retryMs = RETRY_MIN_MS;
      this.emitConnection("live");
    };
    es.addEventListener("output", (ev) => this.onOutput(ev));
    es.addEventListener("status", (ev) => {
      const data = parse(ev.data);
      if (data) this.handlers.onStatus?.(data);
    });
    es.addEventListener("end", (ev) => {
      this.close();
      this.handlers.onEnd?.(parse(ev.data) || {});
    });
    es.onerror = () => {
      if (this.closed) return;
      if (es.readyState === EventSource.CLOSED) {
        // The browser will not retry (e.g. the server answered 5xx); retry with backoff.
        this.emitConnection("reconnecting");
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.connect(true), this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
      } else {
        this.emitConnection("reconnecting");
      }
    };
  }

  onOutput(ev) {
    const seq = ev.lastEventId === "" ? NaN : Number(ev.lastEventId);
    if (Number.isFinite(seq)) {
      if (seq <= this.lastSeq) return; // already shown
      this.lastSeq = seq;
    }
    const data = parse(ev.data);
    if (!data || typeof data.data !== "string") return;
    const at = typeof data.at === "string" ? Date.parse(data.at) : NaN;
    this.handlers.onOutput?.(data.stream === "stderr" ? "stderr" : "stdout", data.data, seq, Number.isFinite(at) ? at : undefined);
  }

  emitConnection(state) {
    if (state !== this.state) {
      this.state = state;
      this.handlers.onConnection?.(state);
    }
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.es) this.es.close();
    this.emitConnection("closed");
  }
}

function parse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
