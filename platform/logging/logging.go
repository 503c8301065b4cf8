// Package logging sets up the structured JSON logs every ml-connector
// service writes: log/slog with a service attribute, the OpenTelemetry
// trace_id and span_id of the current span, and redaction of secrets.
//
// Trace ids come from the context passed with the record, so callers must
// use the context-taking methods (InfoContext, ErrorContext, LogAttrs, ...)
// wherever a request or message context exists.
//
// Redaction happens in three ways, before the record reaches the JSON
// encoder: values of attributes whose key names a credential ("password",
// "token", "authorization", ... see [IsSecretKey]) are replaced, at any
// depth; secret strings registered with a [Redactor] (by default with
// [Register]) are scrubbed from the message and from every string, error
// and structured value; and passwords in URLs and in password=… settings
// are scrubbed wherever they appear. Redaction is a safety net, not a
// licence: secrets should still be held as [secrets.Value] and never
// logged on purpose.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Default is the Redactor used by [New]. Register secrets with it through
// [Register].
var Default = NewRedactor()

// Register adds plaintext secrets to [Default], so that loggers made by
// [New] scrub them from every log line. Call it right after obtaining a
// secret, e.g. after decrypting a connection's client secret.
func Register(secrets ...string) { Default.Add(secrets...) }

// New returns a logger that writes JSON lines to w at level and above,
// with a "service" attribute, trace ids and redaction (see the package
// documentation). level may be a *slog.LevelVar to change it at run time.
func New(w io.Writer, level slog.Leveler, service string) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(NewHandler(h, Default)).With(slog.String("service", service))
}

// ParseLevel parses a LOG_LEVEL value: debug, info, warn (or warning) or
// error, in any case.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("logging: unknown level %q (want debug, info, warn or error)", s)
}
