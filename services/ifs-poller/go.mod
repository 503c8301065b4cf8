module github.com/ml-connector/ml-connector/services/ifs-poller

go 1.26.0
