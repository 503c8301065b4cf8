package k8stest

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

// TestFlowAllowed pins the NetworkPolicy semantics the flow checks rely on,
// each case one of the API's rules.
func TestFlowAllowed(t *testing.T) {
	web := podIn("app", "web", map[string]string{"role": "web"})
	web.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	db := podIn("app", "db", map[string]string{"role": "db"})
	db.Ports = []corev1.ContainerPort{{Name: "pg", ContainerPort: 5432}}
	otherNS := podIn("other", "web elsewhere", map[string]string{"role": "web"})
	outside := endpoint{Name: "outside", IP: netip.MustParseAddr("192.0.2.1")}

	cases := []struct {
		name     string
		policies string
		from, to endpoint
		port     int32
		proto    corev1.Protocol
		want     bool
	}{
		{"no policy, no isolation", ``, web, db, 5432, "TCP", true},
		{"default deny ingress", `
spec: {podSelector: {}, policyTypes: [Ingress]}`, web, db, 5432, "TCP", false},
		{"default deny egress", `
spec: {podSelector: {}, policyTypes: [Egress]}`, web, db, 5432, "TCP", false},
		{"policy without types isolates ingress only", `
spec: {podSelector: {}}`, db, outside, 443, "TCP", true},
		{"policy with egress rules and no types isolates egress", `
spec: {podSelector: {}, egress: [{ports: [{port: 53, protocol: UDP}]}]}`, db, outside, 443, "TCP", false},
		{"ingress allowed by pod selector, same namespace only", `
spec: {podSelector: {matchLabels: {role: db}}, policyTypes: [Ingress], ingress: [{from: [{podSelector: {matchLabels: {role: web}}}]}]}`, otherNS, db, 5432, "TCP", false},
		{"ingress allowed by pod selector", `
spec: {podSelector: {matchLabels: {role: db}}, policyTypes: [Ingress], ingress: [{from: [{podSelector: {matchLabels: {role: web}}}]}]}`, web, db, 5432, "TCP", true},
		{"namespace and pod selector in one peer are ANDed", `
spec: {podSelector: {}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: other}}, podSelector: {matchLabels: {role: db}}}]}]}`, otherNS, db, 5432, "TCP", false},
		{"namespace selector alone admits every pod there", `
spec: {podSelector: {}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: other}}}]}]}`, otherNS, db, 5432, "TCP", true},
		{"named port resolved on the destination", `
spec: {podSelector: {}, policyTypes: [Ingress], ingress: [{ports: [{port: pg}]}]}`, web, db, 5432, "TCP", true},
		{"named port of another container does not match", `
spec: {podSelector: {}, policyTypes: [Ingress], ingress: [{ports: [{port: http}]}]}`, web, db, 5432, "TCP", false},
		{"protocol defaults to TCP", `
spec: {podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: 53}]}]}`, web, outside, 53, "UDP", false},
		{"port range", `
spec: {podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: 8000, endPort: 9000}]}]}`, web, outside, 8443, "TCP", true},
		{"ipBlock except", `
spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 192.0.2.0/24, except: [192.0.2.0/30]}}]}]}`, web, outside, 443, "TCP", false},
		{"ipBlock matches outside addresses", `
spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 192.0.2.0/24}}]}]}`, web, outside, 443, "TCP", true},
		{"egress allowed but ingress refused", `
spec: {podSelector: {matchLabels: {role: web}}, policyTypes: [Egress], egress: [{}]}
---
spec: {podSelector: {matchLabels: {role: db}}, policyTypes: [Ingress]}`, web, db, 5432, "TCP", false},
		{"policies add up", `
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
spec: {podSelector: {matchLabels: {role: web}}, egress: [{to: [{podSelector: {matchLabels: {role: db}}}]}], policyTypes: [Egress]}
---
spec: {podSelector: {matchLabels: {role: db}}, ingress: [{ports: [{port: 5432}]}]}`, web, db, 5432, "TCP", true},
		{"policies of another namespace do not apply", `
metadata: {namespace: other}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}`, web, db, 5432, "TCP", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var pols []*networkingv1.NetworkPolicy
			for _, doc := range splitDocs(tc.policies) {
				p := &networkingv1.NetworkPolicy{}
				if err := yaml.UnmarshalStrict([]byte(doc), p); err != nil {
					t.Fatal(err)
				}
				if p.Namespace == "" {
					p.Namespace = "app"
				}
				pols = append(pols, p)
			}
			got, err := flowAllowed(pols, tc.from, tc.to, tc.port, tc.proto)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("allowed = %v, want %v", got, tc.want)
			}
		})
	}
}

func splitDocs(s string) []string {
	var out []string
	for d := range strings.SplitSeq(s, "\n---\n") {
		if strings.TrimSpace(d) != "" {
			out = append(out, d)
		}
	}
	return out
}
