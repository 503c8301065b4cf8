module github.com/ml-connector/ml-connector/cmd

go 1.26.0
