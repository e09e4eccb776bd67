package coordinator

import (
	"encoding"
	"fmt"
	"net/http"
	"reflect"
	"strings"

	"github.com/bertnode/bertnode/api"
	"gopkg.in/yaml.v3"
)

// parseJobSpec reads a submitted spec with api.ParseSpec; its errors become 400s that
// name the field at fault. yaml's own errors name only a line, so the spec is first
// decoded field by field to find the field a bad value belongs to.
func parseJobSpec(text string) (api.JobSpec, error) {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(text), &root); err != nil {
		return api.JobSpec{}, badField("spec", "%v", err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return api.JobSpec{}, badField("spec", "want a YAML mapping of job fields")
	}
	var probe api.JobSpec
	if err := decodeFields(root.Content[0], reflect.ValueOf(&probe).Elem(), "", map[decoded]bool{}); err != nil {
		return api.JobSpec{}, err
	}
	s, err := api.ParseSpec(text)
	if err != nil {
		// "job spec: cluster.nodes: 100 is not in [1, 64]" names the field.
		msg := strings.TrimPrefix(err.Error(), "job spec: ")
		field, _, _ := strings.Cut(msg, ":")
		if strings.ContainsAny(field, " \n") || field == "yaml" {
			field = "spec"
		}
		return s, &api.Error{Status: http.StatusBadRequest, Field: field, Message: msg}
	}
	switch s.Task {
	case "classify", "multilabel", "regression", "ner", "qa", "embed", "choice", "mlm":
	default:
		return s, badField("task", "%q: want classify, multilabel, regression, ner, qa, embed, choice or mlm", s.Task)
	}
	return s, nil
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// decodeFields decodes each key of mapping m into the field of struct v whose yaml
// tag it is (keys v lacks are the nodes' business), going into nested structs, and
// names the first field whose value does not decode. A mapping is decoded into a type
// once (done): aliases and merges may name it many times, or inside itself.
func decodeFields(m *yaml.Node, v reflect.Value, prefix string, done map[decoded]bool) error {
	if done[decoded{m, v.Type()}] {
		return nil
	}
	done[decoded{m, v.Type()}] = true
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, key, val := m.Content[i], m.Content[i].Value, resolveAlias(m.Content[i+1])
		f, ok := fieldByTag(v, key)
		name := prefix + key
		mapping := strings.TrimSuffix(prefix, ".")
		if mapping == "" {
			mapping = "spec"
		}
		// yaml refuses a key given twice: name it, or the mapping it is in.
		for j := 0; j < i; j += 2 {
			if d := m.Content[j]; d.Kind == k.Kind && d.Value == k.Value {
				if !ok {
					name = mapping
				}
				return badField(name, "line %d: %q is already defined at line %d", k.Line, key, d.Line)
			}
		}
		if k.ShortTag() == "!!merge" { // "<<: *defaults" merges a mapping, or a list of them
			merged := []*yaml.Node{val}
			if val.Kind == yaml.SequenceNode {
				merged = val.Content
			}
			for _, mm := range merged {
				if mm = resolveAlias(mm); mm.Kind == yaml.MappingNode {
					if err := decodeFields(mm, v, prefix, done); err != nil {
						return err
					}
				}
			}
			continue
		}
		if !ok {
			continue
		}
		if f.Kind() == reflect.Struct && !reflect.PointerTo(f.Type()).Implements(textUnmarshaler) {
			if val.Kind != yaml.MappingNode {
				return badField(name, "line %d: want a mapping", val.Line)
			}
			if err := decodeFields(val, f, name+".", done); err != nil {
				return err
			}
			continue
		}
		if err := val.Decode(f.Addr().Interface()); err != nil {
			msg := fmt.Sprintf("line %d: %s", val.Line, strings.TrimPrefix(err.Error(), "yaml: "))
			if te, ok := err.(*yaml.TypeError); ok {
				msg = strings.Join(te.Errors, "; ") // each names its line
			}
			return badField(name, "%s", msg)
		}
	}
	return nil
}

// decoded is a mapping decoded into a struct type.
type decoded struct {
	m *yaml.Node
	t reflect.Type
}

// resolveAlias follows an alias (*name) to the node it stands for.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func fieldByTag(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag == key && t.Field(i).IsExported() {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// datasets are a spec's files by role.
func datasets(s api.JobSpec) [][2]string {
	d := [][2]string{{"train", s.Train}}
	if s.Eval != "" {
		d = append(d, [2]string{"eval", s.Eval})
	}
	return d
}

// uploads are a spec's model, tokenizer and distillation teacher by field:
// blob:<sha256> when the CLI uploaded them, or blob:<sha256>/<file> for a single file
// packed alone.
func uploads(s api.JobSpec) [][2]string {
	return [][2]string{{"model", s.Model}, {"tokenizer", s.Tokenizer}, {"distill.teacher", s.Distill.Teacher}}
}

// uploadRef is the blob of an uploads path, or "" for a preset, hub name or path.
func uploadRef(path string) (string, error) {
	ref, file, nested := strings.Cut(path, "/")
	if !strings.HasPrefix(ref, "blob:") {
		return "", nil
	}
	if nested && (file == "" || file == "." || file == ".." || strings.ContainsAny(file, `/\`)) {
		return "", fmt.Errorf("%q: want blob:<sha256>/<file name>", path)
	}
	return blobRef(ref)
}

// blobRef is the sha of a "blob:<sha256>" path, or "" for another path.
func blobRef(path string) (string, error) {
	sha, ok := strings.CutPrefix(path, "blob:")
	if !ok {
		return "", nil
	}
	if !ValidSHA(sha) {
		return "", fmt.Errorf("%q: want blob:<sha256 in hex>", path)
	}
	return sha, nil
}
