module github.com/ml-connector/ml-connector/services/payment-orchestrator

go 1.26.0
