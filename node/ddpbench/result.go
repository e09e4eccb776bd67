package ddpbench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// BenchName marks this package's JSON lines; the script's are TorchBenchName.
const (
	BenchName      = "bertnode_ddp_bert_train"
	TorchBenchName = "ddp_bert_train"
)

// Result is one config's row. The fields both sides have carry the script's JSON
// names, so that its lines decode into a Result too (see ReadResults).
type Result struct {
	Bench        string `json:"bench"`
	Backend      string `json:"backend"`
	Codec        string `json:"codec,omitempty"`
	Transport    string `json:"transport"`
	WorldSize    int    `json:"world_size"`
	Threads      int    `json:"threads_per_rank"`
	Config       string `json:"config"`
	Layers       int    `json:"layers"`
	Hidden       int    `json:"hidden"`
	Heads        int    `json:"heads"`
	Intermediate int    `json:"intermediate"`
	Vocab        int    `json:"vocab,omitempty"`
	Params       int    `json:"params"`
	GradBytes    int64  `json:"grad_bytes"`
	BatchPerRank int    `json:"batch_per_rank"`
	GlobalBatch  int    `json:"global_batch"`
	Seq          int    `json:"seq"`
	Warmup       int    `json:"warmup"`
	Steps        int    `json:"steps"`

	StepMedian    float64 `json:"step_median_s"`
	ComputeMedian float64 `json:"compute_median_s,omitempty"` // tokenizing, forward, backward
	CommMedian    float64 `json:"comm_median_s,omitempty"`    // all-reduce and commit round, after backward
	FwdMedian     float64 `json:"fwd_median_s,omitempty"`     // the script's: forward and loss
	BwdMedian     float64 `json:"bwd_median_s,omitempty"`     // the script's: backward, DDP's all-reduce within
	OptMedian     float64 `json:"opt_median_s"`
	SamplesPerS   float64 `json:"samples_per_s"`
	// CPU time of a rank's step and of its comm phase, the slowest rank's per step.
	CPUMedian        float64 `json:"cpu_median_s,omitempty"`
	CommCPUMedian    float64 `json:"comm_cpu_median_s,omitempty"`
	ComputeCPUMedian float64 `json:"compute_cpu_median_s,omitempty"`
	OptCPUMedian     float64 `json:"opt_cpu_median_s,omitempty"`
	LossFirst        float64 `json:"loss_first,omitempty"`
	LossLast         float64 `json:"loss_last,omitempty"`
	// WeightsAgree says every rank held the same weights after the warm-up steps.
	WeightsAgree *bool `json:"weights_agree,omitempty"`
	// Weights is their checksum (CRC-32 of the flat weights) when they agree.
	Weights   uint32    `json:"weights_crc,omitempty"`
	StepTimes []float64 `json:"step_times_s"`

	NoSyncSteps        int       `json:"nosync_steps,omitempty"`
	StepNoSyncMedian   float64   `json:"step_nosync_median_s,omitempty"`
	SamplesPerSNoSync  float64   `json:"samples_per_s_nosync,omitempty"`
	CommOverhead       float64   `json:"comm_overhead_s,omitempty"`
	CommOverheadPaired float64   `json:"comm_overhead_paired_s,omitempty"`
	CPUNoSyncMedian    float64   `json:"cpu_nosync_median_s,omitempty"`
	NoSyncStepTimes    []float64 `json:"nosync_step_times_s,omitempty"`

	// Overlapped node steps (Options.Overlap), each after a timed node step whose
	// all-reduce follows backward: their medians; the share of the gradient's bytes
	// sent while backward ran (the slowest rank's); how long before backward's end the
	// first prefix was final; and, paired with the step before, the step time and the
	// communication after backward that overlap saved.
	OverlapSteps         int       `json:"overlap_steps,omitempty"`
	StepOverlapMedian    float64   `json:"step_overlap_median_s,omitempty"`
	ComputeOverlapMedian float64   `json:"compute_overlap_median_s,omitempty"`
	CommOverlapMedian    float64   `json:"comm_overlap_median_s,omitempty"`
	CPUOverlapMedian     float64   `json:"cpu_overlap_median_s,omitempty"`
	EarlyMedian          float64   `json:"early_share_median,omitempty"`
	LeadMedian           float64   `json:"lead_median_s,omitempty"`
	OverlapSavedPaired   float64   `json:"overlap_saved_paired_s,omitempty"`
	CommSavedPaired      float64   `json:"comm_saved_paired_s,omitempty"`
	OverlapStepTimes     []float64 `json:"overlap_step_times_s,omitempty"`

	meta
}

