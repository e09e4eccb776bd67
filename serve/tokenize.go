package serve

import (
	"net/http"
)

type tokenizeRequest struct {
	Texts []string `json:"texts"`
}

// token is one of the model's input tokens: its id and vocabulary entry, and the runes
// of the text it covers ([start, end); special tokens cover none and say so).
type token struct {
	ID      int32  `json:"id"`
	Token   string `json:"token"`
	Start   int32  `json:"start"`
	End     int32  `json:"end"`
	Special bool   `json:"special"`
}

type tokenizeResponse struct {
	Tokens [][]token `json:"tokens"`
}

// tokenize answers POST /v1/tokenize for every model: each text's tokens as the model
// reads it, truncated to the max length as the other routes truncate it (the debugging
// aid text-embeddings-inference has as /tokenize).
func (s *Server) tokenize(w http.ResponseWriter, r *http.Request) (any, error) {
	var req tokenizeRequest
	if err := s.opts.Limits.decode(w, r, &req); err != nil {
		return nil, err
	}
	if err := s.opts.Limits.checkTexts("texts", req.Texts, s.t.Spec.MaxLength, s.tokens); err != nil {
		return nil, err
	}
	out := tokenizeResponse{Tokens: make([][]token, len(req.Texts))}
	vocab := s.t.Tok.Vocab()
	for i, text := range req.Texts {
		enc, err := s.t.Tok.Encode(text, s.t.Spec.MaxLength)
		if err != nil {
			return nil, invalid("texts[%d]: %v", i, err)
		}
		toks := make([]token, enc.Len())
		for k, id := range enc.InputIDs {
			toks[k] = token{ID: id, Token: vocab.Token(int(id)), Start: enc.Offsets[k].Start, End: enc.Offsets[k].End, Special: enc.WordIDs[k] < 0}
		}
		out.Tokens[i] = toks
	}
	return out, nil
}
