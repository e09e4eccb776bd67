package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/train"
	"github.com/spf13/pflag"
)

// Every command that reads data has every data flag, with train's help text.
func TestDataFlagsAreOneSet(t *testing.T) {
	trainFlags := newTrainCmd().Flags()
	if len(dataFlags) < 13 {
		t.Fatalf("data flags %v", dataFlags)
	}
	for _, cmd := range []string{"eval", "predict", "augment"} {
		var f *pflag.FlagSet
		for _, mk := range subcommands {
			if c := mk(); c.Name() == cmd {
				f = c.Flags()
			}
		}
		if f == nil {
			t.Fatalf("no command %s", cmd)
		}
		for _, name := range dataFlags {
			got, want := f.Lookup(name), trainFlags.Lookup(name)
			if got == nil || want == nil || got.Usage != want.Usage {
				t.Errorf("%s --%s: %v, train's %v", cmd, name, got, want)
			}
		}
	}
}

// The optimizer, report and data flags set the spec's fields, alone and over a YAML
// spec; --header=false sets a *bool the YAML left nil.
func TestTrainFlagsSetTheSpec(t *testing.T) {
	s := train.Defaults()
	f := pflag.NewFlagSet("train", pflag.ContinueOnError)
	specFlags(f, &s)
	if err := f.Parse([]string{"--optimizer", "sgd", "--momentum", "0.8", "--nesterov", "--report-to", "tensorboard",
		"--header=false", "--delimiter", ";", "--label-sep", "|", "--layer-lr-decay", "0.9",
		"--label-smoothing", "0.1", "--distill-teacher", "runs/teacher/best", "--distill-alpha", "0.3"}); err != nil {
		t.Fatal(err)
	}
	if s.Optimizer != "sgd" || s.Momentum != 0.8 || !s.Nesterov || !slices.Equal(s.ReportTo, []string{"tensorboard"}) || s.LayerLRDecay != 0.9 ||
		s.Data.Header == nil || *s.Data.Header || s.Data.Quote != nil || s.Data.Delimiter != ";" || s.Data.LabelSep != "|" ||
		s.LabelSmoothing != 0.1 || s.Distill != (train.Distill{Teacher: "runs/teacher/best", Temperature: 2, Alpha: 0.3}) {
		t.Errorf("flags made spec %+v, data %+v", s, s.Data)
	}

	job := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(job, []byte("train: x.csv\noptimizer: lamb\nreport_to: [tensorboard]\ndata: {format: csv, text: \"1\", label: \"0\"}\ndistill: {teacher: t, alpha: 0.8}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := newTrainCmd()
	if err := cmd.ParseFlags([]string{"--spec", job, "--momentum", "0.5", "--header=false", "--quote", "--distill-temperature", "4"}); err != nil {
		t.Fatal(err)
	}
	spec, err := loadSpec(cmd, job, train.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	if spec.Optimizer != "lamb" || spec.Momentum != 0.5 || !slices.Equal(spec.ReportTo, []string{"tensorboard"}) ||
		spec.Data.Text != "1" || spec.Data.Header == nil || *spec.Data.Header || spec.Data.Quote == nil || !*spec.Data.Quote ||
		spec.Distill != (train.Distill{Teacher: "t", Temperature: 4, Alpha: 0.8}) {
		t.Errorf("flags over the YAML made spec %+v, data %+v", spec, spec.Data)
	}
	wantErr(t, "", []string{"optimizer", `"adam"`, "adamw, sgd, lamb"}, "train", "--train", smsFile, "--optimizer", "adam")
	wantErr(t, "", []string{"nesterov"}, "train", "--train", smsFile, "--nesterov")
	wantErr(t, "", []string{"report_to", `"wandb"`}, "train", "--train", smsFile, "--report-to", "wandb")
	wantErr(t, "", []string{"header", "invalid syntax"}, "eval", "--header=maybe")
}

// A `label text` file with one space between label and text, as a new user has it,
// scores with eval's data flags exactly as the tab-separated original does; predict
// reads the same file with the same flags and predicts what it predicts for the texts
// given on standard input, and reads a headerless csv by column index.
func TestEvalAndPredictReadDataFlags(t *testing.T) {
	m := trainedSMS(t)
	dir := t.TempDir()
	var spaced, tabbed, texts, csv []string
	for _, l := range readLines(t, m.evalFile)[:60] {
		label, text, _ := strings.Cut(l, "\t")
		if strings.ContainsAny(text, "\"\r") || strings.HasPrefix(text, " ") {
			continue // no quotes to double in the csv below, no leading space to lose
		}
		spaced = append(spaced, label+" "+text)
		tabbed = append(tabbed, label+"\t"+text)
		texts = append(texts, text)
		csv = append(csv, label+",\""+text+"\"")
	}
	mr := writeLines(t, dir, "mr.txt", spaced...)
	evalArgs := []string{"eval", "--model", m.dir, "--max-length", "64", "--threads", "2"}
	tab := writeLines(t, dir, "tab.txt", tabbed...)
	want := mustRun(t, append(evalArgs, "--data", tab, "--format", "labeltext")...)
	got := mustRun(t, append(evalArgs, "--data", mr, "--format", "labeltext", "--delimiter", " ")...)
	if strings.ReplaceAll(got, mr, tab) != want {
		t.Errorf("eval of the space-separated file:\n%s\nof the tab-separated one:\n%s", got, want)
	}
	// The flag reaches the reader (a space is also labeltext's default delimiter).
	wantErr(t, "", []string{"mr.txt:1", `no "|" between label and text`}, append(evalArgs, "--data", mr, "--format", "labeltext", "--delimiter", "|")...)

	predictArgs := []string{"predict", "--model", m.dir, "--max-length", "64", "--threads", "2"}
	out, _, err := bertnode(t, strings.Join(texts, "\n"), predictArgs...)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(jsonLines[train.Prediction](t, out)); n != len(texts) {
		t.Fatalf("%d predictions of %d texts", n, len(texts))
	}
	for name, args := range map[string][]string{
		"labeltext": {"--file", mr, "--format", "labeltext", "--delimiter", " "},
		"csv":       {"--file", writeLines(t, dir, "sms.csv", csv...), "--format", "csv", "--header=false", "--text-column", "1", "--label-column", "0"},
	} {
		if got := mustRun(t, append(predictArgs, args...)...); got != out {
			t.Errorf("predict %s:\n%s\nwant\n%s", name, got, out)
		}
	}
	wantErr(t, "", []string{"--file", "data flags"}, append(predictArgs, "--format", "csv")...)
	pairs := writeLines(t, dir, "pairs.tsv", "a\tb\tlabel", "hi\tthere\tham")
	wantErr(t, "", []string{"pairs.tsv:2", "text pair"}, append(predictArgs, "--file", pairs, "--text-column", "a", "--text-pair-column", "b")...)
}
