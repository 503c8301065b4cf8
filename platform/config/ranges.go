package config

import (
	"fmt"
	"strconv"
	"time"
)

// IntRange returns the variable as a decimal integer from min to max
// inclusive, or def if it is unset. A value outside the range is recorded
// as an error naming the variable and the range, and def is returned, so a
// caller that goes on despite [Env.Err] never sees a value that could make
// it panic (a negative worker count) or silently mean something else (0
// deliveries). def itself must lie in the range; a default that does not is
// recorded as an error too, so a test of --help or of the defaults catches
// it.
func (e *Env) IntRange(name string, def, min, max int, help string) int {
	e.register(setting{name: name, kind: fmt.Sprintf("integer %d-%d", min, max), def: strconv.Itoa(def), help: help})
	if def < min || def > max {
		e.fail(name, fmt.Errorf("default %d outside %d-%d", def, min, max))
	}
	v, ok := e.get(name)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		e.fail(name, fmt.Errorf("%q is not an integer (want %d to %d)", v, min, max))
		return def
	}
	if n < int64(min) || n > int64(max) {
		e.fail(name, fmt.Errorf("%d is out of range (want %d to %d)", n, min, max))
		return def
	}
	return int(n)
}

// DurationRange returns the variable as a [time.Duration] from min to max
// inclusive ("30s", "5m"), or def if it is unset. Like [Env.IntRange] it
// records an out-of-range value, or default, as an error naming the
// variable and returns def.
func (e *Env) DurationRange(name string, def, min, max time.Duration, help string) time.Duration {
	e.register(setting{name: name, kind: "duration " + min.String() + "-" + max.String(), def: def.String(), help: help})
	if def < min || def > max {
		e.fail(name, fmt.Errorf("default %s outside %s-%s", def, min, max))
	}
	v, ok := e.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.fail(name, fmt.Errorf("%q is not a duration (want e.g. 30s, 5m, 1h30m, from %s to %s)", v, min, max))
		return def
	}
	if d < min || d > max {
		e.fail(name, fmt.Errorf("%s is out of range (want %s to %s)", d, min, max))
		return def
	}
	return d
}