type meta struct {
	Host       string  `json:"host,omitempty"`
	Cpus       int     `json:"cpus,omitempty"`
	Timestamp  string  `json:"timestamp,omitempty"`
	LoadBefore float64 `json:"loadavg_before,omitempty"` // the 1-minute load average
	LoadAfter  float64 `json:"loadavg_after,omitempty"`
	Tag        string  `json:"tag,omitempty"`
	Torch      string  `json:"torch_version,omitempty"`
}

// ms prints seconds as milliseconds, "-" for a figure not measured.
func ms(s float64) string {
	if s == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", s*1e3)
}

func agreeString(b *bool) string {
	if b == nil {
		return "-"
	}
	return fmt.Sprint(*b)
}

// Report prints the table, then with jsonLines one JSON line per row.
func Report(w io.Writer, res []Result, jsonLines bool) error {
	var b strings.Builder
	if len(res) > 0 {
		r := res[0]
		fmt.Fprintf(&b, "# bertnode ring (%s, %s), minimal BERT, N=%d, threads/rank=%d, batch/rank=%d, seq=%d, load %.1f -> %.1f\n",
			r.Codec, r.Transport, r.WorldSize, r.Threads, r.BatchPerRank, r.Seq, r.LoadBefore, r.LoadAfter)
	}
	fmt.Fprintf(&b, "%6s %8s %8s %8s %8s %8s %9s %9s %8s %8s %8s %8s %5s\n", "config", "grad MiB", "step ms",
		"compute", "comm", "opt", "samples/s", "nosync ms", "comm ovh", "cpu ms", "cpu nosy", "comm cpu", "agree")
	for _, r := range res {
		fmt.Fprintf(&b, "%6s %8.1f %8s %8s %8s %8s %9.2f %9s %8s %8s %8s %8s %5s\n", r.Config, float64(r.GradBytes)/(1<<20),
			ms(r.StepMedian), ms(r.ComputeMedian), ms(r.CommMedian), ms(r.OptMedian), r.SamplesPerS, ms(r.StepNoSyncMedian),
			ms(r.CommOverheadPaired), ms(r.CPUMedian), ms(r.CPUNoSyncMedian), ms(r.CommCPUMedian), agreeString(r.WeightsAgree))
	}
	b.WriteString("comm ovh: median over pairs of a step and the compute-only step after it; cpu: the rank process's\n")
	if len(res) > 0 && res[0].OverlapSteps > 0 {
		fmt.Fprintf(&b, "overlapped steps, each after a step above:\n%6s %8s %8s %8s %8s %8s %9s %9s %8s\n", "config", "step ms",
			"compute", "comm", "cpu ms", "early", "lead ms", "saved ms", "comm svd")
		for _, r := range res {
			fmt.Fprintf(&b, "%6s %8s %8s %8s %8s %7.1f%% %9s %9s %8s\n", r.Config, ms(r.StepOverlapMedian), ms(r.ComputeOverlapMedian),
				ms(r.CommOverlapMedian), ms(r.CPUOverlapMedian), 100*r.EarlyMedian, ms(r.LeadMedian), ms(r.OverlapSavedPaired), ms(r.CommSavedPaired))
		}
		b.WriteString("early: share of the gradient's bytes sent while backward ran; lead: first prefix final before backward's end;\n" +
			"saved, comm svd: step time and comm after backward saved, medians over pairs of a step and the overlapped one after it\n")
	}
	if jsonLines {
		if err := WriteJSON(&b, res); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes one JSON line per row.
func WriteJSON(w io.Writer, res []Result) error {
	for _, r := range res {
		j, err := json.Marshal(r)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s\n", j)
	}
	return nil
}
