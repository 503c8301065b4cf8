package k8stest

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// edit replaces the single occurrence of old in a repository file.
type edit struct {
	file     string // relative to the repository root
	old, new string
}

// mutation is a mistake in the manifests (or in a service's source) that a
// rule must report.
type mutation struct {
	name    string
	edits   []edit
	overlay string // default: the overlay of the first edited manifest, else overlays/prod
	rule    string
	want    string // part of the problem the rule reports
}

const (
	base = "deploy/k8s/base/"
	prod = "deploy/k8s/overlays/prod/"
	dev  = "deploy/k8s/overlays/dev/"
)

// erpPosterGRPC makes erp-poster read GRPC_ADDR, for the mutations that
// check gRPC wiring whatever stage erp-poster's own main has reached (a
// second read of the same variable changes nothing).
var erpPosterGRPC = edit{"services/erp-poster/main.go",
	`cfg := service.LoadConfig(env, "erp-poster")`,
	`cfg := service.LoadConfig(env, "erp-poster")
	_ = env.Addr(config.VarGRPCAddr, config.DefaultGRPCAddr, "gRPC listener.")`}

var mutations = []mutation{
	// A service without a manifest.
	{name: "service removed from kustomization", edits: []edit{{base + "kustomization.yaml", "  - jde-poller.yaml\n", ""}},
		overlay: "base", rule: "service-manifests", want: "services/jde-poller has no manifest"},
	{name: "service without its own ServiceAccount", edits: []edit{{base + "ifs-poller.yaml", "serviceAccountName: ifs-poller", "serviceAccountName: default"}},
		rule: "service-manifests", want: `runs as ServiceAccount "default"`},
	{name: "Service selecting no pods", edits: []edit{{base + "payment-orchestrator.yaml", "spec:\n  selector:\n    app.kubernetes.io/name: payment-orchestrator", "spec:\n  selector:\n    app.kubernetes.io/name: orchestrator"}},
		rule: "service-manifests", want: "Service payment-orchestrator selects [], want only"},

	// NATS permissions.
	{name: "the whole JetStream API for a service", edits: []edit{{base + "accounts.conf", `"mlc.gc.>", "mlc.dlq.>"
            ]`, `"mlc.gc.>", "mlc.dlq.>", "$JS.API.>"
            ]`}},
		rule: "nats-security", want: `gc-webhook: NATS user gc-webhook may use $JS.API.>`},
	{name: "a producer reading the orchestrator's consumer", edits: []edit{{base + "accounts.conf", `"mlc.erp.jde.>", "mlc.dlq.>"`, `"mlc.erp.jde.>", "mlc.dlq.>", "$JS.API.CONSUMER.INFO.MLC_ERP.payment-orchestrator-erp"`}},
		rule: "nats-security", want: `jde-poller: NATS user jde-poller may read the bus ($JS.API.CONSUMER.INFO.MLC_ERP.payment-orchestrator-erp)`},

	// Images.
	{name: "prod without its pinned digests", edits: []edit{{prod + "kustomization.yaml", "components:\n  - images\n", "components:\n"}},
		rule: "images", want: `image "ghcr.io/ml-connector/gc-webhook" is not pinned by digest in prod`},
	{name: "latest tag in dev", edits: []edit{{dev + "kustomization.yaml", "gc-webhook\n    newTag: dev", "gc-webhook\n    newTag: latest"}},
		overlay: "overlays/dev", rule: "images", want: `image "ghcr.io/ml-connector/gc-webhook:latest" is not pinned`},
	{name: "unpinned NATS image", edits: []edit{{base + "nats.yaml", "image: nats:2.15.2", "image: nats"}},
		rule: "images", want: `image "nats" is not pinned`},
	{name: "a third-party image nobody verifies", edits: []edit{{prod + "third-party/kustomization.yaml", "newTag: 0.17.3", "newTag: 0.17.4"}},
		rule: "images", want: "third-party image natsio/prometheus-nats-exporter:0.17.4 is not listed"},
	{name: "wrong image for a service", edits: []edit{{base + "jde-poller.yaml", "image: ghcr.io/ml-connector/jde-poller", "image: ghcr.io/ml-connector/ifs-poller"}},
		rule: "images", want: "jde-poller: image"},

	// Probes.
	{name: "readiness on /healthz", edits: []edit{{base + "ifs-poller.yaml", "path: /readyz", "path: /healthz"}},
		rule: "probes", want: "ifs-poller: readiness probe gets /healthz, want /readyz"},
	{name: "liveness on the public port", edits: []edit{{base + "gc-webhook.yaml", "livenessProbe:\n            httpGet:\n              path: /healthz\n              port: http", "livenessProbe:\n            httpGet:\n              path: /healthz\n              port: webhook"}},
		rule: "probes", want: "gc-webhook: liveness probe on port webhook, want HTTP_ADDR's port 8080"},
	{name: "no startup probe", edits: []edit{{base + "payment-orchestrator.yaml", "          startupProbe:\n            httpGet:\n              path: /healthz\n              port: http\n            periodSeconds: 5\n            failureThreshold: 60\n", ""}},
		rule: "probes", want: "payment-orchestrator: no startup probe"},
	{name: "gRPC probe on the wrong port", edits: []edit{erpPosterGRPC, {base + "erp-poster.yaml", "grpc:\n              port: 9090", "grpc:\n              port: 9091"}},
		rule: "probes", want: "erp-poster: gRPC readiness probe on port 9091, want GRPC_ADDR's port 9090"},
	{name: "erp-poster ready on HTTP", edits: []edit{erpPosterGRPC, {base + "erp-poster.yaml", "grpc:\n              port: 9090", "httpGet:\n              path: /readyz\n              port: http"}},
		rule: "probes", want: "erp-poster: readiness probe must be the gRPC health check"},
	{name: "NATS probe on an undeclared port", edits: []edit{{base + "nats.yaml", "path: /healthz?js-server-only=true\n              port: monitor", "path: /healthz?js-server-only=true\n              port: monitoring"}},
		rule: "probes", want: "readiness probe port monitoring is not a port of container nats"},

	// Resources.
	{name: "no memory request in prod", edits: []edit{{prod + "kustomization.yaml", "requests: {cpu: 250m, memory: 256Mi}", "requests: {cpu: 250m}"}},
		rule: "resources", want: "has no memory request"},
	{name: "request above limit", edits: []edit{{prod + "kustomization.yaml", `limits: {cpu: "2", memory: 1Gi}` + "\n  - target:\n      kind: Deployment\n      name: otel-collector", `limits: {cpu: "2", memory: 128Mi}` + "\n  - target:\n      kind: Deployment\n      name: otel-collector"}},
		rule: "resources", want: "requests 256Mi memory, above its limit 128Mi"},
	{name: "no CPU limit on the collector", edits: []edit{{dev + "kustomization.yaml", "limits: {cpu: 250m, memory: 256Mi}", "limits: {memory: 256Mi}"}},
		overlay: "overlays/dev", rule: "resources", want: "deployment/otel-collector: container otel-collector has no cpu limit"},

	// Security context.
	{name: "container may run as root", edits: []edit{{base + "ifs-poller.yaml", "            runAsNonRoot: true\n            readOnlyRootFilesystem: true", "            runAsNonRoot: false\n            readOnlyRootFilesystem: true"}},
		rule: "security", want: "deployment/ifs-poller: container ifs-poller: runAsNonRoot is not true"},
	{name: "writable root file system", edits: []edit{{base + "gc-webhook.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"}},
		rule: "security", want: "container gc-webhook: readOnlyRootFilesystem is not true"},
	{name: "privilege escalation", edits: []edit{{base + "nats.yaml", "allowPrivilegeEscalation: false\n            capabilities:\n              drop: [\"ALL\"]\n            seccompProfile:\n              type: RuntimeDefault\n          volumeMounts:", "allowPrivilegeEscalation: true\n            capabilities:\n              drop: [\"ALL\"]\n            seccompProfile:\n              type: RuntimeDefault\n          volumeMounts:"}},
		rule: "security", want: "container nats: allowPrivilegeEscalation is not false"},
	{name: "capabilities kept", edits: []edit{{base + "otel-collector.yaml", `drop: ["ALL"]`, `drop: ["NET_RAW"]`}},
		rule: "security", want: "container otel-collector: capabilities do not drop ALL"},
	{name: "seccomp unconfined", edits: []edit{{base + "erp-poster.yaml", "            seccompProfile:\n              type: RuntimeDefault", "            seccompProfile:\n              type: Unconfined"}},
		rule: "security", want: "container erp-poster: seccompProfile is not RuntimeDefault"},
	{name: "UID 0", edits: []edit{{base + "nats.yaml", "runAsUser: 1000", "runAsUser: 0"}},
		rule: "security", want: "container nats: runs as UID 0"},
	{name: "API token mounted", edits: []edit{{base + "jde-poller.yaml", "automountServiceAccountToken: false\n---", "automountServiceAccountToken: true\n---"}},
		rule: "security", want: "ServiceAccount jde-poller mounts an API token"},
	{name: "namespace not restricted", edits: []edit{{base + "namespace.yaml", "enforce: restricted", "enforce: baseline"}},
		rule: "security", want: "does not enforce the restricted Pod Security Standard"},

	// Environment against the services' source.
	{name: "variable misspelt in the manifest", edits: []edit{{base + "kustomization.yaml", "- LOG_LEVEL=info", "- LOGLEVEL=info"}},
		rule: "env", want: "sets LOGLEVEL (ConfigMap mlc-config"},
	{name: "variable renamed in the source", edits: []edit{{"platform/config/common.go", `VarLogLevel           = "LOG_LEVEL"`, `VarLogLevel           = "MLC_LOG_LEVEL"`}},
		rule: "env", want: "sets LOG_LEVEL (ConfigMap mlc-config"},
	{name: "secret as a literal", edits: []edit{{base + "ifs-poller.yaml", "- name: DATABASE_URL\n              valueFrom:\n                secretKeyRef:\n                  name: mlc-database\n                  key: DATABASE_URL", "- name: DATABASE_URL\n              value: postgres://mlc@db/mlc"}},
		rule: "env", want: "ifs-poller: DATABASE_URL is a secret and must come from a Secret (secretKeyRef), not value"},
	{name: "webhook secret from a ConfigMap", edits: []edit{
		{base + "kustomization.yaml", "- WEBHOOK_ADDR=:8443", "- WEBHOOK_ADDR=:8443\n      - GC_WEBHOOK_SECRET=s3cret"},
		{base + "gc-webhook.yaml", "- name: GC_WEBHOOK_SECRET\n", "- name: GC_WEBHOOK_SECRET_UNUSED\n"}},
		rule: "env", want: "gc-webhook: GC_WEBHOOK_SECRET is a secret and must come from a Secret (secretKeyRef), not ConfigMap gc-webhook-config"},
	{name: "required secret missing", edits: []edit{{base + "jde-poller.yaml", "- name: MLC_MASTER_KEY\n", "- name: MLC_MASTER_KEY_X\n"}},
		rule: "env", want: "jde-poller: requires MLC_MASTER_KEY"},
	{name: "required secret optional", edits: []edit{{base + "erp-poster.yaml", "key: MLC_MASTER_KEY\n", "key: MLC_MASTER_KEY\n                  optional: true\n"}},
		rule: "env", want: "erp-poster: MLC_MASTER_KEY is required"},
	{name: "not an integer", edits: []edit{{prod + "kustomization.yaml", "- NATS_STREAM_REPLICAS=3", "- NATS_STREAM_REPLICAS=three"}},
		rule: "env", want: `NATS_STREAM_REPLICAS (ConfigMap mlc-config-`},
	{name: "log level not allowed", edits: []edit{{dev + "kustomization.yaml", "- LOG_LEVEL=debug", "- LOG_LEVEL=verbose"}},
		overlay: "overlays/dev", rule: "env", want: `"verbose" is not one of [debug info warn error]`},
	{name: "loopback default left", edits: []edit{{base + "kustomization.yaml", "      - NATS_URL=tls://nats:4222\n", ""}},
		rule: "env", want: `NATS_URL defaults to "nats://127.0.0.1:4222"`},
	{name: "ConfigMap that does not exist", edits: []edit{{base + "gc-webhook.yaml", "name: gc-webhook-config", "name: gc-webhook-settings"}},
		rule: "env", want: `envFrom ConfigMap "gc-webhook-settings" does not exist`},

	// Ports.
	{name: "listener moved, container port not", edits: []edit{{base + "kustomization.yaml", "WEBHOOK_ADDR=:8443", "WEBHOOK_ADDR=:8444"}},
		rule: "ports", want: "gc-webhook: listens on 8444 (WEBHOOK_ADDR) but the container does not declare that port"},
	{name: "listener on loopback", edits: []edit{{base + "kustomization.yaml", "HTTP_ADDR=:8080", "HTTP_ADDR=127.0.0.1:8080"}},
		rule: "ports", want: `HTTP_ADDR="127.0.0.1:8080" listens on 127.0.0.1 only`},
	{name: "port nobody listens on", edits: []edit{{base + "ifs-poller.yaml", "            - name: http\n              containerPort: 8080\n", "            - name: http\n              containerPort: 8080\n            - name: pprof\n              containerPort: 6060\n"}},
		rule: "ports", want: "container port pprof/6060 matches no listen address"},
	{name: "Service targets a missing port", edits: []edit{{base + "gc-webhook.yaml", "targetPort: webhook", "targetPort: hook"}},
		rule: "ports", want: "Service gc-webhook port webhook targets hook"},
	{name: "headless Service remaps a port", edits: []edit{{base + "erp-poster.yaml", "      port: 9090\n      targetPort: grpc", "      port: 19090\n      targetPort: grpc"}},
		rule: "ports", want: "headless Service erp-poster port 19090 maps to container port 9090"},
	{name: "HTTP default changed in the source", edits: []edit{
		{"platform/config/common.go", `DefaultHTTPAddr      = ":8080"`, `DefaultHTTPAddr      = ":8081"`},
		{base + "kustomization.yaml", "      - HTTP_ADDR=:8080\n", ""}},
		rule: "ports", want: "listens on 8081 (HTTP_ADDR) but the container does not declare that port"},

	// Addresses dialled inside the cluster.
	{name: "orchestrator dials erp-poster's HTTP port", edits: []edit{erpPosterGRPC, {base + "kustomization.yaml", "ERP_POSTER_ADDR=erp-poster:9090", "ERP_POSTER_ADDR=erp-poster:8080"}},
		rule: "addresses", want: "Service erp-poster port 8080 reaches container port 8080, want 9090"},
	{name: "orchestrator no longer reads ERP_POSTER_ADDR", edits: []edit{erpPosterGRPC, {"platform/config/common.go", `VarERPPosterAddr   = "ERP_POSTER_ADDR"`, `VarERPPosterAddr   = "ERP_POSTER_TARGET"`}},
		rule: "addresses", want: "payment-orchestrator: services/payment-orchestrator does not read ERP_POSTER_ADDR"},
	{name: "NATS URL on a port the Service lacks", edits: []edit{{base + "kustomization.yaml", "NATS_URL=tls://nats:4222", "NATS_URL=tls://nats:4223"}},
		rule: "addresses", want: "Service nats has no port 4223"},
	{name: "OTLP endpoint misspelt", edits: []edit{{base + "kustomization.yaml", "http://otel-collector:4317", "http://otel-colector:4317"}},
		rule: "addresses", want: `host "otel-colector" is not Service otel-collector`},
	{name: "OTLP endpoint on the HTTP receiver", edits: []edit{{base + "kustomization.yaml", "http://otel-collector:4317", "http://otel-collector:4318"}},
		rule: "addresses", want: "reaches container port 4318, want 4317"},

	{name: "scrape annotation on the wrong port", edits: []edit{{base + "payment-orchestrator.yaml", `prometheus.io/port: "8080"`, `prometheus.io/port: "9090"`}},
		rule: "metrics", want: "payment-orchestrator: /metrics on port 8080 is neither annotated"},

	// Shutdown.
	{name: "grace period shorter than the drain", edits: []edit{{base + "payment-orchestrator.yaml", "terminationGracePeriodSeconds: 40", "terminationGracePeriodSeconds: 20"}},
		rule: "termination", want: "payment-orchestrator: terminationGracePeriodSeconds 20 < preStop 0s + SHUTDOWN_TIMEOUT 25s"},
	{name: "drain lengthened in the source", edits: []edit{{"platform/service/service.go", `"SHUTDOWN_TIMEOUT", 25*time.Second`, `"SHUTDOWN_TIMEOUT", 60*time.Second`}},
		rule: "termination", want: "SHUTDOWN_TIMEOUT 60s"},

	// Secrets.
	{name: "Secret committed", edits: []edit{{base + "namespace.yaml", "enforce-version: latest\n", "enforce-version: latest\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: leaked\nstringData:\n  DATABASE_URL: postgres://u:p@db/mlc\n"}},
		rule: "secrets", want: "Secret leaked is in the manifests"},
	{name: "password in a ConfigMap", edits: []edit{{base + "kustomization.yaml", "NATS_URL=tls://nats:4222", "NATS_URL=tls://mlc:pw@nats:4222"}},
		rule: "secrets", want: "holds a URL with a password"},
	{name: "README forgets a secret", edits: []edit{{readmePath, "  --from-literal=MLC_PREVIOUS_MASTER_KEYS=\n", "\n"}},
		rule: "secrets", want: "Secret mlc-master-key key MLC_PREVIOUS_MASTER_KEYS is not created in deploy/README.md"},
	{name: "README forgets the TLS secret", edits: []edit{{readmePath, "create secret tls gc-webhook-tls", "create secret tls webhook-tls"}},
		rule: "secrets", want: "TLS Secret gc-webhook-tls is not created"},
	{name: "README without the prod apply", edits: []edit{{readmePath, "kubectl apply -k deploy/k8s/overlays/prod", "kubectl apply -k deploy/k8s/overlays/dev"}},
		rule: "secrets", want: "does not show kubectl apply -k deploy/k8s/overlays/prod"},

	// Autoscaling and replicas.
	{name: "HPA pointing nowhere", edits: []edit{{base + "erp-poster.yaml", "    kind: Deployment\n    name: erp-poster", "    kind: Deployment\n    name: erp-poster-x"}},
		rule: "autoscaling", want: "erp-poster: 0 HorizontalPodAutoscalers, want 1"},
	{name: "fixed replicas under an HPA", edits: []edit{{base + "gc-webhook.yaml", "  revisionHistoryLimit: 5", "  replicas: 2\n  revisionHistoryLimit: 5"}},
		rule: "autoscaling", want: "deployment/gc-webhook sets replicas 2 although HPA gc-webhook owns the count"},
	{name: "poller autoscaled", edits: []edit{{base + "gc-webhook.yaml", "    kind: Deployment\n    name: gc-webhook", "    kind: Deployment\n    name: ifs-poller"}},
		rule: "autoscaling", want: "HPA gc-webhook scales ifs-poller, which is not autoscaled by design"},
	{name: "HPA that cannot scale", edits: []edit{{prod + "kustomization.yaml", "        value: 6\n", "        value: 3\n"}},
		rule: "autoscaling", want: "want 1 <= minReplicas < maxReplicas"},
	{name: "HPA on memory only", edits: []edit{{base + "payment-orchestrator.yaml", "name: cpu\n", "name: memory\n"}},
		rule: "autoscaling", want: "HPA payment-orchestrator has no CPU utilization target"},
	{name: "three pollers in prod", edits: []edit{{prod + "kustomization.yaml", "  - name: ifs-poller\n    count: 2", "  - name: ifs-poller\n    count: 3"}},
		rule: "replicas", want: "ifs-poller: replicas 3, want 2"},

	// Disruption budgets.
	{name: "PDB blocking drains", edits: []edit{{base + "nats.yaml", "AlwaysAllow\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: nats", "AlwaysAllow\n  minAvailable: 3\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: nats"}, {base + "nats.yaml", "spec:\n  maxUnavailable: 1\n", "spec:\n"}},
		rule: "disruption-budgets", want: "PDB nats keeps all 3 pods of statefulset/nats"},
	{name: "PDB blocking drains in dev", edits: []edit{{base + "gc-webhook.yaml", "  maxUnavailable: 1\n  # A pod", "  minAvailable: 1\n  # A pod"}},
		overlay: "overlays/dev", rule: "disruption-budgets", want: "PDB gc-webhook keeps all 1 pods"},
	{name: "PDB selecting nothing", edits: []edit{{base + "otel-collector.yaml", "AlwaysAllow\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: otel-collector", "AlwaysAllow\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: otel"}},
		rule: "disruption-budgets", want: "deployment/otel-collector: 0 PodDisruptionBudgets"},
	{name: "PDB that blocks drains in an outage", edits: []edit{{base + "erp-poster.yaml", "unhealthyPodEvictionPolicy: AlwaysAllow", "unhealthyPodEvictionPolicy: IfHealthyBudget"}},
		rule: "disruption-budgets", want: "PDB erp-poster: unhealthyPodEvictionPolicy IfHealthyBudget, want AlwaysAllow"},

	// NATS security and placement.
	{name: "NATS nodes may share a machine", edits: []edit{{base + "nats.yaml", "            - topologyKey: kubernetes.io/hostname", "            - topologyKey: topology.kubernetes.io/region"}},
		rule: "nats-security", want: "nats: no required pod anti-affinity on kubernetes.io/hostname"},
	{name: "NATS reads another password", edits: []edit{{base + "nats.yaml", "                  key: gc-webhook\n", "                  key: gc-webhook-old\n"}},
		rule: "nats-security", want: "gc-webhook: NATS's password for gc-webhook is not the service's"},
	{name: "poller may publish all ERP subjects", edits: []edit{{base + "accounts.conf", `"mlc.erp.ifs.>", "mlc.dlq.>"`, `"mlc.erp.>", "mlc.dlq.>"`}},
		rule: "nats-security", want: "ifs-poller: NATS user ifs-poller may publish [mlc.erp.>]"},
	{name: "a user may delete streams", edits: []edit{{base + "accounts.conf", `  "$JS.API.STREAM.DELETE.>"` + "\n", ""}},
		rule: "nats-security", want: "is not denied $JS.API.STREAM.DELETE.>"},
	{name: "the orchestrator may purge the bus, not only old audit checkpoint heads", edits: []edit{{base + "accounts.conf", `"$JS.API.STREAM.PURGE.OBJ_MLC_AUDIT_CHECKPOINT_HEADS"`, `"$JS.API.STREAM.PURGE.OBJ_MLC_AUDIT_CHECKPOINT_HEADS", "$JS.API.STREAM.PURGE.MLC_ERP"`}},
		rule: "nats-security", want: `payment-orchestrator: NATS user payment-orchestrator may $JS.API.STREAM.PURGE.MLC_ERP`},
	{name: "PDB breaks the NATS quorum", edits: []edit{{base + "nats.yaml", "spec:\n  maxUnavailable: 1\n", "spec:\n  maxUnavailable: 2\n"}},
		rule: "nats-security", want: "PDB nats lets 2 of 3 NATS nodes go; the quorum needs 2"},
	{name: "prod NATS may crowd into one zone", edits: []edit{{prod + "kustomization.yaml", "        value: DoNotSchedule\n", "        value: ScheduleAnyway\n"}},
		rule: "nats-security", want: "nats: prod must spread its 3 nodes over 3 zones"},
	{name: "plain-text routes", edits: []edit{{base + "nats.conf", "  tls {\n    cert_file: /etc/nats-tls/tls.crt\n    key_file: /etc/nats-tls/tls.key\n    ca_file: /etc/nats-tls/ca.crt\n    verify: true\n    timeout: 2\n  }\n", ""}},
		rule: "nats-security", want: "nats: routes are not mutual TLS"},

	// Capacity.
	{name: "GOMEMLIMIT missing", edits: []edit{{base + "jde-poller.yaml", "- name: GOMEMLIMIT\n", "- name: GOMEMLIMIT_X\n"}},
		rule: "memory-limit", want: "jde-poller: GOMEMLIMIT is not taken from the container's memory limit"},
	{name: "GOMEMLIMIT in mebibytes", edits: []edit{{base + "gc-webhook.yaml", "resource: limits.memory\n", "resource: limits.memory\n                  divisor: 1Mi\n"}},
		rule: "memory-limit", want: "gc-webhook: GOMEMLIMIT divisor 1Mi"},
	{name: "dev orchestrator with prod's workers", edits: []edit{{dev + "kustomization.yaml", "      - ERP_WORKERS=16\n", ""}},
		overlay: "overlays/dev", rule: "workers-fit", want: "payment-orchestrator: 68 workers in a 128Mi memory limit"},
	{name: "pool larger than the workers", edits: []edit{{dev + "kustomization.yaml", "      - DATABASE_POOL_SIZE=8\n", "      - DATABASE_POOL_SIZE=40\n"}},
		overlay: "overlays/dev", rule: "workers-fit", want: "DATABASE_POOL_SIZE 40 above its 20 workers"},
	{name: "autoscaler past the connection budget", edits: []edit{{base + "erp-poster.yaml", "maxReplicas: 6", "maxReplicas: 30"}},
		overlay: "base", rule: "connection-budget", want: "base: up to 272 Postgres connections"},
	{name: "pool size left to the default", edits: []edit{{base + "kustomization.yaml", "      - DATABASE_POOL_SIZE=4\n", ""}},
		rule: "connection-budget", want: "ifs-poller: DATABASE_POOL_SIZE is not set in the manifest"},

	// Network policies.
	{name: "webhook peers split (OR instead of AND)", edits: []edit{{base + "network-policies.yaml", "              kubernetes.io/metadata.name: ingress-nginx\n          podSelector:", "              kubernetes.io/metadata.name: ingress-nginx\n        - podSelector:"}},
		rule: "network-policies", want: "network policies let other pod of the ingress namespace reach gc-webhook"},
	// Both ends must be opened for a flow to pass: the caller's egress and
	// erp-poster's ingress.
	{name: "erp-poster open to every service", edits: []edit{
		{base + "network-policies.yaml", "      ports:\n        - protocol: TCP\n          port: grpc\n  egress:", "      ports:\n        - protocol: TCP\n          port: grpc\n    - from:\n        - podSelector:\n            matchLabels:\n              app.kubernetes.io/component: service\n  egress:"},
		{base + "network-policies.yaml", "  name: payment-orchestrator\nspec:\n  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: payment-orchestrator", "  name: payment-orchestrator\nspec:\n  podSelector:\n    matchLabels:\n      app.kubernetes.io/component: service"}},
		rule: "network-policies", want: "network policies let gc-webhook reach erp-poster on TCP/9090"},
	{name: "Postgres port wrong", edits: []edit{{base + "network-policies.yaml", "port: 5432", "port: 5433"}},
		rule: "network-policies", want: "network policies stop ifs-poller reaching postgres on TCP/5432"},
	{name: "webhook allowed out to the internet", edits: []edit{{base + "network-policies.yaml", `values: ["ifs-poller", "jde-poller"]`, `values: ["ifs-poller", "jde-poller", "gc-webhook"]`}},
		rule: "network-policies", want: "network policies let gc-webhook reach gocardless on TCP/443"},
	{name: "NATS routes blocked", edits: []edit{{base + "network-policies.yaml", "  egress:\n    - to:\n        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: nats\n      ports:\n        - protocol: TCP\n          port: cluster\n", ""}},
		rule: "network-policies", want: "network policies stop nats reaching nats on TCP/6222"},
	{name: "DNS over UDP blocked", edits: []edit{{base + "network-policies.yaml", "        - protocol: UDP\n          port: 53\n", ""}},
		rule: "network-policies", want: "reaching kube-dns on UDP/53"},
	{name: "default deny and DNS policy gone", edits: []edit{{base + "network-policies.yaml", `  policyTypes: ["Ingress", "Egress"]` + "\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: allow-dns\nspec:\n  podSelector: {}\n  policyTypes: [\"Egress\"]", `  policyTypes: ["Ingress"]` + "\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: allow-dns\nspec:\n  podSelector:\n    matchLabels:\n      app.kubernetes.io/component: service\n  policyTypes: [\"Egress\"]"}},
		rule: "network-policies", want: "network policies let otel-collector reach internet on TCP/443"},

	// Ingress.
	{name: "everything public", edits: []edit{{base + "ingress.yaml", "path: /webhooks/gocardless", "path: /"}},
		rule: "ingress", want: `path "/" (Prefix); only Prefix /webhooks/gocardless may be public`},
	{name: "Ingress to the internal port", edits: []edit{{base + "ingress.yaml", "port:\n                  name: webhook", "port:\n                  name: http"}},
		rule: "ingress", want: "does not reach WEBHOOK_ADDR's port 8443"},
	{name: "body limit below the webhook's", edits: []edit{{base + "ingress.yaml", "proxy-body-size: 2m", "proxy-body-size: 1m"}},
		rule: "ingress", want: "refuses bodies over 1048576 bytes, gc-webhook accepts 2097152"},
	{name: "host without TLS", edits: []edit{{base + "ingress.yaml", "- host: webhooks.example.com", "- host: hooks.example.com"}},
		rule: "ingress", want: `host "hooks.example.com" is not covered by TLS`},

	// NATS.
	{name: "route missing", edits: []edit{{base + "nats.conf", "    nats://nats-2.nats-headless:6222\n", ""}},
		rule: "nats", want: "nats: routes [nats-0.nats-headless:6222 nats-1.nats-headless:6222], want one per pod"},
	{name: "route to the wrong port", edits: []edit{{base + "nats.conf", "nats://nats-1.nats-headless:6222", "nats://nats-1.nats-headless:6223"}},
		rule: "nats", want: "nats-1.nats-headless:6223"},
	{name: "store bigger than the volume", edits: []edit{{base + "nats.conf", "max_file_store: 8GB", "max_file_store: 20GB"}},
		rule: "nats", want: "must be set and fit the 10Gi volume"},
	{name: "store off the volume", edits: []edit{{base + "nats.conf", "store_dir: /data", "store_dir: /tmp/jetstream"}},
		rule: "nats", want: `store_dir "/tmp/jetstream" is not on a volume from volumeClaimTemplates`},
	{name: "NATS configuration typo", edits: []edit{{base + "nats.conf", "max_memory_store: 256MB", "max_memory_stor: 256MB"}},
		rule: "nats", want: "unknown field"},
	{name: "NATS client port moved", edits: []edit{{base + "nats.conf", "port: 4222", "port: 4223"}},
		rule: "nats", want: "nats: listens for clients on 4223, container port client is 4222"},
	{name: "ordered start-up", edits: []edit{{base + "nats.yaml", "podManagementPolicy: Parallel", "podManagementPolicy: OrderedReady"}},
		rule: "nats", want: "podManagementPolicy must be Parallel"},
	{name: "routes wait for readiness", edits: []edit{{base + "nats.yaml", "publishNotReadyAddresses: true", "publishNotReadyAddresses: false"}},
		rule: "nats", want: "Service nats-headless must be headless and publish not-ready addresses"},
	{name: "three stream replicas on one node", edits: []edit{{dev + "kustomization.yaml", "- NATS_STREAM_REPLICAS=1", "- NATS_STREAM_REPLICAS=3"}},
		overlay: "overlays/dev", rule: "nats", want: "NATS_STREAM_REPLICAS=3 but NATS has 1 nodes"},
	{name: "one stream replica in prod", edits: []edit{{prod + "kustomization.yaml", "- NATS_STREAM_REPLICAS=3", "- NATS_STREAM_REPLICAS=1"}},
		rule: "nats", want: "NATS_STREAM_REPLICAS=1, want 3 in overlays/prod"},
	{name: "two NATS nodes in prod", edits: []edit{{prod + "kustomization.yaml", "  - name: nats\n    count: 3", "  - name: nats\n    count: 2"}},
		rule: "nats", want: "nats: 2 nodes, want 3"},
	{name: "lame duck longer than the grace period", edits: []edit{{base + "nats.yaml", "terminationGracePeriodSeconds: 60", "terminationGracePeriodSeconds: 35"}},
		rule: "nats", want: "beyond terminationGracePeriodSeconds 35"},

	// OpenTelemetry Collector.
	{name: "OTLP on localhost only", edits: []edit{{base + "otel-collector-config.yaml", "endpoint: 0.0.0.0:4317", "endpoint: localhost:4317"}},
		rule: "otel-collector", want: "otlp grpc listens on localhost only"},
	{name: "OTLP/HTTP dropped", edits: []edit{{base + "otel-collector-config.yaml", "      http:\n        endpoint: 0.0.0.0:4318\n", ""}},
		rule: "otel-collector", want: "the otlp receiver does not accept http"},
	{name: "exporter not defined", edits: []edit{{base + "otel-collector-config.yaml", "    traces:\n      receivers: [otlp]\n      processors: [memory_limiter, batch]\n      exporters: [debug]", "    traces:\n      receivers: [otlp]\n      processors: [memory_limiter, batch]\n      exporters: [debug, otlp]"}},
		rule: "otel-collector", want: "pipeline traces uses exporter otlp, which is not defined"},
	{name: "health check on another port", edits: []edit{{base + "otel-collector-config.yaml", "endpoint: 0.0.0.0:13133", "endpoint: 0.0.0.0:13134"}},
		rule: "otel-collector", want: "health_check listens on 13134"},
	{name: "collector configuration typo", edits: []edit{{base + "otel-collector-config.yaml", "\nservice:\n", "\nservices:\n"}},
		rule: "otel-collector", want: `unknown field "services"`},
	{name: "collector config file not mounted", edits: []edit{{base + "otel-collector.yaml", "--config=/etc/otelcol/config.yaml", "--config=/etc/otel/config.yaml"}},
		rule: "otel-collector", want: "/etc/otel/config.yaml is not in a volume mounted from a ConfigMap"},

	// Strict decoding: a field the API does not have fails the render.
	{name: "unknown field", edits: []edit{{base + "ifs-poller.yaml", "terminationGracePeriodSeconds: 40", "terminationGracePeriodSecond: 40"}},
		rule: "", want: `unknown field "terminationGracePeriodSecond"`},
	{name: "API version the manifests do not use", edits: []edit{{base + "gc-webhook.yaml", "apiVersion: autoscaling/v2\n", "apiVersion: autoscaling/v1\n"}},
		rule: "", want: "unexpected object autoscaling/v1/HorizontalPodAutoscaler"},
}

