module github.com/ml-connector/ml-connector/services/gc-webhook

go 1.26.0
