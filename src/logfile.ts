/**
 * An append-only log file (mode 0600) that can be reopened for log rotation: after `reopen()` lines go to the
 * file now at the path (logrotate renames the old one, then sends SIGHUP); lines already written drain into the
 * old file. Opening is synchronous, so an unwritable path fails at once (at start, or on reopen, where the old
 * file keeps being used). Write errors go to `onError`; `write` never throws.
 */
import { createWriteStream, openSync, type WriteStream } from "node:fs";

export class ReopenableFile {
  private stream: WriteStream;
  /** Lines written in this turn, not yet handed to the stream. */
  private pending = "";
  private readonly flush = (): void => {
    if (this.pending === "") return;
    const lines = this.pending;
    this.pending = "";
    this.stream.write(lines);
  };

  /** Opens `path` for appending; throws the open error (an ErrnoException). */
  constructor(
    readonly path: string,
    private readonly onError: (e: NodeJS.ErrnoException) => void,
  ) {
    this.stream = this.open();
  }

  private open(): WriteStream {
    const fd = openSync(this.path, "a", 0o600);
    const stream = createWriteStream(this.path, { fd, flags: "a" });
    stream.on("error", this.onError);
    return stream;
  }

  write(line: string): void {
    if (this.pending === "") setImmediate(this.flush);
    this.pending += line;
  }

  /** Switch to a freshly opened file at the path; throws (and keeps the current file) when it cannot be opened. */
  reopen(): void {
    const next = this.open();
    this.flush();
    const old = this.stream;
    this.stream = next;
    old.end();
  }

  /** Flush and close. */
  end(): Promise<void> {
    this.flush();
    return new Promise<void>((r) => this.stream.end(() => r()));
  }
}
