module github.com/ml-connector/ml-connector/services/jde-poller

go 1.26.0
