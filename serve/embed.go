package serve

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"path/filepath"

	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/train"
)

type embedRequest struct {
	Texts []string `json:"texts"`
	// Normalize scales the vectors to unit length; default the checkpoint's (true when
	// it ends with sentence-transformers' Normalize module).
	Normalize *bool `json:"normalize"`
	// Dimensions keeps each vector's first dimensions (a Matryoshka model's), as the
	// OpenAI route's dimensions; default all.
	Dimensions *int `json:"dimensions"`
}

type embedResponse struct {
	Embeddings [][]float32 `json:"embeddings"`
}

// embed answers POST /v1/embed for embedding models: each text's vector, as predict
// prints it.
func (s *Server) embed(w http.ResponseWriter, r *http.Request) (any, error) {
	var req embedRequest
	if err := s.embedding("/v1/embed", w, r, &req); err != nil {
		return nil, err
	}
	if err := s.opts.Limits.checkTexts("texts", req.Texts, s.t.Spec.MaxLength, s.tokens); err != nil {
		return nil, err
	}
	normalize := s.t.Normalize
	if req.Normalize != nil {
		normalize = *req.Normalize
	}
	dims, err := s.dimensions(req.Dimensions)
	if err != nil {
		return nil, err
	}
	vecs, err := s.via(r.Context()).Embed(req.Texts, normalize)
	if err != nil {
		return nil, err
	}
	if err := train.Truncate(vecs, dims, normalize, "dimensions"); err != nil {
		return nil, err
	}
	out := embedResponse{Embeddings: make([][]float32, len(vecs))}
	for i, v := range vecs {
		out.Embeddings[i] = v.Embedding
	}
	return out, nil
}

// openAIEmbeddingsRequest is OpenAI's embeddings request, as its clients (the openai
// packages, LangChain, LlamaIndex...) send it.
type openAIEmbeddingsRequest struct {
	Input          json.RawMessage `json:"input"` // a string or a list of strings
	Model          string          `json:"model"`
	EncodingFormat string          `json:"encoding_format"` // float (default) or base64
	Dimensions     *int            `json:"dimensions"`
	User           string          `json:"user"`
}

type openAIEmbedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or base64 of little-endian float32s
}

type openAIEmbeddingsResponse struct {
	Object string            `json:"object"`
	Data   []openAIEmbedding `json:"data"`
	Model  string            `json:"model"`
	Usage  struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

// embeddings answers POST /v1/embeddings, OpenAI's route: unit-length vectors, as
// OpenAI's are, shortened to the first dimensions (then scaled to unit length again:
// Matryoshka truncation, as OpenAI's dimensions and sentence-transformers' truncate_dim
// do) when asked.
func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) (any, error) {
	var req openAIEmbeddingsRequest
	if err := s.embedding("/v1/embeddings", w, r, &req); err != nil {
		return nil, err
	}
	var texts []string
	var one string
	switch {
	case len(req.Input) == 0 || string(req.Input) == "null":
		return nil, invalid("input: a string or a list of strings is required")
	case json.Unmarshal(req.Input, &one) == nil:
		texts = []string{one}
	case json.Unmarshal(req.Input, &texts) != nil:
		return nil, invalid("input: want a string or a list of strings (token id lists are not taken: this server tokenizes with the model's own tokenizer)")
	}
	if err := s.opts.Limits.checkTexts("input", texts, s.t.Spec.MaxLength, s.tokens); err != nil {
		return nil, err
	}
	dims, err := s.dimensions(req.Dimensions)
	if err != nil {
		return nil, err
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		return nil, invalid("encoding_format: %q: want float or base64", req.EncodingFormat)
	}
	vecs, err := s.via(r.Context()).Embed(texts, true)
	if err != nil {
		return nil, err
	}
	if err := train.Truncate(vecs, dims, true, "dimensions"); err != nil {
		return nil, err
	}
	out := openAIEmbeddingsResponse{Object: "list", Model: req.Model, Data: make([]openAIEmbedding, len(vecs))}
	if out.Model == "" {
		out.Model = filepath.Base(s.t.Spec.Model)
	}
	for i, v := range vecs {
		e := v.Embedding
		out.Data[i] = openAIEmbedding{Object: "embedding", Index: i, Embedding: e}
		if req.EncodingFormat == "base64" {
			b := make([]byte, 4*len(e))
			for k, x := range e {
				binary.LittleEndian.PutUint32(b[4*k:], math.Float32bits(x))
			}
			out.Data[i].Embedding = base64.StdEncoding.EncodeToString(b)
		}
		out.Usage.PromptTokens += v.Tokens
	}
	out.Usage.TotalTokens = out.Usage.PromptTokens
	return out, nil
}

type similarityRequest struct {
	Source string   `json:"source"`
	Texts  []string `json:"texts"`
}

type similarityResponse struct {
	Scores []float64 `json:"scores"`
}

// similarity answers POST /v1/similarity: the cosine similarity of each text to the
// source, from one batch of their vectors (text-embeddings-inference's /similarity).
func (s *Server) similarity(w http.ResponseWriter, r *http.Request) (any, error) {
	var req similarityRequest
	if err := s.embedding("/v1/similarity", w, r, &req); err != nil {
		return nil, err
	}
	maxLen := s.t.Spec.MaxLength
	if err := s.opts.Limits.checkText("source", req.Source, maxLen, s.tokens); err != nil {
		return nil, err
	}
	if err := s.opts.Limits.checkTexts("texts", req.Texts, maxLen, s.tokens); err != nil {
		return nil, err
	}
	vecs, err := s.via(r.Context()).Embed(append([]string{req.Source}, req.Texts...), true)
	if err != nil {
		return nil, err
	}
	src := vecs[0].Embedding
	out := similarityResponse{Scores: make([]float64, len(req.Texts))}
	for i, v := range vecs[1:] {
		var dot float64
		for k, x := range v.Embedding {
			dot += float64(x) * float64(src[k])
		}
		out.Scores[i] = dot
	}
	return out, nil
}

// dimensions is a request's dimensions field checked against the model's width (the
// width when it is absent).
func (s *Server) dimensions(d *int) (int, error) {
	width := s.t.Model.Config.HiddenSize
	if d == nil {
		return width, nil
	}
	if *d < 1 || *d > width {
		return 0, invalid("dimensions: %d is not in [1, %d], this model's width", *d, width)
	}
	return *d, nil
}

// embedding refuses route for a model that is not an embedding model, and decodes the
// request into v.
func (s *Server) embedding(route string, w http.ResponseWriter, r *http.Request, v any) error {
	if s.t.Spec.Task != string(model.Embed) {
		return invalid("%s needs an embedding model (a bare base model's checkpoint, or any checkpoint served with --pooling); this server's model (%s) is %s",
			route, s.t.Spec.Model, s.t.Spec.Task)
	}
	return s.opts.Limits.decode(w, r, v)
}
