// Package onnx is ONNX's protobuf schema as Go types (onnx.pb.go, generated from
// onnx.proto, which is ONNX 1.12's as Debian's python3-onnx ships it; IR version 8,
// opsets up to 17) and a small builder of inference graphs over it (graph.go).
package onnx

// protoc is Debian's protobuf-compiler; protoc-gen-go is google.golang.org/protobuf's at
// go.mod's version (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.11).
//go:generate protoc --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/bertnode/bertnode/onnx;onnx onnx.proto
