module github.com/ml-connector/ml-connector/deploy/images

go 1.26.0
