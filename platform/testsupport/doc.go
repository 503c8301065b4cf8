// Package testsupport gives tests real, isolated infrastructure: an embedded
// NATS JetStream server with its own storage directory, and a freshly created
// PostgreSQL database that is dropped when the test ends. Every test in the
// repository gets its NATS and Postgres from here rather than starting its own.
//
// Failing to reach Postgres fails the test: a skipped infrastructure test
// would read as green while proving nothing.
package testsupport
