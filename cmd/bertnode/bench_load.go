package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bertnode/bertnode/serve"
	"github.com/bertnode/bertnode/serve/loadtest"
)

func init() {
	benchSubcommands = append(benchSubcommands, newBenchLoadCmd)
}

func newBenchLoadCmd() *cobra.Command {
	var (
		o             loadtest.Options
		texts, bodies string
		asJSON        bool
	)
	c := &cobra.Command{
		Use:   "load",
		Short: "Load an HTTP endpoint, such as a bertnode serve's /v1/classify, from closed-loop clients",
		Long: `Posts JSON to --url from --concurrency closed-loop clients (each sends its next request
as soon as its last is answered): one text of --texts per request as {"texts": [text]},
or the request bodies of --bodies, one per line, taken in turn. --warmup is sent but
not counted; then --duration is measured. Prints the requests answered 200 per second,
p50 and p99 latency, and the errors. bench serve runs its clients this way, in another
process (--json), so that the CPU time it measures is the server's alone.`,
		Example: `  bertnode bench load --url http://127.0.0.1:8080/v1/classify --concurrency 16`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.URL == "" {
				return fmt.Errorf("--url: the endpoint to load is missing")
			}
			// Started by bench serve, whose threads run in the background, the clients
			// stand in for other machines: the default policy, as before.
			if err := serve.DefaultThreads(); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
			}
			var err error
			if bodies != "" {
				o.Bodies, err = loadtest.ReadBodies(bodies)
			} else {
				var ts []string
				if ts, err = loadtest.Texts(texts); err == nil {
					o.Bodies, err = loadtest.ClassifyBodies(ts)
				}
			}
			if err != nil {
				return err
			}
			if asJSON {
				return loadtest.Child(cmd.Context(), o, cmd.OutOrStdout())
			}
			r, err := loadtest.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d clients: %.1f req/s, p50 %.1f ms, p99 %.1f ms, %d answered, %d errors %s\n",
				r.Concurrency, r.Throughput, float64(r.P50)/1e6, float64(r.P99)/1e6, r.Requests, r.Errors, r.FirstError)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&o.URL, "url", "", "the endpoint, POSTed to")
	f.StringVar(&texts, "texts", "data/sms_spam/SMSSpamCollection", "labeltext file whose texts are sent, one per request")
	f.StringVar(&bodies, "bodies", "", "file of request bodies, one JSON document per line (instead of --texts)")
	f.IntVar(&o.Concurrency, "concurrency", 16, "clients")
	f.DurationVar(&o.Warmup, "warmup", time.Second, "requests sent before measuring")
	f.DurationVar(&o.Duration, "duration", 5*time.Second, "time measured")
	f.BoolVar(&asJSON, "json", false, "print marks when the measured window begins and ends, then the result as JSON (for bench serve)")
	return c
}
