// Pins the Go modules whose source trees carry upstream CustomResourceDefinitions for third-party kinds the
// operator writes. Nothing is compiled from them: `make testbin` runs `go mod download` here and copies the
// CRD YAML files listed in testbin/crds/upstream.json out of the module cache (go.sum pins their content).
module algorun.test/testbin/crds

go 1.26.0

require (
	github.com/cert-manager/cert-manager v1.21.2
	github.com/prometheus-operator/prometheus-operator v0.85.0
	sigs.k8s.io/gateway-api v1.6.3
)
