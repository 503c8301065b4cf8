package secrets

import "testing"

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"no url here", "no url here"},
		{"postgres://app:pw@db:5432/mlc", "postgres://app:[REDACTED]@db:5432/mlc"},
		{"postgres://app@db/mlc", "postgres://app@db/mlc"},
		{"postgres://db/mlc", "postgres://db/mlc"},
		{"postgres://app:@db/mlc", "postgres://app:[REDACTED]@db/mlc"},
		{"dial postgres://a:b@h/x: refused; retry nats://n:m@h2:4222", "dial postgres://a:[REDACTED]@h/x: refused; retry nats://n:[REDACTED]@h2:4222"},
		{`url="https://u:p@h/p?q=1#f"`, `url="https://u:[REDACTED]@h/p?q=1#f"`},
		{"https://u:p@s@h/x", "https://u:[REDACTED]@h/x"},           // unescaped @ in password
		{"postgres://u:pa/ss@h/db", "postgres://u:[REDACTED]@h/db"}, // unescaped / in password
		{"postgres://u:p%40ss@h", "postgres://u:[REDACTED]@h"},
		{"https://h:8443/customers?email=a@b.com", "https://h:8443/customers?email=a@b.com"},
		{"https://h/x?email=a@b.com", "https://h/x?email=a@b.com"},
		{"http://h:8080", "http://h:8080"},
		{"://", "://"},
		{"x://u:p@", "x://u:[REDACTED]@"},
		{"a://u:p@h b://c:d@e", "a://u:[REDACTED]@h b://c:[REDACTED]@e"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		// Idempotent: scrubbing scrubbed text changes nothing.
		if got := RedactURL(tt.want); got != tt.want {
			t.Errorf("not idempotent on %q: %q", tt.want, got)
		}
	}
}
