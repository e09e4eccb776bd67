package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/bertnode/bertnode/dataset"
	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/model"
	"github.com/bertnode/bertnode/report"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/train"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newPredictCmd) }

// predictFlags are predict's own flags.
type predictFlags struct {
	file, attention   string
	threshold         float64
	question, context string
	allowEmpty        bool
	normalize         bool
	truncateDim       int // embed: 0 keeps the whole vectors
	topK              int
	data              *shard.Spec // with data flags: how to read file as a data file
}

func newPredictCmd() *cobra.Command {
	var pf predictFlags
	s := train.Defaults()
	s.Model = ""
	c := &cobra.Command{
		Use:   "predict --model DIR [TEXT...]",
		Short: "Classify, score, tag or embed texts, fill masks, or answer questions, with a fine-tuned checkpoint",
		Long: `Runs a fine-tuned checkpoint over new input and prints one JSON object per line.
What it reads and prints depends on the checkpoint's task.

classify and multilabel: each TEXT argument, or else each line of --file, or else each
line of standard input (blank lines are skipped; input must be UTF-8):

  {"text":"...","label":"spam","labels":["spam"],"probs":{"ham":0.03,"spam":0.97}}

For a classify checkpoint probs is the softmax over the classes and label the most
probable one; for a multilabel checkpoint probs are independent sigmoids and labels
the classes whose probability is at least --threshold (possibly none).

regression: texts as above, or with data flags a data file whose records may be text
pairs (--text-pair-column; STS-B's sentence pairs), each scored as training encodes it:

  {"text":"A man is playing a guitar.","text_pair":"A man plays the guitar.","score":4.61}

score is the model's output as it is (no sigmoid); a model with several outputs prints
"scores": [...] instead.

ner: texts as above. Each is split into words as the tokenizer's pre-tokenizer splits
it (whitespace ends a word, every punctuation character is a word of its own: "Paris,"
is two words, "@user" too), each word is tagged from its first word piece, and the
entities are read from the BIO tags as eval scores them:

  {"text":"Peter lives in Zürich","words":["Peter","lives","in","Zürich"],
   "tags":["B-person","O","O","B-location"],"entities":[{"type":"person","text":"Peter",
   "start":0,"end":5,"words":[0,1]},...],"confidence":0.41}

start and end are rune offsets in the text, end exclusive; words are the entity's
[first, last+1) in "words"; confidence is the product of the words' tag probabilities.
Words past --max-length are tagged O and counted in "truncated" (with a warning).

qa: --question and --context, or else JSON lines {"id":..., "question":..., "context":...}
from --file or standard input (id is optional: it defaults to the line number):

  {"id":"q1","answer":"1889","start":46,"score":0.87}

The context is cut into windows of --max-length tokens sharing --doc-stride tokens and
the answer is the best span over all windows, with the n-best search eval uses. start
is the answer's first rune in the context and score its probability within its window
(softmax start x softmax end). The answer is never empty unless --allow-empty (SQuAD
v2.0 models) lets [CLS] win: then answer is "" and start -1.

With data flags (--format and the others, the same as train's and eval's), --file is
a data file read as training reads it: csv, tsv, jsonl, parquet or labeltext texts
(labels are read but not used), conll sentences for ner, squad questions for qa, jsonl
choices for choice; an embedding model embeds single texts (text, csv, tsv, jsonl or
parquet; its training data's pairs are not read). qa's windows and choice's text and
choice pairs are batched by runs of --batch-size records (as bertnode infer's units
are). A .parquet file or an hf:// URL is always read so.

choice (multiple choice): JSON lines {"text": ..., "choices": [...]} from --file or
standard input (or a jsonl data file with --choices-column); each text is read with
each choice as a text pair:

  {"text":"She opened the umbrella because","choice":"it was raining","index":1,"probs":[0.1,0.9]}

embed (an embedding checkpoint: a bare base model such as sentence-transformers save,
config.json's architectures BertModel, ModernBertModel...; or any checkpoint read with
--pooling cls|mean|max): texts as for classify; each gets its vector, the last hidden
states pooled as the checkpoint's 1_Pooling/config.json says (else --pooling, else mean),
scaled to unit length when the checkpoint ends with a Normalize module or --normalize
(a data file: --format text, or a csv, tsv, jsonl or parquet file's text column);
--truncate-dim N keeps the first N dimensions (a Matryoshka model's), then scales to
unit length again if normalizing:

  {"text":"...","embedding":[0.0123,-0.0456,...]}

mlm (a masked-LM checkpoint, architectures BertForMaskedLM, ModernBertForMaskedLM...,
NomicBertForPreTraining): texts as for classify, each with the tokenizer's mask token
([MASK]; RoBERTa's <mask>) at least once; for each mask token in order, the --top-k
most probable tokens, as transformers' fill-mask pipeline gives them, sequence being
the text with that mask filled:

  {"text":"Paris is the [MASK] of France.","masks":[[{"score":0.93,"token":3007,
   "token_str":"capital","sequence":"Paris is the capital of France."},...]]}

--attention writes a self-contained HTML page (no network needed) showing every layer's
and head's attention over the first text's word pieces, [CLS] and [SEP] included
(classify, multilabel, regression and ner).`,
		Example: `  bertnode predict --model runs/sms/best "WINNER!! Claim your free prize now" "see you at 6?"
  cut -f2 data/sms_spam/SMSSpamCollection | bertnode predict --model runs/sms/best
  bertnode predict --model runs/sms/best --attention attn.html "free entry to win cash"
  bertnode predict --model runs/wnut/best "Obama met Merkel in Berlin on Tuesday"
  bertnode predict --model runs/squad/best --question "When was it built?" \
    --context "The Eiffel Tower is in Paris and was built in 1889."
  bertnode predict --model runs/squad/best --file questions.jsonl --max-length 384 --doc-stride 128
  bertnode predict --model runs/sms/best --file data/sms_spam/SMSSpamCollection --format labeltext
  bertnode predict --model all-MiniLM-L6-v2 "A man is playing a guitar." "Someone plays music."
  bertnode predict --model runs/sms/best --pooling mean --normalize "read any encoder as an embedding model"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case s.Model == "":
				return fmt.Errorf("--model: a checkpoint directory is required")
			case !(pf.threshold >= 0 && pf.threshold <= 1):
				return fmt.Errorf("--threshold: %v is not in [0, 1]", pf.threshold)
			case (pf.question != "" || pf.context != "") && (strings.TrimSpace(pf.question) == "" || strings.TrimSpace(pf.context) == ""):
				return fmt.Errorf("--question and --context: give both, each not empty")
			case pf.question != "" && (pf.file != "" || len(args) > 0):
				return fmt.Errorf("--question: give one question by flags, or JSON lines in --file or on standard input, not both")
			case dataFlagGiven(cmd.Flags()) && pf.file == "":
				return fmt.Errorf("--format and the other data flags say how to read --file: give --file")
			}
			runtime.LockOSThread() // libtorch's grad mode is per OS thread
			t, err := forPredict(s, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			// A Parquet file or hf:// URL is a data file whatever the flags: it has no lines of text.
			if dataFlagGiven(cmd.Flags()) || pf.file != "" && dataset.Derived(pf.file, s.Data) {
				pf.data = &t.Spec.Data // as the checkpoint's task reads it (regression: scores)
			}
			task := t.Spec.Task
			only := func(flag, want string) error {
				return fmt.Errorf("%s: only for %s checkpoints; %s is %s", flag, want, s.Model, task)
			}
			for _, f := range []string{"question", "context", "allow-empty", "doc-stride"} {
				if cmd.Flags().Changed(f) && task != string(model.QA) {
					return only("--"+f, "qa")
				}
			}
			switch {
			case cmd.Flags().Changed("threshold") && task != string(model.MultiLabel):
				return only("--threshold", "multilabel")
			case pf.attention != "" && task == string(model.QA):
				return only("--attention", "classify, multilabel, regression, ner and embed")
			case cmd.Flags().Changed("normalize") && task != string(model.Embed):
				return only("--normalize", "embed")
			case cmd.Flags().Changed("truncate-dim") && task != string(model.Embed):
				return only("--truncate-dim", "embed")
			case cmd.Flags().Changed("top-k") && task != string(model.MLM):
				return only("--top-k", "mlm")
			}
			out := cmd.OutOrStdout()
			var in predictInput
			switch task {
			case string(model.QA):
				in.questions, err = predictQuestions(cmd, args, pf)
			case string(model.Choice):
				in.choices, err = predictChoiceQuestions(cmd, args, pf)
			default:
				in.texts, in.pairs, err = predictTexts(cmd, args, pf, s.Model, task)
			}
			if err != nil {
				return err
			}
			if err := writePredictions(out, cmd.ErrOrStderr(), t, in, pf); err != nil {
				return err
			}
			if pf.attention == "" || len(in.texts) == 0 {
				return nil
			}
			return writeAttention(cmd, t, in.texts[0], pf.attention)
		},
	}
	f := c.Flags()
	f.StringVar(&s.Model, "model", "", "fine-tuned checkpoint directory (config.json, weights, tokenizer files)")
	f.StringVar(&pf.file, "file", "", "read texts (qa: JSON lines) from this file, one per line, or with data flags (or as a .parquet file or hf:// URL) a data file (default: arguments, else standard input)")
	f.Float64Var(&pf.threshold, "threshold", 0.5, "multilabel: predict every class whose sigmoid probability is at least this")
	f.StringVar(&pf.attention, "attention", "", "write the first text's attention head view to this HTML file")
	f.StringVar(&pf.question, "question", "", "qa: the question to answer (with --context)")
	f.StringVar(&pf.context, "context", "", "qa: the text to find the answer in (with --question)")
	f.BoolVar(&pf.allowEmpty, "allow-empty", false, "qa: answer nothing where [CLS] outscores every span (SQuAD v2.0 models)")
	f.IntVar(&pf.topK, "top-k", 5, "mlm: the most probable tokens to print at each mask token")
	f.BoolVar(&pf.normalize, "normalize", false, "embed: scale the vectors to unit length (an embedding checkpoint with a Normalize module always does)")
	f.IntVar(&pf.truncateDim, "truncate-dim", 0, truncateDimUsage)
	addSpecFlags(f, &s, append(inferFlags, "doc-stride", "pooling")...)
	addSpecFlags(f, &s, dataFlags...)
	f.Lookup("batch-size").Usage = batchSizeUsage
	return c
}

// truncateDimUsage is --truncate-dim's help in predict and infer.
const truncateDimUsage = "embed: keep each vector's first N dimensions (a Matryoshka model's, trained with matryoshka_dims), then scale it to unit length again if normalizing, as sentence-transformers' truncate_dim (0: all)"

// batchSizeUsage is --batch-size's help in predict and infer.
const batchSizeUsage = "texts per forward pass (qa: context windows, choice: text and choice pairs, of runs of this many records)"

// forPredict loads s.Model as predict runs it, with s.Data (the data flags) as predict
// reads a data file for the checkpoint's task: shard.Spec.ForPredict (an embedding
// model embeds single texts, where it evaluates pairs).
func forPredict(s train.Spec, warn io.Writer) (*train.Trainer, error) {
	data := s.Data
	s.Data = shard.Spec{}
	t, err := train.ForEval(s, warn)
	if err != nil {
		return nil, err
	}
	t.Spec.Data = data.ForPredict(t.Spec.Task)
	if err := t.Spec.Data.Validate(); err != nil {
		return nil, fmt.Errorf("job spec: data: %w", err)
	}
	return t, nil
}

// writePredictions prints t's predictions for in as JSON lines: what predict prints,
// and what a predict job's nodes write for each unit (bertnode infer).
func writePredictions(out, warn io.Writer, t *train.Trainer, in predictInput, pf predictFlags) error {
	var lines any
	var err error
	switch t.Spec.Task {
	case string(model.QA):
		lines, err = t.PredictAnswers(in.questions, pf.allowEmpty)
	case string(model.Choice):
		lines, err = t.PredictChoices(in.choices)
	case string(model.Regression):
		lines, err = t.PredictScores(in.texts, in.pairs)
	case string(model.NER):
		return printTags(out, warn, t, in.texts)
	case string(model.MLM):
		lines, err = t.FillMask(in.texts, pf.topK)
	case string(model.Embed):
		normalize := t.Normalize || pf.normalize
		var es []train.Embedding
		if es, err = t.Embed(in.texts, normalize); err == nil && pf.truncateDim != 0 {
			err = train.Truncate(es, pf.truncateDim, normalize, "--truncate-dim")
		}
		lines = es
	default:
		lines, err = t.Predict(in.texts, pf.threshold)
	}
	if err != nil {
		return err
	}
	return writeJSONLines(out, lines)
}

// printTags prints the ner predictions, warning of texts too long for max_length.
func printTags(out, warn io.Writer, t *train.Trainer, texts []string) error {
	tagged, err := t.PredictTags(texts, false)
	if err != nil {
		return err
	}
	for i, p := range tagged {
		if p.Truncated > 0 {
			fmt.Fprintf(warn, "warning: text %d: its last %d of %d words do not fit in --max-length %d and are tagged O\n",
				i+1, p.Truncated, len(p.Words), t.Spec.MaxLength)
		}
	}
	return writeJSONLines(out, tagged)
}

// writeJSONLines writes each item of the slice items as a line of JSON.
func writeJSONLines(w io.Writer, items any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	v := reflect.ValueOf(items)
	for i := range v.Len() {
		if err := enc.Encode(v.Index(i).Addr().Interface()); err != nil {
			return err
		}
	}
	return nil
}

func writeAttention(cmd *cobra.Command, t *train.Trainer, text, path string) error {
	tokens, attn, err := t.Attention(text)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		return report.HeadView(w, tokens, attn)
	}); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: attention of %d layers x %d heads over %d tokens\n", path, len(attn), len(attn[0]), len(tokens))
	return nil
}

// predictTexts is the texts to classify or tag: the arguments, else the data file or the
// lines of pf.file, else of standard input. A qa question among them is an error: the
// wrong checkpoint.
func predictTexts(cmd *cobra.Command, args []string, pf predictFlags, dir, task string) (texts, pairs []string, err error) {
	wrongTask := func(where string) error {
		return fmt.Errorf("%s: this is a qa question (JSON with question and context), but %s is a %s checkpoint, which reads plain text",
			where, dir, task)
	}
	if len(args) > 0 {
		if pf.file != "" {
			return nil, nil, fmt.Errorf("--file: give texts as arguments or in a file, not both")
		}
		for i, a := range args {
			if isQuestion(a) {
				return nil, nil, wrongTask(fmt.Sprintf("argument %d", i+1))
			}
		}
		return args, nil, nil
	}
	if pf.data != nil {
		in, err := dataInput(*pf.data, pf.file, task, cmd.ErrOrStderr())
		return in.texts, in.pairs, err
	}
	err = predictLines(cmd, pf.file, func(name string, line int, text string) error {
		if isQuestion(text) {
			return wrongTask(fmt.Sprintf("%s:%d", name, line))
		}
		texts = append(texts, text)
		return nil
	})
	return texts, nil, err
}

// isQuestion says whether text is a JSON object with a question or a context.
func isQuestion(text string) bool {
	if !strings.HasPrefix(strings.TrimSpace(text), "{") {
		return false
	}
	var q struct{ Question, Context *string }
	return json.Unmarshal([]byte(text), &q) == nil && (q.Question != nil || q.Context != nil)
}

// predictQuestions is the questions to answer: --question and --context, else JSON lines
// of file, else of standard input.
func predictQuestions(cmd *cobra.Command, args []string, pf predictFlags) ([]train.Question, error) {
	if len(args) > 0 {
		return nil, fmt.Errorf("a qa checkpoint answers --question from --context, or JSON lines {\"question\": ..., \"context\": ...} in --file or on standard input; it takes no TEXT arguments")
	}
	if pf.question != "" {
		return []train.Question{{ID: "1", Question: pf.question, Context: pf.context}}, nil
	}
	if pf.data != nil {
		in, err := dataInput(*pf.data, pf.file, string(model.QA), cmd.ErrOrStderr())
		return in.questions, err
	}
	var qs []train.Question
	err := predictLines(cmd, pf.file, func(name string, line int, text string) error {
		var q struct {
			ID                *string
			Question, Context string
		}
		if err := json.Unmarshal([]byte(text), &q); err != nil {
			return fmt.Errorf(`%s:%d: want a JSON object {"id": ..., "question": ..., "context": ...} on each line: %v`, name, line, err)
		}
		id := strconv.Itoa(line)
		if q.ID != nil {
			id = *q.ID
		}
		qs = append(qs, train.Question{ID: id, Question: q.Question, Context: q.Context, Pos: shard.Pos{File: name, Line: line}})
		return nil
	})
	return qs, err
}

// predictChoiceQuestions is the multiple-choice questions to answer: JSON lines
// {"text": ..., "choices": [...]} of --file or standard input, or a data file's records.
func predictChoiceQuestions(cmd *cobra.Command, args []string, pf predictFlags) ([]train.ChoiceQuestion, error) {
	if len(args) > 0 {
		return nil, fmt.Errorf(`a choice checkpoint reads JSON lines {"text": ..., "choices": [...]} in --file or on standard input; it takes no TEXT arguments`)
	}
	if pf.data != nil {
		in, err := dataInput(*pf.data, pf.file, string(model.Choice), cmd.ErrOrStderr())
		return in.choices, err
	}
	var qs []train.ChoiceQuestion
	err := predictLines(cmd, pf.file, func(name string, line int, text string) error {
		var q train.ChoiceQuestion
		if err := json.Unmarshal([]byte(text), &q); err != nil || len(q.Choices) < 2 {
			return fmt.Errorf(`%s:%d: want a JSON object {"text": ..., "choices": [two or more]} on each line`, name, line)
		}
		qs = append(qs, q)
		return nil
	})
	return qs, err
}

// predictLines calls each with every non-blank line of file, else of standard input,
// and its 1-based number.
func predictLines(cmd *cobra.Command, file string, each func(name string, line int, text string) error) error {
	name, r := "standard input", cmd.InOrStdin()
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		name, r = file, f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	n := 0
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSuffix(sc.Text(), "\r")
		if !utf8.ValidString(text) {
			return fmt.Errorf("%s:%d: not valid UTF-8", name, line)
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		n++
		if err := each(name, line, text); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: no input (empty, or only blank lines)", name)
	}
	return nil
}
