package node

import "github.com/prometheus/client_golang/prometheus"

// series are a node's Prometheus series.
type series struct {
	step        prometheus.Gauge
	gen         prometheus.Gauge
	rank        prometheus.Gauge
	loss        prometheus.Gauge
	rate        prometheus.Gauge
	steps       prometheus.Counter
	generations prometheus.Counter
	aborted     prometheus.Counter
	skipped     prometheus.Counter
	lossScale   prometheus.Gauge
	compute     prometheus.Histogram
	allreduce   prometheus.Histogram
	transfer    prometheus.Histogram
}

func newSeries(reg prometheus.Registerer) *series {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "bertnode", Subsystem: "node", Name: name, Help: help})
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "bertnode", Subsystem: "node", Name: name, Help: help})
	}
	h := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "bertnode", Subsystem: "node", Name: name, Help: help,
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14)})
	}
	m := &series{
		step:        g("step", "Optimizer steps the node's current job has applied."),
		gen:         g("generation", "The generation of the ring the node trains in (0: none)."),
		rank:        g("rank", "The node's rank in its ring (-1: none)."),
		loss:        g("loss", "The last step's loss, averaged over the global batch."),
		rate:        g("samples_per_second", "Samples per second of the whole ring over the last steps."),
		steps:       c("steps_total", "Optimizer steps applied."),
		generations: c("generations_total", "Rings joined."),
		aborted:     c("aborted_steps_total", "Steps abandoned because the ring failed or changed."),
		skipped:     c("skipped_steps_total", "Steps skipped because their gradient overflowed in fp16 (mixed_precision: fp16)."),
		lossScale:   g("loss_scale", "fp16's dynamic loss scale after the last step (0: not training in fp16)."),
		compute:     h("compute_seconds", "Forward and backward of the node's piece of a step."),
		allreduce:   h("allreduce_seconds", "Gradient all-reduce and commit round of a step."),
		transfer:    h("state_transfer_seconds", "Agreeing on the state and receiving it, at a generation's start."),
	}
	if reg != nil {
		reg.MustRegister(m.step, m.gen, m.rank, m.loss, m.rate, m.steps, m.generations, m.aborted, m.skipped, m.lossScale, m.compute, m.allreduce, m.transfer)
	}
	return m
}
