module github.com/kinesis-batcher/kinesis-batcher/bindings/go

go 1.23
