package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/worker"
)

func newProvision(g *globals) *cobra.Command {
	var natsURL natsFlag
	cmd := &cobra.Command{
		Use:   "provision",
		Short: "Create or update the streams and key-value buckets the workers use",
		Long: `Make the streams GUESTFLOW and GUESTFLOW_DLQ and the key-value buckets GUESTFLOW_MEMO,
GUESTFLOW_LEASES, GUESTFLOW_INDEX and GUESTFLOW_THROTTLE exist with the settings the
workers give them, and print what was done to each: created, updated or unchanged.

Workers do the same at start, but look first and write only what is absent or differs.
Run provision once, and after an upgrade, as a NATS user that may create and update
those streams; each worker's own user then needs only to look them up (see the README's
Security section for each step's permissions). Running it again changes nothing.

nats.replicas and nats.dlqMaxBytes in --config set the replicas of every stream and
bucket and the dead-letter stream's byte limit: give provision the workers' values.
A stream or bucket on fewer servers than nats.replicas is raised in place, one on
more is left so.`,
		Example: `  GUESTFLOW_NATS_CREDS=provision.creds guestflow provision --nats tls://nats.internal:4222`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadForNATS(cmd, g, natsURL)
			if err != nil {
				return err
			}
			nc, js, err := app.Connect(cfg.NATS, "guestflow-provision")
			if err != nil {
				return err
			}
			defer nc.Close()
			done, err := app.Provision(cmd.Context(), js, streamOptions(cfg.NATS))
			for _, p := range done {
				fmt.Fprintf(cmd.OutOrStdout(), "%-6s  %-18s  %s\n", p.Kind, p.Name, p.Action)
			}
			return err
		},
	}
	natsURL.register(cmd.Flags())
	return cmd
}

// streamOptions are the stream and bucket settings of the configuration,
// the same for `guestflow provision` and every worker: a worker that found
// them different would need the permission to update them.
func streamOptions(n config.NATS) worker.StreamOptions {
	return worker.StreamOptions{Replicas: n.StreamReplicas(), DLQMaxBytes: int64(n.DLQMaxBytes)}
}
