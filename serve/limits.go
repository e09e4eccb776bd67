package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Limits bound what one request may ask.
type Limits struct {
	MaxBodyBytes int64 // request body
	MaxTexts     int   // texts, or questions, per request
	// Truncate cuts texts longer than the max length, as predict does (ner reads them
	// in windows instead); without it such a text is refused (413). Question answering
	// always reads long contexts in windows.
	Truncate bool
}

// Validate names the first bad field.
func (l Limits) Validate() error {
	switch {
	case l.MaxBodyBytes < 1:
		return fmt.Errorf("max body bytes: %d: must be positive", l.MaxBodyBytes)
	case l.MaxTexts < 1:
		return fmt.Errorf("max texts: %d: must be positive", l.MaxTexts)
	}
	return nil
}

// decode reads r's body into v: at most MaxBodyBytes of UTF-8 holding one JSON object
// whose fields v knows.
func (l Limits) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, l.MaxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge("request body: over the limit of %d bytes", l.MaxBodyBytes)
	case err != nil:
		return invalid("request body: %v", err)
	}
	if !utf8.Valid(body) {
		at := 0
		for at < len(body) {
			r, n := utf8.DecodeRune(body[at:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			at += n
		}
		return invalid("request body: not valid UTF-8 (byte %d)", at)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if err == io.EOF {
			return invalid("request body: empty; want a JSON object")
		}
		return invalid("request body: %v", jsonError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("request body: more after the JSON object")
	}
	return nil
}

// jsonError says where in the body a JSON error is.
func jsonError(err error) error {
	var (
		se *json.SyntaxError
		te *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te) && te.Field != "":
		return fmt.Errorf("%s: want %v, got JSON %s", te.Field, te.Type, te.Value)
	}
	return err
}

// checkTexts checks a request's texts: at least one, at most MaxTexts, each as
// checkText says.
func (l Limits) checkTexts(field string, texts []string, maxLen int, count func(string) int) error {
	switch {
	case len(texts) == 0:
		return invalid("%s: at least one text is required", field)
	case len(texts) > l.MaxTexts:
		return tooLarge("%s: %d texts, more than the %d a request may hold", field, len(texts), l.MaxTexts)
	}
	for i, t := range texts {
		if err := l.checkText(fmt.Sprintf("%s[%d]", field, i), t, maxLen, count); err != nil {
			return err
		}
	}
	return nil
}

// checkText refuses a blank text and, without Truncate, one longer than maxLen tokens
// (count gives a text's tokens).
func (l Limits) checkText(field, text string, maxLen int, count func(string) int) error {
	if strings.TrimSpace(text) == "" {
		return invalid("%s: empty text", field)
	}
	if !l.Truncate {
		if n := count(text); n > maxLen {
			return tooLarge("%s: %d tokens, more than the max length of %d (this server refuses long texts rather than truncate them)", field, n, maxLen)
		}
	}
	return nil
}