// TestRulesCatchMistakes makes each mistake in a copy of the repository
// and expects its rule to report it, so that no rule passes vacuously.
// An empty rule means the render itself must fail.
func TestRulesCatchMistakes(t *testing.T) {
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			probs, err := mutatedProblems(m)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range probs {
				if strings.Contains(p, m.want) {
					return
				}
			}
			t.Errorf("rule %q did not report %q; it reported:\n%s", m.rule, m.want, strings.Join(probs, "\n"))
		})
	}
}

// TestNewServiceNeedsAManifest adds a service directory to the repository
// and expects the manifests to be found wanting.
func TestNewServiceNeedsAManifest(t *testing.T) {
	fsys := overlayFS{base: os.DirFS(repoRoot), extra: fstest.MapFS{
		"services/refund-notifier/go.mod":  {Data: []byte("module github.com/ml-connector/ml-connector/services/refund-notifier\n\ngo 1.26.0\n")},
		"services/refund-notifier/main.go": {Data: []byte("package main\n\nfunc main() {}\n")},
	}}
	src, err := loadSources(fsys)
	if err != nil {
		t.Fatal(err)
	}
	w := realWorld(t, "overlays/prod")
	w.services, w.reads = src.services, src.reads
	probs := checkServiceManifests(w)
	want := "services/refund-notifier has no manifest"
	if !slices.ContainsFunc(probs, func(p string) bool { return strings.Contains(p, want) }) {
		t.Errorf("want %q, got %q", want, probs)
	}
}

