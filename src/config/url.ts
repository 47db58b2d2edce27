/**
 * Server URLs in messages: the user-info part (`user:password@`) is replaced before a URL reaches an error,
 * a warning or a log line, whether or not the URL parses. No imports.
 */

/** `nats://svc:hunter2@host:4222` → `nats://[REDACTED]@host:4222`; URLs without user info are unchanged. */
export function maskUrlCredentials(url: string): string {
  // The user info runs from after the scheme (if any) to the last "@" before the path; it may contain "@".
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/?#]*@/i, "$1[REDACTED]@");
}
