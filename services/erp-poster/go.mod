module github.com/ml-connector/ml-connector/services/erp-poster

go 1.26.0
