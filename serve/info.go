package serve

import (
	"net/http"

	"github.com/bertnode/bertnode/hf"
)

// modelInfo is GET /v1/model: what the server serves and how.
type modelInfo struct {
	Model      string         `json:"model"` // the checkpoint directory
	Task       string         `json:"task"`
	Labels     []string       `json:"labels"` // by id: classes, or ner tags
	MaxLength  int            `json:"max_length"`
	DocStride  int            `json:"doc_stride,omitempty"` // 0: min(128, max_length/3)
	Truncate   bool           `json:"truncate"`
	AllowEmpty bool           `json:"allow_empty"`
	Device     string         `json:"device"`
	Quantize   string         `json:"quantize,omitempty"`  // int8: the encoder's dense layers
	Pooling    string         `json:"pooling,omitempty"`   // embed: cls, mean or max
	Normalize  bool           `json:"normalize,omitempty"` // embed: unit-length vectors unless a request says otherwise
	Config     *hf.BertConfig `json:"config"`
	Batching   batchingInfo   `json:"batching"`
	Limits     limitsInfo     `json:"limits"`
}

type batchingInfo struct {
	MaxBatch  int     `json:"max_batch"`
	MaxTokens int     `json:"max_batch_tokens"`
	MaxWaitMS float64 `json:"max_wait_ms"`
	MaxQueue  int     `json:"max_queue"`
}

type limitsInfo struct {
	MaxBodyBytes int64   `json:"max_body_bytes"`
	MaxTexts     int     `json:"max_texts"`
	TimeoutS     float64 `json:"timeout_s"`
}

func (s *Server) modelInfo(http.ResponseWriter, *http.Request) (any, error) {
	sp, o := s.t.Spec, s.opts
	return modelInfo{
		Model: sp.Model, Task: sp.Task, Labels: s.t.Labels.Names(), MaxLength: sp.MaxLength, DocStride: sp.DocStride,
		Truncate: o.Limits.Truncate, AllowEmpty: o.AllowEmpty, Device: sp.Device, Quantize: sp.Quantize, Config: s.t.Model.Config,
		Pooling: sp.Pooling, Normalize: s.t.Normalize,
		Batching: batchingInfo{MaxBatch: o.Batch.MaxBatch, MaxTokens: o.Batch.MaxTokens,
			MaxWaitMS: float64(o.Batch.MaxWait) / 1e6, MaxQueue: o.Batch.MaxQueue},
		Limits: limitsInfo{MaxBodyBytes: o.Limits.MaxBodyBytes, MaxTexts: o.Limits.MaxTexts, TimeoutS: o.Timeout.Seconds()},
	}, nil
}

type status struct {
	Status string `json:"status"`
}

// healthz answers while the process serves.
func (s *Server) healthz(http.ResponseWriter, *http.Request) (any, error) {
	return status{"ok"}, nil
}

// readyz answers 200 while the server takes requests, 503 once it is shutting down.
func (s *Server) readyz(http.ResponseWriter, *http.Request) (any, error) {
	if !s.ready.Load() {
		return nil, &apiError{http.StatusServiceUnavailable, kindUnavailable, "not ready: shutting down"}
	}
	return status{"ready"}, nil
}