// mutatedProblems applies m's edits to a copy and returns what m's rule
// reports (or, for an empty rule, the render error).
func mutatedProblems(m mutation) ([]string, error) {
	edited, err := applyEdits(m.edits)
	if err != nil {
		return nil, err
	}
	overlay, src, k8s := m.overlay, fstest.MapFS{}, map[string][]byte{}
	for _, e := range m.edits {
		if rel, ok := strings.CutPrefix(e.file, k8sDir+"/"); ok {
			k8s[rel] = edited[e.file]
			if overlay == "" && strings.HasPrefix(rel, "base/") {
				overlay = "base" // the quickest render that holds the mistake
			}
		} else {
			src[e.file] = &fstest.MapFile{Data: edited[e.file]}
		}
	}
	if overlay == "" {
		overlay = "overlays/prod"
	}

	var c *cluster
	if len(k8s) == 0 {
		r := renderedOnDisk()[overlay]
		c, err = r.c, r.err
	} else {
		fSys, cerr := memCopy()
		if cerr != nil {
			return nil, cerr
		}
		for rel, data := range k8s {
			if werr := fSys.WriteFile(path.Join("/k8s", rel), data); werr != nil {
				return nil, werr
			}
		}
		c, err = render(fSys, path.Join("/k8s", overlay))
	}
	if m.rule == "" {
		if err == nil {
			return nil, errors.New("the render succeeded; want it to fail")
		}
		return []string{err.Error()}, nil
	}
	if err != nil {
		return nil, err
	}

	sources, err := repoSources()
	if len(src) > 0 {
		sources, err = loadSources(overlayFS{base: os.DirFS(repoRoot), extra: src})
	}
	if err != nil {
		return nil, err
	}
	readme, err := os.ReadFile(path.Join(repoRoot, readmePath))
	if err != nil {
		return nil, err
	}
	if f, ok := src[readmePath]; ok {
		readme = f.Data
	}
	w := &world{overlay: overlay, c: c, services: sources.services, reads: sources.reads, readme: string(readme)}
	for _, r := range rules {
		if r.name == m.rule {
			return r.check(w), nil
		}
	}
	return nil, fmt.Errorf("no rule %q", m.rule)
}

// applyEdits returns the edited files. Each edit replaces the one
// occurrence of its text, so that an edit that no longer applies fails
// instead of testing nothing.
func applyEdits(edits []edit) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, e := range edits {
		b, ok := out[e.file]
		if !ok {
			var err error
			if b, err = os.ReadFile(path.Join(repoRoot, e.file)); err != nil {
				return nil, err
			}
		}
		if n := strings.Count(string(b), e.old); n != 1 {
			return nil, fmt.Errorf("%s: the text to replace occurs %d times, want once: %q", e.file, n, e.old)
		}
		out[e.file] = []byte(strings.Replace(string(b), e.old, e.new, 1))
	}
	return out, nil
}
